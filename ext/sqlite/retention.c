/*
** retention.c: oauthdb_purge(), the one way rows leave auth_audit_log.
**
**   sqlite> SELECT oauthdb_purge(90 * 86400);    -- older than 90 days
**   {"audit_rows":1520,"sessions":311,"cutoff":1722300000,"older_than":7776000}
**
** One call, in one savepoint (its own transaction outside the caller's, a
** nested one inside it):
**
**   1. auth_audit_log rows with timestamp < cutoff are deleted;
**   2. dead sessions are deleted when they died before the cutoff: a session
**      dies at the first of revoked_at, expires_at and
**      last_used + idle_timeout (the same rule as session_valid);
**   3. a 'retention.run' audit row records both counts and the cutoff.
**
** cutoff = now - older_than_seconds, where now is the connection's clock
** (oauthdb_config('clock'); the real time unless a test set it).
**
** The log is append-only for everyone else: the schema's trigger
** auth_audit_log_no_delete refuses every DELETE. To delete, this function
** reads the trigger's exact CREATE statement from sqlite_schema, drops it,
** deletes, and runs the stored statement again, all inside the savepoint, then
** checks that sqlite_schema holds the very same text before releasing. Any
** failure rolls the savepoint back, which restores the trigger with
** everything else, so no committed state (and so no other connection, which
** only sees committed schema) ever lacks it. A database whose trigger is
** already missing is refused rather than purged: its log was not append-only
** and someone should look at it first.
**
** DIRECTONLY: it deletes and rewrites the schema, so a view or trigger of an
** untrusted database file must never be able to call it.
*/
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "audit.h"
#include "oauthdb.h"

SQLITE_EXTENSION_INIT3

#define NO_DELETE_TRIGGER "auth_audit_log_no_delete"
/* The schema's timestamp range (0 .. 9999-12-31T23:59:59Z). */
#define RETENTION_MAX_SECONDS 253402300799LL

static const char trigger_sql_query[] =
    "SELECT sql FROM main.sqlite_schema"
    " WHERE type = 'trigger' AND name = '" NO_DELETE_TRIGGER "'"
    " AND tbl_name = 'auth_audit_log'";

static const char delete_audit_sql[] =
    "DELETE FROM main.auth_audit_log WHERE timestamp < ?1";

/*
** A full scan of user_sessions: the death time is a min() over three
** columns, which no single index serves. Retention runs rarely (a daily
** job), and dead rows are what makes the table big in the first place.
*/
static const char delete_sessions_sql[] =
    "DELETE FROM main.user_sessions"
    " WHERE min(coalesce(revoked_at, expires_at), expires_at,"
    "           last_used + idle_timeout) < ?1";

/* Copy of sqlite3_errmsg, taken before a rollback overwrites it. */
static char *db_message(sqlite3 *db) {
  return sqlite3_mprintf("%s", sqlite3_errmsg(db));
}

/* Run one bound DELETE; *n gets the rows it removed. */
static int run_delete(sqlite3 *db, const char *sql, sqlite3_int64 cutoff,
                      sqlite3_int64 *n, char **err) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, cutoff);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
  }
  if (rc == SQLITE_OK) {
    *n = sqlite3_changes64(db);
  } else {
    *err = db_message(db);
  }
  sqlite3_finalize(st);
  return rc;
}

/* The trigger's stored CREATE statement (sqlite3_malloc'd), or NULL. */
static int read_trigger_sql(sqlite3 *db, char **out, char **err) {
  sqlite3_stmt *st = NULL;
  *out = NULL;
  int rc = sqlite3_prepare_v2(db, trigger_sql_query, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      const char *sql = (const char *)sqlite3_column_text(st, 0);
      *out = sqlite3_mprintf("%s", sql ? sql : "");
      rc = *out ? SQLITE_OK : SQLITE_NOMEM;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    }
  }
  if (rc != SQLITE_OK) *err = db_message(db);
  sqlite3_finalize(st);
  return rc;
}

