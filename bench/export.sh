#!/bin/bash
# export.sh BUILD: oauthdb-export against its floor and its peers, on
# 1,000,000 oauth_tokens rows with their parents (100,000 users, each with a
# Google link; one active token per link, the rest revoked; the audit rows
# the SQLite triggers write for them, which the default promotion leaves in
# dev), into an empty database of a
# throwaway PostgreSQL 15 (initdb in a temporary directory, unix socket
# only, stopped at the end even on failure).
#
#   export_vs_copy         oauthdb-export / psql \copy (FORMAT binary) of the
#                          same rows, dumped beforehand, into the same empty
#                          tables as they are (indexes and foreign keys in
#                          place), in one transaction (the floor)
#   export_vs_copy_deferred  the same, against psql \copy into the tables
#                          with the indexes and foreign keys the exporter
#                          defers dropped first and rebuilt after, in the
#                          same transaction (what the exporter does: the
#                          floor of its own method; informational)
#   export_vs_pgloader     oauthdb-export / pgloader on the same SQLite file
#                          (given a 4 GiB heap: it dies at 1 GiB)
#   export_ledger_overhead the first load / the same load, run beside it
#                          into another empty database, without recording
#                          the loaded rows in the promotion ledger
#                          (OAUTHDB_EXPORT_BENCH_WITHOUT_LEDGER=1, a switch
#                          for this benchmark only); best of each
#   export_rerun_vs_first  a rerun with nothing changed / the first load
#   export_rss_mib         peak RSS of the exporter at 1,000,000 rows, and the
#                          ratio of that to the peak at 100,000 rows
#
# Times are wall clock of whole processes (/usr/bin/time). The machine may
# be shared, so the first load and the rerun run REPS times (default 3) and
# the two floors FLOOR_REPS times (default 2), interleaved, and the best of
# each counts (every time is printed); pgloader runs once. The source databases are built once and
# kept in BUILD/bench/export-N.db, rebuilt when the fixture (this file's
# make_source or the SQLite migrations) changes. ROWS=N overrides the row
# count (e.g. ROWS=100000 for a quick look); PGLOADER=0 leaves pgloader out.
set -euo pipefail
build=$(cd "${1:?usage: bench/export.sh BUILD}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
exporter=$build/oauthdb-export
ext=$build/oauthdb.so
rows=${ROWS:-1000000}
reps=${REPS:-3}
floor_reps=${FLOOR_REPS:-2}
pgbin=/usr/lib/postgresql/15/bin
FIXTURE_VERSION=2
[ -x "$exporter" ] || { echo "bench/export.sh: $exporter not built (run make)" >&2; exit 2; }
[ -x $pgbin/initdb ] || { echo "bench/export.sh: PostgreSQL 15 is missing (tools/deps.sh bench)" >&2; exit 2; }
started=$SECONDS

. "$top/bench/pg_throwaway.sh"
pg_throwaway_scratch oauthdb-bench-export

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
INSERT INTO user_providers(id, user_id, provider, provider_id, scopes, sync_cursors,
                           linked_at, created_at, updated_at)
  SELECT printf('00000001-0000-7000-8000-%012x', i), printf('00000000-0000-7000-8000-%012x', i),
         'google', 'g' || i, '["email","https://www.googleapis.com/auth/calendar"]',
         '{"gmail":{"historyId":"' || (1000 + i) || '"}}', 1700000000, 1700000000, 1700000000 FROM k;
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < $2 - 1)
INSERT INTO oauth_tokens(id, user_provider_id, token_type, access_token, refresh_token, scope,
                         expires_at, is_active, revoked_at, created_at, updated_at)
  SELECT printf('00000002-0000-7000-8000-%012x', i),
         printf('00000001-0000-7000-8000-%012x', i % $users + 1), 'Bearer',
         CAST(x'0101' || randomblob(4 + 24 + 180 + 16) AS BLOB),
         CAST(x'0101' || randomblob(4 + 24 + 100 + 16) AS BLOB),
         'email https://www.googleapis.com/auth/calendar', 1800000000 + i,
         i < $users, CASE WHEN i < $users THEN NULL ELSE 1750000000 END,
         1700000000 + i, 1700000000 + i FROM k;
COMMIT;
EOF
}

