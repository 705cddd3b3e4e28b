/*
** audit.h: append a row to auth_audit_log from inside the extension.
**
**   rc = audit_write(conn, "session.revoked", user_id, NULL, 1, "logout",
**                    "{\"session_id\":\"0192...\"}", NULL);
**
** The table is append-only (its triggers refuse UPDATE and DELETE), so this
** is the whole interface: one INSERT through a cached statement.
*/
#ifndef OAUTHDB_AUDIT_H
#define OAUTHDB_AUDIT_H

#include "oauthdb.h"

/*
** The client an event came from, as the application passed it (the
** session_create arguments): the row's ip_address and user_agent. Either
** may be NULL.
*/
typedef struct audit_client {
  const char *ip_address;
  const char *user_agent;
} audit_client;

/*
** Insert one auth_audit_log row, its id and timestamp from the view
** auth_audit_log_new_id (an id past every id in the log, the timestamp its
** second; the real clock: the log records when things happened, whatever
** clock a test set with oauthdb_config). user_id, provider, reason
** details_json and client may be NULL; details_json must be a JSON object
** (NULL: {}). REASON goes where the schema wants it: a failure's into
** error_message, a success's (a revocation's) into details as "reason".
** Never pass a secret (token, password, key) in reason or details.
**
** Returns an SQLite result code; on failure sqlite3_errmsg(conn->db) says
** why until the next call on the connection, so copy it before running
** anything else.
*/
int audit_write(oauthdb_conn *conn, const char *action, const char *user_id,
                const char *provider, int success, const char *reason,
                const char *details_json, const audit_client *client);

#endif /* OAUTHDB_AUDIT_H */
