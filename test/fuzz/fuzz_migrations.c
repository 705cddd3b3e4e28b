/*
** fuzz_migrations: a schema_migrations table from the input, then
** oauthdb_schema_version(), oauthdb_migrations and oauthdb_migrate()
** (ext/sqlite/migrate.c), which must never crash and must accept the table only
** when it is exactly what this build embedded.
**
** The input is text, so seeds read like the table they make:
**
**   2md                         <- line 1: table shape, then what to call
**   i1|n1|c1|i1700000000        <- one row per line: version|name|checksum|applied_at
**   i2|n2|c2|
**
** Line 1, first character, the shape of schema_migrations (a database file
** can hold any):
**   0 none   1 the extension's own STRICT table   2 no types at all
**   3 WITHOUT ROWID   4 columns reordered plus one   5 no checksum column
**   6 a view over another table   7 checksum a generated column
**   8 version with TEXT affinity
** then any of: m  call oauthdb_migrate()   d  then oauthdb_migrate(0)
**
** A field is: empty (NULL), i<integer>, r<real>, t<text>, x<hex> (a BLOB),
** c<k> (the checksum this build has for its k-th migration; C<k> the same
** bytes as a BLOB), n<k> (its name), or any other text as it is. c<k> and n<k> let the fuzzer build
** the tables this build must accept without knowing the checksums, which
** change whenever a migration does.
**
** "Exactly what this build embedded" (exact(k)): k rows, and for each
** migration 1..k one row whose version is the INTEGER v, whose name and
** checksum are TEXT equal to the build's. Properties:
**   - oauthdb_schema_version() = k >= 1 only when exact(k); and exact(k) in
**     a real table means it answers k (a good database is never refused);
**   - oauthdb_migrate() succeeds only from exact(k) (or no rows), and then
**     oauthdb_schema_version() says the newest or refuses the table (a
**     shape that stores what it wrote differently); oauthdb_migrate(0)
**     then leaves no rows;
**   - oauthdb_migrations says 'applied' for version v only when a row is
**     exactly migration v.
*/
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "migrations.h"

#define TARGET "fuzz_migrations"
#define MAX_ROWS 64      /* enough to say anything; bounds the time per input */
#define MAX_MIGRATIONS 64

int sqlite3_oauthdb_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

static char sums[MAX_MIGRATIONS][65];
static int newest;

static const char *const shapes[] = {
    /* 0 */ "",
    /* 1: as ext/sqlite/migrate.c creates it */
    "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY CHECK (version > 0),"
    " name TEXT NOT NULL, checksum TEXT NOT NULL CHECK (length(checksum) = 64),"
    " applied_at INTEGER NOT NULL DEFAULT (unixepoch())) STRICT",
    /* 2 */ "CREATE TABLE schema_migrations (version, name, checksum, applied_at)",
    /* 3 */ "CREATE TABLE schema_migrations (version PRIMARY KEY, name, checksum, applied_at)"
    " WITHOUT ROWID",
    /* 4 */ "CREATE TABLE schema_migrations (applied_at, checksum, extra, name, version)",
    /* 5 */ "CREATE TABLE schema_migrations (version, name, applied_at)",
    /* 6 */ "CREATE TABLE sm_rows (version, name, checksum, applied_at);"
    " CREATE VIEW schema_migrations AS SELECT * FROM sm_rows",
    /* 7 */ "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT,"
    " src TEXT, checksum TEXT GENERATED ALWAYS AS (src) VIRTUAL, applied_at INTEGER)",
    /* 8 */ "CREATE TABLE schema_migrations (version TEXT, name, checksum, applied_at)",
};
static const char *const inserts[] = {
    "", /* 0: no table */
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?4)",
    "INSERT INTO sm_rows (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
    "INSERT INTO schema_migrations (version, name, src, applied_at) VALUES (?1, ?2, ?3, ?4)",
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  if (sodium_init() < 0) abort();
  if (sqlite_migration_count > MAX_MIGRATIONS) abort();
  for (int i = 0; i < sqlite_migration_count; i++) {
    if (sqlite_migrations[i].version != i + 1)
      fuzz_fail(TARGET, "embedded migrations are not 1..%d", sqlite_migration_count);
    migration_checksum(&sqlite_migrations[i], sums[i]);
  }
  newest = sqlite_migration_count;
  sqlite3_auto_extension((void (*)(void))sqlite3_oauthdb_init);
  return 0;
}

