#!/bin/bash
# export.sh BUILD: oauthdb-export against its floor and its peers, on
# 1,000,000 oauth_tokens rows with their parents (100,000 users, each with a
# Google link; one active token per link, the rest revoked), into an empty
# database of a throwaway PostgreSQL 15 (initdb in a temporary directory,
# unix socket only, stopped at the end even on failure).
#
#   export_vs_copy         oauthdb-export / psql \copy (FORMAT binary) of the
#                          same rows, dumped beforehand, into the same empty
#                          tables, in one transaction (the physical floor)
#   export_vs_pgloader     oauthdb-export / pgloader on the same SQLite file
#                          (given a 4 GiB heap: it dies at 1 GiB)
#   export_rerun_vs_first  a rerun with nothing changed / the first load
#   export_rss_mib         peak RSS of the exporter at 1,000,000 rows, and the
#                          ratio of that to the peak at 100,000 rows
#
# Times are wall clock of whole processes (/usr/bin/time). ROWS=N overrides
# the row count (e.g. ROWS=100000 for a quick look).
set -euo pipefail
build=$(cd "${1:?usage: bench/export.sh BUILD}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
exporter=$build/oauthdb-export
ext=$build/oauthdb.so
rows=${ROWS:-1000000}
pgbin=/usr/lib/postgresql/15/bin
[ -x "$exporter" ] || { echo "bench/export.sh: $exporter not built (run make)" >&2; exit 2; }
[ -x $pgbin/initdb ] || { echo "bench/export.sh: PostgreSQL 15 is missing (tools/deps.sh bench)" >&2; exit 2; }

scratch=$(mktemp -d /tmp/oauthdb-bench-export.XXXXXX)
chmod 755 "$scratch"
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; else "$@"; fi
}
cleanup() {
  if [ -e "$scratch/pg/data/postmaster.pid" ]; then
    as_pg $pgbin/pg_ctl -D "$scratch/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$scratch/pg"
[ "$(id -u)" = 0 ] && chown postgres "$scratch/pg"
as_pg $pgbin/initdb -D "$scratch/pg/data" -A trust -U postgres --no-sync >"$scratch/initdb.log" 2>&1
# The same durability settings for every contender; enough WAL that no
# checkpoint lands in one contender's run and not another's.
as_pg $pgbin/pg_ctl -D "$scratch/pg/data" -w -l "$scratch/pg/log" -o "-k $scratch/pg \
  -c listen_addresses= -c fsync=off -c full_page_writes=off -c synchronous_commit=off \
  -c max_wal_size=8GB -c shared_buffers=512MB -c checkpoint_timeout=30min" start >/dev/null
export PGHOST=$scratch/pg PGUSER=postgres PGDATABASE=postgres
unset PGPASSWORD OAUTHDB_KEYRING

psql() { $pgbin/psql -X -q -v ON_ERROR_STOP=1 "$@"; }
createdb() { $pgbin/createdb "$@"; }
checkpoint() { psql -d postgres -c CHECKPOINT; }

# A dev database of N tokens, built with the extension's own migrations.
make_source() { # make_source FILE N
  local users=$(( $2 / 10 ))
  rm -f "$1"
  sqlite3 "$1" >/dev/null <<EOF
.load $ext
SELECT oauthdb_migrate();
PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $users)
INSERT INTO users(id, email, display_name, created_at, updated_at)
  SELECT printf('00000000-0000-7000-8000-%012x', i), 'user' || i || '@example.com',
         'User ' || i, 1700000000 + i, 1700000000 + i FROM k;
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $users)
INSERT INTO user_providers(id, user_id, provider, provider_user_id, scopes, sync_cursors,
                           linked_at, created_at, updated_at)
  SELECT printf('00000001-0000-7000-8000-%012x', i), printf('00000000-0000-7000-8000-%012x', i),
         'google', 'g' || i, '["email","https://www.googleapis.com/auth/calendar"]',
         '{"gmail":{"historyId":"' || (1000 + i) || '"}}', 1700000000, 1700000000, 1700000000 FROM k;
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < $2 - 1)
INSERT INTO oauth_tokens(id, user_provider_id, access_token, refresh_token, scopes,
                         expires_at, is_active, revoked_at, created_at, updated_at)
  SELECT printf('00000002-0000-7000-8000-%012x', i),
         printf('00000001-0000-7000-8000-%012x', i % $users + 1),
         CAST(x'0101' || randomblob(4 + 24 + 180 + 16) AS BLOB),
         CAST(x'0101' || randomblob(4 + 24 + 100 + 16) AS BLOB),
         '["email","https://www.googleapis.com/auth/calendar"]', 1800000000 + i,
         i < $users, CASE WHEN i < $users THEN NULL ELSE 1750000000 END,
         1700000000 + i, 1700000000 + i FROM k;
