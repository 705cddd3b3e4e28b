/*
** fuzz_export_row: the exporter's row checks (tools/export_validate.c) and
** binary COPY encoding (tools/export_copy.c), on rows built from the input.
**
** Every value a dev database can hold goes into a one-table in-memory
** source shaped like oauth_tokens, with a column of every PostgreSQL type
** the exporter encodes. The exporter's own functions then run on it:
** validate_source (pass 1) and, when it finds nothing wrong, copy_table
** (pass 2) into a fake libpq defined below, which keeps the COPY stream.
** Its functions take the place of libpq's (an executable's definitions win
** over a shared library's), so only the COPY path is faked; libpq itself
** is linked for everything else the exporter's files call.
**
** Input layout:
**
**   byte 0      bits 0-1 --secrets: keep (0, 3), reseal (1), omit (2);
**               bit 2 --verify; bit 3 --all-errors; bit 4: the target's
**               id column is text, not uuid (export_schema.c allows both)
**   then rows (at most MAX_ROWS), each a value per column (COLS below):
**     tag % 8:  0 NULL   1 INTEGER (8 bytes)   2 REAL (8 bytes)
**               3 TEXT (2-byte length, bytes)  4 BLOB (same)
**               5 a sealed value: 2-byte length, plaintext, sealed here with
**                 the dev keyring's primary and this row's AD
**                 (oauth_tokens.<column>:<id as stored>)
**               6 TEXT, the one users.id (so the foreign key holds)
**               7 INTEGER, one signed byte
**
** Properties, when pass 1 passes:
**   - pass 2 succeeds (the exporter says encoding never meets a value it
**     cannot represent), with no other SQL sent than the COPY;
**   - the stream is well-formed binary COPY (header, one tuple per row with
**     one field per sent column, the trailer, nothing after) and every
**     field decodes to the source value: uuid bytes, text bytes, jsonb
**     version 1 + text, timestamps as microseconds since 2000, booleans,
**     integers of the column's width, bytea; sealed values as they are
**     (keep), or opening under the production keyring to what the dev
**     keyring opens (reseal), or absent (omit).
** When it fails: a finding was reported (exit status 65), nothing else.
** And for every TEXT value: json_pg_problem() accepts exactly what
** json_canonical() can render, and the rendering renders to itself.
*/
#include <libpq-fe.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "export.h"
#include "fuzz_util.h"
#include "seal.h"

#define TARGET "fuzz_export_row"
#define MAX_ROWS 8
#define USER_ID "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"
#define PG_EPOCH INT64_C(946684800)

/* The target table as export_schema.c would read it from the catalog. */
static const struct {
  const char *name, *pg_type;
  pg_kind kind;
  int not_null;
} COLS[] = {
    {"id", "uuid", PGK_UUID, 1},
    {"user_id", "uuid", PGK_UUID, 1},
    {"access_token", "bytea", PGK_BYTEA, 1},
    {"refresh_token", "bytea", PGK_BYTEA, 0},
    {"id_token", "bytea", PGK_BYTEA, 0},
    {"scope", "text", PGK_TEXT, 0},
    {"meta", "json", PGK_JSON, 0},
    {"extra", "jsonb", PGK_JSONB, 0},
    {"expires_at", "timestamp with time zone", PGK_TIMESTAMPTZ, 0},
    {"seen_at", "timestamp without time zone", PGK_TIMESTAMP, 0},
    {"active", "boolean", PGK_BOOL, 1},
    {"small", "smallint", PGK_INT2, 0},
    {"medium", "integer", PGK_INT4, 0},
    {"big", "bigint", PGK_INT8, 0},
    {"raw", "bytea", PGK_BYTEA, 0},
};
#define N_COLS ((int)(sizeof COLS / sizeof COLS[0]))

static keyring *dev_kr, *prod_kr;

/* ---- the fake libpq: just enough for one COPY ----------------------------- */

struct pg_result {
  ExecStatusType status;
  char tuples[32];
};

static struct {
  int in_copy, ended, aborted, results_left;
  unsigned char *p;
  size_t len, cap;
  int64_t tuples;   /* counted by decode_stream */
} copy;

static char fake_conn;  /* the exporter only passes the pointer around */

static PGresult *new_result(ExecStatusType s) {
  PGresult *r = calloc(1, sizeof *r);
  if (!r) abort();
  r->status = s;
  return r;
}

