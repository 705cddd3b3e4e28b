/*
** export_source.c: the dev database, read-only, in one read transaction.
**
** The source is opened with SQLITE_OPEN_READONLY and never with the oauthdb
** extension: the exporter only reads bytes, and a dev file is not trusted to
** run code (trusted_schema off, defensive on). BEGIN plus a first read pins
** one snapshot, so in WAL mode the application may keep writing while both
** passes (check, then send) see exactly the same rows.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "export.h"
#include "migrations.h"

static int src_fail(exporter *ex, const char *what) {
  return ex_fail(ex, EXIT_NOINPUT, "source %s: %s: %s", ex->source_path, what,
                 sqlite3_errmsg(ex->src));
}

int source_open(exporter *ex) {
  struct stat stbuf;
  if (stat(ex->source_path, &stbuf) != 0)
    return ex_fail(ex, EXIT_NOINPUT, "source %s: %s", ex->source_path,
                   strerror(errno));
  if (!S_ISREG(stbuf.st_mode))
    return ex_fail(ex, EXIT_NOINPUT, "source %s: not a regular file",
                   ex->source_path);
  /* NOMUTEX: the connection is used by this one thread only, and in the
     default serialized mode every sqlite3_column_*() call takes a mutex
     (a tenth of the time of a pass over the rows). */
  int rc = sqlite3_open_v2(ex->source_path, &ex->src,
                           SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) return src_fail(ex, "cannot open");
  sqlite3_extended_result_codes(ex->src, 1);
  /* Never run SQL functions from the file's schema; refuse writes to it. */
  sqlite3_db_config(ex->src, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)0);
  sqlite3_db_config(ex->src, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
  /* A writer holding a lock briefly should not fail the export. */
  sqlite3_busy_timeout(ex->src, 10000);
  /* An 8 MiB page cache (the default is 2 MiB) keeps the parent tables'
     id indexes cached for the foreign-key lookups of pass 1. Not mmap:
     mapped pages would count in the resident size, which must stay flat. */
  sqlite3_exec(ex->src, "PRAGMA cache_size = -8192", NULL, NULL, NULL);
  char *err = NULL;
  /* BEGIN is deferred: the first SELECT takes the snapshot, right away. */
  rc = sqlite3_exec(ex->src, "BEGIN; SELECT count(*) FROM sqlite_schema;", NULL,
                    NULL, &err);
  if (rc != SQLITE_OK) {
    ex_fail(ex, EXIT_NOINPUT, "source %s: cannot start a read transaction: %s",
            ex->source_path, err ? err : sqlite3_errmsg(ex->src));
    sqlite3_free(err);
    return -1;
  }
  return 0;
}

void source_close(exporter *ex) {
  if (!ex->src) return;
  sqlite3_exec(ex->src, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close(ex->src);
  ex->src = NULL;
}

static const migration *pg_migration(int version) {
  for (int i = 0; i < postgres_migration_count; i++)
    if (postgres_migrations[i].version == version) return &postgres_migrations[i];
  return NULL;
}

/* The source's migration version: schema_migrations must be 1..N. */
static int source_version(exporter *ex) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(ex->src,
                         "SELECT version, name FROM schema_migrations ORDER BY version",
                         -1, &st, NULL) != SQLITE_OK) {
    return ex_fail(ex, EXIT_NOINPUT,
                   "source %s: not an oauthdb database (no schema_migrations: %s); "
                   "create it with the extension's oauthdb_migrate()",
                   ex->source_path, sqlite3_errmsg(ex->src));
  }
  int expected = 1, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int v = sqlite3_column_int(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 1);
    if (v != expected) {
      ex_fail(ex, EXIT_NOINPUT,
              "source %s: schema_migrations has %04d_%s where %04d was "
              "expected; the database was not migrated by oauthdb",
              ex->source_path, v, name ? name : "?", expected);
      sqlite3_finalize(st);
      return -1;
    }
    if (!pg_migration(v)) {
      ex_fail(ex, EXIT_NOINPUT,
              "source %s is at migration %04d_%s, which this "
              "oauthdb-export does not know (it has PostgreSQL migrations "
              "up to %04d); use a newer oauthdb-export",
              ex->source_path, v, name ? name : "?",
              postgres_migration_count ? postgres_migrations[postgres_migration_count - 1].version : 0);
      sqlite3_finalize(st);
      return -1;
    }
    expected++;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return src_fail(ex, "cannot read schema_migrations");
  ex->source_version = expected - 1;
  if (ex->source_version == 0)
    return ex_fail(ex, EXIT_NOINPUT,
                   "source %s: no migration applied yet; run SELECT "
                   "oauthdb_migrate() on it first", ex->source_path);
  return 0;
}

