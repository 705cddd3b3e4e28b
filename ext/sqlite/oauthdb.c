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

/* Every feature's function table (oauthdb.h), for schema_check.c. */
const oauthdb_function_set *const oauthdb_function_sets[] = {
    &migrate_functions_set, &token_functions_set,    &session_functions_set,
    &password_functions_set, &uuid7_functions_set,   &retention_functions_set,
    &refresh_functions_set,
    NULL,
};

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
    {"refresh", refresh_register},
    {"keys", keys_register},
    {"retention", retention_register},
    {"scope", scope_register},
};

static int query_int(sqlite3 *db, const char *sql, int *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      *out = sqlite3_column_int(st, 0);
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_ERROR;
    }
  }
  sqlite3_finalize(st);
  return rc;
}

/*
** The connection settings oauthdb needs (docs/SQL.md, "Loading").
*/
static int configure_connection(sqlite3 *db, char **pzErrMsg) {
  int busy_ms = 0, fk = 0, temp_store = 0, temp_objects = 0;
  /* The application's own busy timeout wins; without one, wait rather than
     hand SQLITE_BUSY to a caller while another process writes. */
  int rc = query_int(db, "PRAGMA busy_timeout", &busy_ms);
  if (rc == SQLITE_OK && busy_ms == 0)
    rc = sqlite3_busy_timeout(db, OAUTHDB_DEFAULT_BUSY_MS);
  /* Foreign keys carry the schema's ON DELETE rules; SQLite leaves them off
     by default. (Inside a transaction the change waits for its end.) */
  if (rc == SQLITE_OK)
    rc = sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FKEY, 1, &fk);
  /* A deleted or resealed token must not linger in free pages, not even as
     old ciphertext, for whoever later holds the key (Debian's SQLite is
     built with SECURE_DELETE; others are not). */
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, "PRAGMA secure_delete = ON", NULL, NULL, NULL);
  /* A sort or temporary index over the vault's plaintext must never spill
     to a temporary file. Changing temp_store closes the temporary database,
     dropping its tables, so an application's temporary tables are never
     thrown away for it: then loading stops and says what to do. */
  if (rc == SQLITE_OK) rc = query_int(db, "PRAGMA temp_store", &temp_store);
  /* The temporary database is open once anything used it; until then the
     change cannot drop anything, even inside a transaction. */
  if (rc == SQLITE_OK && temp_store != 2 && sqlite3_db_filename(db, "temp")) {
    rc = query_int(db, "SELECT count(*) FROM temp.sqlite_schema", &temp_objects);
    if (rc == SQLITE_OK && temp_objects > 0) {
      *pzErrMsg = sqlite3_mprintf(
          "oauthdb: this connection has temporary tables and keeps temporary "
          "data in files; plaintext tokens could spill to disk. Run PRAGMA "
          "temp_store = MEMORY before creating temporary tables, then load "
          "oauthdb");
      return SQLITE_ERROR;
    }
    if (rc == SQLITE_OK && !sqlite3_get_autocommit(db)) {
      *pzErrMsg = sqlite3_mprintf(
          "oauthdb: cannot set temp_store = MEMORY inside this transaction; "
          "load oauthdb outside a transaction");
      return SQLITE_ERROR;
    }
  }
  if (rc == SQLITE_OK && temp_store != 2)
    rc = sqlite3_exec(db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL);
  if (rc != SQLITE_OK && !*pzErrMsg)
    *pzErrMsg = sqlite3_mprintf("oauthdb: cannot configure the connection: %s",
                                sqlite3_errmsg(db));
  return rc;
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
  ** Everything that can fail runs before anything is registered: when the
  ** init function fails, SQLite unloads the library, and a function or
  ** module registered by then would be left pointing into unmapped code.
  */
  int rc = configure_connection(db, pzErrMsg);
  if (rc != SQLITE_OK) return rc;

  /*
  ** A schema parsed without our functions could call them unchecked
  ** (schema_check.c).
  */
  rc = schema_check(db, pzErrMsg);
  if (rc != SQLITE_OK) return rc;

  oauthdb_conn *conn = conn_new(db);
  if (!conn) return SQLITE_NOMEM;

  /* From here only registration remains, which fails only when out of memory. */
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
  return SQLITE_OK;
}
