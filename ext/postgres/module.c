/*
** module.c: the PostgreSQL extension's entry point, its one setting and
** each backend's keyring (docs/POSTGRES.md).
**
**   # postgresql.conf
**   oauthdb.keyring = '/etc/postgresql/15/main/oauthdb.keyring'
**
**   CREATE EXTENSION oauthdb;
**   SELECT token_open(token_seal('ya29.a0Af', 'oauth_tokens.access_token:1'),
**                     'oauth_tokens.access_token:1');
**
** The setting is PGC_SUSET: only a superuser sets it (postgresql.conf,
** ALTER SYSTEM, ALTER DATABASE/ROLE ... SET, or SET in a superuser
** session), so an application role cannot point the server at a keyring of
** its choosing. SUSET rather than SIGHUP so that a superuser can try a new
** keyring in one session before reloading the whole server, and tests can
** give each database its own.
**
** Keys are read by the core (keyring.c: regular file, owned by the server's
** user, no group or other bits; the message says how to fix it) into
** sodium_malloc'd memory of this backend only: never shared memory, the
** catalog, WAL or a message. The file is followed after a rotation as a
** SQLite connection follows it (keyring_file.h: a stat at most once a
** second), and the keys are zeroed when the backend exits.
*/
#include "postgres.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fmgr.h"
#include "storage/ipc.h"
#include "utils/guc.h"

#include "keyring_file.h"
#include "oauthdb_pg.h"

PG_MODULE_MAGIC;

void _PG_init(void);

static char *keyring_setting = NULL;
static bool replaying_setting = false;
static keyring_file backend_keyring;

static void zero_keyring_at_exit(int code, Datum arg) {
  (void)code;
  (void)arg;
  keyring_file_close(&backend_keyring);
}

void _PG_init(void) {
  if (sodium_init() < 0)
    ereport(ERROR, (errmsg("oauthdb: libsodium failed to initialise")));
  DefineCustomStringVariable(
      "oauthdb.keyring",
      "Path of the oauthdb keyring file (keys, never in the database).",
      "A regular file owned by the server's user, mode 0600. Only a "
      "superuser can set it.",
      &keyring_setting, "", PGC_SUSET, 0, NULL, NULL, NULL);
  session_define_settings();
  vault_define_settings();
  refresh_define_settings();
  /*
  ** Declared so that oauthdb-export's SET LOCAL oauthdb.replaying works
  ** where this library is loaded too (the prefix is reserved below).
  ** Migration 0003's audit triggers read it, and honour it only for the
  ** tables' owner (sql/postgres/0003_audit_events.up.sql).
  */
  DefineCustomBoolVariable(
      "oauthdb.replaying",
      "Set (SET LOCAL) by oauthdb-export while it replays rows: the audit "
      "triggers record no event for them.",
      NULL, &replaying_setting, false, PGC_USERSET, 0, NULL, NULL, NULL);
  MarkGUCPrefixReserved("oauthdb");
  on_proc_exit(zero_keyring_at_exit, (Datum)0);
}

/* The core's malloc'd message in palloc'd memory. */
static char *take_message(char *err, const char *fallback) {
  char *msg = pstrdup(err ? err : fallback);
  free(err);
  return msg;
}

keyring *oauthdb_keyring_try(char **why) {
  const char *path = keyring_setting;
  *why = NULL;
  if (!path || !*path) {
    *why = pstrdup("no keyring: set oauthdb.keyring = '/path/to/keyring' "
                   "in postgresql.conf (a superuser setting) and reload");
    return NULL;
  }
  char *err = NULL;
  keyring *kr;
  if (!backend_keyring.path || strcmp(backend_keyring.path, path) != 0) {
    /* A new setting: the old keys go first, whatever the new file says. */
    keyring_file_close(&backend_keyring);
    kr = keyring_file_load(&backend_keyring, path, &err) == 0 ? backend_keyring.keys : NULL;
  } else {
    kr = keyring_file_current(&backend_keyring, &err);
  }
  if (!kr) *why = take_message(err, "out of memory loading the keyring");
  return kr;
}

keyring *oauthdb_keyring(const char *fn) {
  char *why = NULL;
  keyring *kr = oauthdb_keyring_try(&why);
  if (!kr) oauthdb_error(ERRCODE_CONFIG_FILE_ERROR, "%s: %s", fn, why);
  return kr;
}

const char *oauthdb_keyring_path(void) {
  return backend_keyring.path;
}
