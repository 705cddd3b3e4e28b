/*
** export_sha256.c: SHA-256 for the rerun digests (export_digest.c).
**
** A rerun hashes every source row (about half a kilobyte each, so half a
** gigabyte at a million rows), and PostgreSQL hashes the target's rows with
** its sha256(), which OpenSSL runs on the CPU's SHA extensions. libsodium's
** portable SHA-256 is some eight times slower than those, so on x86-64 CPUs
** that have them (cpuid leaf 7, EBX bit 29) the compression function runs
** on them here too; everywhere else libsodium does it all. Both give the
** same digest, which is checked against libsodium's (every padding case)
** before the first use. OAUTHDB_EXPORT_NO_SHA_NI=1 forces libsodium.
*/
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "export.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI_CODE 1

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

/* The compression function over n 64-byte blocks, with the SHA extensions
** (Intel's published instruction sequence, four rounds per step). */
__attribute__((target("sha,sse4.1,ssse3"))) static void
sha256_blocks_ni(uint32_t state[8], const unsigned char *p, size_t n) {
  const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);
  __m128i s1 = _mm_loadu_si128((const __m128i *)&state[4]);
  tmp = _mm_shuffle_epi32(tmp, 0xB1);          /* CDAB */
  s1 = _mm_shuffle_epi32(s1, 0x1B);            /* EFGH */
  __m128i s0 = _mm_alignr_epi8(tmp, s1, 8);    /* ABEF */
  s1 = _mm_blend_epi16(s1, tmp, 0xF0);         /* CDGH */
  for (; n > 0; n--, p += 64) {
    __m128i abef = s0, cdgh = s1, msg[4];
    for (int i = 0; i < 16; i++) {
      if (i < 4)
        msg[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), swap);
      __m128i m = _mm_add_epi32(msg[i & 3], _mm_loadu_si128((const __m128i *)&K[4 * i]));
      s1 = _mm_sha256rnds2_epu32(s1, s0, m);
      if (i >= 3 && i < 15) {
        __m128i t = _mm_alignr_epi8(msg[i & 3], msg[(i - 1) & 3], 4);
        msg[(i + 1) & 3] = _mm_add_epi32(msg[(i + 1) & 3], t);
        msg[(i + 1) & 3] = _mm_sha256msg2_epu32(msg[(i + 1) & 3], msg[i & 3]);
      }
      m = _mm_shuffle_epi32(m, 0x0E);
      s0 = _mm_sha256rnds2_epu32(s0, s1, m);
      if (i >= 1 && i < 13) msg[(i - 1) & 3] = _mm_sha256msg1_epu32(msg[(i - 1) & 3], msg[i & 3]);
    }
    s0 = _mm_add_epi32(s0, abef);
    s1 = _mm_add_epi32(s1, cdgh);
  }
  tmp = _mm_shuffle_epi32(s0, 0x1B);           /* FEBA */
  s1 = _mm_shuffle_epi32(s1, 0xB1);            /* DCHG */
  s0 = _mm_blend_epi16(tmp, s1, 0xF0);         /* DCBA */
  s1 = _mm_alignr_epi8(s1, tmp, 8);            /* ABEF */
  _mm_storeu_si128((__m128i *)&state[0], s0);
  _mm_storeu_si128((__m128i *)&state[4], s1);
}

static void sha256_ni(const unsigned char *p, size_t n, unsigned char out[32]) {
  uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  size_t whole = n / 64;
  sha256_blocks_ni(state, p, whole);
  unsigned char last[128];
  size_t rest = n - whole * 64;
  memcpy(last, p + whole * 64, rest);
  last[rest] = 0x80;
  size_t padded = rest + 1 + 8 <= 64 ? 64 : 128;
  memset(last + rest + 1, 0, padded - rest - 1);
  uint64_t bits = (uint64_t)n * 8;
  for (int i = 0; i < 8; i++) last[padded - 1 - i] = (unsigned char)(bits >> (8 * i));
  sha256_blocks_ni(state, last, padded / 64);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (unsigned char)(state[i] >> 24);
    out[4 * i + 1] = (unsigned char)(state[i] >> 16);
    out[4 * i + 2] = (unsigned char)(state[i] >> 8);
    out[4 * i + 3] = (unsigned char)state[i];
  }
}

static int cpu_has_sha_ni(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  if (!(c & bit_SSE4_1) || !(c & bit_SSSE3)) return 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  return (b >> 29) & 1;
}
#endif

static int use_ni = -1;  /* -1: not decided yet */

static void choose(void) {
  use_ni = 0;
#ifdef HAVE_SHA_NI_CODE
  if (cpu_has_sha_ni() && !getenv("OAUTHDB_EXPORT_NO_SHA_NI")) {
    /* trust, but check against libsodium over every padding case */
    unsigned char buf[200], a[32], b[32];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 131 + 7);
    use_ni = 1;
    for (size_t n = 0; n <= sizeof buf; n++) {
      sha256_ni(buf, n, a);
      crypto_hash_sha256(b, buf, n);
      if (memcmp(a, b, 32) != 0) use_ni = 0;
    }
  }
#endif
}

void ex_sha256(const unsigned char *p, size_t n, unsigned char out[32]) {
  if (use_ni < 0) choose();
#ifdef HAVE_SHA_NI_CODE
  if (use_ni) {
    sha256_ni(p, n, out);
    return;
  }
#endif
  crypto_hash_sha256(out, p, n);
}
