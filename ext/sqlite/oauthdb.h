/*
** oauthdb.h: what the extension's feature files share.
**
** Every feature file (tokens.c, session.c, migrate.c, ...) exposes one
** `<feature>_register(sqlite3 *db, oauthdb_conn *conn)` that the entry point
** in oauthdb.c calls. Per-connection state lives in one oauthdb_conn, handed
** to every SQL function as its user data and freed (keys zeroed) when the last
** function registration is dropped, i.e. when the connection closes.
*/
#ifndef OAUTHDB_H
#define OAUTHDB_H

#include <sqlite3ext.h>
#include <stdarg.h>
#include <stdint.h>

#ifndef OAUTHDB_NO_EXTENSION_API
SQLITE_EXTENSION_INIT3
#endif

#include "keyring.h"
#include "keyring_file.h"
#include "seal.h"
#include "uuid7.h"

#define OAUTHDB_VERSION "0.1.0"

/* The oldest SQLite we run on: STRICT tables and unixepoch() need 3.38. */
#define OAUTHDB_MIN_SQLITE 3038000

/*
** Statements the extension keeps prepared for the life of the connection.
** They are finalized from the xDisconnect of the eponymous guard table in
** conn.c, which SQLite calls before sqlite3_close() checks for unfinalized
** statements, so a cached statement never makes a close fail.
** Add an id here and prepare it with conn_stmt().
*/
typedef enum conn_stmt_id {
  STMT_SESSION_VALID,
  STMT_SESSION_TOUCH,
  STMT_SESSION_INSERT,
  STMT_SESSION_REVOKE,
  STMT_AUDIT_INSERT,
  STMT_VAULT_OLD_ROW,      /* vault.c; its cursors own their statements */
  STMT_VAULT_AUDIT,
  STMT_VAULT_INSERT,
  STMT_VAULT_UPDATE,
  STMT_VAULT_DELETE,
  STMT_REFRESH_LOG_INSERT,
  STMT__COUNT
} conn_stmt_id;

typedef struct oauthdb_conn oauthdb_conn;
struct oauthdb_conn {
  sqlite3 *db;
  int refs;                       /* function registrations holding this */
  /* The connection's keyring, following its file after a rotation by
     another process (connection_keyring.c, keyring_file.h). */
  keyring_file keyring;
  sqlite3_stmt *stmts[STMT__COUNT];
  int64_t session_idle_timeout;   /* seconds; see session.c for defaults */
  int64_t session_absolute_timeout;
  int in_retention;               /* set while oauthdb_purge deletes */
  int guard_connected;            /* conn.c: the cache's owner is live */
  int64_t refresh_max_failures;   /* refresh.c: 0 = the default */
  int64_t clock_override;         /* session.c: unix seconds, 0 = real time (tests) */
  uuid7_state uuid7;              /* uuid7.c: ids of this connection increase */
};

/* conn.c */
oauthdb_conn *conn_new(sqlite3 *db);
void conn_release(void *conn);          /* xDestroy for every registration */
int conn_guard_register(sqlite3 *db, oauthdb_conn *conn);
sqlite3_stmt *conn_stmt(oauthdb_conn *conn, conn_stmt_id id, const char *sql);
void conn_finalize_all(oauthdb_conn *conn);
/* Unix seconds: the clock oauthdb_config('clock', ...) set for tests, or now. */
int64_t conn_now(const oauthdb_conn *conn);

/*
** A function table entry. Registration is table-driven: each feature file
** keeps a static array of these and hands it to conn_register_functions(),
** which checks and chains every return code and names the one that failed.
*/
typedef struct oauthdb_function {
  const char *name;
  int n_arg;                      /* -1: variable */
  int flags;                      /* SQLITE_UTF8 is added */
  void (*x_func)(sqlite3_context *, int, sqlite3_value **);
} oauthdb_function;

int conn_register_functions(sqlite3 *db, oauthdb_conn *conn,
                            const oauthdb_function *fns, int n, char **pzErr);

/*
** Each feature's function table, named once more for readers of the tables
** rather than registrars: schema_check.c takes the names of the
** SQLITE_DIRECTONLY functions from these, so a function added to a table
** is checked without a second list to keep in step. A feature with a table
** declares its set with OAUTHDB_FUNCTION_SET and lists it in
** oauthdb_function_sets (oauthdb.c).
*/
typedef struct oauthdb_function_set {
  const oauthdb_function *fns;
  int n;
} oauthdb_function_set;
#define OAUTHDB_FUNCTION_SET(table) \
  const oauthdb_function_set table##_set = {table, (int)(sizeof table / sizeof table[0])}
extern const oauthdb_function_set token_functions_set, session_functions_set,
    password_functions_set, uuid7_functions_set, migrate_functions_set,
    retention_functions_set, refresh_functions_set;
/* refresh.c: the failure limit in force (oauthdb_config). */
int64_t refresh_max_failures(const oauthdb_conn *conn);
extern const oauthdb_function_set *const oauthdb_function_sets[];

/*
** Register an eponymous virtual table NAME whose methods get conn as their
** client data (held by a reference, dropped by SQLite with conn_release).
** On failure *pzErr names the table.
*/
int conn_register_module(sqlite3 *db, oauthdb_conn *conn, const char *name,
                         const sqlite3_module *module, char **pzErr);

/* Set an error on ctx with printf-style formatting (sqlite3_mprintf). */
void fn_error(sqlite3_context *ctx, const char *fmt, ...);
/* Set pVtab->zErrMsg, freeing any previous message. */
void vtab_set_error(sqlite3_vtab *vtab, const char *fmt, ...);
/* A storage class (SQLITE_INTEGER, ...) as messages name it: "INTEGER", "REAL", ... */
const char *storage_class_name(int type);

/*
** connection_keyring.c: the connection's keyring, loaded from
** $OAUTHDB_KEYRING on first use and reloaded when its file changes.
** Returns NULL and sets *pzErr (sqlite3_malloc'd; NULL when out of memory)
** when there is none. connection_keyring_load loads PATH instead
** (oauthdb_keyring(path)), zeroing the keys it replaces.
*/
keyring *connection_keyring(oauthdb_conn *conn, char **pzErr);
int connection_keyring_load(oauthdb_conn *conn, const char *path, char **pzErr);

/*
** tokens.c: why a seal or an open failed, as "FN: ..." (sqlite3_malloc'd;
** NULL when out of memory), in the same words from every feature. SEALED
** and N are the value that did not open (NULL and 0 when sealing); only
** structural facts about it are named, never plaintext, AD or key bytes.
*/
char *seal_failure_message(const oauthdb_conn *conn, const char *fn,
                           seal_status s, const unsigned char *sealed,
                           size_t n, uint32_t key_id);

/*
** schema_check.c: SQLITE_OK, or an error with *pzErr set when a database of
** the connection calls our DIRECTONLY functions from a table or index
** definition, or hides one of our eponymous tables. Run before registering.
*/
int schema_check(sqlite3 *db, char **pzErr);

/* Feature entry points, called in this order by sqlite3_oauthdb_init. */
int migrate_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);
int tokens_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);
int session_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);
int password_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);
int uuid7_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);
int vault_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);
int expiring_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);
int keys_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);
int retention_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);
int scope_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);
int refresh_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr);

#endif /* OAUTHDB_H */
