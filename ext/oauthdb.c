/*
** oauthdb.c: the entry point of the oauthdb SQLite extension.
**
**   sqlite> .load ./build/oauthdb
**   sqlite> SELECT oauthdb_migrate();          -- create the nine tables
**   sqlite> SELECT token_open(token_seal('ya29.secret', 'ad'), 'ad');
**
** Loading checks the SQLite version, creates the connection's state, turns
** foreign keys on, sets a busy timeout if the application has none, and
** registers each feature (one file each; see docs/ARCHITECTURE.md).
*/
#include <sodium.h>
#include <string.h>
#include "oauthdb.h"

SQLITE_EXTENSION_INIT1

/* Busy timeout set at load when the connection has none (docs/SQL.md). */
#define OAUTHDB_DEFAULT_BUSY_MS 5000

typedef int (*feature_register_fn)(sqlite3 *, oauthdb_conn *, char **);

static const struct {
  const char *name;
  feature_register_fn reg;
} features[] = {
    {"migrate", migrate_register},
    {"tokens", tokens_register},
    {"session", session_register},
    {"password", password_register},
    {"uuid7", uuid7_register},
    {"vault", vault_register},
    {"expiring", expiring_register},
    {"keys", keys_register},
    {"retention", retention_register},
};

static int current_busy_timeout(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int ms = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA busy_timeout", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    ms = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return ms;
}

#ifdef _WIN32
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
int sqlite3_oauthdb_init(sqlite3 *db, char **pzErrMsg,
                         const sqlite3_api_routines *pApi) {
  SQLITE_EXTENSION_INIT2(pApi);

  if (sqlite3_libversion_number() < OAUTHDB_MIN_SQLITE) {
    *pzErrMsg = sqlite3_mprintf(
        "oauthdb: needs SQLite %d.%d.%d or newer (STRICT tables, unixepoch()); "
        "this process runs SQLite %s",
        OAUTHDB_MIN_SQLITE / 1000000, OAUTHDB_MIN_SQLITE / 1000 % 1000,
        OAUTHDB_MIN_SQLITE % 1000, sqlite3_libversion());
    return SQLITE_ERROR;
  }
  /* The only global state: libsodium's, idempotent and thread-safe. */
  if (sodium_init() < 0) {
    *pzErrMsg = sqlite3_mprintf("oauthdb: libsodium failed to initialise");
    return SQLITE_ERROR;
  }

  /*
  ** Before anything is registered: a schema parsed without our functions
  ** could call them unchecked, and a failed load would leave registered
  ** functions behind (schema_check.c).
  */
  int rc = schema_check(db, pzErrMsg);
  if (rc != SQLITE_OK) return rc;

  oauthdb_conn *conn = conn_new(db);
  if (!conn) return SQLITE_NOMEM;

  rc = conn_guard_register(db, conn);
  if (rc != SQLITE_OK) {
    *pzErrMsg = sqlite3_mprintf("oauthdb: cannot register oauthdb_connection: %s",
                                sqlite3_errmsg(db));
  }
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof features / sizeof features[0]; i++) {
    rc = features[i].reg(db, conn, pzErrMsg);
    if (rc != SQLITE_OK && !*pzErrMsg)
      *pzErrMsg = sqlite3_mprintf("oauthdb: cannot register %s: %s",
                                  features[i].name, sqlite3_errmsg(db));
  }
  conn_release(conn);  /* the registrations hold it from here on */
  if (rc != SQLITE_OK) return rc;

  /*
  ** Foreign keys carry the schema's ON DELETE rules; SQLite leaves them off
  ** by default. Outside a transaction this takes effect at once.
  */
  rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
  /*
  ** A deleted or resealed token must not linger in free pages, not even as
  ** old ciphertext, for whoever later holds the key (Debian's SQLite is built
  ** with SECURE_DELETE; others are not). And a sort or temporary index over
  ** the vault's plaintext must never spill to a temporary file on disk.
  */
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, "PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY",
                      NULL, NULL, NULL);
  if (rc == SQLITE_OK && current_busy_timeout(db) == 0)
    rc = sqlite3_busy_timeout(db, OAUTHDB_DEFAULT_BUSY_MS);
  if (rc != SQLITE_OK) {
    *pzErrMsg = sqlite3_mprintf("oauthdb: cannot configure connection: %s",
                                sqlite3_errmsg(db));
    return rc;
  }
  return SQLITE_OK;
}
