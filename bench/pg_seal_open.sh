#!/bin/bash
# pg_seal_open.sh BUILD: the PostgreSQL extension's seal and open, side by
# side in one run with
#   - the same work in a C loop calling libsodium directly (the floor):
#       pg_seal_open ratio=R   (target R <= 1.5)
#   - the same query in SQLite with the SQLite extension:
#       pg_seal_open_vs_sqlite ratio=R
#   - what PostgreSQL users reach for today, pgcrypto's pgp_sym_encrypt /
#     pgp_sym_decrypt with a key, as its docs show, per value:
#       pg_seal_vs_pgcrypto ratio=R   (target R <= 0.1)
# The query is SELECT count(token_open(token_seal(x, 'ad'), 'ad')) over
# N values of 200 bytes in one statement (N = 1,000,000; pgcrypto, ~100x
# slower per value, gets 20,000 of the same values). Each side's best of 3.
#
# Starts its own throwaway PostgreSQL 15 (initdb in a temporary directory,
# unix socket only, stopped at the end), from a private installation that
# holds this build's extension (tools/pg_tree.sh), as test/run.sh does.
set -eu
build=$(cd "${1:?usage: bench/pg_seal_open.sh BUILD}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
pgbin=/usr/lib/postgresql/15/bin
N=${PG_SEAL_OPEN_N:-1000000}
N_PGCRYPTO=${PG_SEAL_OPEN_N_PGCRYPTO:-20000}
LEN=200
REPS=3

if [ ! -e "$build/postgres/oauthdb.so" ] || [ ! -x $pgbin/initdb ]; then
  echo "pg_seal_open: skipped (the PostgreSQL extension is not built: tools/deps.sh bench, make)"
  exit 0
fi

. "$top/bench/pg_throwaway.sh"
pg_throwaway_scratch oauthdb-bench-pg
pg_throwaway_tree "$build"
"$build/oauthdb" keygen "$scratch/sqlite.keyring" >/dev/null
pg_throwaway_start -c max_parallel_workers_per_gather=0

# The values, made once: an unlogged table, read through shared buffers.
psql -c "CREATE EXTENSION oauthdb" -c "CREATE EXTENSION pgcrypto" \
     -c "CREATE UNLOGGED TABLE vals AS
           SELECT i, encode(gen_random_bytes($LEN / 2), 'hex') AS x
             FROM generate_series(1, $N) i" \
     -c "VACUUM ANALYZE vals"
psql -At -c "SELECT count(*) FROM vals WHERE length(x) = $LEN" | grep -qx "$N" ||
  { echo "pg_seal_open: fixture values are not $LEN bytes" >&2; exit 1; }
psql -c "SELECT count(*) FROM vals" >/dev/null

# Seconds of one statement, from psql's \timing (server round trip included).
seconds() {
  psql -At -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{ printf "%.6f\n", $1 / 1000 }'
}
best() {  # best of REPS runs of a command printing seconds
  local b=""
  for _ in $(seq $REPS); do
    t=$("$@")
    if [ -z "$b" ] || awk -v t="$t" -v b="$b" 'BEGIN { exit !(t < b) }'; then b=$t; fi
  done
  echo "$b"
}

cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$scratch/raw_seal_open" "$top/bench/pg/raw_seal_open.c" -lsodium
ours=$(best seconds "SELECT count(token_open(token_seal(x, 'ad'), 'ad')) FROM vals")
raw=$(best "$scratch/raw_seal_open" "$N" "$LEN")

# SQLite: the same statement over the same number of 200-byte values.
sqlite_run() {
  printf ".timer on\nSELECT count(token_open(token_seal(x, 'ad'), 'ad')) FROM vals;\n" |
    OAUTHDB_KEYRING=$scratch/sqlite.keyring sqlite3 -cmd ".load $build/oauthdb" "$scratch/v.db" 2>&1 |
    sed -n 's/^Run Time: real \([0-9.]*\).*/\1/p'
}
sqlite3 "$scratch/v.db" "CREATE TABLE vals(x TEXT);
  WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $N)
  INSERT INTO vals SELECT substr(hex(randomblob(100)), 1, $LEN) FROM c;"
sqlite=$(best sqlite_run)

# pgcrypto, per value, on the first N_PGCRYPTO values.
pgc=$(best seconds "SELECT count(pgp_sym_decrypt(pgp_sym_encrypt(x, 'k3y-0f-32-bytes-base64-or-so-xxxxx'), 'k3y-0f-32-bytes-base64-or-so-xxxxx')) FROM vals WHERE i <= $N_PGCRYPTO")
ours_small=$(best seconds "SELECT count(token_open(token_seal(x, 'ad'), 'ad')) FROM vals WHERE i <= $N_PGCRYPTO")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "pg_seal_open: $N values of $LEN bytes: PostgreSQL ${ours}s, libsodium loop ${raw}s, SQLite ${sqlite}s"
echo "pg_seal_open ratio=$(ratio "$ours" "$raw")"
echo "pg_seal_open_vs_sqlite ratio=$(ratio "$ours" "$sqlite")"
echo "pg_seal_vs_pgcrypto: $N_PGCRYPTO values: oauthdb ${ours_small}s, pgcrypto pgp_sym ${pgc}s"
echo "pg_seal_vs_pgcrypto ratio=$(ratio "$ours_small" "$pgc")"
