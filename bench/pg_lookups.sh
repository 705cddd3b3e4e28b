#!/bin/bash
# pg_lookups.sh BUILD: the PostgreSQL extension's two hot lookups, each side
# by side in one run with what an application would write without it:
#   - session_valid: 1,000,000 calls over 100,000 live sessions through a
#     prepared statement, against the same indexed lookup written as plain
#     SQL (sha256 of the token, the unique index on token_hash, the liveness
#     terms, the user's is_active), also prepared:
#       pg_session_valid ratio=R   (target R <= 1.3)
#   - tokens_expiring: 100 tokens due within 600 seconds among 1,000,000,
#     against the same query as a sequential scan of oauth_tokens:
#       pg_expiring_vs_scan ratio=R   (target R <= 0.01)
# Both sides run through bench/pg/prepared_calls.c (libpq, pipelined in
# batches of 500, so a call costs its server work and not a round trip):
# the session_valid sides take turns in one run (a tenth of the calls
# each), the tokens_expiring sides are each the best of 3.
#
# Starts its own throwaway PostgreSQL 15, as bench/pg_seal_open.sh does.
# About 3 minutes on 2 quiet shared cores (5 when the other users of the
# machine are busy): 2,000,000 pipelined calls and the 1,000,000-token
# fixture take most of it.
set -eu
build=$(cd "${1:?usage: bench/pg_lookups.sh BUILD}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
pgbin=/usr/lib/postgresql/15/bin
SESSIONS=${PG_LOOKUPS_SESSIONS:-100000}
CALLS=${PG_LOOKUPS_CALLS:-1000000}
TOKENS=${PG_LOOKUPS_TOKENS:-1000000}
DUE=100
EXPIRING_CALLS=200
SCAN_CALLS=2
REPS=3

if [ ! -e "$build/postgres/oauthdb.so" ] || [ ! -x $pgbin/initdb ]; then
  echo "pg_lookups: skipped (the PostgreSQL extension is not built: tools/deps.sh bench, make)"
  exit 0
fi

. "$top/bench/pg_throwaway.sh"
pg_throwaway_scratch oauthdb-bench-pg
pg_throwaway_tree "$build"
pg_throwaway_start -c synchronous_commit=off -c full_page_writes=off \
  -c max_parallel_workers_per_gather=0 -c shared_buffers=256MB -c max_wal_size=4GB \
  -c wal_level=minimal -c max_wal_senders=0

for f in "$top"/sql/postgres/[0-9]*.up.sql; do psql -1 -f "$f"; done
psql -c "CREATE EXTENSION oauthdb"
cc -std=gnu11 -O2 -Wall -Wextra -Werror -I/usr/include/postgresql \
  -o "$scratch/prepared_calls" "$top/bench/pg/prepared_calls.c" -lpq
calls() { "$scratch/prepared_calls" "$@"; }
# check LINE WANT WHAT: LINE's row count is WANT, else stop; prints seconds.
check() {
  [ "${1#* }" = "$2" ] || { echo "pg_lookups: $3: ${1#* } rows, expected $2" >&2; exit 1; }
  echo "${1% *}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# ---- session_valid ----
# The sessions belong to 1,000 users; the tokens (a benchmark's own) go to
# a file of the scratch directory, removed at exit.
psql -c "SET session_replication_role = replica;
         INSERT INTO users(id, email) SELECT uuid7(), 'u' || n || '@example.com' FROM generate_series(1, 1000) n"
psql -At -c "SELECT session_create(u.id) FROM users u, generate_series(1, $SESSIONS / 1000)" >"$scratch/tokens"
psql -c "VACUUM ANALYZE"
[ "$(wc -l <"$scratch/tokens")" = "$SESSIONS" ] || { echo "pg_lookups: fixture sessions missing" >&2; exit 1; }
plain_sql="SELECT s.user_id FROM public.user_sessions AS s JOIN public.users AS u ON u.id = s.user_id
  WHERE s.token_hash = sha256(convert_to(\$1, 'UTF8')) AND s.revoked_at IS NULL
    AND s.expires_at > now() AND s.last_used + s.idle_timeout * interval '1 second' > now()
    AND u.is_active"
out=$(calls "$CALLS" "$scratch/tokens" 'SELECT session_valid($1)' "$plain_sql")
valid=$(check "$(echo "$out" | sed -n 1p)" "$CALLS" session_valid)
plain=$(check "$(echo "$out" | sed -n 2p)" "$CALLS" "plain SQL")
echo "pg_session_valid: $CALLS calls over $SESSIONS sessions: session_valid ${valid}s, plain SQL ${plain}s"
echo "pg_session_valid ratio=$(ratio "$valid" "$plain")"

# ---- tokens_expiring ----
# One link and one token per row of $TOKENS; $DUE expire within 600
# seconds, the rest in a day or more. The sealed columns hold well-formed
# filler: nothing here opens a token.
# Loaded into freshly truncated tables in one transaction: with
# wal_level=minimal their rows skip the WAL, and session_replication_role
# skips the foreign-key and audit triggers. expires_at grows with the row,
# so the index is built by appends.
psql -c "SET client_min_messages = warning; BEGIN; SET LOCAL session_replication_role = replica;
         TRUNCATE user_providers, oauth_tokens CASCADE;
         WITH links AS (
           INSERT INTO user_providers(id, user_id, provider, provider_id)
             SELECT uuid7(), (SELECT id FROM users ORDER BY id LIMIT 1), 'google', n::text
               FROM generate_series(1, $TOKENS) n
           RETURNING id, provider_id::bigint AS n)
         INSERT INTO oauth_tokens(user_provider_id, access_token, refresh_token, expires_at)
           SELECT id, decode('01' || repeat('00', 60), 'hex'), decode('01' || repeat('00', 60), 'hex'),
                  now() + interval '1 day' + n * interval '50 ms'
             FROM links;
         COMMIT"
# The due ones: a random hundred, due within 300 seconds.
psql -c "UPDATE oauth_tokens SET expires_at = now() + random() * interval '300 seconds'
          WHERE id IN (SELECT id FROM oauth_tokens ORDER BY random() LIMIT $DUE)" \
     -c "VACUUM ANALYZE user_providers" -c "VACUUM ANALYZE oauth_tokens"
due_sql="SELECT t.id, t.user_provider_id, p.provider, t.expires_at
  FROM public.oauth_tokens AS t JOIN public.user_providers AS p ON p.id = t.user_provider_id
 WHERE t.is_active AND t.refresh_token IS NOT NULL AND t.expires_at IS NOT NULL
   AND t.reconsent_required_at IS NULL AND t.expires_at <= now() + interval '600 seconds'
 ORDER BY t.expires_at"
# Best of REPS, each side with its own number of calls. The scan side is
# the same query with index and bitmap scans off for its session
# (PGOPTIONS), so oauth_tokens is read from end to end.
best() {
  local want=$1 b="" t
  shift
  for _ in $(seq $REPS); do
    t=$(check "$(calls "$@")" "$want" "$3")
    if [ -z "$b" ] || awk -v t="$t" -v b="$b" 'BEGIN { exit !(t < b) }'; then b=$t; fi
  done
  echo "$b"
}
expiring=$(best $((EXPIRING_CALLS * DUE)) $EXPIRING_CALLS - 'SELECT id FROM tokens_expiring(600)')
scan=$(PGOPTIONS="-c enable_indexscan=off -c enable_bitmapscan=off" best $((SCAN_CALLS * DUE)) $SCAN_CALLS - "$due_sql")
per_expiring=$(awk -v t="$expiring" -v n=$EXPIRING_CALLS 'BEGIN { printf "%.6f", t / n }')
per_scan=$(awk -v t="$scan" -v n=$SCAN_CALLS 'BEGIN { printf "%.6f", t / n }')
echo "pg_expiring_vs_scan: $DUE due of $TOKENS tokens: tokens_expiring ${per_expiring}s, sequential scan ${per_scan}s per call"
echo "pg_expiring_vs_scan ratio=$(ratio "$per_expiring" "$per_scan")"
