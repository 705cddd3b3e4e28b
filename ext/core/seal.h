/*
** seal.h: the sealed token format (docs/FORMAT.md, "Sealed token").
**
**   0     1  version = 0x01
**   1     1  algorithm = 0x01 (XChaCha20-Poly1305-IETF)
**   2     4  key id, big-endian
**   6    24  nonce
**   30 n+16  ciphertext || tag
**
** AEAD additional data = the 6 header bytes || caller's associated data.
** Pure C over libsodium: no SQLite. Linked into the extension, the exporter
** and the shell tool alike.
*/
#ifndef OAUTHDB_SEAL_H
#define OAUTHDB_SEAL_H

#include <stddef.h>
#include <stdint.h>
#include "keyring.h"

#define SEAL_VERSION 0x01
#define SEAL_ALG_XCHACHA20POLY1305 0x01
#define SEAL_HEADER_BYTES 6
#define SEAL_NONCE_BYTES 24
#define SEAL_TAG_BYTES 16
#define SEAL_OVERHEAD (SEAL_HEADER_BYTES + SEAL_NONCE_BYTES + SEAL_TAG_BYTES)

typedef enum seal_status {
  SEAL_OK = 0,
  SEAL_TRUNCATED,        /* shorter than the header, nonce and tag */
  SEAL_BAD_VERSION,      /* first byte is not 0x01 */
  SEAL_BAD_ALGORITHM,    /* second byte is not 0x01 */
  SEAL_UNKNOWN_KEY,      /* key id not in the keyring */
  SEAL_RETIRED_KEY,      /* key id retired */
  SEAL_AUTH_FAILED,      /* tag did not verify: wrong key, data or AD */
  SEAL_TOO_BIG,          /* beyond SEAL_MAX_PLAINTEXT */
  SEAL_NO_PRIMARY        /* sealing needs a primary key */
} seal_status;

/* The biggest plaintext sealed or opened (see docs/FORMAT.md, Limits). */
#define SEAL_MAX_PLAINTEXT (16u * 1024 * 1024)

/* Bytes of a sealed value holding n plaintext bytes. */
static inline size_t seal_sealed_len(size_t n) { return n + SEAL_OVERHEAD; }

/*
** Seal pt[0..n) under key (id key_id) with associated data ad[0..n_ad) into
** out, which holds seal_sealed_len(n) bytes. The nonce comes from
** randombytes_buf. seal_with_nonce is for test vectors only.
*/
seal_status seal_with_key(const keyring_key *key, const unsigned char *pt,
                          size_t n, const unsigned char *ad, size_t n_ad,
                          unsigned char *out);
seal_status seal_with_nonce(const keyring_key *key, const unsigned char *nonce,
                            const unsigned char *pt, size_t n,
                            const unsigned char *ad, size_t n_ad,
                            unsigned char *out);

/* Seal with the keyring's primary key. */
seal_status seal_token(const keyring *kr, const unsigned char *pt, size_t n,
                       const unsigned char *ad, size_t n_ad,
                       unsigned char *out);

/*
** Open sealed[0..n) into out (n - SEAL_OVERHEAD bytes; the caller should
** use locked/sodium_malloc'd memory and zero it). *key_id gets the header's
** key id whenever the header is long enough to hold one.
*/
seal_status seal_open(const keyring *kr, const unsigned char *sealed,
                      size_t n, const unsigned char *ad, size_t n_ad,
                      unsigned char *out, uint32_t *key_id);

/* The key id in a sealed value's header, or SEAL_TRUNCATED/SEAL_BAD_*. */
seal_status seal_key_id(const unsigned char *sealed, size_t n,
                        uint32_t *key_id);

/* A short, fixed description for messages; never names data. */
const char *seal_status_text(seal_status s);

#endif /* OAUTHDB_SEAL_H */