PGresult *PQexec(PGconn *conn, const char *query) {
  if ((void *)conn != &fake_conn) fuzz_fail(TARGET, "PQexec on another connection");
  if (strncmp(query, "COPY ", 5) != 0 || copy.in_copy)
    fuzz_fail(TARGET, "pass 2 sent SQL other than one COPY: %.80s", query);
  copy.in_copy = 1;
  copy.len = 0;
  return new_result(PGRES_COPY_IN);
}

int PQputCopyData(PGconn *conn, const char *buffer, int nbytes) {
  (void)conn;
  if (!copy.in_copy || copy.ended || nbytes < 0) fuzz_fail(TARGET, "PQputCopyData out of a COPY");
  if (copy.len + (size_t)nbytes > copy.cap) {
    copy.cap = 2 * (copy.len + (size_t)nbytes);
    copy.p = realloc(copy.p, copy.cap);
    if (!copy.p) abort();
  }
  memcpy(copy.p + copy.len, buffer, (size_t)nbytes);
  copy.len += (size_t)nbytes;
  return 1;
}

static void decode_stream(void);

int PQputCopyEnd(PGconn *conn, const char *errormsg) {
  (void)conn;
  if (!copy.in_copy || copy.ended) fuzz_fail(TARGET, "PQputCopyEnd out of a COPY");
  copy.ended = 1;
  copy.aborted = errormsg != NULL;
  copy.results_left = 1;
  if (!copy.aborted) decode_stream();
  return 1;
}

PGresult *PQgetResult(PGconn *conn) {
  (void)conn;
  if (!copy.results_left) return NULL;
  copy.results_left = 0;
  PGresult *r = new_result(copy.aborted ? PGRES_FATAL_ERROR : PGRES_COMMAND_OK);
  snprintf(r->tuples, sizeof r->tuples, "%lld", (long long)copy.tuples);
  return r;
}

ExecStatusType PQresultStatus(const PGresult *res) { return res ? res->status : PGRES_FATAL_ERROR; }
void PQclear(PGresult *res) { free(res); }
char *PQcmdTuples(PGresult *res) { return res->tuples; }
ConnStatusType PQstatus(const PGconn *conn) { (void)conn; return CONNECTION_OK; }
char *PQerrorMessage(const PGconn *conn) { (void)conn; return (char *)"fake libpq"; }
char *PQresultErrorField(const PGresult *res, int fieldcode) {
  (void)res; (void)fieldcode;
  return NULL;
}

/* ---- decoding what was sent ------------------------------------------------ */

typedef struct field {
  int64_t len;  /* -1: NULL */
  const unsigned char *p;
} field;

static field sent[MAX_ROWS][N_COLS];
static int n_sent_cols;

static uint64_t be(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v = v << 8 | p[i];
  return v;
}

/* Binary COPY as PostgreSQL's docs define it, refusing anything else. */
static void decode_stream(void) {
  static const unsigned char sig[11] = "PGCOPY\n\377\r\n";  /* and its NUL */
  const unsigned char *p = copy.p, *end = copy.p + copy.len;
  if (copy.len < 19 || memcmp(p, sig, 11) != 0) fuzz_fail(TARGET, "COPY header");
  if (be(p + 11, 4) != 0) fuzz_fail(TARGET, "COPY flags not 0");
  uint64_t ext = be(p + 15, 4);
  p += 19;
  if (ext > (size_t)(end - p)) fuzz_fail(TARGET, "COPY header extension past the end");
  p += ext;
  copy.tuples = 0;
  for (;;) {
    if (end - p < 2) fuzz_fail(TARGET, "COPY stream ends without the trailer");
    int16_t count = (int16_t)be(p, 2);
    p += 2;
    if (count == -1) break;
    if (count != n_sent_cols)
      fuzz_fail(TARGET, "tuple %lld has %d fields, %d columns are sent",
                (long long)copy.tuples, count, n_sent_cols);
    if (copy.tuples >= MAX_ROWS) fuzz_fail(TARGET, "more tuples than rows");
    for (int f = 0; f < count; f++) {
      if (end - p < 4) fuzz_fail(TARGET, "field length past the end");
      int32_t len = (int32_t)be(p, 4);
      p += 4;
      if (len < -1 || (len > 0 && len > end - p)) fuzz_fail(TARGET, "field length %d", len);
      sent[copy.tuples][f].len = len;
      sent[copy.tuples][f].p = p;
      if (len > 0) p += len;
    }
    copy.tuples++;
  }
  if (p != end) fuzz_fail(TARGET, "%zu bytes after the COPY trailer", (size_t)(end - p));
}

