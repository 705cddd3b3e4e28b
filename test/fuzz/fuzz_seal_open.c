/*
** fuzz_seal_open: sealed values and associated data -> seal_open (ext/core/seal.h).
**
** Input layout:
**
**   byte 0      mode: even = open, odd = round trip; bits 1-7 pick the bit
**               the round trip flips
**   bytes 1-2   n_ad, big-endian (clamped to what is left)
**   n_ad bytes  associated data
**   the rest    open: the sealed value; round trip: the plaintext
**
** The keyring is the FORMAT.md vector keys (fuzz_util.c), loaded once
** through keyring_load from a private temp file.
**
** open: seal_open must agree with the header (version, algorithm, length,
** key id, retired or unknown key) as docs/FORMAT.md orders the checks; a
** failed tag must leave the output zeroed; an open that succeeds must be
** the one value that key, nonce, plaintext and AD seal to (sealing again
** with seal_with_nonce gives back the input byte for byte).
**
** round trip: seal_token under the primary, then seal_open gives the
** plaintext back; a flipped bit, one more byte of AD, or a byte less of
** sealed value all fail.
*/
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "keyring.h"
#include "seal.h"

#define TARGET "fuzz_seal_open"

static keyring *kr;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  if (sodium_init() < 0) abort();
  char *err = NULL;
  kr = keyring_load(fuzz_write_file("keyring", fuzz_test_keyring_text,
                                    strlen(fuzz_test_keyring_text)), &err);
  if (!kr) fuzz_fail(TARGET, "test keyring refused: %s", err ? err : "?");
  return 0;
}

static uint32_t header_id(const uint8_t *s) {
  return (uint32_t)s[2] << 24 | (uint32_t)s[3] << 16 | (uint32_t)s[4] << 8 | s[5];
}

/* What seal_open must answer on structure alone; SEAL_OK means "try the tag". */
static seal_status expected_structure(const uint8_t *s, size_t n) {
  if (n >= 1 && s[0] != SEAL_VERSION) return SEAL_BAD_VERSION;
  if (n >= 2 && s[1] != SEAL_ALG_XCHACHA20POLY1305) return SEAL_BAD_ALGORITHM;
  if (n < SEAL_OVERHEAD) return SEAL_TRUNCATED;
  const keyring_key *k = keyring_find(kr, header_id(s));
  if (!k) return SEAL_UNKNOWN_KEY;
  if (k->status == KEY_RETIRED) return SEAL_RETIRED_KEY;
  if (n - SEAL_OVERHEAD > SEAL_MAX_PLAINTEXT) return SEAL_TOO_BIG;
  return SEAL_OK;
}

static void check_open(const uint8_t *ad, size_t n_ad, const uint8_t *s, size_t n) {
  size_t n_pt = n >= SEAL_OVERHEAD ? n - SEAL_OVERHEAD : 0;
  /* Exactly the size the contract promises, so a write past it is caught. */
  unsigned char *out = malloc(n_pt ? n_pt : 1);
  if (!out) abort();
  memset(out, 0xa5, n_pt);
  uint32_t id = 0xdeadbeef;
  seal_status got = seal_open(kr, s, n, ad, n_ad, out, &id);
  seal_status want = expected_structure(s, n);

  /* The key id is reported from any header that is one of ours. */
  int ours = n >= SEAL_HEADER_BYTES && s[0] == SEAL_VERSION && s[1] == SEAL_ALG_XCHACHA20POLY1305;
  if (ours && id != header_id(s))
    fuzz_fail(TARGET, "key id %08x reported for header id %08x", id, header_id(s));
  if (n < SEAL_HEADER_BYTES && id != 0xdeadbeef)
    fuzz_fail(TARGET, "key id set from a %zu-byte value", n);
  uint32_t id2 = 0;
  seal_status ks = seal_key_id(s, n, &id2);
  if (want == SEAL_OK || want == SEAL_UNKNOWN_KEY || want == SEAL_RETIRED_KEY) {
    if (ks != SEAL_OK) fuzz_fail(TARGET, "seal_key_id says %s", seal_status_text(ks));
  } else if (ks != want) {
    fuzz_fail(TARGET, "seal_key_id says %s, expected %s", seal_status_text(ks),
              seal_status_text(want));
  }

  if (want != SEAL_OK) {
    if (got != want)
      fuzz_fail(TARGET, "seal_open says %s, the header says %s", seal_status_text(got),
                seal_status_text(want));
  } else if (got == SEAL_AUTH_FAILED) {
    /* No plaintext of a forged value may be left for a careless caller. */
    for (size_t i = 0; i < n_pt; i++)
      if (out[i] != 0) fuzz_fail(TARGET, "output not zeroed after a failed tag (byte %zu)", i);
  } else if (got == SEAL_OK) {
    const keyring_key *k = keyring_find(kr, header_id(s));
    unsigned char *again = malloc(n);
    if (!again) abort();
    seal_status r = seal_with_nonce(k, s + SEAL_HEADER_BYTES, out, n_pt, ad, n_ad, again);
    if (r != SEAL_OK || memcmp(again, s, n) != 0)
      fuzz_fail(TARGET, "opened, but sealing the plaintext again gives other bytes");
    free(again);
  } else {
    fuzz_fail(TARGET, "seal_open says %s for a well-formed value", seal_status_text(got));
  }
  sodium_memzero(out, n_pt);
  free(out);
}

