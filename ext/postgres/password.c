/*
** password.c: password_hash(pw) and password_verify(hash, pw) in
** PostgreSQL, with SQLite's parameters, limits and messages
** (ext/sqlite/password.c): libsodium's crypto_pwhash_str, Argon2id at
** OPSLIMIT_INTERACTIVE / MEMLIMIT_INTERACTIVE (64 MiB).
**
**   UPDATE users SET password_hash = password_hash($1) WHERE id = $2;
**   SELECT password_verify(password_hash, $1) FROM users WHERE email = $2;
**
** password_needs_rehash(hash) says whether a hash was made with other
** parameters (or as Argon2i) and should be redone at the next sign-in.
**
** password_verify and password_needs_rehash return boolean (SQLite: 0 or 1); a NULL hash or password
** gives false, as in SQLite. The password is copied into sodium_malloc'd
** memory for the hash and zeroed after.
*/
#include "postgres.h"

#include <sodium.h>
#include <string.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "oauthdb_pg.h"

#define PASSWORD_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define PASSWORD_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE
#define PASSWORD_MAX_BYTES 4096

PG_FUNCTION_INFO_V1(password_hash);
PG_FUNCTION_INFO_V1(password_verify);
PG_FUNCTION_INFO_V1(password_needs_rehash);

/* Argument I in sodium_malloc'd memory, NUL-terminated; *len its bytes. */
static char *password_copy(FunctionCallInfo fcinfo, int i, const char *fn,
                           size_t *len) {
  text *t = PG_GETARG_TEXT_PP(i);
  size_t n = VARSIZE_ANY_EXHDR(t);
  if (n > PASSWORD_MAX_BYTES)
    oauthdb_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                  "%s: the password is %d bytes; the limit is %d", fn, (int)n,
                  PASSWORD_MAX_BYTES);
  char *copy = sodium_malloc(n + 1);
  if (!copy) oauthdb_error(ERRCODE_OUT_OF_MEMORY, "out of memory");
  if (n) memcpy(copy, VARDATA_ANY(t), n);
  copy[n] = '\0';
  *len = n;
  return copy;
}

static void password_free(char *copy, size_t len) {
  sodium_memzero(copy, len + 1);
  sodium_free(copy);
}

Datum password_hash(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  size_t len;
  char *pw = password_copy(fcinfo, 0, "password_hash", &len);
  char out[crypto_pwhash_STRBYTES];
  int rc = crypto_pwhash_str(out, pw, len, PASSWORD_OPSLIMIT, PASSWORD_MEMLIMIT);
  password_free(pw, len);
  if (rc != 0)
    oauthdb_error(ERRCODE_OUT_OF_MEMORY,
                  "password_hash: out of memory (Argon2id needs %d MiB)",
                  (int)(PASSWORD_MEMLIMIT >> 20));
  PG_RETURN_TEXT_P(cstring_to_text(out));
}

Datum password_verify(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) {
    PG_RETURN_BOOL(false);
  }
  char *hash = text_to_cstring(PG_GETARG_TEXT_PP(0));
  if (strncmp(hash, "$argon2id$", 10) != 0 && strncmp(hash, "$argon2i$", 9) != 0)
    oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE,
                  "password_verify: the first argument is not a password hash "
                  "(expected an Argon2 string from password_hash(), "
                  "\"$argon2id$...\"; arguments are (hash, password))");
  if (PG_ARGISNULL(1)) PG_RETURN_BOOL(false);
  size_t len;
  char *pw = password_copy(fcinfo, 1, "password_verify", &len);
  /* -1 is a mismatch or a damaged hash: for a sign-in both mean "no". */
  bool ok = crypto_pwhash_str_verify(hash, pw, len) == 0;
  password_free(pw, len);
  PG_RETURN_BOOL(ok);
}

/*
** password_needs_rehash(hash): true for an Argon2i hash (it verifies, but
** should be redone as Argon2id) or one made with other parameters; an error
** for a string whose parameters cannot be read, in SQLite's words.
*/
Datum password_needs_rehash(PG_FUNCTION_ARGS) {
  char *hash = text_to_cstring(PG_GETARG_TEXT_PP(0));
  if (strncmp(hash, "$argon2i$", 9) == 0) PG_RETURN_BOOL(true);
  int rc = crypto_pwhash_str_needs_rehash(hash, PASSWORD_OPSLIMIT, PASSWORD_MEMLIMIT);
  if (rc < 0)
    oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE,
                  "password_needs_rehash: malformed Argon2id hash string");
  PG_RETURN_BOOL(rc == 1);
}