/* ---- one run of pass 1 and pass 2 ----------------------------------------- */

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static void check_uuid(const field *f, const unsigned char *s, int n) {
  unsigned char u[16];
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') fuzz_fail(TARGET, "a uuid passed the checks with no '-' at %d", i);
      continue;
    }
    int h = hexval(s[i]);
    if (h < 0 || k >= 32) fuzz_fail(TARGET, "a non-canonical uuid passed the checks");
    u[k / 2] = (unsigned char)(k % 2 ? u[k / 2] | h : h << 4);
    k++;
  }
  if (n != 36 || k != 32) fuzz_fail(TARGET, "a %d-byte uuid passed the checks", n);
  if (f->len != 16 || memcmp(f->p, u, 16) != 0) fuzz_fail(TARGET, "uuid sent as other bytes");
}

static void check_int(const field *f, sqlite3_int64 v, int width, sqlite3_int64 lo,
                      sqlite3_int64 hi, const char *what) {
  if (v < lo || v > hi) fuzz_fail(TARGET, "%s %lld passed the checks", what, (long long)v);
  if (f->len != width) fuzz_fail(TARGET, "%s sent in %lld bytes", what, (long long)f->len);
  uint64_t raw = be(f->p, width);
  int64_t got = width == 8 ? (int64_t)raw
              : width == 4 ? (int64_t)(int32_t)raw
              : width == 2 ? (int64_t)(int16_t)raw : (int64_t)raw;
  if (got != v) fuzz_fail(TARGET, "%s %lld sent as %lld", what, (long long)v, (long long)got);
}

