/*
** seal_open.c: what token_seal + token_open cost from SQL over the
** libsodium calls they wrap.
**
**   bench/run.sh build              # or, by hand:
**   cc -O2 bench/seal_open.c -o seal_open -lsqlite3 -lsodium
**   ./seal_open build/oauthdb.so
**
** A :memory: connection loads the extension and a throwaway one-key keyring
** (mode 0600 in a fresh mkdtemp directory, removed at the end). 1,000,000
** TEXT values of 200 bytes go into a temp table first (not timed). Then, in
** one process:
**
**   ours  SELECT count(token_open(token_seal(x, 'ad'), 'ad')) FROM vals
**   raw   the floor: for the same values, in a C loop, randombytes_buf for
**         the nonce, crypto_aead_xchacha20poly1305_ietf_encrypt and _decrypt
**         with the same 8 bytes of AD (6-byte header || "ad").
**
** count(expr), not count(*) over a subquery: SQLite flattens
** `SELECT count(*) FROM (SELECT f(x) FROM t)` into a row count and never
** calls f, which would time nothing.
**
** Each runs twice and the best is kept, interleaved in slices of 100,000
** values (ours, raw, ours, raw on slice 1, then slice 2, ...): the totals
** are the sums of each slice's best. On a shared machine a burst of load
** then hits both sides of a slice alike instead of one whole run. The line
** `seal_open ratio=R` is ours/raw; the target is R <= 1.3.
*/
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench_util.h"

#define N_VALUES 1000000
#define VALUE_LEN 200
#define SLICE 100000
#define HEADER 6
#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

/* N_VALUES token-like values (base64url letters), VALUE_LEN bytes each. */
static char *make_values(void) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char *v = malloc((size_t)N_VALUES * VALUE_LEN);
  if (!v) bench_die(NULL, "out of memory");
  randombytes_buf(v, (size_t)N_VALUES * VALUE_LEN);
  for (size_t i = 0; i < (size_t)N_VALUES * VALUE_LEN; i++)
    v[i] = alphabet[(unsigned char)v[i] & 63];
  return v;
}

static void populate(sqlite3 *db, const char *values) {
  bench_exec(db, "CREATE TEMP TABLE vals(x TEXT)");
  bench_exec(db, "BEGIN");
  sqlite3_stmt *ins = NULL;
  if (sqlite3_prepare_v2(db, "INSERT INTO vals VALUES (?)", -1, &ins, NULL) != SQLITE_OK)
    bench_die(db, "prepare insert");
  for (size_t i = 0; i < N_VALUES; i++) {
    sqlite3_bind_text(ins, 1, values + i * VALUE_LEN, VALUE_LEN, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) bench_die(db, "insert");
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  bench_exec(db, "COMMIT");
}

/* Values [first, first + SLICE): rowids first + 1 ... */
static double run_ours(sqlite3 *db, sqlite3_stmt *st, size_t first) {
  double t = bench_now();
  sqlite3_bind_int64(st, 1, (sqlite3_int64)first + 1);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)(first + SLICE));
  if (sqlite3_step(st) != SQLITE_ROW) bench_die(db, "seal+open query");
  sqlite3_int64 n = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  t = bench_now() - t;
  if (n != SLICE) bench_die(NULL, "seal+open query did not open every value");
  return t;
}

static double run_raw(const char *values, const unsigned char *key, size_t first) {
  /* Header and AD as ours builds them: 01 01 <key id> || "ad". */
  unsigned char ad[HEADER + 2] = {1, 1, 0x7e, 0x57, 0xbe, 0x4c, 'a', 'd'};
  unsigned char sealed[HEADER + NONCE + VALUE_LEN + TAG];
  unsigned char plain[VALUE_LEN];
  unsigned long long clen, mlen;
  size_t opened = 0;
  double t = bench_now();
  for (size_t i = first; i < first + SLICE; i++) {
    unsigned char *nonce = sealed + HEADER;
    memcpy(sealed, ad, HEADER);
    randombytes_buf(nonce, NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        sealed + HEADER + NONCE, &clen, (const unsigned char *)values + i * VALUE_LEN,
        VALUE_LEN, ad, sizeof ad, NULL, nonce, key);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &mlen, NULL,
                                                   sealed + HEADER + NONCE, clen, ad,
                                                   sizeof ad, nonce, key) == 0)
      opened++;
  }
  t = bench_now() - t;
  if (opened != SLICE) bench_die(NULL, "raw loop did not open every value");
  return t;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: seal_open PATH/TO/oauthdb.so\n");
    return 2;
  }
  bench_name = "seal_open bench";
  if (sodium_init() < 0) bench_die(NULL, "sodium_init");

  /* A throwaway keyring the extension will accept: ours, mode 0600. */
  char dir[] = "/tmp/oauthdb-bench-XXXXXX";
  if (!mkdtemp(dir)) bench_die(NULL, "mkdtemp");
  char path[sizeof dir + 16];
  snprintf(path, sizeof path, "%s/keyring", dir);
  unsigned char *key = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  if (!key) bench_die(NULL, "sodium_malloc");
  crypto_aead_xchacha20poly1305_ietf_keygen(key);
  bench_write_keyring(path, "7e57be4c", key);

  sqlite3 *db = bench_open(":memory:", argv[1], SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  /* The temp table stays in memory: the comparison is about the CPU. */
  bench_exec(db, "PRAGMA temp_store = MEMORY");
  bench_exec(db, "PRAGMA cache_size = -1048576");
  char *sql = sqlite3_mprintf("SELECT oauthdb_keyring(%Q)", path);
  bench_exec(db, sql);
  sqlite3_free(sql);

  double t_setup = bench_now();
  char *values = make_values();
  populate(db, values);
  t_setup = bench_now() - t_setup;

  sqlite3_stmt *ours = NULL;
  if (sqlite3_prepare_v2(db, "SELECT count(token_open(token_seal(x, 'ad'), 'ad')) FROM vals"
                         " WHERE rowid BETWEEN ?1 AND ?2",
                         -1, &ours, NULL) != SQLITE_OK)
    bench_die(db, "prepare");

  double best_ours = 0, best_raw = 0;
  for (size_t first = 0; first < N_VALUES; first += SLICE) {
    double slice_ours = 1e30, slice_raw = 1e30;
    for (int round = 0; round < 2; round++) {
      double a = run_ours(db, ours, first);
      double b = run_raw(values, key, first);
      if (a < slice_ours) slice_ours = a;
      if (b < slice_raw) slice_raw = b;
    }
    best_ours += slice_ours;
    best_raw += slice_raw;
  }

  printf("seal_open: %d values of %d bytes (setup %.1f s), seal+open each, "
         "best of 2 per slice of %d\n", N_VALUES, VALUE_LEN, t_setup, SLICE);
  printf("  ours  count(token_open(token_seal(x, 'ad'), 'ad'))  %.3f s  %.0f ns/value\n",
         best_ours, best_ours * 1e9 / N_VALUES);
  printf("  raw   randombytes_buf + encrypt + decrypt in C     %.3f s  %.0f ns/value\n",
         best_raw, best_raw * 1e9 / N_VALUES);
  printf("seal_open ratio=%.2f (ours/raw; target <= 1.3)\n", best_ours / best_raw);

  sqlite3_finalize(ours);
  free(values);
  sodium_free(key);
  if (sqlite3_close(db) != SQLITE_OK) bench_die(db, "close");
  /* Only now: the extension rereads a keyring file that changed (or went). */
  unlink(path);
  rmdir(dir);
  return 0;
}
