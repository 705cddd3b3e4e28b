/*
** token_fixture.h: one database of 1,000,000 sealed oauth_tokens rows, built
** once and shared by the benchmarks that read tokens (expiring_vs_scan.c,
** vault_vs_open.c). Header-only: bench/run.sh compiles each bench .c file alone.
**
** It lives next to the benchmark binaries, BUILD/bench/tokens-1m.db, with
** its keyring, BUILD/bench/tokens-1m.keyring (mode 0600, a fresh random key;
** the build directory is scratch). It is rebuilt when missing, when its
** PRAGMA user_version is not TOKEN_FIXTURE_VERSION, or when the extension
** knows a newer schema than the file has. A build goes to a temporary name
** and is renamed into place, so an interrupted one leaves nothing behind.
**
** Contents, all from one INSERT ... SELECT per table over a recursive CTE
** (token_seal in the SELECT: about 2,000,000 seals, ~30 s):
**
**   users           1,000
**   user_providers  1,000,000 links, one token each; every 100th is Motion
**   oauth_tokens    1,000,000 active rows, ids 01900000-0002-7000-8000-<n>:
**                   Google: access 'ya29.' + 128 hex, refresh '1//' + 80 hex,
**                   expires_at = TOKEN_FIXTURE_NOW + 7200 + n % 86400, except
**                   every 10,000th row, due at TOKEN_FIXTURE_NOW + 60 + n/10000
**                   (exactly 100 rows due within 600 s);
**                   Motion (n % 100 = 1): an API key, no refresh, no expiry.
**
** Benchmarks set the connection's clock to TOKEN_FIXTURE_NOW with
** oauthdb_config('clock', ...), so the rows due do not drift with the date.
*/
#ifndef TOKEN_FIXTURE_H
#define TOKEN_FIXTURE_H

#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "bench_util.h"

#define TOKEN_FIXTURE_VERSION 1
#define TOKEN_FIXTURE_ROWS 1000000
#define TOKEN_FIXTURE_NOW 2000000000LL
#define TOKEN_FIXTURE_DUE_WITHIN 600
#define TOKEN_FIXTURE_DUE_ROWS 100

typedef struct token_fixture {
  char db_path[PATH_MAX];
  char keyring_path[PATH_MAX];
} token_fixture;

/* Is the fixture at F current for this extension? */
static inline int fixture_current(const token_fixture *f, const char *ext) {
  if (access(f->db_path, R_OK) != 0 || access(f->keyring_path, R_OK) != 0) return 0;
  sqlite3 *db = bench_open(f->db_path, ext, SQLITE_OPEN_READONLY);
  int ok = bench_int(db, "PRAGMA user_version") == TOKEN_FIXTURE_VERSION &&
           bench_int(db, "SELECT oauthdb_schema_version() = "
                           "(SELECT max(version) FROM oauthdb_migrations)") == 1;
  sqlite3_close(db);
  return ok;
}

