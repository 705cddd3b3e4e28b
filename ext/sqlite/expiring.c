/*
** expiring.c: tokens_expiring(within_seconds), the tokens a refresh worker
** should renew now.
**
**   SELECT id, provider, seconds_left FROM tokens_expiring(600);
**   -- 0192f3c4-...|google|412
**
** Rows: every active OAuth token that can be refreshed (it has a refresh
** token and an expiry) and expires within that many seconds of now, already
** expired ones included (seconds_left <= 0), soonest first:
**
**   id, user_provider_id, provider, expires_at, seconds_left
**
** API-key credentials (Motion) have neither refresh token nor expiry, so
** they never appear. "now" is the connection's clock: the real time unless
** a test set one with oauthdb_config('clock', ...).
**
** The work is one range scan of the partial index oauth_tokens_expiring
** (sql/sqlite/0001_schema.up.sql), whose WHERE clause the query below
** repeats term for term, so its cost grows with the rows returned and not
** with the table (bench/expiring_vs_scan.c).
**
** It opens no token and writes nothing, and shows only what a plain SELECT
** on oauth_tokens shows, so it is SQLITE_VTAB_INNOCUOUS: a view may use it.
*/
#include <stdint.h>
#include <string.h>
#include <time.h>
#include "oauthdb.h"

SQLITE_EXTENSION_INIT3

enum {
  ECOL_ID,
  ECOL_USER_PROVIDER_ID,
  ECOL_PROVIDER,
  ECOL_EXPIRES_AT,
  ECOL_SECONDS_LEFT,
  ECOL_WITHIN_SECONDS  /* HIDDEN: the argument */
};

/*
** Statement columns: t.rowid, t.id, t.user_provider_id, p.provider,
** t.expires_at. The inner join is on the primary key of user_providers,
** which every token's link has (foreign key, ON DELETE CASCADE).
*/
#define EXPIRING_SQL                                                         \
  "/*oauthdb cache*/ SELECT t.rowid, t.id, t.user_provider_id, p.provider, " \
  "t.expires_at FROM main.oauth_tokens AS t "                                \
  "JOIN main.user_providers AS p ON p.id = t.user_provider_id "              \
  "WHERE t.is_active = 1 AND t.refresh_token IS NOT NULL "                   \
  "AND t.expires_at IS NOT NULL AND t.reconsent_required_at IS NULL "        \
  "AND t.expires_at <= ?1 "                                                  \
  "ORDER BY t.expires_at"

#define EXPIRING_NEEDS_ARG                                                   \
  "tokens_expiring: needs within_seconds, e.g. "                             \
  "SELECT * FROM tokens_expiring(3600)"

/*
** Like the vault's, the statement belongs to the table (finalized in
** xDisconnect), since a cursor holds it across calls; a second cursor at
** the same time (a self-join) prepares its own.
*/
typedef struct expiring_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
  oauthdb_conn *conn;
  sqlite3_stmt *st;
  int st_taken;
} expiring_vtab;

typedef struct expiring_cursor {
  sqlite3_vtab_cursor base;
  sqlite3_stmt *st;
  int own;              /* st prepared for this cursor alone */
  int eof;
  int64_t now;          /* the clock when the scan started */
  sqlite3_int64 within; /* the argument, for the hidden column */
} expiring_cursor;

