/*
** seal.c: the sealed token format (docs/FORMAT.md).
**
**   0     1  version = 0x01
**   1     1  algorithm = 0x01 (XChaCha20-Poly1305-IETF)
**   2     4  key id, big-endian
**   6    24  nonce (randombytes_buf)
**   30 n+16  ciphertext || tag
**
** AEAD additional data = the 6 header bytes || the caller's associated data,
** so the header cannot be edited (say, to point at another key) and a value
** cannot be moved to another place without the open failing. From SQL:
**
**   SELECT token_open(token_seal('ya29.a0Af', 'oauth_tokens.access_token:' || id),
**                     'oauth_tokens.access_token:' || id) FROM oauth_tokens;
**
** (the SQL functions are in tokens.c). Pure C over libsodium, no SQLite: the
** exporter and the shell tool link it too.
**
** seal_open names only structural facts (version, algorithm, key id,
** length); everything the tag covers fails as SEAL_AUTH_FAILED and nothing
** else, so a failure tells an attacker nothing about which byte was wrong.
*/
#include <sodium.h>
#include <string.h>
#include "seal.h"

/*
** AD up to this size is assembled on the stack; above it in a sodium_malloc'd
** buffer. Our own ADs ("oauth_tokens.refresh_token:<uuid>") are ~60 bytes,
** and sodium_malloc costs more than a whole seal, so the common case must
** not pay for it.
*/
#define SEAL_AD_STACK 512

/*
** Header || caller AD, in one place, as the AEAD API takes one pointer.
** When the sodium_malloc for a long AD fails, the seal functions return
** SEAL_TOO_BIG (seal_status has no "out of memory"); callers that bounded
** the sizes themselves read it as out of memory.
*/
typedef struct full_ad {
  unsigned char stack[SEAL_AD_STACK];
  unsigned char *p;
  size_t n;
} full_ad;

static int full_ad_build(full_ad *a, const unsigned char *header,
                         const unsigned char *ad, size_t n_ad) {
  a->n = SEAL_HEADER_BYTES + n_ad;
  if (a->n < n_ad) return -1;  /* overflow */
  if (a->n <= sizeof a->stack) {
    a->p = a->stack;
  } else {
    a->p = sodium_malloc(a->n);
    if (!a->p) return -1;
  }
  memcpy(a->p, header, SEAL_HEADER_BYTES);
  if (n_ad) memcpy(a->p + SEAL_HEADER_BYTES, ad, n_ad);
  return 0;
}

static void full_ad_free(full_ad *a) {
  if (a->p == a->stack) {
    sodium_memzero(a->stack, a->n);
  } else {
    sodium_free(a->p);  /* zeroes first */
  }
  a->p = NULL;
}

static void put_header(unsigned char *out, uint32_t key_id) {
  out[0] = SEAL_VERSION;
  out[1] = SEAL_ALG_XCHACHA20POLY1305;
  out[2] = (unsigned char)(key_id >> 24);
  out[3] = (unsigned char)(key_id >> 16);
  out[4] = (unsigned char)(key_id >> 8);
  out[5] = (unsigned char)key_id;
}

seal_status seal_with_nonce(const keyring_key *key, const unsigned char *nonce,
                            const unsigned char *pt, size_t n,
                            const unsigned char *ad, size_t n_ad,
                            unsigned char *out) {
  if (!key) return SEAL_NO_PRIMARY;
  if (n > SEAL_MAX_PLAINTEXT) return SEAL_TOO_BIG;
  put_header(out, key->id);
  memcpy(out + SEAL_HEADER_BYTES, nonce, SEAL_NONCE_BYTES);
  full_ad a;
  if (full_ad_build(&a, out, ad, n_ad) != 0) return SEAL_TOO_BIG;
  unsigned long long clen = 0;
  static const unsigned char empty[1];  /* libsodium wants a pointer even for 0 bytes */
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      out + SEAL_HEADER_BYTES + SEAL_NONCE_BYTES, &clen, n ? pt : empty, n,
      a.p, a.n, NULL, nonce, key->key);
  full_ad_free(&a);
  return SEAL_OK;
}