static void check_round_trip(uint8_t mode, const uint8_t *ad, size_t n_ad,
                             const uint8_t *pt, size_t n) {
  size_t len = seal_sealed_len(n);
  unsigned char *sealed = malloc(len);
  unsigned char *out = malloc(n + 1);  /* + 1: room for the AD-mismatch open */
  unsigned char *ad2 = malloc(n_ad + 1);
  if (!sealed || !out || !ad2) abort();

  seal_status s = seal_token(kr, pt, n, ad, n_ad, sealed);
  if (s != SEAL_OK) fuzz_fail(TARGET, "seal_token: %s", seal_status_text(s));
  if (sealed[0] != SEAL_VERSION || sealed[1] != SEAL_ALG_XCHACHA20POLY1305 ||
      header_id(sealed) != FUZZ_PRIMARY_ID)
    fuzz_fail(TARGET, "sealed header is not version 1, algorithm 1, the primary id");

  uint32_t id = 0;
  s = seal_open(kr, sealed, len, ad, n_ad, out, &id);
  if (s != SEAL_OK || id != FUZZ_PRIMARY_ID || (n && memcmp(out, pt, n) != 0))
    fuzz_fail(TARGET, "round trip of %zu bytes (AD %zu): %s", n, n_ad, seal_status_text(s));

  /* One flipped bit anywhere: never opens (header bits fail on structure). */
  size_t bit = ((size_t)(mode >> 1) * 2654435761u + n + n_ad) % (len * 8);
  sealed[bit / 8] ^= (unsigned char)(1u << (bit % 8));
  s = seal_open(kr, sealed, len, ad, n_ad, out, &id);
  if (s == SEAL_OK) fuzz_fail(TARGET, "opened with bit %zu flipped", bit);
  sealed[bit / 8] ^= (unsigned char)(1u << (bit % 8));

  /* Another place (one more byte of AD) or a cut value: never opens. */
  if (n_ad) memcpy(ad2, ad, n_ad);
  ad2[n_ad] = mode;
  if ((s = seal_open(kr, sealed, len, ad2, n_ad + 1, out, &id)) != SEAL_AUTH_FAILED)
    fuzz_fail(TARGET, "AD with a byte more: %s", seal_status_text(s));
  s = seal_open(kr, sealed, len - 1, ad, n_ad, out, &id);
  if (s != SEAL_AUTH_FAILED && s != SEAL_TRUNCATED)
    fuzz_fail(TARGET, "a byte less: %s", seal_status_text(s));

  sodium_memzero(out, n + 1);
  free(out);
  free(sealed);
  free(ad2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  uint8_t mode = fuzz_byte(&in);
  size_t n_ad;
  const uint8_t *ad = fuzz_take(&in, fuzz_u16(&in), &n_ad);
  const uint8_t *rest = in.p;
  if (mode & 1) check_round_trip(mode, ad, n_ad, rest, in.n);
  else check_open(ad, n_ad, rest, in.n);
  return 0;
}