/*
** Steps 1 to 3 inside the caller's savepoint. On failure *err says what
** failed (sqlite3_malloc'd) and the caller rolls back.
*/
static int purge_in_savepoint(oauthdb_conn *conn, sqlite3_int64 older_than,
                              sqlite3_int64 cutoff, char **result, char **err) {
  sqlite3 *db = conn->db;
  char *trigger_sql = NULL;
  char *check_sql = NULL;
  sqlite3_int64 n_audit = 0, n_sessions = 0;

  int rc = read_trigger_sql(db, &trigger_sql, err);
  if (rc == SQLITE_OK && !trigger_sql &&
      sqlite3_table_column_metadata(db, "main", "auth_audit_log", NULL, NULL,
                                    NULL, NULL, NULL, NULL) != SQLITE_OK) {
    *err = sqlite3_mprintf("no auth_audit_log table in this database "
                           "(run SELECT oauthdb_migrate() first)");
    rc = SQLITE_ERROR;
  } else if (rc == SQLITE_OK && !trigger_sql) {
    *err = sqlite3_mprintf(
        "trigger " NO_DELETE_TRIGGER " is missing, so auth_audit_log is not "
        "append-only; refusing to purge (check the schema with "
        "SELECT * FROM oauthdb_migrations, and restore the trigger)");
    rc = SQLITE_ERROR;
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(db, "DROP TRIGGER main." NO_DELETE_TRIGGER, NULL, NULL, NULL);
    if (rc != SQLITE_OK) *err = db_message(db);
  }
  if (rc == SQLITE_OK) rc = run_delete(db, delete_audit_sql, cutoff, &n_audit, err);
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(db, trigger_sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) *err = db_message(db);
  }
  /* Belt and braces: the trigger must be back, word for word. */
  if (rc == SQLITE_OK) rc = read_trigger_sql(db, &check_sql, err);
  if (rc == SQLITE_OK && (!check_sql || strcmp(check_sql, trigger_sql) != 0)) {
    *err = sqlite3_mprintf("trigger " NO_DELETE_TRIGGER " did not come back "
                           "as it was; nothing was purged");
    rc = SQLITE_ERROR;
  }
  if (rc == SQLITE_OK)
    rc = run_delete(db, delete_sessions_sql, cutoff, &n_sessions, err);

  char *details = NULL;
  if (rc == SQLITE_OK) {
    details = sqlite3_mprintf(
        "{\"audit_rows\":%lld,\"sessions\":%lld,\"cutoff\":%lld,"
        "\"older_than\":%lld}",
        (long long)n_audit, (long long)n_sessions, (long long)cutoff,
        (long long)older_than);
    if (!details) rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_OK) {
    rc = audit_write(conn, "retention.run", NULL, NULL, 1, NULL, details, NULL);
    if (rc != SQLITE_OK) *err = db_message(db);
  }
  if (rc == SQLITE_OK) {
    *result = details;
    details = NULL;
  }
  sqlite3_free(details);
  sqlite3_free(trigger_sql);
  sqlite3_free(check_sql);
  return rc;
}

static void purge_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER ||
      sqlite3_value_int64(argv[0]) < 0 ||
      sqlite3_value_int64(argv[0]) > RETENTION_MAX_SECONDS) {
    fn_error(ctx, "oauthdb_purge: older_than_seconds must be an integer from 0 "
                  "to %lld (90 days: 90 * 86400)", RETENTION_MAX_SECONDS);
    return;
  }
  if (conn->in_retention) {
    fn_error(ctx, "oauthdb_purge: already running on this connection");
    return;
  }
  sqlite3_int64 older_than = sqlite3_value_int64(argv[0]);
  sqlite3_int64 now = conn_now(conn);
  sqlite3_int64 cutoff = now - older_than;

  char *err = NULL, *result = NULL;
  int rc = sqlite3_exec(db, "SAVEPOINT oauthdb_purge", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    fn_error(ctx, "oauthdb_purge: cannot start: %s", sqlite3_errmsg(db));
    return;
  }
  conn->in_retention = 1;
  rc = purge_in_savepoint(conn, older_than, cutoff, &result, &err);
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(db, "RELEASE oauthdb_purge", NULL, NULL, NULL);
    if (rc != SQLITE_OK) err = db_message(db);
  }
  if (rc != SQLITE_OK) {
    /* Undoes the DROP TRIGGER too: the log is append-only again. */
    sqlite3_exec(db, "ROLLBACK TO oauthdb_purge; RELEASE oauthdb_purge",
                 NULL, NULL, NULL);
  }
  conn->in_retention = 0;

  if (rc == SQLITE_OK) {
    sqlite3_result_text(ctx, result, -1, sqlite3_free);
  } else {
    fn_error(ctx, "oauthdb_purge: %s", err ? err : sqlite3_errstr(rc));
    sqlite3_free(result);
  }
  sqlite3_free(err);
}

static const oauthdb_function retention_functions[] = {
  /* Deletes and drops/recreates a trigger: never from a schema object. */
  {"oauthdb_purge", 1, SQLITE_DIRECTONLY, purge_fn},
};
OAUTHDB_FUNCTION_SET(retention_functions);

int retention_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_functions(
      db, conn, retention_functions,
      (int)(sizeof retention_functions / sizeof retention_functions[0]), pzErr);
}