static inline void fixture_build(const token_fixture *f, const char *ext) {
  char tmp[PATH_MAX + 32];
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", f->db_path, (long)getpid());
  unlink(tmp);
  fprintf(stderr, "token fixture: building %s (%d sealed rows, once)...\n",
          f->db_path, TOKEN_FIXTURE_ROWS);
  double t = bench_now();
  unsigned char key[32];
  randombytes_buf(key, sizeof key);
  bench_write_keyring(f->keyring_path, "be0c4f1e", key);
  sodium_memzero(key, sizeof key);
  sqlite3 *db = bench_open(tmp, ext, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  /* Scratch data: no journal, no fsync, a big cache for the index builds. */
  bench_exec(db, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                   "PRAGMA cache_size = -262144; SELECT oauthdb_migrate()");
  char *sql = sqlite3_mprintf("SELECT oauthdb_keyring(%Q)", f->keyring_path);
  bench_exec(db, sql);
  sqlite3_free(sql);
  sql = sqlite3_mprintf(
      "BEGIN;"
      "INSERT INTO users(id, email)"
      " WITH RECURSIVE n(i) AS (VALUES (1) UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
      " SELECT printf('01900000-0000-7000-8000-%%012x', i), printf('user%%d@example.com', i)"
      " FROM n;"
      "INSERT INTO user_providers(id, user_id, provider, provider_id)"
      " WITH RECURSIVE n(i) AS (VALUES (1) UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
      " SELECT printf('01900000-0001-7000-8000-%%012x', i),"
      "        printf('01900000-0000-7000-8000-%%012x', 1 + i %% 1000),"
      "        iif(i %% 100 = 1, 'motion', 'google'), printf('acct-%%d', i)"
      " FROM n;"
      "INSERT INTO oauth_tokens(id, user_provider_id, credential_kind, access_token,"
      "                         refresh_token, expires_at)"
      " WITH RECURSIVE n(i) AS (VALUES (1) UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
      " SELECT id, link, type, token_seal(access, 'oauth_tokens.access_token:' || id),"
      "        token_seal(refresh, 'oauth_tokens.refresh_token:' || id), expires"
      " FROM (SELECT printf('01900000-0002-7000-8000-%%012x', i) AS id,"
      "              printf('01900000-0001-7000-8000-%%012x', i) AS link,"
      "              iif(i %% 100 = 1, 'api_key', 'oauth2') AS type,"
      "              iif(i %% 100 = 1, 'mk_', 'ya29.') || hex(randomblob(64)) AS access,"
      "              iif(i %% 100 = 1, NULL, '1//' || hex(randomblob(40))) AS refresh,"
      "              CASE WHEN i %% 100 = 1 THEN NULL"
      "                   WHEN i %% 10000 = 0 THEN %lld + 60 + i / 10000"
      "                   ELSE %lld + 7200 + i %% 86400 END AS expires"
      "       FROM n);"
      "PRAGMA user_version = %d;"
      "COMMIT;",
      TOKEN_FIXTURE_ROWS, TOKEN_FIXTURE_ROWS, TOKEN_FIXTURE_NOW, TOKEN_FIXTURE_NOW,
      TOKEN_FIXTURE_VERSION);
  bench_exec(db, sql);
  sqlite3_free(sql);
  if (sqlite3_close(db) != SQLITE_OK) bench_die(db, "close");
  if (rename(tmp, f->db_path) != 0) bench_die(NULL, "rename");
  fprintf(stderr, "token fixture: built in %.1f s\n", bench_now() - t);
}

/*
** The fixture for the extension EXT (BUILD/oauthdb.so): paths in
** BUILD/bench/, built first if needed.
*/
static inline void token_fixture_get(token_fixture *f, const char *ext) {
  /* Room for the file names after it, so no path is ever cut short. */
  char dir[PATH_MAX - 32];
  if (snprintf(dir, sizeof dir, "%s", ext) >= (int)sizeof dir) bench_die(NULL, "path too long");
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  else snprintf(dir, sizeof dir, ".");
  snprintf(f->db_path, sizeof f->db_path, "%s/bench/tokens-1m.db", dir);
  snprintf(f->keyring_path, sizeof f->keyring_path, "%s/bench/tokens-1m.keyring", dir);
  if (!fixture_current(f, ext)) fixture_build(f, ext);
}

/* Open the fixture with its keyring and the clock at TOKEN_FIXTURE_NOW. */
static inline sqlite3 *token_fixture_open(const token_fixture *f, const char *ext) {
  sqlite3 *db = bench_open(f->db_path, ext, SQLITE_OPEN_READONLY);
  char *sql = sqlite3_mprintf("SELECT oauthdb_keyring(%Q); SELECT oauthdb_config('clock', %lld)",
                              f->keyring_path, TOKEN_FIXTURE_NOW);
  bench_exec(db, sql);
  sqlite3_free(sql);
  return db;
}

#endif /* TOKEN_FIXTURE_H */
