/*
** conn.c: per-connection state.
**
** One oauthdb_conn per connection, handed to every SQL function and virtual
** table as its user data. Each registration takes a reference; SQLite drops
** the registrations when the connection closes and the last one frees the
** state, zeroing the keys (keyring_free).
**
** Cached prepared statements are a trap: sqlite3_close() refuses to close a
** connection with unfinalized statements, and sqlite3_close_v2() would leave
** it a zombie forever, since function destructors only run once it is gone.
** So the cache is owned by an eponymous virtual table, oauthdb_connection,
** connected at load time. sqlite3_close() disconnects every virtual table
** (including eponymous ones) before it looks for live statements, and our
** xDisconnect finalizes the cache there.
*/
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "oauthdb.h"

SQLITE_EXTENSION_INIT3

oauthdb_conn *conn_new(sqlite3 *db) {
  oauthdb_conn *conn = sqlite3_malloc(sizeof *conn);
  if (!conn) return NULL;
  memset(conn, 0, sizeof *conn);
  conn->db = db;
  conn->refs = 1;  /* the entry point's own, dropped when it returns */
  return conn;
}

int64_t conn_now(const oauthdb_conn *conn) {
  return conn->clock_override ? conn->clock_override : (int64_t)time(NULL);
}

void conn_finalize_all(oauthdb_conn *conn) {
  for (int i = 0; i < STMT__COUNT; i++) {
    sqlite3_finalize(conn->stmts[i]);
    conn->stmts[i] = NULL;
  }
}

void conn_release(void *p) {
  oauthdb_conn *conn = p;
  if (!conn || --conn->refs > 0) return;
  conn_finalize_all(conn);
  keyring_file_close(&conn->keyring);
  sodium_memzero(conn, sizeof *conn);
  sqlite3_free(conn);
}

static int guard_connect_now(sqlite3 *db);

sqlite3_stmt *conn_stmt(oauthdb_conn *conn, conn_stmt_id id, const char *sql) {
  if (!conn->stmts[id]) {
    /*
    ** Only cache while the guard can finalize the cache at close. A prepare
    ** that succeeds may still have found another table of that name (an
    ** attached file's), so what counts is whether the guard connected.
    */
    if (!conn->guard_connected) guard_connect_now(conn->db);
    if (!conn->guard_connected) return NULL;
    /* The marker lets the suite's leak check tell the cache apart. */
    char *marked = sqlite3_mprintf("/*oauthdb cache*/ %s", sql);
    if (!marked) return NULL;
    int rc = sqlite3_prepare_v3(conn->db, marked, -1,
                                SQLITE_PREPARE_PERSISTENT, &conn->stmts[id],
                                NULL);
    sqlite3_free(marked);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(conn->stmts[id]);
      conn->stmts[id] = NULL;
      return NULL;
    }
  }
  return conn->stmts[id];
}

int conn_register_functions(sqlite3 *db, oauthdb_conn *conn,
                            const oauthdb_function *fns, int n, char **pzErr) {
  for (int i = 0; i < n; i++) {
    conn->refs++;
    int rc = sqlite3_create_function_v2(db, fns[i].name, fns[i].n_arg,
                                        SQLITE_UTF8 | fns[i].flags, conn,
                                        fns[i].x_func, NULL, NULL,
                                        conn_release);
    /* On failure SQLite has already called conn_release for us. */
    if (rc != SQLITE_OK) {
      *pzErr = sqlite3_mprintf("oauthdb: cannot register function %s: %s",
                               fns[i].name, sqlite3_errmsg(db));
      return rc;
    }
  }
  return SQLITE_OK;
}

int conn_register_module(sqlite3 *db, oauthdb_conn *conn, const char *name,
                         const sqlite3_module *module, char **pzErr) {
  conn->refs++;
  int rc = sqlite3_create_module_v2(db, name, module, conn, conn_release);
  /* On failure SQLite has already called conn_release. */
  if (rc != SQLITE_OK)
    *pzErr = sqlite3_mprintf("oauthdb: cannot register %s: %s", name,
                             sqlite3_errmsg(db));
  return rc;
}

void fn_error(sqlite3_context *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  if (msg) {
    sqlite3_result_error(ctx, msg, -1);
    sqlite3_free(msg);
  } else {
    sqlite3_result_error_nomem(ctx);
  }
}

