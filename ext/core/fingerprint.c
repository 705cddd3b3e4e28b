/*
** fingerprint.c: token_fingerprint's computation (fingerprint.h).
*/
#include <sodium.h>
#include "fingerprint.h"

#define FINGERPRINT_CONTEXT "oauthfp1"
#define FINGERPRINT_SUBKEY_ID 1

int fingerprint_token(keyring *kr, const unsigned char *in, size_t n,
                      unsigned char out[FINGERPRINT_BYTES]) {
  /* The derived key is a secret too: it lives in the locked scratch. */
  unsigned char *subkey = keyring_scratch(kr, crypto_generichash_KEYBYTES);
  if (!subkey) return -1;
  crypto_kdf_derive_from_key(subkey, crypto_generichash_KEYBYTES,
                             FINGERPRINT_SUBKEY_ID, FINGERPRINT_CONTEXT,
                             keyring_primary(kr)->key);
  crypto_generichash(out, FINGERPRINT_BYTES, in, n, subkey,
                     crypto_generichash_KEYBYTES);
  sodium_memzero(subkey, crypto_generichash_KEYBYTES);
  return 0;
}
