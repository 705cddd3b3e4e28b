/*
** audit.c: the extension's writer for auth_audit_log (see audit.h).
**
** It adds no SQL function. Rows it writes can be read as any other:
**
**   sqlite> SELECT event, success, reason, details FROM auth_audit_log
**      ...>  WHERE user_id = ?1 ORDER BY created_at, id;
**   session.created|1||{"session_id":"0192...","expires_at":1730086400}
*/
#include "audit.h"

SQLITE_EXTENSION_INIT3

#define AUDIT_INSERT_SQL                                                    \
  "INSERT INTO auth_audit_log"                            \
  "(id, user_id, event, success, reason, details)"                          \
  " VALUES (uuid7(), ?1, ?2, ?3, ?4, coalesce(?5, '{}'))"

int audit_write(oauthdb_conn *conn, const char *event, const char *user_id,
                int success, const char *reason, const char *details_json) {
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
  sqlite3_bind_text(st, 2, event, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, success ? 1 : 0);
  sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, details_json, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  /* reset returns the step's error code and keeps its message. */
  int reset_rc = sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? SQLITE_OK : reset_rc;
}