/* Bind one field (bytes [p, end)) as parameter i. */
static void bind_field(sqlite3_stmt *st, int i, const char *p, const char *end) {
  size_t n = (size_t)(end - p);
  char tmp[64];
  if (n == 0) {
    sqlite3_bind_null(st, i);
    return;
  }
  const char *rest = p + 1;
  size_t n_rest = n - 1;
  snprintf(tmp, sizeof tmp, "%.*s", (int)(n_rest < 63 ? n_rest : 63), rest);
  switch (p[0]) {
  case 'i': sqlite3_bind_int64(st, i, strtoll(tmp, NULL, 10)); return;
  case 'r': sqlite3_bind_double(st, i, strtod(tmp, NULL)); return;
  case 't': sqlite3_bind_text(st, i, rest, (int)n_rest, SQLITE_TRANSIENT); return;
  case 'x': {
    size_t len = 0;
    unsigned char *bin = malloc(n_rest / 2 + 1);
    if (!bin) abort();
    sodium_hex2bin(bin, n_rest / 2 + 1, rest, n_rest, NULL, &len, NULL);
    sqlite3_bind_blob(st, i, bin, (int)len, SQLITE_TRANSIENT);
    free(bin);
    return;
  }
  case 'c':
  case 'C':
  case 'n': {
    long k = strtol(tmp, NULL, 10);
    if (k >= 1 && k <= newest) {
      const char *s = p[0] == 'n' ? sqlite_migrations[k - 1].name : sums[k - 1];
      if (p[0] == 'C') sqlite3_bind_blob(st, i, s, 64, SQLITE_STATIC);
      else sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
      return;
    }
    break;
  }
  }
  sqlite3_bind_text(st, i, p, (int)n, SQLITE_TRANSIENT);
}

/* Fill the table from the rows of the input (lines after the first). */
static void fill(sqlite3 *db, int shape, const char *s, const char *end) {
  sqlite3_stmt *ins = NULL;
  if (sqlite3_prepare_v2(db, inserts[shape], -1, &ins, NULL) != SQLITE_OK)
    fuzz_fail(TARGET, "prepare insert for shape %d: %s", shape, sqlite3_errmsg(db));
  for (int row = 0; s < end && row < MAX_ROWS; row++) {
    const char *eol = memchr(s, '\n', (size_t)(end - s));
    if (!eol) eol = end;
    const char *f = s;
    for (int i = 1; i <= 4; i++) {
      const char *bar = memchr(f, '|', (size_t)(eol - f));
      const char *fe = bar ? bar : eol;
      bind_field(ins, i, f, fe);
      f = bar ? bar + 1 : eol;
    }
    sqlite3_step(ins);  /* a row the table's constraints refuse is just not there */
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
    s = eol < end ? eol + 1 : end;
  }
  sqlite3_finalize(ins);
}

/*
** exact(k): the k such that the table is exactly migrations 1..k, or -1.
** No table (or a view, which oauthdb does not take for one) counts as 0.
*/
static int exact(sqlite3 *db, int *real_table) {
  sqlite3_stmt *st = NULL;
  *real_table = 0;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_schema WHERE type = 'table' "
                             "AND name = 'schema_migrations'", -1, &st, NULL) != SQLITE_OK)
    fuzz_fail(TARGET, "sqlite_schema: %s", sqlite3_errmsg(db));
  *real_table = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  if (!*real_table) return 0;
  if (sqlite3_prepare_v2(db, "SELECT version, name, checksum FROM schema_migrations", -1,
                         &st, NULL) != SQLITE_OK)
    return -1;  /* no checksum column: nothing to be exact about */
  int rows = 0, seen[MAX_MIGRATIONS + 1] = {0}, matched = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    rows++;
    if (sqlite3_column_type(st, 0) != SQLITE_INTEGER) continue;
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    if (v < 1 || v > newest || seen[v]) continue;
    if (sqlite3_column_type(st, 1) != SQLITE_TEXT || sqlite3_column_type(st, 2) != SQLITE_TEXT)
      continue;
    const migration *m = &sqlite_migrations[v - 1];
    if ((size_t)sqlite3_column_bytes(st, 1) != strlen(m->name) ||
        memcmp(sqlite3_column_text(st, 1), m->name, strlen(m->name)) != 0 ||
        sqlite3_column_bytes(st, 2) != 64 ||
        memcmp(sqlite3_column_text(st, 2), sums[v - 1], 64) != 0)
      continue;
    seen[v] = 1;
    matched++;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return -1;
  if (matched != rows) return -1;
  for (int v = 1; v <= rows; v++)
    if (!seen[v]) return -1;
  return rows;
}

/* SELECT sql; returns 1 with *out set on success, 0 on an SQL error. */
static int select_int(sqlite3 *db, const char *sql, sqlite3_int64 *out) {
  sqlite3_stmt *st = NULL;
  int ok = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    *out = sqlite3_column_int64(st, 0);
    ok = 1;
  }
  sqlite3_finalize(st);
  return ok;
}