static int expiring_connect(sqlite3 *db, void *aux, int argc,
                            const char *const *argv, sqlite3_vtab **out,
                            char **pzErr) {
  (void)argc; (void)argv; (void)pzErr;
  int rc = sqlite3_declare_vtab(db,
      "CREATE TABLE x(id TEXT, user_provider_id TEXT, provider TEXT, "
      "expires_at INTEGER, seconds_left INTEGER, within_seconds HIDDEN)");
  /* Harmless from a schema: no secret, no write (see the top of the file). */
  if (rc == SQLITE_OK) rc = sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
  if (rc != SQLITE_OK) return rc;
  expiring_vtab *v = sqlite3_malloc(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->db = db;
  v->conn = aux;
  *out = &v->base;
  return SQLITE_OK;
}

static int expiring_disconnect(sqlite3_vtab *vtab) {
  expiring_vtab *v = (expiring_vtab *)vtab;
  sqlite3_finalize(v->st);
  sqlite3_free(v);
  return SQLITE_OK;
}

/*
** idxNum 1: within_seconds = argv[0], the only plan. Without an equality
** on within_seconds anywhere in the query the call is wrong, and that is
** an error with a message; SQLITE_CONSTRAINT (whose message SQLite drops)
** is only for a plan where the argument exists but is not usable yet (it
** comes from a table joined later). Rows come out in expires_at order, so
** an ORDER BY expires_at (or seconds_left) is consumed.
*/
static int expiring_best_index(sqlite3_vtab *vtab, sqlite3_index_info *info) {
  int arg = -1, seen = 0;
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    if (c->iColumn != ECOL_WITHIN_SECONDS) continue;
    if (c->op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    seen = 1;
    if (c->usable) arg = i;
  }
  if (!seen) {
    vtab_set_error(vtab, EXPIRING_NEEDS_ARG);
    return SQLITE_ERROR;
  }
  if (arg < 0) return SQLITE_CONSTRAINT;
  info->aConstraintUsage[arg].argvIndex = 1;
  info->aConstraintUsage[arg].omit = 1;
  info->idxNum = 1;
  info->idxStr = "expires_at<=now+?";  /* for EXPLAIN QUERY PLAN */
  info->estimatedCost = 100;
  info->estimatedRows = 100;
  int ordered = info->nOrderBy > 0;
  for (int i = 0; i < info->nOrderBy; i++) {
    int col = info->aOrderBy[i].iColumn;
    if ((col != ECOL_EXPIRES_AT && col != ECOL_SECONDS_LEFT) || info->aOrderBy[i].desc)
      ordered = 0;
  }
  info->orderByConsumed = ordered;
  return SQLITE_OK;
}

static int expiring_open(sqlite3_vtab *vtab, sqlite3_vtab_cursor **out) {
  (void)vtab;
  expiring_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  c->eof = 1;
  *out = &c->base;
  return SQLITE_OK;
}

static void cursor_release(expiring_cursor *c) {
  expiring_vtab *v = (expiring_vtab *)c->base.pVtab;
  if (!c->st) return;
  if (c->own) {
    sqlite3_finalize(c->st);
  } else {
    sqlite3_reset(c->st);
    v->st_taken = 0;
  }
  c->st = NULL;
  c->own = 0;
}

static int expiring_close(sqlite3_vtab_cursor *cur) {
  cursor_release((expiring_cursor *)cur);
  sqlite3_free(cur);
  return SQLITE_OK;
}

static void set_query_error(expiring_vtab *v) {
  const char *msg = sqlite3_errmsg(v->db);
  vtab_set_error(&v->base, "tokens_expiring: %s%s", msg,
                 strstr(msg, "no such table")
                     ? " (has SELECT oauthdb_migrate() been run?)"
                     : "");
}

static int cursor_step(expiring_cursor *c) {
  int rc = sqlite3_step(c->st);
  if (rc == SQLITE_ROW) {
    c->eof = 0;
    return SQLITE_OK;
  }
  c->eof = 1;
  if (rc != SQLITE_DONE) set_query_error((expiring_vtab *)c->base.pVtab);
  cursor_release(c);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int expiring_filter(sqlite3_vtab_cursor *cur, int idx_num,
                           const char *idx_str, int argc, sqlite3_value **argv) {
  (void)idx_num; (void)idx_str;
  expiring_cursor *c = (expiring_cursor *)cur;
  expiring_vtab *v = (expiring_vtab *)cur->pVtab;
  cursor_release(c);
  c->eof = 1;
  if (argc < 1) {  /* xBestIndex makes this impossible; be sure anyway */
    vtab_set_error(cur->pVtab, EXPIRING_NEEDS_ARG);
    return SQLITE_ERROR;
  }
  /* numeric_type: '3600' from a text binding is fine, 'soon' or 1.5 is not. */
  if (sqlite3_value_numeric_type(argv[0]) != SQLITE_INTEGER) {
    vtab_set_error(cur->pVtab, "tokens_expiring: within_seconds must be an "
                   "integer number of seconds, e.g. 3600");
    return SQLITE_MISMATCH;
  }
  c->within = sqlite3_value_int64(argv[0]);
  c->now = conn_now(v->conn);
  /* Saturate: a huge window means "all of them", not an overflow. */
  sqlite3_int64 until;
  if (c->within > 0 && c->now > INT64_MAX - c->within) until = INT64_MAX;
  else if (c->within < 0 && c->now < INT64_MIN - c->within) until = INT64_MIN;
  else until = c->now + c->within;

  int rc;
  if (!v->st_taken) {
    if (!v->st) {
      rc = sqlite3_prepare_v3(v->db, EXPIRING_SQL, -1, SQLITE_PREPARE_PERSISTENT,
                              &v->st, NULL);
      if (rc != SQLITE_OK) {
        set_query_error(v);
        return rc;
      }
    }
    v->st_taken = 1;
    c->st = v->st;
  } else {
    rc = sqlite3_prepare_v2(v->db, EXPIRING_SQL, -1, &c->st, NULL);
    if (rc != SQLITE_OK) {
      set_query_error(v);
      return rc;
    }
    c->own = 1;
  }
  sqlite3_bind_int64(c->st, 1, until);
  return cursor_step(c);
}

static int expiring_next(sqlite3_vtab_cursor *cur) {
  return cursor_step((expiring_cursor *)cur);
}

static int expiring_eof(sqlite3_vtab_cursor *cur) {
  return ((expiring_cursor *)cur)->eof;
}

static int expiring_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                           int col) {
  expiring_cursor *c = (expiring_cursor *)cur;
  switch (col) {
    case ECOL_ID:
    case ECOL_USER_PROVIDER_ID:
    case ECOL_PROVIDER:
    case ECOL_EXPIRES_AT:
      sqlite3_result_value(ctx, sqlite3_column_value(c->st, col + 1));
      break;
    case ECOL_SECONDS_LEFT:
      sqlite3_result_int64(ctx, sqlite3_column_int64(c->st, 1 + ECOL_EXPIRES_AT) - c->now);
      break;
    case ECOL_WITHIN_SECONDS:
      sqlite3_result_int64(ctx, c->within);
      break;
  }
  return SQLITE_OK;
}

static int expiring_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = sqlite3_column_int64(((expiring_cursor *)cur)->st, 0);
  return SQLITE_OK;
}

static sqlite3_module expiring_module = {
  /* iVersion    */ 0,
  /* xCreate     */ NULL,   /* eponymous only */
  /* xConnect    */ expiring_connect,
  /* xBestIndex  */ expiring_best_index,
  /* xDisconnect */ expiring_disconnect,
  /* xDestroy    */ NULL,
  /* xOpen       */ expiring_open,
  /* xClose      */ expiring_close,
  /* xFilter     */ expiring_filter,
  /* xNext       */ expiring_next,
  /* xEof        */ expiring_eof,
  /* xColumn     */ expiring_column,
  /* xRowid      */ expiring_rowid,
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

int expiring_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_module(db, conn, "tokens_expiring", &expiring_module, pzErr);
}
