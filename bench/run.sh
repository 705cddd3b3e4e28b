#!/bin/sh
# run.sh BUILD [NAME...]: compile every bench/*.c (or the NAMEs given) into
# BUILD/bench/ with -O2 against the system SQLite and libsodium, and run
# each with the built extension, BUILD/oauthdb.so, as its first argument.
# Each benchmark prints its own `NAME ratio=R` line against its floor.
set -eu
build=$(cd "${1:?usage: bench/run.sh BUILD [NAME...]}" && pwd)
shift
top=$(cd "$(dirname "$0")/.." && pwd)
ext=$build/oauthdb.so
[ -e "$ext" ] || { echo "bench/run.sh: $ext not built (run make)" >&2; exit 2; }
mkdir -p "$build/bench"

if [ $# -gt 0 ]; then
  srcs=""
  for n in "$@"; do [ -e "$top/bench/$n.c" ] && srcs="$srcs $top/bench/$n.c"; done
else
  srcs=$(ls "$top"/bench/*.c)
fi

status=0
for src in $srcs; do
  name=$(basename "$src" .c)
  bin=$build/bench/$name
  ${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Werror -I"$top/ext/core" -I"$top/ext/sqlite" -o "$bin" "$src" \
    -lsqlite3 -lsodium -lm
  echo "== $name"
  "$bin" "$ext" || { echo "bench/run.sh: $name failed" >&2; status=1; }
done
# The PostgreSQL extension: seal/open against libsodium, SQLite and
# pgcrypto; session_valid and tokens_expiring against plain SQL. Each
# starts its own PostgreSQL.
for pg in pg_seal_open pg_lookups; do
  if [ $# -eq 0 ] || [ "$*" = $pg ]; then
    echo "== $pg"
    "$top/bench/$pg.sh" "$build" || { echo "bench/run.sh: $pg failed" >&2; status=1; }
  fi
done
case "$*" in pg_seal_open|pg_lookups) exit $status ;; esac
# oauthdb-export against COPY, pgloader and itself; starts its own PostgreSQL.
if [ $# -eq 0 ]; then
  echo "== export"
  "$top/bench/export.sh" "$build" || { echo "bench/run.sh: export failed" >&2; status=1; }
fi
exit $status
