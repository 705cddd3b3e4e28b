/*
** vault_vs_open.c: what reading tokens through oauth_token_vault costs over
** calling token_open on oauth_tokens directly.
**
**   bench/run.sh build vault_vs_open     # or, by hand:
**   cc -O2 -Iext bench/vault_vs_open.c -o vault_vs_open -lsqlite3 -lsodium
**   ./vault_vs_open build/oauthdb.so
**
** On the shared fixture of 1,000,000 sealed rows (token_fixture.h), one
** connection, read-only, both over every row:
**
**   ours  SELECT id, access_token, refresh_token FROM oauth_token_vault
**   open  SELECT id,
**                token_open(access_token, 'oauth_tokens.access_token:' || id),
**                token_open(refresh_token, 'oauth_tokens.refresh_token:' || id)
**         FROM oauth_tokens
**
** Every row is stepped and each column's text fetched (sqlite3_column_text,
** as an application would), and both must return the same bytes. They run
** interleaved, twice each; the best of each is compared. The line
** `vault_vs_open ratio=R` is ours/open; the target is R <= 1.2.
*/
#include "token_fixture.h"

#define VAULT_SQL "SELECT id, access_token, refresh_token FROM oauth_token_vault"
#define OPEN_SQL                                                             \
  "SELECT id, token_open(access_token, 'oauth_tokens.access_token:' || id), " \
  "token_open(refresh_token, 'oauth_tokens.refresh_token:' || id) "          \
  "FROM oauth_tokens"

typedef struct result {
  double seconds;
  sqlite3_int64 rows;
  sqlite3_int64 bytes;   /* plaintext bytes read */
  unsigned char digest[crypto_generichash_BYTES];  /* of every value, in order */
} result;

static result run(sqlite3 *db, sqlite3_stmt *st) {
  result r = {0};
  crypto_generichash_state h;
  crypto_generichash_init(&h, NULL, 0, sizeof r.digest);
  double t = bench_now();
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < 3; i++) {
      const unsigned char *v = sqlite3_column_text(st, i);
      int n = sqlite3_column_bytes(st, i);
      if (i > 0) r.bytes += n;
      if (v) crypto_generichash_update(&h, v, (unsigned long long)n + 1);
    }
    r.rows++;
  }
  r.seconds = bench_now() - t;
  if (rc != SQLITE_DONE) bench_die(db, "step");
  sqlite3_reset(st);
  crypto_generichash_final(&h, r.digest, sizeof r.digest);
  return r;
}

int main(int argc, char **argv) {
  bench_name = "vault_vs_open";
  if (argc != 2) {
    fprintf(stderr, "usage: vault_vs_open PATH/TO/oauthdb.so\n");
    return 2;
  }
  if (sodium_init() < 0) bench_die(NULL, "sodium_init");
  token_fixture f;
  token_fixture_get(&f, argv[1]);
  sqlite3 *db = token_fixture_open(&f, argv[1]);

  sqlite3_stmt *ours = NULL, *open = NULL;
  if (sqlite3_prepare_v2(db, VAULT_SQL, -1, &ours, NULL) != SQLITE_OK) bench_die(db, VAULT_SQL);
  if (sqlite3_prepare_v2(db, OPEN_SQL, -1, &open, NULL) != SQLITE_OK) bench_die(db, OPEN_SQL);

  /* One untimed pass each brings the file into the OS cache for both. */
  run(db, open);
  result best_open = {0}, best_ours = {0};
  for (int round = 0; round < 2; round++) {
    result o = run(db, open);
    result v = run(db, ours);
    if (round == 0 || o.seconds < best_open.seconds) best_open = o;
    if (round == 0 || v.seconds < best_ours.seconds) best_ours = v;
  }
  if (best_ours.rows != TOKEN_FIXTURE_ROWS || best_open.rows != TOKEN_FIXTURE_ROWS ||
      best_ours.bytes != best_open.bytes ||
      memcmp(best_ours.digest, best_open.digest, sizeof best_ours.digest) != 0)
    bench_die(NULL, "the vault and token_open returned different values");

  printf("vault_vs_open: %lld rows, %lld plaintext bytes each way\n",
         (long long)best_ours.rows, (long long)best_ours.bytes);
  printf("  vault       %.3f s  (%.0f ns/row)\n", best_ours.seconds,
         best_ours.seconds * 1e9 / (double)best_ours.rows);
  printf("  token_open  %.3f s  (%.0f ns/row)\n", best_open.seconds,
         best_open.seconds * 1e9 / (double)best_open.rows);
  printf("vault_vs_open ratio=%.3f\n", best_ours.seconds / best_open.seconds);

  sqlite3_finalize(ours);
  sqlite3_finalize(open);
  if (sqlite3_close(db) != SQLITE_OK) bench_die(db, "close");
  return 0;
}
