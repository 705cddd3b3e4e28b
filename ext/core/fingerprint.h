/*
** fingerprint.h: token_fingerprint's keyed fingerprint of a token, shared
** by both engines: BLAKE2b-128 keyed with a key derived from the primary key
** (crypto_kdf, context "oauthfp1", subkey 1). Equal tokens give equal
** fingerprints under the same primary key, so a refresh log can tell
** whether a refresh changed the token without storing it; without the
** keyring a fingerprint reveals nothing.
**
** Pure C over libsodium: no engine headers.
*/
#ifndef OAUTHDB_FINGERPRINT_H
#define OAUTHDB_FINGERPRINT_H

#include <stddef.h>
#include "keyring.h"

#define FINGERPRINT_BYTES 16

/*
** Fingerprint in[0..n) under kr's primary key into out. The derived key
** lives in kr's locked scratch buffer and is zeroed before returning.
** 0 on success, -1 when the scratch buffer cannot be had (out of memory).
*/
int fingerprint_token(keyring *kr, const unsigned char *in, size_t n,
                      unsigned char out[FINGERPRINT_BYTES]);

#endif /* OAUTHDB_FINGERPRINT_H */
