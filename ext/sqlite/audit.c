/*
** audit.c: the extension's writer for auth_audit_log (see audit.h).
**
** It adds no SQL function. Rows it writes can be read as any other:
**
**   sqlite> SELECT action, success, error_message, details FROM auth_audit_log
**      ...>  WHERE user_id = ?1 ORDER BY timestamp, id;
**   session.created|1||{"session_id":"0192...","expires_at":1730086400}
*/
#include "audit.h"

SQLITE_EXTENSION_INIT3

/*
** The id and timestamp come from the view auth_audit_log_new_id (migration
** 0001), the same source the audit triggers of 0003 use: every id is
** greater than every id already in the log, and the timestamp is the id's
** own second, so ORDER BY timestamp, id is the order rows were written
** whichever writer wrote them (docs/SCHEMA.md, "Audit order"). A success's
** reason goes into details, a failure's into error_message.
*/
#define AUDIT_INSERT_SQL                                                    \
  "INSERT INTO main.auth_audit_log"                                         \
  "(id, timestamp, user_id, action, provider, success, error_message,"      \
  " details, ip_address, user_agent)"                                       \
  " SELECT n.id, n.timestamp, ?1, ?2, ?3, ?4,"                              \
  " CASE WHEN ?4 THEN NULL ELSE ?5 END,"                                    \
  " CASE WHEN ?4 AND ?5 IS NOT NULL"                                        \
  "      THEN json_set(coalesce(?6, '{}'), '$.reason', ?5)"                 \
  "      ELSE coalesce(?6, '{}') END, ?7, ?8"                               \
  " FROM main.auth_audit_log_new_id AS n"

int audit_write(oauthdb_conn *conn, const char *action, const char *user_id,
                const char *provider, int success, const char *reason,
                const char *details_json, const audit_client *client) {
  sqlite3_stmt *st = conn_stmt(conn, STMT_AUDIT_INSERT, AUDIT_INSERT_SQL);
  if (!st) {
    int rc = sqlite3_errcode(conn->db);
    return rc != SQLITE_OK ? rc : SQLITE_ERROR;
  }
  /*
  ** Busy would mean we were re-entered while this very insert ran (from a
  ** trigger on auth_audit_log): refuse rather than reset it under itself.
  */
  if (sqlite3_stmt_busy(st)) return SQLITE_MISUSE;

  /* SQLITE_STATIC: every argument outlives this call, and is unbound below. */
  sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, action, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, provider, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, success ? 1 : 0);
  sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, details_json, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, client ? client->ip_address : NULL, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 8, client ? client->user_agent : NULL, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  /* reset returns the step's error code and keeps its message. */
  int reset_rc = sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? SQLITE_OK : reset_rc;
}
