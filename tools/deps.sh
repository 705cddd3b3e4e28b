#!/bin/sh
# deps.sh [--list|--check] [build|test|bench|fuzz]: make sure the Debian
# packages oauthdb needs are installed. As root, installs what is missing
# with apt-get; otherwise prints the exact apt-get line and fails. Only
# Debian packages, nothing downloaded from anywhere else.
#
#   --list   print the packages the target needs, one a line, and exit
#   --check  print the apt-get line for what is missing (exit 1) or nothing
#            (exit 0), and install nothing, even as root
#
# Whether a package is installed is asked of dpkg, never guessed from a
# command or a file: a command can come from elsewhere (NodeSource's node,
# a pip install, a hand-built tclsh), and a probe such as
# `echo "package require sqlite3" | tclsh` exits 0 even when it fails. A
# need is written as Debian writes a dependency, `a | b`: it is met when
# dpkg says one of them is installed ("install ok installed"), or that an
# installed package Provides one of them; apt-get installs the first.
set -eu
mode=install
case ${1:-} in
--list|--check) mode=${1#--}; shift ;;
esac
want=${1:-build}
case $want in
build|test|bench|fuzz) ;;
*) echo "deps.sh: unknown target '$want' (build, test, bench or fuzz)" >&2; exit 2 ;;
esac

needs=""
need() { needs="$needs $1"; }   # need 'PACKAGE' or need 'PACKAGE|ALTERNATIVE'

# make (the extension, the tool, the exporter) and make demo
need gcc
need libc6-dev        # gcc only recommends it, and apt-get runs without recommends
need make
need libsqlite3-dev
need libsodium-dev
need libpq-dev
need sqlite3          # make demo drives the sqlite3 shell
case $want in
test|bench)
  need tcl
  need libsqlite3-tcl # `package require sqlite3` in test/tester.tcl
  need postgresql-15  # test/run.sh starts /usr/lib/postgresql/15/bin/postgres
  need postgresql-server-dev-15  # the PostgreSQL extension (ext/postgres, PGXS): `make check` and `make bench` build and test it
  need python3
  need python3-nacl   # test/format_vectors.py
  need valgrind       # make check-valgrind
  need procps         # kill(1): export_crash.test and rotate.test kill a run mid-way
  ;;
esac
case $want in
test)
  # test/clients.test: Node with better-sqlite3, which test/node/install.sh
  # builds from the npm registry with node-gyp (python3, make, g++) against
  # Node's headers. Debian 12 has them in libnode-dev; a nodejs package from
  # elsewhere that ships them says so with Provides: nodejs-dev (NodeSource's
  # does, and Provides: npm too).
  need nodejs
  need npm
  need 'libnode-dev|nodejs-dev'
  need g++
  ;;
bench)
  need pgloader
  ;;
fuzz)  # make fuzz: clang's libFuzzer (test/fuzz/README.md)
  need clang
  need libclang-rt-14-dev
  ;;
esac

if [ "$mode" = list ]; then
  for n in $needs; do echo "$n"; done
  exit 0
fi

# What dpkg knows: every package it has as "install ok installed", and every
# name those packages Provide (one a line, without version constraints).
# ${db:Status-Abbrev} is "ii " for an installed package.
missing_now() {
  installed=$(dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Provides}\n' 2>/dev/null |
    awk -F'|' '$1 ~ /^ii/ {
      print $2
      n = split($3, p, ",")
      for (i = 1; i <= n; i++) { sub(/^ +/, "", p[i]); sub(/ .*/, "", p[i]); if (p[i] != "") print p[i] }
    }') || installed=""
  missing=""
  for n in $needs; do
    met=no
    for alt in $(echo "$n" | tr '|' ' '); do
      if printf '%s\n' "$installed" | grep -qxF "$alt"; then met=yes; break; fi
    done
    [ $met = yes ] || missing="$missing ${n%%|*}"
  done
}

missing_now
[ -z "$missing" ] && exit 0
if [ "$mode" = install ] && [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >&2
  # apt-get can succeed without installing what was asked (a held package,
  # a conflict resolved the other way): ask dpkg again.
  missing_now
  [ -z "$missing" ] && exit 0
  echo "deps: still not installed according to dpkg after apt-get:$missing" >&2
  exit 1
fi
echo "deps: missing Debian packages. Run:" >&2
echo "  sudo apt-get install$missing" >&2
exit 1
