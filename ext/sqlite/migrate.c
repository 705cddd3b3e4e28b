/*
** migrate.c: the schema, migrated by the extension itself.
**
**   SELECT oauthdb_migrate();        -- up to the newest; returns the version
**   SELECT oauthdb_migrate(1);       -- up or down to version 1 (0: empty)
**   SELECT * FROM oauthdb_migrations; -- version, name, checksum, applied_at, status
**
** The migrations are sql/sqlite/NNNN_name.{up,down}.sql, embedded at build
** time (tools/embed_sql.sh), so a .so always carries the schema it expects.
** Each step runs in its own transaction (a savepoint when the caller already
** has one open) and is recorded in schema_migrations with the SHA-256 of its
** up script. Before any step, every applied migration's checksum is compared
** with the embedded one: a migration changed after it was applied, or one
** this build does not know, stops the run before anything is touched.
*/
#include <limits.h>
#include <string.h>
#include "migrations.h"
#include "oauthdb.h"

SQLITE_EXTENSION_INIT3

static const char schema_migrations_ddl[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY CHECK (version > 0),"
    " name TEXT NOT NULL,"
    " checksum TEXT NOT NULL CHECK (length(checksum) = 64),"
    " applied_at INTEGER NOT NULL DEFAULT (unixepoch())"
    ") STRICT";

static int newest_version(void) {
  int v = 0;
  for (int i = 0; i < sqlite_migration_count; i++)
    if (sqlite_migrations[i].version > v) v = sqlite_migrations[i].version;
  return v;
}

static const migration *find_migration(int version) {
  for (int i = 0; i < sqlite_migration_count; i++)
    if (sqlite_migrations[i].version == version) return &sqlite_migrations[i];
  return NULL;
}

/* Does the database already have schema_migrations? */
static int has_migrations_table(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int found = 0;
  if (sqlite3_prepare_v2(db,
                         "SELECT 1 FROM sqlite_schema WHERE type = 'table' "
                         "AND name = 'schema_migrations'",
                         -1, &st, NULL) == SQLITE_OK)
    found = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return found;
}

/*
** Check every applied migration against the embedded ones and find the
** current version. On a mismatch returns SQLITE_ERROR with *pzErr set.
*/
static int check_applied(sqlite3 *db, const char *fn, int *current,
                         char **pzErr) {
  *current = 0;
  if (!has_migrations_table(db)) return SQLITE_OK;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(
      db, "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
      -1, &st, NULL);
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("%s: cannot read schema_migrations: %s", fn,
                             sqlite3_errmsg(db));
    return rc;
  }
  int expected = 1;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    /*
    ** Only a row as run_step writes it counts: an INTEGER version (not 1.0,
    ** '1' or 4294967297, which sqlite3_column_int would all read as 1), and
    ** this build's name and checksum as TEXT. A file can hold any table.
    ** Types are read first: sqlite3_column_text() converts in place.
    */
    int name_type = sqlite3_column_type(st, 1), sum_type = sqlite3_column_type(st, 2);
    sqlite3_int64 v64 = sqlite3_column_int64(st, 0);
    if (sqlite3_column_type(st, 0) != SQLITE_INTEGER || v64 < 1 || v64 > INT_MAX) {
      *pzErr = sqlite3_mprintf(
          "%s: schema_migrations has version %Q, not a migration number; "
          "the database was not migrated by oauthdb",
          fn, (const char *)sqlite3_column_text(st, 0));
      rc = SQLITE_ERROR;
      break;
    }
    int version = (int)v64;
    const char *name = (const char *)sqlite3_column_text(st, 1);
    const char *sum = sum_type == SQLITE_TEXT && sqlite3_column_bytes(st, 2) == 64
                          ? (const char *)sqlite3_column_text(st, 2)
                          : NULL;
    const migration *m = find_migration(version);
    if (!m) {
      *pzErr = sqlite3_mprintf(
          "%s: database has migration %04d_%s, which this build of oauthdb "
          "does not know (it knows up to %04d); use a newer oauthdb",
          fn, version, name ? name : "?", newest_version());
      rc = SQLITE_ERROR;
      break;
    }
    char want[65];
    migration_checksum(m, want);
    if (!sum || strcmp(sum, want) != 0) {
      *pzErr = sqlite3_mprintf(
          "%s: migration %04d_%s was changed after it was applied "
          "(checksum in database %.12s..., in this build %.12s...); "
          "refusing to migrate",
          fn, version, m->name, sum ? sum : "(null)", want);
      rc = SQLITE_ERROR;
      break;
    }
    if (name_type != SQLITE_TEXT || sqlite3_column_bytes(st, 1) != (int)strlen(m->name) ||
        strcmp(name, m->name) != 0) {
      *pzErr = sqlite3_mprintf(
          "%s: migration %04d is named %Q in schema_migrations, %s in this build; "
          "refusing to migrate", fn, version, name, m->name);
      rc = SQLITE_ERROR;
      break;
    }
    if (version != expected) {
      *pzErr = sqlite3_mprintf(
          "%s: schema_migrations is missing migration %04d (has %04d_%s); "
          "the database was not migrated by oauthdb",
          fn, expected, version, m->name);
      rc = SQLITE_ERROR;
      break;
    }
    expected++;
    *current = version;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
** Run one step (up or down) in a savepoint, which is a transaction of its
** own when none is open and nests inside the caller's otherwise.
*/
static int run_step(sqlite3 *db, const char *fn, const migration *m, int up,
                    char **pzErr) {
  char *err = NULL;
  int rc = sqlite3_exec(db, "SAVEPOINT oauthdb_migrate", NULL, NULL, &err);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, schema_migrations_ddl, NULL, NULL, &err);
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, up ? m->up : m->down, NULL, NULL, &err);
  if (rc == SQLITE_OK) {
    sqlite3_stmt *st = NULL;
    if (up) {
      char sum[65];
      migration_checksum(m, sum);
      rc = sqlite3_prepare_v2(db,
                              "INSERT INTO schema_migrations(version, name, checksum) "
                              "VALUES (?1, ?2, ?3)", -1, &st, NULL);
      if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, m->version);
        sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, sum, -1, SQLITE_TRANSIENT);
      }
    } else {
      rc = sqlite3_prepare_v2(db, "DELETE FROM schema_migrations WHERE version = ?1",
                              -1, &st, NULL);
      if (rc == SQLITE_OK) sqlite3_bind_int(st, 1, m->version);
    }
    if (rc == SQLITE_OK) rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    if (rc != SQLITE_OK) err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(db, "RELEASE oauthdb_migrate", NULL, NULL, &err);
  }
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("%s: migration %04d_%s %s failed: %s", fn,
                             m->version, m->name, up ? "up" : "down",
                             err ? err : sqlite3_errmsg(db));
    sqlite3_exec(db, "ROLLBACK TO oauthdb_migrate; RELEASE oauthdb_migrate",
                 NULL, NULL, NULL);
  }
  sqlite3_free(err);
  return rc;
}

