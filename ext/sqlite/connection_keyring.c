/*
** connection_keyring.c: each connection's keyring (docs/SQL.md, "Keys").
**
** A connection finds its keyring through $OAUTHDB_KEYRING on first use, or
** is given one with oauthdb_keyring('/path') (tokens.c). Loading, checking
** and following the file after a rotation are the core's (keyring_file.h,
** shared with the PostgreSQL extension); this file only turns its results
** into SQLite's memory and messages. Keys live in the connection and are
** zeroed when it closes (conn.c).
*/
#include <stdlib.h>
#include "oauthdb.h"

SQLITE_EXTENSION_INIT3

/* The core's malloc'd message as an sqlite3_malloc'd one. */
static char *take_message(char *err) {
  char *msg = sqlite3_mprintf("%s", err ? err : "out of memory loading the keyring");
  free(err);
  return msg;
}

int connection_keyring_load(oauthdb_conn *conn, const char *path, char **pzErr) {
  *pzErr = NULL;
  char *err = NULL;
  if (keyring_file_load(&conn->keyring, path, &err) != 0) {
    *pzErr = take_message(err);
    return SQLITE_ERROR;
  }
  return SQLITE_OK;
}

/*
** The message does not start with a function name: callers prefix their
** own ("oauth_token_vault: no keyring: ...").
*/
keyring *connection_keyring(oauthdb_conn *conn, char **pzErr) {
  *pzErr = NULL;
  if (conn->keyring.path) {
    /* Loaded before, or set with oauthdb_keyring() and since broken: the
       same path is retried, never the environment. */
    char *err = NULL;
    keyring *kr = keyring_file_current(&conn->keyring, &err);
    if (!kr) *pzErr = take_message(err);
    return kr;
  }
  const char *path = getenv("OAUTHDB_KEYRING");
  if (!path || !*path) {
    *pzErr = sqlite3_mprintf(
        "no keyring: set OAUTHDB_KEYRING=/path/to/keyring or "
        "SELECT oauthdb_keyring('/path')");
    return NULL;
  }
  /* A failed load is not remembered: the next call retries, after a chmod. */
  if (connection_keyring_load(conn, path, pzErr) != SQLITE_OK) return NULL;
  return conn->keyring.keys;
}
