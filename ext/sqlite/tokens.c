/*
** tokens.c: sealed tokens and the connection's keyring, from SQL
** (docs/SQL.md, "Keys" and "Sealed tokens"; the format is docs/FORMAT.md).
**
**   SELECT oauthdb_keyring('/home/me/.config/oauthdb/keyring');  -- 2 (keys)
**   SELECT oauthdb_keyring();              -- the path in use, or NULL
**
**   UPDATE oauth_tokens
**      SET access_token = token_seal(:tok, 'oauth_tokens.access_token:' || id)
**    WHERE id = :id;
**   SELECT token_open(access_token, 'oauth_tokens.access_token:' || id)
**     FROM oauth_tokens WHERE id = :id;                  -- 'ya29.a0Af...'
**
**   SELECT token_key_id(access_token), count(*) FROM oauth_tokens GROUP BY 1;
**   UPDATE oauth_tokens                                   -- after a rotation
**      SET access_token = token_reseal(access_token,
**                                      'oauth_tokens.access_token:' || id);
**   SELECT token_fingerprint(:refresh_token);             -- 16-byte BLOB
**   SELECT token_ad('oauth_tokens', 'access_token', id);  -- the AD, built by the core
**
** Flags (docs/ARCHITECTURE.md, "Function flags"): everything that reveals or creates a secret or
** changes the keyring is SQLITE_DIRECTONLY, so a hostile database file
** cannot call it from a trigger, view or index. Only token_key_id, which
** reads a header and touches no key, is DETERMINISTIC and INNOCUOUS.
**
** Where plaintext lives: openings decrypt into the keyring's locked scratch
** buffer (keyring_scratch), never into ordinary heap, and zero it before
** they return. token_reseal keeps the plaintext there from open to seal.
** token_open hands SQLite a copy (SQLITE_TRANSIENT): the result is SQLite's
** from then on, like any value the application reads. The scratch is
** reused because one sodium_malloc costs ~40 us, far more than a seal.
**
** Speed (bench/seal_open.c, target: SQL within 1.3x of the bare libsodium
** calls): small results go to SQLite as SQLITE_TRANSIENT copies, which
** SQLite places in its per-connection lookaside memory (up to 1,200 bytes
** by default, enough for most tokens); an sqlite3_malloc
** per result (a global mutex and memory statistics) cost more than the
** whole SQL layer around the calls. Measured with callgrind, the two
** functions add ~2,000 instructions to the ~13,000 of the crypto per value.
*/
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "oauthdb.h"
#include "associated_data.h"
#include "fingerprint.h"
#include "seal.h"
#include "seal_message.h"

SQLITE_EXTENSION_INIT3

/* Associated data is a place name ("oauth_tokens.access_token:<uuid>"). */
#define TOKEN_MAX_AD (64 * 1024)

/*
** Sealed values up to this size are built on the stack and copied by
** SQLite (into lookaside memory); bigger ones are handed over without a
** copy. OAuth tokens are 100 to 2,000 bytes.
*/
#define TOKEN_STACK_OUT 2048

typedef struct bytes {
  const unsigned char *p;
  size_t n;
} bytes;

/*
** The bytes of a TEXT or BLOB argument (TEXT as UTF-8). `what` names the
** argument in messages. A size over `limit` is an error, never a
** truncation.
*/
static int arg_bytes(sqlite3_context *ctx, const char *fn, const char *what,
                     sqlite3_value *v, size_t limit, const char *limit_text,
                     bytes *out) {
  int t = sqlite3_value_type(v);
  if (t == SQLITE_TEXT) {
    out->p = sqlite3_value_text(v);  /* text before bytes: see sqlite3_value_bytes */
  } else if (t == SQLITE_BLOB) {
    out->p = sqlite3_value_blob(v);
  } else {
    fn_error(ctx, "%s: %s must be TEXT or BLOB, got %s", fn, what, storage_class_name(t));
    return -1;
  }
  out->n = (size_t)sqlite3_value_bytes(v);
  if (!out->p && out->n) {  /* conversion to UTF-8 ran out of memory */
    sqlite3_result_error_nomem(ctx);
    return -1;
  }
  if (out->n > limit) {
    fn_error(ctx, "%s: %s is %lld bytes; the limit is %s", fn, what,
             (long long)out->n, limit_text);
    return -1;
  }
  return 0;
}

