/*
** seal_message.c: failure messages and the text test (seal_message.h).
**
** plaintext_is_text is on the path of every token_open: tokens are ASCII,
** so 32 and then 8 bytes are checked at a time, falling back to one
** character at a time where that fails.
*/
#include <stdio.h>
#include <string.h>
#include "seal_message.h"

void seal_message(char *out, size_t cap, const char *fn, seal_status s,
                  const unsigned char *sealed, size_t n, uint32_t key_id,
                  const char *path) {
  if (!path) path = "?";
  switch (s) {
    case SEAL_TRUNCATED:
      snprintf(out, cap, "%s: truncated input (%lld bytes; a sealed value has at least %d)",
               fn, (long long)n, SEAL_OVERHEAD);
      return;
    case SEAL_BAD_VERSION:
      snprintf(out, cap, "%s: unknown version 0x%02x", fn, n > 0 ? sealed[0] : 0);
      return;
    case SEAL_BAD_ALGORITHM:
      snprintf(out, cap, "%s: unknown algorithm 0x%02x", fn, n > 1 ? sealed[1] : 0);
      return;
    case SEAL_UNKNOWN_KEY:
      snprintf(out, cap, "%s: unknown key id %08x (not in keyring %s; was it rotated out?)",
               fn, (unsigned)key_id, path);
      return;
    case SEAL_RETIRED_KEY:
      snprintf(out, cap, "%s: key id %08x is retired in keyring %s", fn,
               (unsigned)key_id, path);
      return;
    case SEAL_TOO_BIG:
      snprintf(out, cap, "%s: sealed value holds %lld bytes; the limit is 16777216 (16 MiB)",
               fn, (long long)(n - SEAL_OVERHEAD));
      return;
    case SEAL_NO_PRIMARY:
      snprintf(out, cap, "%s: keyring %s has no primary key", fn, path);
      return;
    case SEAL_AUTH_FAILED:
    default:
      snprintf(out, cap, "%s: authentication failed", fn);
      return;
  }
}

#define HAS_ZERO_BYTE(v) (((v) - 0x0101010101010101ull) & ~(v))
int plaintext_is_text(const unsigned char *s, size_t n) {
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

