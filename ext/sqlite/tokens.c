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
**
** Flags (DESIGN section 5): everything that reveals or creates a secret or
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
#include <sys/stat.h>
#include <time.h>
#include "oauthdb.h"
#include "seal.h"

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

/* ---- the connection's keyring ---------------------------------------- */

/* What identifies a version of the keyring file; 0 when it cannot be read. */
static int keyring_stamp_of(const char *path, struct keyring_stamp *out) {
  struct stat st;
  memset(out, 0, sizeof *out);
  if (stat(path, &st) != 0) return 0;
  out->dev = (unsigned long long)st.st_dev;
  out->ino = (unsigned long long)st.st_ino;
  out->size = (unsigned long long)st.st_size;
  out->mtime_sec = (long long)st.st_mtim.tv_sec;
  out->mtime_nsec = (long long)st.st_mtim.tv_nsec;
  out->ctime_sec = (long long)st.st_ctim.tv_sec;
  out->ctime_nsec = (long long)st.st_ctim.tv_nsec;
  return 1;
}

/* Load PATH as the connection's keyring, zeroing the one it replaces. */
static int load_keyring(oauthdb_conn *conn, const char *path, char **pzErr) {
  /*
  ** The stamp is taken before the load: if the file changes in between,
  ** the stamp is the older one and the next check loads again, never the
  ** other way round.
  */
  struct keyring_stamp stamp;
  keyring_stamp_of(path, &stamp);
  char *err = NULL;
  keyring *kr = keyring_load(path, &err);
  if (!kr) {
    *pzErr = sqlite3_mprintf("%s", err ? err : "out of memory loading the keyring");
    free(err);
    return SQLITE_ERROR;
  }
  char *copy = sqlite3_mprintf("%s", path);
  if (!copy) {
    keyring_free(kr);
    *pzErr = sqlite3_mprintf("out of memory");
    return SQLITE_NOMEM;
  }
  keyring_free(conn->keys);
  sqlite3_free(conn->keyring_path);
  conn->keys = kr;
  conn->keyring_path = copy;
  conn->keyring_stamp = stamp;
  conn->keyring_checked_at = (long long)time(NULL);
  return SQLITE_OK;
}

/*
** The loaded keyring, reloaded first when its file has changed since.
**
** `oauthdb rotate` (another process) promotes a new key, reseals, then
** retires the old one. A connection that kept sealing with the key it
** loaded at first would go on writing values under a key the file now
** calls retired, which no other connection opens. So the file is compared
** with its stamp at most once a second (time() is a vDSO read; a stat per
** seal would cost a tenth of the seal), and the rotation waits longer than
** that after promoting before it checks that no value uses the old key.
** A file that changed and no longer loads is an error, not a reason to
** keep the old keys quietly.
*/
static keyring *keyring_current(oauthdb_conn *conn, char **pzErr) {
  long long now = (long long)time(NULL);
  if (now == conn->keyring_checked_at) return conn->keys;
  conn->keyring_checked_at = now;
  struct keyring_stamp stamp;
  keyring_stamp_of(conn->keyring_path, &stamp);
  if (memcmp(&stamp, &conn->keyring_stamp, sizeof stamp) == 0) return conn->keys;
  if (load_keyring(conn, conn->keyring_path, pzErr) != SQLITE_OK) {
    /* Fail closed, and keep failing until the file loads again. */
    keyring_free(conn->keys);
    conn->keys = NULL;
    return NULL;
  }
  return conn->keys;
}

/*
** Declared in oauthdb.h for every feature that needs keys. The message
** does not start with a function name: callers prefix their own
** ("oauth_token_vault: no keyring: ..."), as token_keyring() below does.
*/
keyring *conn_keyring(oauthdb_conn *conn, char **pzErr) {
  *pzErr = NULL;
  if (conn->keys) return keyring_current(conn, pzErr);
  /* A keyring set with oauthdb_keyring() whose file stopped loading is
     retried from the same path, not from the environment. */
  const char *path = conn->keyring_path ? conn->keyring_path : getenv("OAUTHDB_KEYRING");
  if (!path || !*path) {
    *pzErr = sqlite3_mprintf(
        "no keyring: set OAUTHDB_KEYRING=/path/to/keyring or "
        "SELECT oauthdb_keyring('/path')");
    return NULL;
  }
  /* A failed load is not remembered: the next call retries, after a chmod. */
  if (load_keyring(conn, path, pzErr) != SQLITE_OK) return NULL;
  return conn->keys;
}