/* The optional associated data argument: TEXT, BLOB, or NULL (= empty). */
static int arg_ad(sqlite3_context *ctx, const char *fn, int argc,
                  sqlite3_value **argv, bytes *ad) {
  ad->p = NULL;
  ad->n = 0;
  if (argc < 2 || sqlite3_value_type(argv[1]) == SQLITE_NULL) return 0;
  if (sqlite3_value_type(argv[1]) != SQLITE_TEXT &&
      sqlite3_value_type(argv[1]) != SQLITE_BLOB) {
    fn_error(ctx, "%s: associated data must be TEXT, BLOB or NULL, got %s", fn,
             storage_class_name(sqlite3_value_type(argv[1])));
    return -1;
  }
  return arg_bytes(ctx, fn, "associated data", argv[1], TOKEN_MAX_AD,
                   "65536 (64 KiB)", ad);
}

/* A sealed argument must be a BLOB; anything else is a mistake worth naming. */
static int arg_sealed(sqlite3_context *ctx, const char *fn, sqlite3_value *v,
                      bytes *out) {
  int t = sqlite3_value_type(v);
  if (t != SQLITE_BLOB) {
    fn_error(ctx, "%s: not a sealed value (expected a BLOB, got %s)", fn,
             storage_class_name(t));
    return -1;
  }
  out->p = sqlite3_value_blob(v);
  out->n = (size_t)sqlite3_value_bytes(v);
  return 0;
}

/* connection_keyring for SQL function FN, reporting on ctx. */
static keyring *token_keyring(sqlite3_context *ctx, const char *fn) {
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  char *err = NULL;
  keyring *kr = connection_keyring(conn, &err);
  if (!kr) {
    if (err) fn_error(ctx, "%s: %s", fn, err);
    else sqlite3_result_error_nomem(ctx);
    sqlite3_free(err);
  }
  return kr;
}

/* ---- messages ---------------------------------------------------------- */

/*
** The one place a seal_status becomes words (declared in oauthdb.h: the
** vault says the same). Only structural facts are named; nothing from the
** plaintext, the AD or a key ever is.
*/
char *seal_failure_message(const oauthdb_conn *conn, const char *fn,
                           seal_status s, const unsigned char *sealed,
                           size_t n, uint32_t key_id) {
  char msg[SEAL_MESSAGE_MAX];
  seal_message(msg, sizeof msg, fn, s, sealed, n, key_id, conn->keyring.path);
  return sqlite3_mprintf("%s", msg);
}

/* seal_failure_message as FN's error on ctx. SEALED: NULL when sealing. */
static void seal_error(sqlite3_context *ctx, const char *fn, seal_status s,
                       const bytes *sealed, uint32_t id) {
  char *msg = seal_failure_message(sqlite3_user_data(ctx), fn, s,
                                   sealed ? sealed->p : NULL,
                                   sealed ? sealed->n : 0, id);
  if (msg) sqlite3_result_error(ctx, msg, -1);
  else sqlite3_result_error_nomem(ctx);
  sqlite3_free(msg);
}

/* ---- plaintext handling ------------------------------------------------ */

/*
** Open sealed into the keyring's locked scratch buffer. Returns it (with
** *n_out plaintext bytes, which the caller zeroes, and one byte to spare)
** or NULL with the error set on ctx. *key_id gets the header's key id.
*/
static unsigned char *open_to_scratch(sqlite3_context *ctx, const char *fn,
                                      keyring *kr, const bytes *sealed,
                                      const bytes *ad, size_t *n_out,
                                      uint32_t *key_id) {
  /* Structure first, so the scratch is only sized from a plausible length. */
  seal_status s = seal_key_id(sealed->p, sealed->n, key_id);
  if (s == SEAL_OK && sealed->n - SEAL_OVERHEAD > SEAL_MAX_PLAINTEXT) s = SEAL_TOO_BIG;
  if (s != SEAL_OK) {
    seal_error(ctx, fn, s, sealed, *key_id);
    return NULL;
  }
  size_t n = sealed->n - SEAL_OVERHEAD;
  unsigned char *plain = keyring_scratch(kr, n + 1);
  if (!plain) {
    sqlite3_result_error_nomem(ctx);
    return NULL;
  }
  s = seal_open(kr, sealed->p, sealed->n, ad->p, ad->n, plain, key_id);
  if (s == SEAL_TOO_BIG) {  /* sizes were checked: a long AD's buffer failed */
    sqlite3_result_error_nomem(ctx);
    return NULL;
  }
  if (s != SEAL_OK) {
    seal_error(ctx, fn, s, sealed, *key_id);
    return NULL;  /* libsodium zeroed the buffer on a failed tag */
  }
  *n_out = n;
  return plain;
}

/* ---- the SQL functions ------------------------------------------------- */

