#!/bin/sh
# deps.sh [build|test|bench|fuzz]: make sure the Debian packages oauthdb needs are
# here. As root, installs what is missing with apt-get; otherwise prints the
# exact apt-get line and fails. Only Debian packages, nothing downloaded else.
set -eu
want=${1:-build}
missing=""
need() { # need PACKAGE TEST-COMMAND...
  pkg=$1; shift
  if ! "$@" >/dev/null 2>&1; then missing="$missing $pkg"; fi
}
has_file() { [ -e "$1" ]; }
# Node's headers where node-gyp finds them with --nodedir=<node's prefix>
# (test/node/install.sh): Debian's libnode-dev, or a nodejs that ships them.
node_headers() {
  n=$(command -v node) || return 1
  has_file "$(dirname "$(dirname "$(readlink -f "$n")")")/include/node/node.h"
}
need gcc         command -v gcc
need make        command -v make
need libsqlite3-dev has_file /usr/include/sqlite3ext.h
need libsodium-dev  has_file /usr/include/sodium.h
need libpq-dev      has_file /usr/include/postgresql/libpq-fe.h
need sqlite3        command -v sqlite3
# The PostgreSQL extension (ext/postgres, PGXS). `make` builds it when this
# is installed; `make check` and `make bench` install it and always do.
pg_server_dev() { dpkg-query -W -f='${Status}' postgresql-server-dev-15 2>/dev/null | grep -q 'ok installed'; }
case $want in
test|bench)
  need tcl            command -v tclsh
  need libsqlite3-tcl sh -c 'echo "package require sqlite3" | tclsh'
  need postgresql     has_file /usr/lib/postgresql/15/bin/initdb
  need postgresql-server-dev-15 pg_server_dev
  need python3        has_file /usr/bin/python3
  need python3-nacl   /usr/bin/python3 -c "import nacl.bindings"   # test/format_vectors.py
  need valgrind       command -v valgrind
  ;;
esac
case $want in
test)
  # test/clients.test: Node with better-sqlite3 12, which test/node/install.sh
  # builds from the npm registry with node-gyp (g++, make, python3).
  need nodejs         command -v node
  need npm            command -v npm
  need libnode-dev    node_headers
  need g++            command -v g++
  ;;
esac
case $want in
bench)
  need pgloader command -v pgloader
  ;;
fuzz)  # make fuzz: clang's libFuzzer (test/fuzz/README.md)
  need clang              command -v clang
  need libclang-rt-14-dev sh -c 'ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-"$(uname -m)".a'
  ;;
esac
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >&2
else
  echo "deps: missing Debian packages. Run:" >&2
  echo "  sudo apt-get install$missing" >&2
  exit 1
fi
