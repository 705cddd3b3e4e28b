/*
** session_token.c: session tokens and their stored hash (session_token.h).
**
** A token is 32 bytes from randombytes_buf in URL-safe base64 without
** padding (safe in a cookie or a URL). It is returned once and never
** stored: the row keeps SHA-256 of the token's text. 256 random bits need
** no salt or slow hash: there is nothing to guess.
*/
#include <sodium.h>

#include "session_token.h"

#define TOKEN_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

_Static_assert(sodium_base64_ENCODED_LEN(SESSION_TOKEN_BYTES, TOKEN_VARIANT) ==
                   SESSION_TOKEN_TEXT_LEN + 1,
               "SESSION_TOKEN_TEXT_LEN must match the encoding");
_Static_assert(crypto_hash_sha256_BYTES == SESSION_HASH_BYTES,
               "token_hash is SHA-256");

void session_token_new(char token[SESSION_TOKEN_TEXT_LEN + 1],
                       unsigned char hash[SESSION_HASH_BYTES]) {
  unsigned char raw[SESSION_TOKEN_BYTES];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2base64(token, SESSION_TOKEN_TEXT_LEN + 1, raw, sizeof raw,
                    TOKEN_VARIANT);
  sodium_memzero(raw, sizeof raw);
  crypto_hash_sha256(hash, (const unsigned char *)token, SESSION_TOKEN_TEXT_LEN);
}

int session_token_hash(const unsigned char *text, size_t n,
                       unsigned char hash[SESSION_HASH_BYTES]) {
  if (!text || n != SESSION_TOKEN_TEXT_LEN) return 0;
  crypto_hash_sha256(hash, text, SESSION_TOKEN_TEXT_LEN);
  return 1;
}
