/*
** uuid7.c: version 7 UUIDs (uuid7.h).
*/
#include <sodium.h>
#include <time.h>
#include "uuid7.h"

#define UUID7_COUNTER_MAX 0xFFF

static int64_t wall_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A random counter seed with its top bit clear: room for >= 2048 more ids. */
static uint32_t counter_seed(void) {
  return randombytes_uniform(UUID7_COUNTER_MAX / 2 + 1);
}

void uuid7_next_bytes(uuid7_state *st, unsigned char b[UUID7_BYTES]) {
  int64_t now = wall_clock_ms();
  if (now > st->last_ms) {
    st->last_ms = now;
    st->counter = counter_seed();
  } else if (++st->counter > UUID7_COUNTER_MAX) {
    st->last_ms++;
    st->counter = counter_seed();
  }
  uint64_t ms = (uint64_t)st->last_ms;
  uint32_t counter = st->counter;
  randombytes_buf(b + 8, 8);
  for (int i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (40 - 8 * i));
  b[6] = (unsigned char)(0x70 | (counter >> 8));
  b[7] = (unsigned char)(counter & 0xFF);
  b[8] = (unsigned char)(0x80 | (b[8] & 0x3F));
}

void uuid7_format(const unsigned char b[UUID7_BYTES], char out[UUID7_TEXT_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  char *p = out;
  for (int i = 0; i < UUID7_BYTES; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 0x0F];
  }
  *p = '\0';
}

int64_t uuid7_timestamp_ms(const unsigned char b[UUID7_BYTES]) {
  if ((b[6] >> 4) != 7 || (b[8] & 0xC0) != 0x80) return -1;
  int64_t ms = 0;
  for (int i = 0; i < 6; i++) ms = ms << 8 | b[i];
  return ms;
}
