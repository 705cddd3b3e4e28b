/*
** password.c: Argon2id password hashes for users.password_hash.
**
**   sqlite> UPDATE users SET password_hash = password_hash('correct horse')
**      ...>  WHERE email = 'ada@example.com';
**   sqlite> SELECT password_verify(password_hash, 'correct horse')
**      ...>   FROM users WHERE email = 'ada@example.com';
**   1
**   sqlite> SELECT password_needs_rehash(password_hash) FROM users;
**   0
**
** password_hash(pw) is libsodium's crypto_pwhash_str: Argon2id with a fresh
** random salt, at crypto_pwhash_OPSLIMIT_INTERACTIVE (2 passes) and
** crypto_pwhash_MEMLIMIT_INTERACTIVE (64 MiB), in the self-describing
** `$argon2id$v=19$m=65536,t=2,p=1$salt$hash` form that PHC-aware libraries in
** any language verify. The cost is in the string, so raising the limits later
** keeps old hashes verifiable; password_needs_rehash() says which to redo.
**
** Decisions (docs/SQL.md, "Passwords"):
** - A password is TEXT (its UTF-8 bytes) or a BLOB (its bytes). NULL hashes
**   to NULL; numbers are refused, since 0123 stored as an integer is 123.
**   Strength rules are the application's; the empty password is hashed like
**   any other. Longer than PASSWORD_MAX_BYTES is an error, never a prefix.
** - password_verify returns 1 only for a match. A NULL hash (a user who signs
**   in only through OAuth) or a NULL password gives 0, so `WHERE
**   password_verify(...)` and `NOT password_verify(...)` both mean what they
**   say. A value that is not an Argon2 hash string at all is an error, not a
**   0: that is a bug (arguments swapped, wrong column), and an error finds it
**   where a 0 would only look like a wrong password.
** - The plaintext is copied into sodium_malloc'd memory (guard pages, locked
**   against swap where the system allows) and wiped before it is freed. The
**   copy SQLite itself holds for the argument is out of our reach.
**
** password_hash and password_verify are DIRECTONLY: they are slow on purpose
** (64 MiB and tens of milliseconds a call), so a hostile schema must not be
** able to run them from a view or trigger, and verify is an oracle on
** secrets. password_needs_rehash is pure and reveals nothing: DETERMINISTIC
** and INNOCUOUS.
*/
#include <sodium.h>
#include <string.h>
#include "oauthdb.h"

SQLITE_EXTENSION_INIT3

#define PASSWORD_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define PASSWORD_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

/*
** The longest password taken, in bytes. libsodium's own bound is 4 GiB, so
** without one a sign-in form could make every request copy megabytes into
** locked memory. 4096 is far above the 64 characters NIST SP 800-63B asks
** to allow; an application may set a lower one itself.
*/
#define PASSWORD_MAX_BYTES 4096

/*
** The password argument in sodium_malloc'd memory, NUL-terminated for
** convenience. Returns NULL and sets an error on ctx when there is none to
** use; *is_null says that the argument was SQL NULL (no error then).
*/
static char *password_copy(sqlite3_context *ctx, sqlite3_value *v,
                           const char *fn, size_t *len, int *is_null) {
  *is_null = 0;
  int type = sqlite3_value_type(v);
  if (type == SQLITE_NULL) {
    *is_null = 1;
    return NULL;
  }
  if (type != SQLITE_TEXT && type != SQLITE_BLOB) {
    fn_error(ctx, "%s: the password must be text, not a number", fn);
    return NULL;
  }
  const void *bytes = type == SQLITE_TEXT ? (const void *)sqlite3_value_text(v)
                                          : sqlite3_value_blob(v);
  int n = sqlite3_value_bytes(v);
  if (!bytes && n > 0) {
    sqlite3_result_error_nomem(ctx);
    return NULL;
  }
  if (n > PASSWORD_MAX_BYTES) {
    fn_error(ctx, "%s: the password is %d bytes; the limit is %d", fn, n,
             PASSWORD_MAX_BYTES);
    return NULL;
  }
  char *copy = sodium_malloc((size_t)n + 1);
  if (!copy) {
    sqlite3_result_error_nomem(ctx);
    return NULL;
  }
  if (n > 0) memcpy(copy, bytes, (size_t)n);
  copy[n] = '\0';
  *len = (size_t)n;
  return copy;
}