void vtab_set_error(sqlite3_vtab *vtab, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sqlite3_free(vtab->zErrMsg);
  vtab->zErrMsg = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
}

const char *storage_class_name(int type) {
  switch (type) {
    case SQLITE_INTEGER: return "INTEGER";
    case SQLITE_FLOAT: return "REAL";
    case SQLITE_TEXT: return "TEXT";
    case SQLITE_BLOB: return "BLOB";
    default: return "NULL";
  }
}

/* ---- oauthdb_connection: the guard table that owns the statement cache ---- */

typedef struct guard_vtab {
  sqlite3_vtab base;
  oauthdb_conn *conn;
} guard_vtab;

static int guard_connect(sqlite3 *db, void *aux, int argc,
                         const char *const *argv, sqlite3_vtab **out,
                         char **pzErr) {
  (void)argc; (void)argv; (void)pzErr;
  int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(version TEXT)");
  if (rc != SQLITE_OK) return rc;
  guard_vtab *v = sqlite3_malloc(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->conn = aux;
  v->conn->guard_connected = 1;
  *out = &v->base;
  return SQLITE_OK;
}

static int guard_disconnect(sqlite3_vtab *vtab) {
  guard_vtab *v = (guard_vtab *)vtab;
  conn_finalize_all(v->conn);
  v->conn->guard_connected = 0;
  sqlite3_free(v);
  return SQLITE_OK;
}

static int guard_best_index(sqlite3_vtab *vtab, sqlite3_index_info *info) {
  (void)vtab;
  info->estimatedCost = 1;
  info->estimatedRows = 1;
  return SQLITE_OK;
}

typedef struct guard_cursor {
  sqlite3_vtab_cursor base;
  int eof;
} guard_cursor;

static int guard_open(sqlite3_vtab *vtab, sqlite3_vtab_cursor **out) {
  (void)vtab;
  guard_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}
static int guard_close(sqlite3_vtab_cursor *cur) { sqlite3_free(cur); return SQLITE_OK; }
static int guard_filter(sqlite3_vtab_cursor *cur, int idx, const char *idxStr,
                        int argc, sqlite3_value **argv) {
  (void)idx; (void)idxStr; (void)argc; (void)argv;
  ((guard_cursor *)cur)->eof = 0;
  return SQLITE_OK;
}
static int guard_next(sqlite3_vtab_cursor *cur) { ((guard_cursor *)cur)->eof = 1; return SQLITE_OK; }
static int guard_eof(sqlite3_vtab_cursor *cur) { return ((guard_cursor *)cur)->eof; }
static int guard_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i) {
  (void)cur; (void)i;
  sqlite3_result_text(ctx, OAUTHDB_VERSION, -1, SQLITE_STATIC);
  return SQLITE_OK;
}
static int guard_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  (void)cur; *rowid = 1; return SQLITE_OK;
}

static sqlite3_module guard_module = {
  /* iVersion    */ 0,
  /* xCreate     */ NULL,   /* eponymous only */
  /* xConnect    */ guard_connect,
  /* xBestIndex  */ guard_best_index,
  /* xDisconnect */ guard_disconnect,
  /* xDestroy    */ NULL,
  /* xOpen       */ guard_open,
  /* xClose      */ guard_close,
  /* xFilter     */ guard_filter,
  /* xNext       */ guard_next,
  /* xEof        */ guard_eof,
  /* xColumn     */ guard_column,
  /* xRowid      */ guard_rowid,
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

/*
** Register the guard and connect it now: preparing a statement that names
** an eponymous table connects it for the rest of the connection's life.
*/

int conn_guard_register(sqlite3 *db, oauthdb_conn *conn) {
  conn->refs++;
  int rc = sqlite3_create_module_v2(db, "oauthdb_connection", &guard_module,
                                    conn, conn_release);
  /* Connected on first use by conn_stmt(): preparing reads the schema,
     which can fail, and nothing may fail once registration has begun. */
  return rc;
}

static int guard_connect_now(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  /* main.: unqualified, a table of an attached file would come first. */
  int rc = sqlite3_prepare_v2(db, "SELECT version FROM main.oauthdb_connection", -1,
                          &st, NULL);
  sqlite3_finalize(st);
  return rc;
}