# The source of N tokens, from BUILD/bench when it is there and current.
fixture() { # fixture N: prints the path
  local n=$1 path=$build/bench/export-$1.db key
  key=$({ echo "$FIXTURE_VERSION $n"; declare -f make_source; cat "$top"/sql/sqlite/*.up.sql; } |
        sha256sum | cut -c1-64)
  if [ ! -s "$path" ] || [ "$(cat "$path.key" 2>/dev/null)" != "$key" ]; then
    echo "export fixture: building $path ($n tokens, once)..." >&2
    rm -f "$path" "$path.key"
    make_source "$path.tmp.$$" "$n"
    mv "$path.tmp.$$" "$path"
    echo "$key" >"$path.key"
  fi
  echo "$path"
}

mkdir -p "$build/bench" "$scratch/pg"
src=$(fixture "$rows")
small=$(fixture $(( rows / 10 )))

# The same durability settings for every contender; enough WAL that no
# checkpoint lands in one contender's run and not another's.
pg_throwaway_start -c full_page_writes=off -c synchronous_commit=off \
  -c max_wal_size=8GB -c shared_buffers=512MB -c checkpoint_timeout=30min
unset PGPASSWORD OAUTHDB_KEYRING

createdb() { $pgbin/createdb "$@"; }
dropdb() { $pgbin/dropdb "$@"; }
checkpoint() { psql -d postgres -c CHECKPOINT; }

# seconds of wall clock and peak RSS (KiB) of one command: "SECS KIB"
timed() {
  /usr/bin/time -f "%e %M" -o "$scratch/time" "$@" >"$scratch/out" 2>"$scratch/err" ||
    { echo "bench/export.sh: failed: $*" >&2; cat "$scratch/err" >&2; exit 1; }
  cat "$scratch/time"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
best() { printf '%s\n' "$@" | sort -g | head -1; }

# The default promotion (state: users, preferences, service configs,
# links, tokens; sessions and logs only when named). The floors load what
# the first load left in the database, so every contender loads the same
# rows; the audit rows the fixture holds stay in dev.
include=
tables="users user_preferences user_sessions service_configs user_providers oauth_tokens token_refresh_log auth_audit_log sync_logs"

first_times=() noledger_times=() ledger_seconds=() rerun_times=() copy_times=() deferred_times=() rss_first=0
for (( i = 1; i <= (reps > floor_reps ? reps : floor_reps); i++ )); do
  if [ "$i" -le "$reps" ]; then
    # 1. the first load, into an empty database
    createdb "first$i"
    checkpoint
    read -r t rss < <(OAUTHDB_EXPORT_TRACE=1 timed "$exporter" $include --secrets=keep "$src" "dbname=first$i")
    first_times+=("$t")
    ledger_s=$(sed -n 's/.*trace *[0-9.]* s: ledger: \([0-9.]*\) s in all.*/\1/p' "$scratch/err")
    ledger_seconds+=("${ledger_s:-0}")
    [ "$rss" -gt "$rss_first" ] && rss_first=$rss
    # 1b. the same load without the ledger's record of the loaded rows (a
    # switch for this benchmark only), into another empty database
    createdb "noledger$i"
    checkpoint
    read -r t _ < <(OAUTHDB_EXPORT_BENCH_WITHOUT_LEDGER=1 timed "$exporter" $include --secrets=keep "$src" "dbname=noledger$i")
    noledger_times+=("$t")
    dropdb "noledger$i"
  fi

  if [ "$i" = 1 ]; then
    # The floors' input: the same rows as binary COPY files, and an empty
    # copy of the schema to load them into, in foreign-key order.
    : >"$scratch/load.sql"
    for t in $tables; do
      psql -d first1 -c "\\copy $t TO '$scratch/$t.copy' (FORMAT binary)"
      echo "\\copy $t FROM '$scratch/$t.copy' (FORMAT binary)" >>"$scratch/load.sql"
    done
    createdb floor_template
    $pgbin/pg_dump --schema-only -d first1 | psql -d floor_template >/dev/null 2>&1
    # The deferred floor: the indexes no constraint uses and the foreign
    # keys dropped first, rebuilt after (as the exporter does), one
    # transaction; the same settings for index builds as the exporter's.
    {
      echo "SET LOCAL maintenance_work_mem = '256MB';"
      # (not the key to service_configs: the migrations seed it, so it is
      # not empty and the exporter keeps that key)
      psql -d floor_template -At -c "
        SELECT format('ALTER TABLE %s DROP CONSTRAINT %I;', conrelid::regclass, conname)
          FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace
           AND confrelid <> 'service_configs'::regclass
        UNION ALL
        SELECT format('DROP INDEX %s;', i.indexrelid::regclass) FROM pg_index i
          JOIN pg_class c ON c.oid = i.indrelid AND c.relnamespace = 'public'::regnamespace
         WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
      cat "$scratch/load.sql"
      psql -d floor_template -At -c "
        SELECT pg_get_indexdef(i.indexrelid) || ';' FROM pg_index i
          JOIN pg_class c ON c.oid = i.indrelid AND c.relnamespace = 'public'::regnamespace
         WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        UNION ALL
        SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s;', conrelid::regclass, conname,
                      pg_get_constraintdef(oid))
          FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace
           AND confrelid <> 'service_configs'::regclass"
    } >"$scratch/load-deferred.sql"
  fi

  if [ "$i" -le "$floor_reps" ]; then
    # 2. the floor: psql \copy into the tables as they are
    createdb -T floor_template "floor$i"
    checkpoint
    read -r t _ < <(timed $pgbin/psql -X -q -v ON_ERROR_STOP=1 -1 -d "floor$i" -f "$scratch/load.sql")
    copy_times+=("$t")
    dropdb "floor$i"

    # 3. the same with the exporter's deferred indexes and foreign keys
    createdb -T floor_template "deferred$i"
    checkpoint
    read -r t _ < <(timed $pgbin/psql -X -q -v ON_ERROR_STOP=1 -1 -d "deferred$i" -f "$scratch/load-deferred.sql")
    deferred_times+=("$t")
    dropdb "deferred$i"
  fi

  if [ "$i" -le "$reps" ]; then
    # 4. a rerun with nothing changed, into the first load's database
    checkpoint
    read -r t _ < <(timed "$exporter" $include --secrets=keep "$src" dbname=first1)
    rerun_times+=("$t")
    [ "$i" -gt 1 ] && dropdb "first$i"
  fi
done

# 5. pgloader on the same SQLite file with its defaults (it creates its own
# tables), except a 4 GiB heap: with its default 1 GiB, SBCL's heap is
# exhausted and pgloader dies at 1,000,000 rows.
t_pgloader="" pgloader_note=""
if [ "${PGLOADER:-1}" = 0 ]; then
  pgloader_note="left out (PGLOADER=0)"
elif command -v pgloader >/dev/null 2>&1; then
  createdb peer
  checkpoint
  if /usr/bin/time -f "%e %M" -o "$scratch/time" pgloader --dynamic-space-size 4096 --quiet \
       "sqlite://$src" "postgresql://postgres@unix:$PGHOST:5432/peer" >"$scratch/pgloader.out" 2>&1; then
    read -r t_pgloader rss_pgloader <"$scratch/time"
    pgloader_note=" (pgloader peak RSS $(( rss_pgloader / 1024 )) MiB; loaded $(psql -d peer -At -c 'SELECT count(*) FROM oauth_tokens') token rows)"
  else
    pgloader_note="pgloader failed: $(tail -3 "$scratch/pgloader.out" | tr '\n' ' ')"
  fi
  dropdb peer
else
  pgloader_note="pgloader not installed: tools/deps.sh bench"
fi

# 6. memory at a tenth of the rows
createdb small
read -r _ rss_small < <(timed "$exporter" $include --secrets=keep "$small" dbname=small)

t_first=$(best "${first_times[@]}") t_rerun=$(best "${rerun_times[@]}")
t_copy=$(best "${copy_times[@]}") t_deferred=$(best "${deferred_times[@]}")
echo "export_first_seconds=$t_first export_rerun_seconds=$t_rerun copy_seconds=$t_copy copy_deferred_seconds=$t_deferred pgloader_seconds=${t_pgloader:-n/a} rows=$rows (best of: first ${first_times[*]}; rerun ${rerun_times[*]}; copy ${copy_times[*]}; copy deferred ${deferred_times[*]}; bench/export.sh took $(( SECONDS - started )) s)"
echo "export_vs_copy ratio=$(ratio "$t_first" "$t_copy")"
echo "export_vs_copy_deferred ratio=$(ratio "$t_first" "$t_deferred") (informational: the floor with the exporter's deferred indexes and foreign keys)"
if [ -n "$t_pgloader" ]; then
  echo "export_vs_pgloader ratio=$(ratio "$t_first" "$t_pgloader")$pgloader_note; pgloader / copy floor $(ratio "$t_pgloader" "$t_copy")"
else
  echo "export_vs_pgloader ratio=n/a ($pgloader_note)"
fi
t_noledger=$(best "${noledger_times[@]}")
echo "export_ledger_overhead ratio=$(ratio "$t_first" "$t_noledger") (best first load $t_first s / best first load without the ledger's rows $t_noledger s; without: ${noledger_times[*]}; the ledger's statements as the exporter timed them: ${ledger_seconds[*]} s)"
echo "export_rerun_vs_first ratio=$(ratio "$t_rerun" "$t_first")"
echo "export_rss_mib=$(awk -v k="$rss_first" 'BEGIN { printf "%.1f", k / 1024 }') (at $rows rows; $(awk -v k="$rss_small" 'BEGIN { printf "%.1f", k / 1024 }') at $(( rows / 10 )))"
echo "export_rss_growth ratio=$(ratio "$rss_first" "$rss_small")"