static void password_free(char *copy, size_t len) {
  if (!copy) return;
  sodium_memzero(copy, len + 1);
  sodium_free(copy);  /* wipes again; the explicit wipe documents intent */
}

/*
** The hash argument as a NUL-terminated string that could be an Argon2
** hash. NULL hash: returns NULL with no error. Otherwise sets the error.
*/
static const char *hash_arg(sqlite3_context *ctx, sqlite3_value *v,
                            const char *fn, int *is_null) {
  int type = sqlite3_value_type(v);  /* before value_text converts it */
  *is_null = type == SQLITE_NULL;
  if (*is_null) return NULL;
  const char *h = (const char *)sqlite3_value_text(v);
  if (!h) {
    sqlite3_result_error_nomem(ctx);
    return NULL;
  }
  if (type != SQLITE_TEXT ||
      (strncmp(h, "$argon2id$", 10) != 0 && strncmp(h, "$argon2i$", 9) != 0)) {
    fn_error(ctx,
             "%s: the first argument is not a password hash (expected an "
             "Argon2 string from password_hash(), \"$argon2id$...\"; "
             "arguments are (hash, password))", fn);
    return NULL;
  }
  return h;
}

static void password_hash_fn(sqlite3_context *ctx, int argc,
                             sqlite3_value **argv) {
  (void)argc;
  size_t len = 0;
  int is_null;
  char *pw = password_copy(ctx, argv[0], "password_hash", &len, &is_null);
  if (!pw) return;  /* NULL in, NULL out; or the error is set */

  char out[crypto_pwhash_STRBYTES];
  int rc = crypto_pwhash_str(out, pw, len, PASSWORD_OPSLIMIT, PASSWORD_MEMLIMIT);
  password_free(pw, len);
  if (rc != 0) {
    /* crypto_pwhash_str fails only when it cannot get its memory. */
    fn_error(ctx, "password_hash: out of memory (Argon2id needs %d MiB)",
             (int)(PASSWORD_MEMLIMIT >> 20));
    return;
  }
  sqlite3_result_text(ctx, out, -1, SQLITE_TRANSIENT);
}

static void password_verify_fn(sqlite3_context *ctx, int argc,
                               sqlite3_value **argv) {
  (void)argc;
  int hash_null, pw_null;
  const char *hash = hash_arg(ctx, argv[0], "password_verify", &hash_null);
  if (!hash && !hash_null) return;
  size_t len = 0;
  char *pw = password_copy(ctx, argv[1], "password_verify", &len, &pw_null);
  if (!pw && !pw_null) return;
  if (hash_null || pw_null) {
    password_free(pw, len);
    sqlite3_result_int(ctx, 0);
    return;
  }
  /*
  ** -1 covers both a mismatch and a damaged hash with a valid prefix: for a
  ** sign-in both mean "no", and libsodium does not tell them apart.
  */
  int ok = crypto_pwhash_str_verify(hash, pw, len) == 0;
  password_free(pw, len);
  sqlite3_result_int(ctx, ok);
}

static void password_needs_rehash_fn(sqlite3_context *ctx, int argc,
                                     sqlite3_value **argv) {
  (void)argc;
  int is_null;
  const char *hash = hash_arg(ctx, argv[0], "password_needs_rehash", &is_null);
  if (!hash) return;  /* NULL in, NULL out; or the error is set */
  /* Argon2i (not id) hashes verify, but should be redone as Argon2id. */
  if (strncmp(hash, "$argon2i$", 9) == 0) {
    sqlite3_result_int(ctx, 1);
    return;
  }
  int rc = crypto_pwhash_str_needs_rehash(hash, PASSWORD_OPSLIMIT,
                                          PASSWORD_MEMLIMIT);
  if (rc < 0) {
    fn_error(ctx, "password_needs_rehash: malformed Argon2id hash string");
    return;
  }
  sqlite3_result_int(ctx, rc);
}

static const oauthdb_function password_functions[] = {
    {"password_hash", 1, SQLITE_DIRECTONLY, password_hash_fn},
    {"password_verify", 2, SQLITE_DIRECTONLY, password_verify_fn},
    {"password_needs_rehash", 1, SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
     password_needs_rehash_fn},
};
OAUTHDB_FUNCTION_SET(password_functions);

int password_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_functions(
      db, conn, password_functions,
      (int)(sizeof password_functions / sizeof password_functions[0]), pzErr);
}