/* token_seal(plaintext [, ad]) -> sealed BLOB under the primary key. */
static void token_seal_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;  /* NULL in, NULL out */
  bytes pt, ad;
  if (arg_bytes(ctx, "token_seal", "plaintext", argv[0], SEAL_MAX_PLAINTEXT,
                "16777216 (16 MiB)", &pt) != 0 ||
      arg_ad(ctx, "token_seal", argc, argv, &ad) != 0)
    return;
  keyring *kr = token_keyring(ctx, "token_seal");
  if (!kr) return;
  size_t len = seal_sealed_len(pt.n);
  /* Ciphertext is no secret: the stack is fine, and big ones go uncopied. */
  unsigned char small[TOKEN_STACK_OUT];
  unsigned char *out = len <= sizeof small ? small : sqlite3_malloc64(len);
  if (!out) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  seal_status s = seal_token(kr, pt.p, pt.n, ad.p, ad.n, out);
  if (s != SEAL_OK) {
    if (out != small) sqlite3_free(out);
    if (s == SEAL_TOO_BIG) sqlite3_result_error_nomem(ctx);  /* sizes were checked */
    else seal_error(ctx, "token_seal", s, NULL, 0);
    return;
  }
  sqlite3_result_blob64(ctx, out, len, out == small ? SQLITE_TRANSIENT : sqlite3_free);
}

/* token_open(sealed [, ad]) -> plaintext: TEXT when it is text, else BLOB. */
static void token_open_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  bytes sealed, ad;
  if (arg_sealed(ctx, "token_open", argv[0], &sealed) != 0 ||
      arg_ad(ctx, "token_open", argc, argv, &ad) != 0)
    return;
  keyring *kr = token_keyring(ctx, "token_open");
  if (!kr) return;
  size_t n = 0;
  uint32_t id = 0;
  unsigned char *plain = open_to_scratch(ctx, "token_open", kr, &sealed, &ad, &n, &id);
  if (!plain) return;
  if (plaintext_is_text(plain, n)) {
    /*
    ** Terminated and given as -1, so SQLite's copy is marked terminated and
    ** sqlite3_column_text() needs no second copy (n <= 16 MiB < INT_MAX).
    */
    plain[n] = 0;
    sqlite3_result_text(ctx, (const char *)plain, -1, SQLITE_TRANSIENT);
  } else {
    sqlite3_result_blob64(ctx, plain, n, SQLITE_TRANSIENT);
  }
  sodium_memzero(plain, n + 1);
}

/*
** token_reseal(sealed [, ad]) -> the same plaintext sealed under the
** primary key. A value already under the primary comes back unchanged,
** after its tag is checked: rotation can be rerun (it is resumable) without
** rewriting every row, and an export that compares rows sees no change.
*/
static void token_reseal_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  bytes sealed, ad;
  if (arg_sealed(ctx, "token_reseal", argv[0], &sealed) != 0 ||
      arg_ad(ctx, "token_reseal", argc, argv, &ad) != 0)
    return;
  keyring *kr = token_keyring(ctx, "token_reseal");
  if (!kr) return;
  size_t n = 0;
  uint32_t id = 0;
  unsigned char *plain = open_to_scratch(ctx, "token_reseal", kr, &sealed, &ad, &n, &id);
  if (!plain) return;
  const keyring_key *primary = keyring_primary(kr);
  if (primary->id == id) {
    sodium_memzero(plain, n);
    sqlite3_result_value(ctx, argv[0]);
    return;
  }
  unsigned char small[TOKEN_STACK_OUT];
  unsigned char *out = sealed.n <= sizeof small ? small : sqlite3_malloc64(sealed.n);
  seal_status s = out ? seal_with_key(primary, plain, n, ad.p, ad.n, out) : SEAL_OK;
  sodium_memzero(plain, n);
  if (!out || s != SEAL_OK) {  /* sizes were checked: only memory can fail */
    if (out != small) sqlite3_free(out);
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_blob64(ctx, out, sealed.n, out == small ? SQLITE_TRANSIENT : sqlite3_free);
}

/* token_key_id(sealed) -> '9c0e51d2'. Reads the header only: no keyring. */
static void token_key_id_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  bytes sealed;
  if (arg_sealed(ctx, "token_key_id", argv[0], &sealed) != 0) return;
  uint32_t id = 0;
  seal_status s = seal_key_id(sealed.p, sealed.n, &id);
  if (s != SEAL_OK) {
    seal_error(ctx, "token_key_id", s, &sealed, id);
    return;
  }
  char hex[9];
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++) hex[i] = digits[(id >> (28 - 4 * i)) & 0xf];
  hex[8] = 0;
  sqlite3_result_text(ctx, hex, 8, SQLITE_TRANSIENT);
}