/* Migrate to TARGET; on success *reached is the new version. */
static int migrate_to(sqlite3 *db, const char *fn, int target, int *reached,
                      char **pzErr) {
  int current;
  int rc = check_applied(db, fn, &current, pzErr);
  if (rc != SQLITE_OK) return rc;
  while (rc == SQLITE_OK && current < target) {
    const migration *m = find_migration(current + 1);
    rc = run_step(db, fn, m, 1, pzErr);
    if (rc == SQLITE_OK) current++;
  }
  while (rc == SQLITE_OK && current > target) {
    const migration *m = find_migration(current);
    rc = run_step(db, fn, m, 0, pzErr);
    if (rc == SQLITE_OK) current--;
  }
  *reached = current;
  return rc;
}

static void migrate_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  int newest = newest_version();
  int target = newest;
  if (argc == 1) {
    if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER) {
      fn_error(ctx, "oauthdb_migrate: version must be an integer from 0 to %d", newest);
      return;
    }
    sqlite3_int64 v = sqlite3_value_int64(argv[0]);
    if (v < 0 || v > newest) {
      fn_error(ctx, "oauthdb_migrate: no migration %lld (this build has 0 to %d)",
               v, newest);
      return;
    }
    target = (int)v;
  }
  char *err = NULL;
  int reached = 0;
  if (migrate_to(db, "oauthdb_migrate", target, &reached, &err) != SQLITE_OK) {
    sqlite3_result_error(ctx, err ? err : "oauthdb_migrate: failed", -1);
    sqlite3_free(err);
    return;
  }
  sqlite3_result_int(ctx, reached);
}

/* oauthdb_schema_version(): the applied version, 0 when none. */
static void schema_version_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc; (void)argv;
  char *err = NULL;
  int current = 0;
  if (check_applied(sqlite3_context_db_handle(ctx), "oauthdb_schema_version",
                    &current, &err) != SQLITE_OK) {
    sqlite3_result_error(ctx, err, -1);
    sqlite3_free(err);
    return;
  }
  sqlite3_result_int(ctx, current);
}