COMMIT;
EOF
}

# seconds of wall clock and peak RSS (KiB) of one command: "SECS KIB"
timed() {
  /usr/bin/time -f "%e %M" -o "$scratch/time" "$@" >"$scratch/out" 2>"$scratch/err" ||
    { echo "bench/export.sh: failed: $*" >&2; cat "$scratch/err" >&2; exit 1; }
  cat "$scratch/time"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

src=$scratch/dev.db
make_source "$src" "$rows"

# 1. first load and rerun
createdb first
checkpoint
read -r t_first rss_first < <(timed "$exporter" --secrets=keep "$src" dbname=first)
checkpoint
read -r t_rerun _ < <(timed "$exporter" --secrets=keep "$src" dbname=first)

# 2. the floor: the same rows as binary COPY files, into an empty copy of
# the schema, in foreign-key order, one transaction
tables="users user_preferences user_sessions service_configs user_providers oauth_tokens token_refresh_log auth_audit_log sync_logs"
: >"$scratch/load.sql"
for t in $tables; do
  psql -d first -c "\\copy $t TO '$scratch/$t.copy' (FORMAT binary)"
  echo "\\copy $t FROM '$scratch/$t.copy' (FORMAT binary)" >>"$scratch/load.sql"
done
createdb floor
$pgbin/pg_dump --schema-only -d first | psql -d floor >/dev/null 2>&1
checkpoint
read -r t_copy _ < <(timed $pgbin/psql -X -q -v ON_ERROR_STOP=1 -1 -d floor -f "$scratch/load.sql")

# 3. pgloader on the same SQLite file with its defaults (it creates its own
# tables), except a 4 GiB heap: with its default 1 GiB, SBCL's heap is
# exhausted and pgloader dies at 1,000,000 rows.
t_pgloader="" pgloader_note=""
if command -v pgloader >/dev/null 2>&1; then
  createdb peer
  checkpoint
  if /usr/bin/time -f "%e %M" -o "$scratch/time" pgloader --dynamic-space-size 4096 --quiet \
       "sqlite://$src" "postgresql://postgres@unix:$PGHOST:5432/peer" >"$scratch/pgloader.out" 2>&1; then
    read -r t_pgloader rss_pgloader <"$scratch/time"
    pgloader_note=" (pgloader peak RSS $(( rss_pgloader / 1024 )) MiB; loaded $(psql -d peer -At -c 'SELECT count(*) FROM oauth_tokens') token rows)"
  else
    pgloader_note="pgloader failed: $(tail -3 "$scratch/pgloader.out" | tr '\n' ' ')"
  fi
else
  pgloader_note="pgloader not installed: tools/deps.sh bench"
fi

# 4. memory at a tenth of the rows
make_source "$scratch/small.db" $(( rows / 10 ))
createdb small
read -r _ rss_small < <(timed "$exporter" --secrets=keep "$scratch/small.db" dbname=small)

echo "export_first_seconds=$t_first export_rerun_seconds=$t_rerun copy_seconds=$t_copy pgloader_seconds=${t_pgloader:-n/a} rows=$rows"
echo "export_vs_copy ratio=$(ratio "$t_first" "$t_copy")"
if [ -n "$t_pgloader" ]; then
  echo "export_vs_pgloader ratio=$(ratio "$t_first" "$t_pgloader")$pgloader_note"
else
  echo "export_vs_pgloader ratio=n/a ($pgloader_note)"
fi
echo "export_rerun_vs_first ratio=$(ratio "$t_rerun" "$t_first")"
echo "export_rss_mib=$(awk -v k="$rss_first" 'BEGIN { printf "%.1f", k / 1024 }') (at $rows rows; $(awk -v k="$rss_small" 'BEGIN { printf "%.1f", k / 1024 }') at $(( rows / 10 )))"
echo "export_rss_growth ratio=$(ratio "$rss_first" "$rss_small")"
