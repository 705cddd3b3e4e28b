/*
** uuid7.h: RFC 9562 version 7 UUIDs, the ids of every oauthdb table, for
** both engines (SQLite's uuid7() as text, PostgreSQL's as uuid).
**
** Layout (RFC 9562 section 5.7):
**
**   unix_ts_ms  48 bits  milliseconds since 1970, big-endian
**   ver          4 bits  0111
**   rand_a      12 bits  a counter (below)
**   var          2 bits  10
**   rand_b      62 bits  randombytes_buf, fresh for every id
**
** Ids from one generator state (a SQLite connection, a PostgreSQL backend)
** are strictly increasing, so they sort by creation and keep a primary-key
** B-tree appending at its right edge: RFC 9562 section 6.2 method 1, with
** rand_a a 12-bit counter seeded at random each new millisecond with its
** top bit clear (at least 2048 ids fit in the millisecond before it
** overflows). When the clock has not advanced, or has gone back, the
** counter is incremented on the last timestamp issued; when it overflows,
** that timestamp is advanced by one millisecond (section 6.2 allows running
** ahead of the clock rather than repeating or waiting). Ids from different
** states are unique by their 62 random bits but not ordered within a
** millisecond.
**
** Pure C over libc and libsodium: no engine headers.
*/
#ifndef OAUTHDB_UUID7_H
#define OAUTHDB_UUID7_H

#include <stdint.h>

#define UUID7_BYTES 16
#define UUID7_TEXT_LEN 36

typedef struct uuid7_state {
  int64_t last_ms;     /* timestamp of the last id issued */
  uint32_t counter;    /* 12-bit counter within that millisecond */
} uuid7_state;

/* The next id of this state, as 16 bytes. */
void uuid7_next_bytes(uuid7_state *st, unsigned char out[UUID7_BYTES]);

/* 16 bytes as lowercase 8-4-4-4-12 text, NUL-terminated. */
void uuid7_format(const unsigned char b[UUID7_BYTES], char out[UUID7_TEXT_LEN + 1]);

/*
** The unix milliseconds in a version 7 UUID's first 48 bits, or -1 when the
** 16 bytes are not a version 7 UUID (version nibble 7, variant bits 10): a
** v4 id read as a date would be noticed, not believed. Both engines'
** uuid7_timestamp().
*/
int64_t uuid7_timestamp_ms(const unsigned char b[UUID7_BYTES]);

/* What both engines' uuid7_timestamp() say of anything else. */
#define UUID7_MSG_NOT_V7 \
  "uuid7_timestamp: not a version 7 UUID (expected " \
  "xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx)"

#endif /* OAUTHDB_UUID7_H */