/* ---- oauthdb_migrations: every migration this build knows, and its state ---- */

/*
** Rows: one per embedded migration, plus any applied migration this build
** does not know. status is 'applied', 'pending', 'changed' (applied, but its
** checksum differs from this build's) or 'unknown' (applied, not embedded).
*/
enum { MCOL_VERSION, MCOL_NAME, MCOL_CHECKSUM, MCOL_APPLIED_AT, MCOL_STATUS };

typedef struct mrow {
  sqlite3_int64 version;
  char *name;
  char *checksum;
  sqlite3_int64 applied_at;   /* 0: not applied */
  const char *status;
} mrow;

typedef struct mig_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
} mig_vtab;

typedef struct mig_cursor {
  sqlite3_vtab_cursor base;
  mrow *rows;
  int n, i;
} mig_cursor;

static int mig_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                       sqlite3_vtab **out, char **pzErr) {
  (void)aux; (void)argc; (void)argv; (void)pzErr;
  int rc = sqlite3_declare_vtab(db,
      "CREATE TABLE x(version INTEGER, name TEXT, checksum TEXT, "
      "applied_at INTEGER, status TEXT)");
  if (rc != SQLITE_OK) return rc;
  mig_vtab *v = sqlite3_malloc(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->db = db;
  *out = &v->base;
  return SQLITE_OK;
}

static int mig_disconnect(sqlite3_vtab *v) { sqlite3_free(v); return SQLITE_OK; }

static int mig_best_index(sqlite3_vtab *v, sqlite3_index_info *info) {
  (void)v;
  info->estimatedCost = 10;
  info->estimatedRows = sqlite_migration_count;
  return SQLITE_OK;
}

static void mig_clear(mig_cursor *c) {
  for (int i = 0; i < c->n; i++) {
    sqlite3_free(c->rows[i].name);
    sqlite3_free(c->rows[i].checksum);
  }
  sqlite3_free(c->rows);
  c->rows = NULL;
  c->n = c->i = 0;
}

static int mig_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out) {
  (void)v;
  mig_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}

static int mig_close(sqlite3_vtab_cursor *cur) {
  mig_clear((mig_cursor *)cur);
  sqlite3_free(cur);
  return SQLITE_OK;
}

static mrow *mig_row_for(mig_cursor *c, int version) {
  for (int i = 0; i < c->n; i++)
    if (c->rows[i].version == version) return &c->rows[i];
  return NULL;
}

static int mig_filter(sqlite3_vtab_cursor *cur, int idx, const char *idxStr,
                      int argc, sqlite3_value **argv) {
  (void)idx; (void)idxStr; (void)argc; (void)argv;
  mig_cursor *c = (mig_cursor *)cur;
  sqlite3 *db = ((mig_vtab *)cur->pVtab)->db;
  mig_clear(c);
  int cap = sqlite_migration_count + 16;
  c->rows = sqlite3_malloc64((sqlite3_uint64)cap * sizeof *c->rows);
  if (!c->rows) return SQLITE_NOMEM;
  for (int i = 0; i < sqlite_migration_count; i++) {
    char sum[65];
    migration_checksum(&sqlite_migrations[i], sum);
    mrow *r = &c->rows[c->n++];
    r->version = sqlite_migrations[i].version;
    r->name = sqlite3_mprintf("%s", sqlite_migrations[i].name);
    r->checksum = sqlite3_mprintf("%s", sum);
    r->applied_at = 0;
    r->status = "pending";
    if (!r->name || !r->checksum) return SQLITE_NOMEM;
  }
  if (!has_migrations_table(db)) return SQLITE_OK;

  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db,
      "SELECT version, name, checksum, applied_at FROM schema_migrations "
      "ORDER BY version", -1, &st, NULL);
  if (rc != SQLITE_OK) {
    vtab_set_error(cur->pVtab, "oauthdb_migrations: cannot read schema_migrations: %s",
                   sqlite3_errmsg(db));
    return rc;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    /* As check_applied: only an INTEGER version names a migration, and
       only this build's name and checksum, as TEXT, make it 'applied'. */
    int name_type = sqlite3_column_type(st, 1), sum_type = sqlite3_column_type(st, 2);
    int is_number = sqlite3_column_type(st, 0) == SQLITE_INTEGER;
    sqlite3_int64 version = sqlite3_column_int64(st, 0);
    const char *sum = (const char *)sqlite3_column_text(st, 2);
    is_number = is_number && version >= 1 && version <= INT_MAX;
    /* An embedded migration's row; a repeated unknown version is unknown again. */
    const migration *m = is_number ? find_migration((int)version) : NULL;
    mrow *r = m ? mig_row_for(c, (int)version) : NULL;
    if (r) {
      const char *name = (const char *)sqlite3_column_text(st, 1);
      int same = sum_type == SQLITE_TEXT && sqlite3_column_bytes(st, 2) == 64 &&
                 strcmp(sum, r->checksum) == 0 && name_type == SQLITE_TEXT &&
                 sqlite3_column_bytes(st, 1) == (int)strlen(m->name) &&
                 strcmp(name, m->name) == 0;
      r->status = same ? "applied" : "changed";
    } else {
      if (c->n == cap) {
        cap *= 2;
        mrow *grown = sqlite3_realloc64(c->rows, (sqlite3_uint64)cap * sizeof *c->rows);
        if (!grown) { rc = SQLITE_NOMEM; break; }
        c->rows = grown;
      }
      r = &c->rows[c->n++];
      r->version = version;
      r->name = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 1));
      r->checksum = sqlite3_mprintf("%s", sum ? sum : "");
      r->status = "unknown";
      if (!r->name || !r->checksum) { rc = SQLITE_NOMEM; break; }
    }
    r->applied_at = sqlite3_column_int64(st, 3);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int mig_next(sqlite3_vtab_cursor *cur) { ((mig_cursor *)cur)->i++; return SQLITE_OK; }