/* oauthdb_migrations: 'applied' only for exact rows; every migration listed. */
static void check_migrations_table(sqlite3 *db, int real_table) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT version, status FROM oauthdb_migrations", -1, &st, NULL) !=
      SQLITE_OK)
    fuzz_fail(TARGET, "prepare oauthdb_migrations: %s", sqlite3_errmsg(db));
  int listed = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    const char *status = (const char *)sqlite3_column_text(st, 1);
    if (!status) fuzz_fail(TARGET, "oauthdb_migrations: NULL status");
    if (v >= 1 && v <= newest) listed++;
    if (strcmp(status, "applied") != 0) continue;
    if (!real_table || v < 1 || v > newest)
      fuzz_fail(TARGET, "oauthdb_migrations: version %lld 'applied' without a table row",
                (long long)v);
    char *sql = sqlite3_mprintf(
        "SELECT count(*) FROM schema_migrations WHERE typeof(version) = 'integer' AND "
        "version = %lld AND name = %Q AND checksum = '%s'",
        (long long)v, sqlite_migrations[v - 1].name, sums[v - 1]);
    sqlite3_int64 count = 0;
    if (!select_int(db, sql, &count) || count < 1)
      fuzz_fail(TARGET, "oauthdb_migrations: version %lld 'applied', but no row is exactly it",
                (long long)v);
    sqlite3_free(sql);
  }
  sqlite3_finalize(st);
  /* An error (say, no checksum column) is an answer; a partial list is not. */
  if (rc == SQLITE_DONE && listed < newest)
    fuzz_fail(TARGET, "oauthdb_migrations lists %d of %d migrations", listed, newest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data, *end = s + size;
  const char *eol = memchr(s, '\n', size);
  if (!eol) eol = end;
  int shape = size > 0 && s[0] >= '0' && s[0] < '0' + N_SHAPES ? s[0] - '0' : 0;
  int do_migrate = memchr(s, 'm', (size_t)(eol - s)) != NULL;
  int do_down = memchr(s, 'd', (size_t)(eol - s)) != NULL;

  sqlite3 *db = NULL;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK)
    fuzz_fail(TARGET, "open: %s", sqlite3_errmsg(db));
  if (shape && sqlite3_exec(db, shapes[shape], NULL, NULL, NULL) != SQLITE_OK)
    fuzz_fail(TARGET, "shape %d: %s", shape, sqlite3_errmsg(db));
  if (shape) fill(db, shape, eol < end ? eol + 1 : end, end);

  int real_table;
  int k = exact(db, &real_table);
  sqlite3_int64 version = -1;
  int answered = select_int(db, "SELECT oauthdb_schema_version()", &version);
  if (answered && version >= 1 && version != k)
    fuzz_fail(TARGET, "oauthdb_schema_version() = %lld for a table that is %s", (long long)version,
              k < 0 ? "not exactly this build's" : "another version");
  if (k >= 0 && real_table && (!answered || version != k))
    fuzz_fail(TARGET, "exactly migrations 1..%d, but oauthdb_schema_version() %s", k,
              answered ? "disagrees" : "fails");
  if (k >= 0 && !real_table && answered && version != 0)
    fuzz_fail(TARGET, "no table, but oauthdb_schema_version() = %lld", (long long)version);
  check_migrations_table(db, real_table);

  if (do_migrate) {
    sqlite3_int64 reached = -1;
    if (select_int(db, "SELECT oauthdb_migrate()", &reached)) {
      if (k < 0) fuzz_fail(TARGET, "oauthdb_migrate() accepted a table that is not this build's");
      /*
      ** What it wrote, it accepts; except that a table shaped to store the
      ** rows differently (version with TEXT affinity) may then be refused.
      */
      sqlite3_int64 now = -1;
      int after = exact(db, &real_table);
      if (reached != newest ||
          (select_int(db, "SELECT oauthdb_schema_version()", &now) && now != newest) ||
          (after >= 0 && after != newest))
        fuzz_fail(TARGET, "oauthdb_migrate() = %lld, then oauthdb_schema_version() = %lld, "
                  "table exact to %d; newest is %d", (long long)reached, (long long)now,
                  after, newest);
      check_migrations_table(db, real_table);
      /* Down only from a schema it built: rows that merely claim 1..k lack the tables. */
      if (do_down && now == newest && k == 0) {
        if (!select_int(db, "SELECT oauthdb_migrate(0)", &reached) || reached != 0)
          fuzz_fail(TARGET, "oauthdb_migrate(0) after a migration: %s", sqlite3_errmsg(db));
        if (exact(db, &real_table) != 0)
          fuzz_fail(TARGET, "rows left after oauthdb_migrate(0)");
      }
    }
  }
  if (sqlite3_close(db) != SQLITE_OK) fuzz_fail(TARGET, "close: %s", sqlite3_errmsg(db));
  return 0;
}
