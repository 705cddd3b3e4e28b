#!/bin/bash
# run.sh BUILD [TEST...]: run the suite (every test/*.test, or those named)
# against BUILD/oauthdb.so, with a throwaway PostgreSQL for the tests that
# need one, and end with the line `N passed, N failed` (before it, every
# `NAME: SKIPPED: why` line a test printed, and how many).
#
# PostgreSQL: initdb into a temporary directory, a unix socket in it, no TCP,
# stopped at the end even on failure. PostgreSQL refuses to run as root, so
# as root the server runs as the `postgres` system user.
set -u
build=$(cd "${1:?usage: test/run.sh BUILD [TEST...]}" && pwd)
shift
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(test/*.test)

export OAUTHDB_BUILD=$build
export OAUTHDB_EXT=$build/oauthdb.so
unset OAUTHDB_KEYRING
[ -e "$OAUTHDB_EXT" ] || { echo "run.sh: $OAUTHDB_EXT not built (run make)" >&2; exit 2; }

scratch=$(mktemp -d /tmp/oauthdb-check.XXXXXX)
chmod 755 "$scratch"
pgdir=""
cleanup() {
  if [ -n "$pgdir" ] && [ -e "$pgdir/data/postmaster.pid" ]; then
    as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# From /, not the checkout: su keeps the working directory, and a checkout in
# a mode-0700 home (root's, or any Debian 12 creates) is one the postgres
# user cannot enter (pg_ctl: could not change directory ... Permission denied).
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "cd / && $(printf '%q ' "$@")"
  else
    "$@"
  fi
}

pgbin=/usr/lib/postgresql/15/bin
# The PostgreSQL extension of this build (ext/postgres): the server runs from
# a private installation in the scratch directory that holds it
# (tools/pg_tree.sh says how), so a run needs no root for it, never writes
# into the system's PostgreSQL, and two checkouts' runs cannot overwrite each
# other's extension. Tests find the server's programs at $OAUTHDB_PGBIN.
export OAUTHDB_PG_EXT=""
if [ -e "$build/postgres/oauthdb.so" ] && [ -x $pgbin/initdb ] && [ "${OAUTHDB_NO_POSTGRES:-}" != 1 ]; then
  if pgbin=$(tools/pg_tree.sh "$scratch/pgtree" "$build"); then
    OAUTHDB_PG_EXT=1
  else
    echo "run.sh: cannot make a PostgreSQL installation with this build's extension (above)" >&2
    exit 2
  fi
fi
export OAUTHDB_PGBIN=$pgbin

if [ -x $pgbin/initdb ] && [ "${OAUTHDB_NO_POSTGRES:-}" != 1 ]; then
  pgdir=$scratch/pg
  mkdir -p "$pgdir"
  [ "$(id -u)" = 0 ] && chown postgres "$pgdir"
  # The server's keyring (oauthdb.keyring): owned by the server's user,
  # mode 0600, as the extension demands. Tests give databases their own.
  if [ -n "$OAUTHDB_PG_EXT" ]; then
    "$build/oauthdb" keygen "$pgdir/keyring" >/dev/null
    [ "$(id -u)" = 0 ] && chown postgres "$pgdir/keyring"
    export OAUTHDB_PG_KEYRING=$pgdir/keyring
  fi
  if as_pg $pgbin/initdb -D "$pgdir/data" -A trust -U postgres --no-sync >"$scratch/initdb.log" 2>&1 &&
     { [ -z "$OAUTHDB_PG_EXT" ] || echo "oauthdb.keyring = '$pgdir/keyring'" >>"$pgdir/data/postgresql.conf"; } &&
     as_pg $pgbin/pg_ctl -D "$pgdir/data" -w -l "$pgdir/log" \
       -o "-k $pgdir -c listen_addresses= -c fsync=off -c full_page_writes=off" start >/dev/null 2>&1; then
    export PGHOST=$pgdir PGUSER=postgres PGDATABASE=postgres PGPORT=5432
    export OAUTHDB_PGDATA=$pgdir/data
  else
    echo "run.sh: could not start PostgreSQL; see below" >&2
    cat "$scratch/initdb.log" "$pgdir/log" >&2 2>/dev/null
    exit 2
  fi
fi

if [ "${OAUTHDB_SANITIZE:-}" = 1 ]; then
  # The extension is instrumented but tclsh, python3 and sqlite3 are not:
  # preload the sanitizer runtimes. Leaks inside the interpreters are theirs.
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
  export LSAN_OPTIONS=suppressions=$top/test/lsan.supp:print_suppressions=0
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # PostgreSQL's own programs must not run with the sanitizer preloaded:
  # their leaks at exit are not ours, and createdb was seen to hang. Put
  # wrappers first on PATH that drop LD_PRELOAD for them.
  mkdir -p "$scratch/bin"
  for prog in psql createdb dropdb pg_ctl pg_isready pg_dump pg_restore pgloader initdb; do
    real=$(command -v $prog) || continue
    printf '#!/bin/sh\nexec env -u LD_PRELOAD %s "$@"\n' "$real" >"$scratch/bin/$prog"
    chmod 755 "$scratch/bin/$prog"
  done
  export PATH=$scratch/bin:$PATH
fi

passed=0 failed=0 skipped=0
for t in "${tests[@]}"; do
  dir=$scratch/$(basename "$t" .test)
  mkdir -p "$dir"
  chmod 755 "$dir"
  log=$dir.log
  started=$SECONDS
  # OAUTHDB_WRAPPER (unset: none) runs tclsh under a tool, e.g. valgrind
  # for `make check-valgrind`; word-split on purpose, so it can carry options.
  # shellcheck disable=SC2086
  OAUTHDB_TEST_DIR=$dir ${OAUTHDB_WRAPPER:-} tclsh "$t" >"$log" 2>&1
  rc=$?
  took=$((SECONDS - started))
  line=$(grep -a '^oauthdb-results:' "$log" | tail -1)
  p=$(echo "$line" | sed -n 's/.*passed=\([0-9]*\).*/\1/p')
  f=$(echo "$line" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
  if [ -z "$line" ]; then
    # The file died before finish_test: count it as one failure.
    p=0 f=1
  elif [ $rc -ne 0 ] && [ "${f:-0}" = 0 ]; then
    f=1  # e.g. a sanitizer report after the last test
  fi
  passed=$((passed + p)) failed=$((failed + f))
  if [ "$f" != 0 ]; then
    echo "--- $t: $p passed, $f failed (exit $rc, ${took} s)"
    grep -a -v -E '\.\.\. Ok$' "$log" | head -60
  else
    # The seconds each file took: the suite has a time budget (README).
    echo "$t: $p passed (${took} s)"
  fi
  # A test or section that could not run says so in its log as
  # `NAME: SKIPPED: why`; show it here, so that no skip passes silently.
  grep -a ': SKIPPED: ' "$log" | sed 's/^/  /'
  skipped=$((skipped + $(grep -a -c ': SKIPPED: ' "$log")))
done
[ "$skipped" = 0 ] || echo "$skipped skipped (SKIPPED lines above)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
