/*
** raw_seal_open N LEN: the floor for bench/pg_seal_open.sh. Seals and opens
** N random LEN-byte values with libsodium's XChaCha20-Poly1305 directly, as
** token_open(token_seal(x, 'ad'), 'ad') does (a fresh nonce per value, the
** 6 header bytes and "ad" as associated data, a fresh output per value), and
** prints the seconds it took.
*/
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEADER 6
#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

int main(int argc, char **argv) {
  if (argc != 3 || sodium_init() < 0) return 2;
  size_t n = strtoul(argv[1], NULL, 10), len = strtoul(argv[2], NULL, 10);
  unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
  crypto_aead_xchacha20poly1305_ietf_keygen(key);
  unsigned char *values = malloc(n * len);
  unsigned char *sealed = malloc(HEADER + NONCE + len + TAG);
  unsigned char *plain = malloc(len);
  if (!values || !sealed || !plain) return 1;
  randombytes_buf(values, n * len);
  unsigned char ad[HEADER + 2] = {1, 1, 0x7e, 0x57, 0xbe, 0x4c, 'a', 'd'};
  unsigned long long clen, mlen;
  size_t opened = 0;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (size_t i = 0; i < n; i++) {
    unsigned char *nonce = sealed + HEADER;
    memcpy(sealed, ad, HEADER);
    randombytes_buf(nonce, NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + HEADER + NONCE, &clen,
                                               values + i * len, len, ad, sizeof ad,
                                               NULL, nonce, key);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &mlen, NULL,
                                                   sealed + HEADER + NONCE, clen,
                                                   ad, sizeof ad, nonce, key) == 0)
      opened++;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  if (opened != n) return 1;
  printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
  return 0;
}