/* conn_keyring for SQL function FN, reporting on ctx. */
static keyring *token_keyring(sqlite3_context *ctx, const char *fn) {
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  char *err = NULL;
  keyring *kr = conn_keyring(conn, &err);
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
  const char *path = conn->keyring_path ? conn->keyring_path : "?";
  switch (s) {
    case SEAL_TRUNCATED:
      return sqlite3_mprintf("%s: truncated input (%lld bytes; a sealed value has at least %d)",
                             fn, (long long)n, SEAL_OVERHEAD);
    case SEAL_BAD_VERSION:
      return sqlite3_mprintf("%s: unknown version 0x%02x", fn, n > 0 ? sealed[0] : 0);
    case SEAL_BAD_ALGORITHM:
      return sqlite3_mprintf("%s: unknown algorithm 0x%02x", fn, n > 1 ? sealed[1] : 0);
    case SEAL_UNKNOWN_KEY:
      return sqlite3_mprintf("%s: unknown key id %08x (not in keyring %s; was it rotated out?)",
                             fn, (unsigned)key_id, path);
    case SEAL_RETIRED_KEY:
      return sqlite3_mprintf("%s: key id %08x is retired in keyring %s", fn,
                             (unsigned)key_id, path);
    case SEAL_TOO_BIG:
      return sqlite3_mprintf("%s: sealed value holds %lld bytes; the limit is 16777216 (16 MiB)",
                             fn, (long long)(n - SEAL_OVERHEAD));
    case SEAL_NO_PRIMARY:
      return sqlite3_mprintf("%s: keyring %s has no primary key", fn, path);
    case SEAL_AUTH_FAILED:
    default:
      return sqlite3_mprintf("%s: authentication failed", fn);
  }
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
** Valid UTF-8 without NUL bytes: what can be returned as TEXT. A NUL would
** cut the string short for every C client, so such plaintext is a BLOB.
** Rejects overlong forms, surrogates and code points above U+10FFFF, as
** RFC 3629 does. Tokens are ASCII, so 32 and then 8 bytes are checked at
** a time, falling back to one character at a time where that fails.
*/
#define HAS_ZERO_BYTE(v) (((v) - 0x0101010101010101ull) & ~(v))
static int is_text(const unsigned char *s, size_t n) {
  const uint64_t hi = 0x8080808080808080ull, lo = 0x0101010101010101ull;
  size_t i = 0;
  while (n - i >= 32) {
    uint64_t a, b, c, d;
    memcpy(&a, s + i, 8);
    memcpy(&b, s + i + 8, 8);
    memcpy(&c, s + i + 16, 8);
    memcpy(&d, s + i + 24, 8);
    /* a byte >= 0x80 or a zero byte anywhere: take the slow path */
    if ((a | b | c | d | HAS_ZERO_BYTE(a) | HAS_ZERO_BYTE(b) | HAS_ZERO_BYTE(c) |
         HAS_ZERO_BYTE(d)) & hi)
      break;
    i += 32;
  }
  while (i < n) {
    if (n - i >= 8) {
      uint64_t v;
      memcpy(&v, s + i, 8);
      /* no byte >= 0x80 and no zero byte: all eight are plain ASCII */
      if (((v | ((v - lo) & ~v)) & hi) == 0) {
        i += 8;
        continue;
      }
    }
    unsigned char c = s[i];
    if (c == 0) return 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n - i < len) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += len;
  }
  return 1;
}

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
  if (is_text(plain, n)) {
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
** token_fingerprint(token) -> 16-byte BLOB: BLAKE2b-128 keyed with a key
** derived from the primary key (crypto_kdf, context "oauthfp1", subkey 1).
** Equal tokens give equal fingerprints under the same primary key, so
** token_refresh_log can tell whether a refresh changed the token without
** storing it; without the keyring a fingerprint reveals nothing.
*/
#define FINGERPRINT_BYTES 16
#define FINGERPRINT_CONTEXT "oauthfp1"
#define FINGERPRINT_SUBKEY_ID 1

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
  /* The derived key is a secret too: it lives in the locked scratch. */
  unsigned char *subkey = keyring_scratch(kr, crypto_generichash_KEYBYTES);
  if (!subkey) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  unsigned char fp[FINGERPRINT_BYTES];
  crypto_kdf_derive_from_key(subkey, crypto_generichash_KEYBYTES,
                             FINGERPRINT_SUBKEY_ID, FINGERPRINT_CONTEXT,
                             keyring_primary(kr)->key);
  crypto_generichash(fp, sizeof fp, in.p, in.n, subkey, crypto_generichash_KEYBYTES);
  sodium_memzero(subkey, crypto_generichash_KEYBYTES);
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
    const char *path = conn->keyring_path ? conn->keyring_path : getenv("OAUTHDB_KEYRING");
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
  if (load_keyring(conn, path, &err) != SQLITE_OK) {
    if (err) fn_error(ctx, "oauthdb_keyring: %s", err);
    else sqlite3_result_error_nomem(ctx);
    sqlite3_free(err);
    return;
  }
  sqlite3_result_int(ctx, conn->keys->n_keys);
}

static const oauthdb_function token_functions[] = {
    {"token_seal", 1, SQLITE_DIRECTONLY, token_seal_fn},
    {"token_seal", 2, SQLITE_DIRECTONLY, token_seal_fn},
    {"token_open", 1, SQLITE_DIRECTONLY, token_open_fn},
    {"token_open", 2, SQLITE_DIRECTONLY, token_open_fn},
    {"token_reseal", 1, SQLITE_DIRECTONLY, token_reseal_fn},
    {"token_reseal", 2, SQLITE_DIRECTONLY, token_reseal_fn},
    {"token_key_id", 1, SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, token_key_id_fn},
    {"token_fingerprint", 1, SQLITE_DIRECTONLY, token_fingerprint_fn},
    {"oauthdb_keyring", 0, SQLITE_DIRECTONLY, oauthdb_keyring_fn},
    {"oauthdb_keyring", 1, SQLITE_DIRECTONLY, oauthdb_keyring_fn},
};

int tokens_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_functions(db, conn, token_functions,
                                 (int)(sizeof token_functions / sizeof token_functions[0]),
                                 pzErr);
}