/* The AD of a sealed column, as docs/FORMAT.md ("Associated data for oauth_tokens") fixes it. */
static size_t make_ad(char *ad, size_t cap, const char *column, const char *id, size_t id_len) {
  int n = snprintf(ad, cap, "oauth_tokens.%s:%.*s", column, (int)id_len, id);
  return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

static void check_sealed(const exporter *ex, const field *f, const unsigned char *v, size_t n,
                         const char *column, const char *id, size_t id_len) {
  if (ex->secrets != SECRETS_RESEAL) {
    if (f->len != (int64_t)n || (n && memcmp(f->p, v, n) != 0))
      fuzz_fail(TARGET, "%s changed under --secrets=keep", column);
    return;
  }
  char ad[512];
  size_t n_ad = make_ad(ad, sizeof ad, column, id, id_len);
  size_t n_pt = n - SEAL_OVERHEAD;
  unsigned char *a = malloc(n_pt + 1), *b = malloc(n_pt + 1);
  uint32_t kid = 0;
  if (!a || !b) abort();
  if (seal_open(dev_kr, v, n, (const unsigned char *)ad, n_ad, a, &kid) != SEAL_OK)
    fuzz_fail(TARGET, "pass 1 passed a %s that does not open with the dev keyring", column);
  if (f->len != (int64_t)n ||
      seal_open(prod_kr, f->p, (size_t)f->len, (const unsigned char *)ad, n_ad, b, &kid) != SEAL_OK ||
      kid != keyring_primary(prod_kr)->id || (n_pt && memcmp(a, b, n_pt) != 0))
    fuzz_fail(TARGET, "resealed %s does not open to the same plaintext under production's key",
              column);
  sodium_memzero(a, n_pt + 1);
  sodium_memzero(b, n_pt + 1);
  free(a);
  free(b);
}

/* Every sent field against the source row it came from. */
static void check_sent(const exporter *ex, const ex_table *t, sqlite3 *db, int rows) {
  if (copy.tuples != rows)
    fuzz_fail(TARGET, "%lld tuples for %d rows", (long long)copy.tuples, rows);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT * FROM oauth_tokens ORDER BY rowid", -1, &st, NULL))
    fuzz_fail(TARGET, "read back: %s", sqlite3_errmsg(db));
  for (int r = 0; sqlite3_step(st) == SQLITE_ROW; r++) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    size_t id_len = (size_t)sqlite3_column_bytes(st, 0);
    int f = 0;
    for (int j = 0; j < N_COLS; j++) {
      const ex_column *c = &t->cols[j];
      if (!c->sent) continue;
      const field *fd = &sent[r][f++];
      int type = sqlite3_column_type(st, j);
      if (type == SQLITE_NULL) {
        if (fd->len != -1) fuzz_fail(TARGET, "NULL %s sent as a value", c->name);
        continue;
      }
      if (fd->len == -1) fuzz_fail(TARGET, "%s sent as NULL", c->name);
      int want_type = c->kind == PGK_BYTEA ? SQLITE_BLOB
                    : (c->kind == PGK_UUID || c->kind == PGK_TEXT || c->kind == PGK_JSON ||
                       c->kind == PGK_JSONB) ? SQLITE_TEXT : SQLITE_INTEGER;
      if (type != want_type)
        fuzz_fail(TARGET, "%s stored as type %d passed the checks", c->name, type);
      const unsigned char *v = type == SQLITE_BLOB ? sqlite3_column_blob(st, j)
                             : type == SQLITE_TEXT ? sqlite3_column_text(st, j) : NULL;
      int n = v ? sqlite3_column_bytes(st, j) : 0;
      sqlite3_int64 iv = v ? 0 : sqlite3_column_int64(st, j);
      if (type == SQLITE_TEXT && !fuzz_is_text(v, (size_t)n))
        fuzz_fail(TARGET, "%s: invalid UTF-8 or a NUL passed the checks", c->name);
      if ((c->kind == PGK_JSON || c->kind == PGK_JSONB) &&
          json_pg_problem((const char *)v, (size_t)n))
        fuzz_fail(TARGET, "%s: JSON jsonb refuses passed the checks", c->name);
      switch (c->kind) {
      case PGK_UUID: check_uuid(fd, v, n); break;
      case PGK_TEXT:
      case PGK_JSON:
        if (fd->len != n || (n && memcmp(fd->p, v, (size_t)n)))
          fuzz_fail(TARGET, "%s sent as other bytes", c->name);
        break;
      case PGK_JSONB:
        if (fd->len != n + 1 || fd->p[0] != 1 || (n && memcmp(fd->p + 1, v, (size_t)n)))
          fuzz_fail(TARGET, "%s not sent as jsonb version 1 + its text", c->name);
        break;
      case PGK_TIMESTAMPTZ:
      case PGK_TIMESTAMP:
        if (iv < 0 || iv > TS_MAX_SECONDS) fuzz_fail(TARGET, "timestamp %lld passed", (long long)iv);
        check_int(fd, (iv - PG_EPOCH) * 1000000, 8, INT64_MIN, INT64_MAX, c->name);
        break;
      case PGK_BOOL: check_int(fd, iv, 1, 0, 1, c->name); break;
      case PGK_INT2: check_int(fd, iv, 2, INT16_MIN, INT16_MAX, c->name); break;
      case PGK_INT4: check_int(fd, iv, 4, INT32_MIN, INT32_MAX, c->name); break;
      case PGK_INT8: check_int(fd, iv, 8, INT64_MIN, INT64_MAX, c->name); break;
      case PGK_BYTEA:
        if (c->sealed) {
          check_sealed(ex, fd, v, (size_t)n, c->name, id, id_len);
        } else if (fd->len != n || (n && memcmp(fd->p, v, (size_t)n))) {
          fuzz_fail(TARGET, "%s sent as other bytes", c->name);
        }
        break;
      }
    }
  }
  sqlite3_finalize(st);
}

/* json_pg_problem and json_canonical agree, and the canonical form is a fixed point. */
static void check_json(const unsigned char *s, size_t n) {
  const char *problem = json_pg_problem((const char *)s, n);
  char *out = NULL, *out2 = NULL;
  size_t len = 0, cap = 0, len2 = 0, cap2 = 0;
  int rc = json_canonical((const char *)s, n, &out, &len, &cap);
  if ((problem == NULL) != (rc == 0))
    fuzz_fail(TARGET, "json_pg_problem says %s, json_canonical %d", problem ? problem : "fine", rc);
  if (rc == 0) {
    if (json_canonical(out, len, &out2, &len2, &cap2) != 0 || len2 != len ||
        memcmp(out, out2, len) != 0)
      fuzz_fail(TARGET, "json_canonical's output renders differently: %.*s", (int)len, out);
  }
  free(out);
  free(out2);
}