seal_status seal_with_key(const keyring_key *key, const unsigned char *pt,
                          size_t n, const unsigned char *ad, size_t n_ad,
                          unsigned char *out) {
  unsigned char nonce[SEAL_NONCE_BYTES];
  /* Random, never derived from data: 192 bits make collisions moot. */
  randombytes_buf(nonce, sizeof nonce);
  return seal_with_nonce(key, nonce, pt, n, ad, n_ad, out);
}

seal_status seal_token(const keyring *kr, const unsigned char *pt, size_t n,
                       const unsigned char *ad, size_t n_ad,
                       unsigned char *out) {
  return seal_with_key(kr ? keyring_primary(kr) : NULL, pt, n, ad, n_ad, out);
}

/*
** The order of the checks is the order a reader learns most from: a wrong
** first byte says "this is not one of ours" even when it is also short.
*/
seal_status seal_key_id(const unsigned char *sealed, size_t n,
                        uint32_t *key_id) {
  if (n >= 1 && sealed[0] != SEAL_VERSION) return SEAL_BAD_VERSION;
  if (n >= 2 && sealed[1] != SEAL_ALG_XCHACHA20POLY1305) return SEAL_BAD_ALGORITHM;
  if (n >= SEAL_HEADER_BYTES && key_id)
    *key_id = (uint32_t)sealed[2] << 24 | (uint32_t)sealed[3] << 16 |
              (uint32_t)sealed[4] << 8 | (uint32_t)sealed[5];
  if (n < SEAL_OVERHEAD) return SEAL_TRUNCATED;
  return SEAL_OK;
}

seal_status seal_open(const keyring *kr, const unsigned char *sealed,
                      size_t n, const unsigned char *ad, size_t n_ad,
                      unsigned char *out, uint32_t *key_id) {
  uint32_t id = 0;
  seal_status s = seal_key_id(sealed, n, &id);
  if (key_id && n >= SEAL_HEADER_BYTES) *key_id = id;
  if (s != SEAL_OK) return s;
  const keyring_key *key = kr ? keyring_find(kr, id) : NULL;
  if (!key) return SEAL_UNKNOWN_KEY;
  if (key->status == KEY_RETIRED) return SEAL_RETIRED_KEY;
  if (n - SEAL_OVERHEAD > SEAL_MAX_PLAINTEXT) return SEAL_TOO_BIG;

  full_ad a;
  if (full_ad_build(&a, sealed, ad, n_ad) != 0) return SEAL_TOO_BIG;
  unsigned long long mlen = 0;
  /* Verifies the tag before it decrypts, and zeroes out on failure. */
  int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
      out, &mlen, NULL, sealed + SEAL_HEADER_BYTES + SEAL_NONCE_BYTES,
      n - SEAL_HEADER_BYTES - SEAL_NONCE_BYTES, a.p, a.n,
      sealed + SEAL_HEADER_BYTES, key->key);
  full_ad_free(&a);
  return rc == 0 ? SEAL_OK : SEAL_AUTH_FAILED;
}

const char *seal_status_text(seal_status s) {
  switch (s) {
    case SEAL_OK: return "ok";
    case SEAL_TRUNCATED: return "truncated input";
    case SEAL_BAD_VERSION: return "unknown version";
    case SEAL_BAD_ALGORITHM: return "unknown algorithm";
    case SEAL_UNKNOWN_KEY: return "unknown key id";
    case SEAL_RETIRED_KEY: return "retired key id";
    case SEAL_AUTH_FAILED: return "authentication failed";
    case SEAL_TOO_BIG: return "too big";
    case SEAL_NO_PRIMARY: return "no primary key";
  }
  return "unknown error";
}