int source_plan(exporter *ex) {
  if (source_version(ex)) return -1;
  sqlite3_stmt *st = NULL;
  /* Creation order: a stable base for the foreign-key sort. */
  int rc = sqlite3_prepare_v2(
      ex->src,
      "SELECT name FROM sqlite_schema WHERE type = 'table' "
      "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'schema_migrations' "
      "AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY rowid",
      -1, &st, NULL);
  if (rc != SQLITE_OK) return src_fail(ex, "cannot list tables");
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    ex->tables = ex_xrealloc(ex->tables, sizeof *ex->tables * (size_t)(ex->n_tables + 1));
    ex_table *t = &ex->tables[ex->n_tables++];
    memset(t, 0, sizeof *t);
    t->name = ex_xstrdup((const char *)sqlite3_column_text(st, 0));
    t->id_col = -1;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return src_fail(ex, "cannot list tables");

  for (int i = 0; i < ex->n_tables; i++) {
    ex_table *t = &ex->tables[i];
    rc = sqlite3_prepare_v2(ex->src, "SELECT name FROM pragma_table_info(?1)", -1,
                            &st, NULL);
    if (rc != SQLITE_OK) return src_fail(ex, "cannot read columns");
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      t->src_cols = ex_xrealloc(t->src_cols, sizeof *t->src_cols * (size_t)(t->n_src_cols + 1));
      t->src_cols[t->n_src_cols++] = ex_xstrdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return src_fail(ex, "cannot read columns");

    char *q = sql_ident(t->name);
    char *sql = ex_strdup_printf("SELECT count(*) FROM %s", q);
    free(q);
    rc = sqlite3_prepare_v2(ex->src, sql, -1, &st, NULL);
    free(sql);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
      sqlite3_finalize(st);
      return src_fail(ex, "cannot count rows");
    }
    t->n_source = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  return 0;
}

/*
** SELECT rowid, every planned column, then json_valid() of each JSON column
** when asked (pass 1). The rowid names a row whose id is itself unusable.
*/
char *source_select_sql(const ex_table *t, int with_json_valid) {
  return source_select_sql_ex(t, with_json_valid, "", "");
}

/* The same, with more columns (SQL text starting with ", ") after the
** table's, and a suffix (ORDER BY, WHERE) after FROM. */
char *source_select_sql_ex(const ex_table *t, int with_json_valid, const char *more,
                           const char *suffix) {
  size_t cap = 256, len = 0;
  char *sql = ex_xmalloc(cap);
#define APPEND(s)                                      \
  do {                                                 \
    const char *s_ = (s);                              \
    size_t n_ = strlen(s_);                            \
    if (len + n_ + 1 > cap) {                          \
      cap = 2 * (len + n_ + 1);                        \
      sql = ex_xrealloc(sql, cap);                     \
    }                                                  \
    memcpy(sql + len, s_, n_ + 1);                     \
    len += n_;                                         \
  } while (0)
  APPEND("SELECT rowid");
  for (int j = 0; j < t->n_cols; j++) {
    char *q = sql_ident(t->cols[j].name);
    APPEND(", ");
    APPEND(q);
    free(q);
  }
  if (with_json_valid) {
    for (int j = 0; j < t->n_cols; j++) {
      if (t->cols[j].kind != PGK_JSON && t->cols[j].kind != PGK_JSONB) continue;
      char *q = sql_ident(t->cols[j].name);
      APPEND(", json_valid(");
      APPEND(q);
      APPEND(")");
      free(q);
    }
  }
  APPEND(more);
  char *q = sql_ident(t->name);
  APPEND(" FROM ");
  APPEND(q);
  free(q);
  APPEND(suffix);
#undef APPEND
  return sql;
}