static int mig_eof(sqlite3_vtab_cursor *cur) {
  mig_cursor *c = (mig_cursor *)cur;
  return c->i >= c->n;
}

static int mig_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col) {
  mig_cursor *c = (mig_cursor *)cur;
  mrow *r = &c->rows[c->i];
  switch (col) {
  case MCOL_VERSION: sqlite3_result_int64(ctx, r->version); break;
  case MCOL_NAME: sqlite3_result_text(ctx, r->name, -1, SQLITE_TRANSIENT); break;
  case MCOL_CHECKSUM: sqlite3_result_text(ctx, r->checksum, -1, SQLITE_TRANSIENT); break;
  case MCOL_APPLIED_AT:
    if (r->applied_at) sqlite3_result_int64(ctx, r->applied_at);
    break;
  case MCOL_STATUS: sqlite3_result_text(ctx, r->status, -1, SQLITE_STATIC); break;
  }
  return SQLITE_OK;
}

static int mig_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  mig_cursor *c = (mig_cursor *)cur;
  *rowid = c->rows[c->i].version;
  return SQLITE_OK;
}

static sqlite3_module migrations_module = {
  /* iVersion    */ 0,
  /* xCreate     */ NULL,   /* eponymous only */
  /* xConnect    */ mig_connect,
  /* xBestIndex  */ mig_best_index,
  /* xDisconnect */ mig_disconnect,
  /* xDestroy    */ NULL,
  /* xOpen       */ mig_open,
  /* xClose      */ mig_close,
  /* xFilter     */ mig_filter,
  /* xNext       */ mig_next,
  /* xEof        */ mig_eof,
  /* xColumn     */ mig_column,
  /* xRowid      */ mig_rowid,
  /* xUpdate     */ NULL,
  /* xBegin      */ NULL,
  /* xSync       */ NULL,
  /* xCommit     */ NULL,
  /* xRollback   */ NULL,
  /* xFindMethod */ NULL,
  /* xRename     */ NULL,
  /* xSavepoint  */ NULL,
  /* xRelease    */ NULL,
  /* xRollbackTo */ NULL,
  /* xShadowName */ NULL
};

static const oauthdb_function migrate_functions[] = {
  /* Writes the schema: never from a trigger, view or index of a file. */
  {"oauthdb_migrate", 0, SQLITE_DIRECTONLY, migrate_fn},
  {"oauthdb_migrate", 1, SQLITE_DIRECTONLY, migrate_fn},
  {"oauthdb_schema_version", 0, SQLITE_INNOCUOUS, schema_version_fn},
};
OAUTHDB_FUNCTION_SET(migrate_functions);

int migrate_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  int rc = conn_register_functions(db, conn, migrate_functions,
                                   (int)(sizeof migrate_functions / sizeof migrate_functions[0]),
                                   pzErr);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_create_module(db, "oauthdb_migrations", &migrations_module, NULL);
  if (rc != SQLITE_OK)
    *pzErr = sqlite3_mprintf("oauthdb: cannot register oauthdb_migrations: %s",
                             sqlite3_errmsg(db));
  return rc;
}
