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
#include <string.h>
#include "oauthdb.h"
#include "uuid7.h"

SQLITE_EXTENSION_INIT3

/* Write the next id of this connection as 36 lowercase characters + NUL. */
static void uuid7_next(oauthdb_conn *conn, char out[UUID7_TEXT_LEN + 1]) {
  unsigned char b[UUID7_BYTES];
  uuid7_next_bytes(&conn->uuid7, b);
  uuid7_format(b, out);
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
OAUTHDB_FUNCTION_SET(uuid7_functions);

int uuid7_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_functions(
      db, conn, uuid7_functions,
      (int)(sizeof uuid7_functions / sizeof uuid7_functions[0]), pzErr);
}