static const char *const SOURCE_DDL =
    "CREATE TABLE users (id TEXT PRIMARY KEY);"
    "INSERT INTO users VALUES ('" USER_ID "');"
    /* No declared types: a dev file can hold any storage class anywhere. */
    "CREATE TABLE oauth_tokens (id, user_id REFERENCES users (id), access_token,"
    " refresh_token, id_token, scope, meta, extra, expires_at, seen_at, active, small,"
    " medium, big, raw)";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  if (sodium_init() < 0) abort();
  char *err = NULL;
  dev_kr = keyring_load(fuzz_write_file("dev", fuzz_test_keyring_text,
                                        strlen(fuzz_test_keyring_text)), &err);
  if (!dev_kr) fuzz_fail(TARGET, "dev keyring: %s", err ? err : "?");
  prod_kr = keyring_load(fuzz_write_file("prod", fuzz_prod_keyring_text,
                                         strlen(fuzz_prod_keyring_text)), &err);
  if (!prod_kr) fuzz_fail(TARGET, "production keyring: %s", err ? err : "?");
  return 0;
}

/*
** Bind the next value of the input as parameter j + 1. For the id column
** (j = 0) a TEXT value is also copied to id (up to cap bytes), as sealed
** columns later in the row take it into their AD.
*/
static void bind_value(sqlite3_stmt *ins, int j, fuzz_in *in, char *id, size_t *id_len,
                       size_t cap) {
  uint8_t tag = fuzz_byte(in) % 8;
  size_t n = 0;
  const uint8_t *p = NULL;
  switch (tag) {
  case 1: sqlite3_bind_int64(ins, j + 1, (sqlite3_int64)fuzz_u64(in)); break;
  case 2: {
    uint64_t bits = fuzz_u64(in);
    double d;
    memcpy(&d, &bits, sizeof d);
    sqlite3_bind_double(ins, j + 1, d);
    break;
  }
  case 3:
    p = fuzz_take(in, fuzz_u16(in), &n);
    sqlite3_bind_text(ins, j + 1, (const char *)p, (int)n, SQLITE_TRANSIENT);
    break;
  case 4:
    p = fuzz_take(in, fuzz_u16(in), &n);
    sqlite3_bind_blob(ins, j + 1, p, (int)n, SQLITE_TRANSIENT);
    break;
  case 5: {
    p = fuzz_take(in, fuzz_u16(in), &n);
    char ad[512];
    size_t n_ad = make_ad(ad, sizeof ad, COLS[j].name, id, *id_len);
    unsigned char *sealed = malloc(seal_sealed_len(n));
    if (!sealed) abort();
    if (seal_token(dev_kr, p, n, (const unsigned char *)ad, n_ad, sealed) != SEAL_OK) abort();
    sqlite3_bind_blob(ins, j + 1, sealed, (int)seal_sealed_len(n), SQLITE_TRANSIENT);
    free(sealed);
    p = NULL;  /* not TEXT */
    break;
  }
  case 6:
    p = (const uint8_t *)USER_ID;
    n = strlen(USER_ID);
    sqlite3_bind_text(ins, j + 1, USER_ID, -1, SQLITE_STATIC);
    break;
  case 7: sqlite3_bind_int(ins, j + 1, (int8_t)fuzz_byte(in)); break;
  default: sqlite3_bind_null(ins, j + 1); break;
  }
  if (j == 0) {
    *id_len = 0;
    if (p && (tag == 3 || tag == 6)) {
      *id_len = n < cap ? n : cap;
      memcpy(id, p, *id_len);
    }
  }
}

