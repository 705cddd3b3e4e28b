# pg_throwaway.sh: a throwaway PostgreSQL 15 for a benchmark script, sourced
# (bash) by bench/pg_seal_open.sh, bench/pg_lookups.sh and bench/export.sh:
#
#   . "$top/bench/pg_throwaway.sh"
#   pg_throwaway_scratch oauthdb-bench-pg      # $scratch, removed at exit
#   pg_throwaway_tree "$build"                 # optional: this build's extension
#   pg_throwaway_start -c shared_buffers=256MB # initdb, start, PGHOST/psql
#
# initdb into the scratch directory, a unix socket there, no TCP, fsync off
# (every contender of a benchmark runs on the same server, so the ratios are
# not flattered); stopped at exit even on failure. PostgreSQL refuses to run
# as root, so as root the server runs as the `postgres` system user, from /
# (the postgres user may not be able to enter the checkout: a 0700 home).
pgbin=/usr/lib/postgresql/15/bin

as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "cd / && $(printf '%q ' "$@")"; else "$@"; fi
}

pg_throwaway_scratch() { # NAME
  scratch=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$scratch"
  trap pg_throwaway_cleanup EXIT
  trap 'exit 130' INT TERM
}

pg_throwaway_cleanup() {
  if [ -e "$scratch/pg/data/postmaster.pid" ]; then
    as_pg $pgbin/pg_ctl -D "$scratch/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$scratch"
}

# A private installation holding BUILD's extension (tools/pg_tree.sh), and a
# server keyring ($scratch/pg/keyring) that pg_throwaway_start configures.
pg_throwaway_tree() { # BUILD
  pgbin=$("$top/tools/pg_tree.sh" "$scratch/pgtree" "$1")
  mkdir -p "$scratch/pg"
  "$1/oauthdb" keygen "$scratch/pg/keyring" >/dev/null
  if [ "$(id -u)" = 0 ]; then chown postgres "$scratch/pg/keyring"; fi
}

pg_throwaway_start() { # [SERVER OPTIONS...]
  local opts="-k $scratch/pg -c listen_addresses= -c fsync=off $*"
  if [ -e "$scratch/pg/keyring" ]; then opts="$opts -c oauthdb.keyring=$scratch/pg/keyring"; fi
  mkdir -p "$scratch/pg"
  if [ "$(id -u)" = 0 ]; then chown postgres "$scratch/pg"; fi
  as_pg $pgbin/initdb -D "$scratch/pg/data" -A trust -U postgres --no-sync >"$scratch/initdb.log" 2>&1
  as_pg $pgbin/pg_ctl -D "$scratch/pg/data" -w -l "$scratch/pg/log" -o "$opts" start >/dev/null
  export PGHOST=$scratch/pg PGUSER=postgres PGDATABASE=postgres
}

psql() { $pgbin/psql -X -q -v ON_ERROR_STOP=1 "$@"; }
