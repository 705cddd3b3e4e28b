/*
** uuid7.c: RFC 9562 version 7 UUIDs, the ids of every oauthdb table.
**
**   sqlite> SELECT uuid7();
**   0192f3c4-5a1b-7c3d-8e4f-0123456789ab
**   sqlite> INSERT INTO users(id, email) VALUES (uuid7(), 'ada@example.com');
**   sqlite> SELECT uuid7_timestamp(id) FROM users;   -- unix milliseconds
**   1730000000123
**
** Layout (RFC 9562 section 5.7), as lowercase 8-4-4-4-12 text:
**
**   unix_ts_ms  48 bits  milliseconds since 1970, big-endian
**   ver          4 bits  0111
**   rand_a      12 bits  a counter (below)
**   var          2 bits  10
**   rand_b      62 bits  randombytes_buf, fresh for every id
**
** Ids from one connection are strictly increasing, as text and as bytes, so
** they sort by creation and keep a primary-key B-tree appending at its right
** edge. That is RFC 9562 section 6.2 method 1: rand_a is a 12-bit counter,
** seeded at random each new millisecond with its top bit clear (so at least
** 2048 ids fit in the millisecond before it overflows). When the clock has
** not advanced, or has gone back, the counter is incremented on the last
** timestamp issued; when the counter overflows, that timestamp is advanced
** by one millisecond (section 6.2 allows running ahead of the clock rather
** than repeating or waiting). The state lives in the connection
** (oauthdb_conn.uuid7_*): ids from different connections are unique by their
** 62 random bits but not ordered with one another within a millisecond.
**
** uuid7() is INNOCUOUS (it reveals nothing and writes nothing) but not
** DETERMINISTIC. uuid7_timestamp() is pure: DETERMINISTIC and INNOCUOUS.
*/
#include <sodium.h>
#include <string.h>
#include <time.h>
#include "oauthdb.h"

SQLITE_EXTENSION_INIT3

#define UUID7_TEXT_LEN 36
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

/* Write the next id of this connection as 36 lowercase characters + NUL. */
static void uuid7_next(oauthdb_conn *conn, char out[UUID7_TEXT_LEN + 1]) {
  int64_t now = wall_clock_ms();
  if (now > conn->uuid7_last_ms) {
    conn->uuid7_last_ms = now;
    conn->uuid7_counter = counter_seed();
  } else if (++conn->uuid7_counter > UUID7_COUNTER_MAX) {
    conn->uuid7_last_ms++;
    conn->uuid7_counter = counter_seed();
  }
  uint64_t ms = (uint64_t)conn->uuid7_last_ms;
  uint32_t counter = conn->uuid7_counter;

  unsigned char b[16];
  randombytes_buf(b + 8, 8);
  for (int i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (40 - 8 * i));
  b[6] = (unsigned char)(0x70 | (counter >> 8));
  b[7] = (unsigned char)(counter & 0xFF);
  b[8] = (unsigned char)(0x80 | (b[8] & 0x3F));

  static const char hex[] = "0123456789abcdef";
  char *p = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 0x0F];
  }
  *p = '\0';
}

static void uuid7_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc; (void)argv;
  char id[UUID7_TEXT_LEN + 1];
  uuid7_next(sqlite3_user_data(ctx), id);
  sqlite3_result_text(ctx, id, UUID7_TEXT_LEN, SQLITE_TRANSIENT);
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/*
** uuid7_timestamp(id): the unix milliseconds in a version 7 UUID's first 48
** bits. NULL gives NULL; anything that is not UUIDv7 text is an error, so a
** wrong column (a v4 id, an email) is noticed rather than read as a date.
*/
static void uuid7_timestamp_fn(sqlite3_context *ctx, int argc,
                               sqlite3_value **argv) {
  (void)argc;
  int type = sqlite3_value_type(argv[0]);  /* before value_text converts */
  if (type == SQLITE_NULL) return;
  const char *s = (const char *)sqlite3_value_text(argv[0]);
  int n = sqlite3_value_bytes(argv[0]);
  if (!s) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  int ok = type == SQLITE_TEXT && n == UUID7_TEXT_LEN;
  for (int i = 0; ok && i < UUID7_TEXT_LEN; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23)
      ok = s[i] == '-';
    else
      ok = hex_value(s[i]) >= 0;
  }
  /* Version nibble 7 and variant bits 10 (8, 9, a or b). */
  ok = ok && s[14] == '7' && (hex_value(s[19]) & 0xC) == 0x8;
  if (!ok) {
    fn_error(ctx, "uuid7_timestamp: not a version 7 UUID (expected "
                  "xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx)");
    return;
  }
  int64_t ms = 0;
  for (int i = 0; i < 13; i++) {
    if (i == 8) continue;
    ms = ms << 4 | hex_value(s[i]);
  }
  sqlite3_result_int64(ctx, ms);
}

static const oauthdb_function uuid7_functions[] = {
    {"uuid7", 0, SQLITE_INNOCUOUS, uuid7_fn},
    {"uuid7_timestamp", 1, SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
     uuid7_timestamp_fn},
};

int uuid7_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_functions(
      db, conn, uuid7_functions,
      (int)(sizeof uuid7_functions / sizeof uuid7_functions[0]), pzErr);
}