/*
** token_fingerprint(token) -> 16-byte BLOB: the keyed fingerprint of
** fingerprint.h (BLAKE2b-128 under a key derived from the primary key).
*/
static void token_fingerprint_fn(sqlite3_context *ctx, int argc,
                                 sqlite3_value **argv) {
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  bytes in;
  if (arg_bytes(ctx, "token_fingerprint", "input", argv[0], SEAL_MAX_PLAINTEXT,
                "16777216 (16 MiB)", &in) != 0)
    return;
  keyring *kr = token_keyring(ctx, "token_fingerprint");
  if (!kr) return;
  unsigned char fp[FINGERPRINT_BYTES];
  if (fingerprint_token(kr, in.p, in.n, fp) != 0) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_blob(ctx, fp, sizeof fp, SQLITE_TRANSIENT);
}

/*
** oauthdb_keyring(path) -> number of keys: load PATH for this connection,
** replacing (and zeroing) any keyring it had. oauthdb_keyring() -> the path
** in use, or the one $OAUTHDB_KEYRING names for first use, or NULL.
*/
static void oauthdb_keyring_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  if (argc == 0) {
    const char *path = conn->keyring.path ? conn->keyring.path : getenv("OAUTHDB_KEYRING");
    if (path && *path) sqlite3_result_text(ctx, path, -1, SQLITE_TRANSIENT);
    return;
  }
  if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
    fn_error(ctx, "oauthdb_keyring: expected the path of a keyring file, got %s",
             storage_class_name(sqlite3_value_type(argv[0])));
    return;
  }
  const char *path = (const char *)sqlite3_value_text(argv[0]);
  if (!path) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  char *err = NULL;
  if (connection_keyring_load(conn, path, &err) != SQLITE_OK) {
    if (err) fn_error(ctx, "oauthdb_keyring: %s", err);
    else sqlite3_result_error_nomem(ctx);
    sqlite3_free(err);
    return;
  }
  sqlite3_result_int(ctx, conn->keyring.keys->n_keys);
}

/*
** token_ad(table, column, id) -> 'table.column:id', the associated data of
** a sealed column (associated_data.h): built by the same core function as
** the vault's and the exporter's, so SQL cannot spell it differently.
** Pure: DETERMINISTIC and INNOCUOUS. NULL in any argument gives NULL.
*/
static void token_ad_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  for (int i = 0; i < 3; i++)
    if (sqlite3_value_type(argv[i]) == SQLITE_NULL) return;
  const char *table = (const char *)sqlite3_value_text(argv[0]);
  const char *column = (const char *)sqlite3_value_text(argv[1]);
  const char *id = (const char *)sqlite3_value_text(argv[2]);
  if (!table || !column || !id) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  size_t n_id = (size_t)sqlite3_value_bytes(argv[2]);
  size_t n = associated_data(NULL, 0, table, column, id, n_id);
  char *out = sqlite3_malloc64(n + 1);
  if (!out) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  associated_data(out, n + 1, table, column, id, n_id);
  sqlite3_result_text64(ctx, out, n, sqlite3_free, SQLITE_UTF8);
}

static const oauthdb_function token_functions[] = {
    {"token_seal", 1, SQLITE_DIRECTONLY, token_seal_fn},
    {"token_seal", 2, SQLITE_DIRECTONLY, token_seal_fn},
    {"token_open", 1, SQLITE_DIRECTONLY, token_open_fn},
    {"token_open", 2, SQLITE_DIRECTONLY, token_open_fn},
    {"token_reseal", 1, SQLITE_DIRECTONLY, token_reseal_fn},
    {"token_reseal", 2, SQLITE_DIRECTONLY, token_reseal_fn},
    {"token_key_id", 1, SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, token_key_id_fn},
    {"token_ad", 3, SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, token_ad_fn},
    {"token_fingerprint", 1, SQLITE_DIRECTONLY, token_fingerprint_fn},
    {"oauthdb_keyring", 0, SQLITE_DIRECTONLY, oauthdb_keyring_fn},
    {"oauthdb_keyring", 1, SQLITE_DIRECTONLY, oauthdb_keyring_fn},
};
OAUTHDB_FUNCTION_SET(token_functions);

int tokens_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_functions(db, conn, token_functions,
                                 (int)(sizeof token_functions / sizeof token_functions[0]),
                                 pzErr);
}