static void free_exporter(exporter *ex, ex_table *t) {
  for (int i = 0; i < ex->n_findings; i++) {
    free(ex->findings[i].table);
    free(ex->findings[i].id);
    free(ex->findings[i].column);
    free(ex->findings[i].reason);
  }
  free(ex->findings);
  free(ex->failure);
  free(t->cols);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  uint8_t flags = fuzz_byte(&in);

  sqlite3 *db = NULL;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
      sqlite3_exec(db, SOURCE_DDL, NULL, NULL, NULL) != SQLITE_OK)
    fuzz_fail(TARGET, "source: %s", sqlite3_errmsg(db));
  sqlite3_stmt *ins = NULL;
  if (sqlite3_prepare_v2(db, "INSERT INTO oauth_tokens VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                             " ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)", -1, &ins, NULL) != SQLITE_OK)
    fuzz_fail(TARGET, "insert: %s", sqlite3_errmsg(db));
  int rows = 0;
  do {
    char id[256];
    size_t id_len = 0;
    for (int j = 0; j < N_COLS; j++) bind_value(ins, j, &in, id, &id_len, sizeof id);
    if (sqlite3_step(ins) != SQLITE_DONE) fuzz_fail(TARGET, "insert: %s", sqlite3_errmsg(db));
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
    rows++;
  } while (in.n > 0 && rows < MAX_ROWS);
  sqlite3_finalize(ins);

  /* Every TEXT value also goes straight to the JSON code. */
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT * FROM oauth_tokens", -1, &st, NULL) != SQLITE_OK)
    fuzz_fail(TARGET, "read: %s", sqlite3_errmsg(db));
  while (sqlite3_step(st) == SQLITE_ROW)
    for (int j = 0; j < N_COLS; j++)
      if (sqlite3_column_type(st, j) == SQLITE_TEXT)
        check_json(sqlite3_column_text(st, j), (size_t)sqlite3_column_bytes(st, j));
  sqlite3_finalize(st);

  exporter ex;
  memset(&ex, 0, sizeof ex);
  ex.source_path = ":memory:";
  ex.target_desc = (char *)"fuzz";
  ex.src = db;
  ex.pg = (PGconn *)(void *)&fake_conn;
  switch (flags & 3) {
  case 1: ex.secrets = SECRETS_RESEAL; break;
  case 2: ex.secrets = SECRETS_OMIT; break;
  default: ex.secrets = SECRETS_KEEP; break;
  }
  ex.verify = !!(flags & 4);
  ex.all_errors = !!(flags & 8);
  ex.dev_kr = dev_kr;
  ex.prod_kr = prod_kr;

  ex_table t;
  memset(&t, 0, sizeof t);
  t.name = (char *)"oauth_tokens";
  t.n_cols = N_COLS;
  t.cols = calloc(N_COLS, sizeof *t.cols);
  if (!t.cols) abort();
  n_sent_cols = 0;
  for (int j = 0; j < N_COLS; j++) {
    ex_column *c = &t.cols[j];
    c->name = (char *)COLS[j].name;
    c->pg_type = (char *)COLS[j].pg_type;
    c->kind = COLS[j].kind;
    if (j == 0 && (flags & 16)) c->kind = PGK_TEXT, c->pg_type = (char *)"text";
    c->not_null = COLS[j].not_null;
    c->sealed = export_is_sealed(t.name, c->name);
    c->sent = !(c->sealed && ex.secrets == SECRETS_OMIT);
    if (c->sealed) t.has_sealed = 1;
    n_sent_cols += c->sent;
  }
  t.id_col = 0;
  t.n_source = rows;
  ex.n_tables = 1;
  ex.tables = &t;

  if (validate_source(&ex) != 0) {
    if (ex.exit_code != EXIT_DATAERR || ex.n_invalid == 0)
      fuzz_fail(TARGET, "pass 1 failed with status %d and %lld findings: %s", ex.exit_code,
                (long long)ex.n_invalid, ex.failure ? ex.failure : "?");
  } else {
    copy.in_copy = copy.ended = copy.aborted = copy.results_left = 0;
    copy.len = 0;
    copy.tuples = 0;
    int64_t took = -1;
    if (copy_table(&ex, &t, "oauthdb_stage", &took) != 0 || ex.exit_code)
      fuzz_fail(TARGET, "pass 1 passed, pass 2 failed: %s", ex.failure ? ex.failure : "?");
    if (!copy.ended || copy.aborted || took != rows)
      fuzz_fail(TARGET, "COPY not ended cleanly, or %lld of %d rows", (long long)took, rows);
    check_sent(&ex, &t, db, rows);
    if (ex.verify && t.verify.rows != rows)
      fuzz_fail(TARGET, "--verify digested %lld of %d rows", (long long)t.verify.rows, rows);
  }
  free_exporter(&ex, &t);
  if (sqlite3_close(db) != SQLITE_OK) fuzz_fail(TARGET, "close: %s", sqlite3_errmsg(db));
  return 0;
}
