/*
** seal_vectors.c: the C sealing path against docs/FORMAT.md, byte for byte.
**
**   build/test/seal_vectors docs/FORMAT.md      # prints "ok N vectors"
**
** The extension seals with a random nonce, so SQL cannot reproduce a
** vector; this calls seal_with_nonce (ext/core/seal.h) with each ```vector
** block's key, nonce, plaintext and AD and compares the result with the
** block's sealed hex, then checks seal_key_id and that seal_open refuses
** the value without a keyring that holds its key. test/seal.test runs it;
** opening through SQL is checked there.
*/
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "seal.h"

#define MAX_FIELD 4096

typedef struct field {
  unsigned char bin[MAX_FIELD];
  size_t n;
} field;

/* Value of "name: hex" in block [s, e) as bytes; "(empty)" is empty. */
static int get_hex(const char *s, const char *e, const char *name, field *f) {
  size_t len = strlen(name);
  for (const char *p = s; p < e;) {
    const char *nl = memchr(p, '\n', (size_t)(e - p));
    if (!nl) nl = e;
    if ((size_t)(nl - p) > len + 1 && memcmp(p, name, len) == 0 && p[len] == ':') {
      const char *v = p + len + 1;
      while (v < nl && *v == ' ') v++;
      f->n = 0;
      if (nl - v == 7 && memcmp(v, "(empty)", 7) == 0) return 0;
      const char *end = NULL;
      if (sodium_hex2bin(f->bin, sizeof f->bin, v, (size_t)(nl - v), NULL, &f->n,
                         &end) != 0 || end != nl)
        return -1;
      return 0;
    }
    p = nl + 1;
  }
  return -1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: seal_vectors docs/FORMAT.md\n");
    return 2;
  }
  if (sodium_init() < 0) return 1;
  FILE *fp = fopen(argv[1], "rb");
  if (!fp) {
    perror(argv[1]);
    return 1;
  }
  static char doc[1 << 20];
  size_t n_doc = fread(doc, 1, sizeof doc - 1, fp);
  fclose(fp);
  doc[n_doc] = 0;

  static field id, key, nonce, pt, ad, want;
  static unsigned char out[MAX_FIELD + SEAL_OVERHEAD];
  int n = 0, failed = 0;
  for (char *p = strstr(doc, "\n```vector\n"); p; p = strstr(p, "\n```vector\n")) {
    char *s = p + 11, *e = strstr(s, "\n```");
    if (!e) break;
    n++;
    if (get_hex(s, e, "key id", &id) || id.n != 4 || get_hex(s, e, "key", &key) ||
        key.n != 32 || get_hex(s, e, "nonce", &nonce) || nonce.n != SEAL_NONCE_BYTES ||
        get_hex(s, e, "plaintext hex", &pt) || get_hex(s, e, "ad hex", &ad) ||
        get_hex(s, e, "sealed", &want)) {
      printf("vector %d: cannot parse\n", n);
      failed++;
      p = e;
      continue;
    }
    keyring_key k = {(uint32_t)id.bin[0] << 24 | (uint32_t)id.bin[1] << 16 |
                         (uint32_t)id.bin[2] << 8 | id.bin[3],
                     KEY_PRIMARY, key.bin};
    uint32_t got_id = 0;
    if (seal_with_nonce(&k, nonce.bin, pt.bin, pt.n, ad.bin, ad.n, out) != SEAL_OK ||
        seal_sealed_len(pt.n) != want.n || memcmp(out, want.bin, want.n) != 0) {
      printf("vector %d: seal_with_nonce differs from the document\n", n);
      failed++;
    } else if (seal_key_id(out, want.n, &got_id) != SEAL_OK || got_id != k.id) {
      printf("vector %d: seal_key_id differs\n", n);
      failed++;
    } else if (seal_open(NULL, out, want.n, ad.bin, ad.n, pt.bin, &got_id) !=
               SEAL_UNKNOWN_KEY) {
      printf("vector %d: opened without its key\n", n);
      failed++;
    }
    p = e;
  }
  if (n == 0) {
    printf("no vectors in %s\n", argv[1]);
    return 1;
  }
  if (failed) return 1;
  printf("ok %d vectors\n", n);
  return 0;
}
