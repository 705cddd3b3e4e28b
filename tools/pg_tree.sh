#!/bin/sh
# pg_tree.sh DIR BUILD: make DIR a private PostgreSQL 15 installation that
# holds this build's extension (BUILD/postgres/oauthdb.so and
# ext/postgres/oauthdb.control + SQL script), and print its bin directory.
#
# Why: PostgreSQL 15 finds an extension's control file only in its own share
# directory and its library in its own pkglibdir (extension_control_path
# arrives in 18). Installing there, as `make install` does, needs root,
# writes into the system, and lets two checkouts' test runs overwrite each
# other's extension mid-run. But PostgreSQL finds its share and lib
# directories relative to its own executable (a "relocatable" install: the
# path from the configured bindir to sharedir is applied to wherever the
# running binary really is, symlinks resolved). So a copy of the bin
# directory (13 MB) beside symlink trees of the system's lib and share
# directories is a whole installation, in which our three files replace
# whatever the system has. Nothing outside DIR is written; no root needed.
#
# Debian's layout: bindir /usr/lib/postgresql/15/bin, sharedir
# /usr/share/postgresql/15, pkglibdir /usr/lib/postgresql/15/lib.
set -eu
dir=${1:?usage: tools/pg_tree.sh DIR BUILD}
build=${2:?usage: tools/pg_tree.sh DIR BUILD}
top=$(cd "$(dirname "$0")/.." && pwd)
sys=/usr/lib/postgresql/15
sysshare=/usr/share/postgresql/15

mkdir -p "$dir/lib/postgresql/15" "$dir/share/postgresql"
cp -a "$sys/bin" "$dir/lib/postgresql/15/bin"        # real files: see above
cp -as "$sys/lib" "$dir/lib/postgresql/15/lib"       # symlinks
cp -as "$sysshare" "$dir/share/postgresql/15"        # symlinks

bin=$dir/lib/postgresql/15/bin
# Ask the copied pg_config where this installation's directories are, so a
# layout that does not relocate fails here rather than loading the system's.
pkglib=$("$bin/pg_config" --pkglibdir)
share=$("$bin/pg_config" --sharedir)
case $pkglib:$share in
"$dir"/*:"$dir"/*) ;;
*) echo "pg_tree.sh: PostgreSQL in $bin does not relocate ($pkglib, $share)" >&2; exit 1 ;;
esac
rm -f "$pkglib/oauthdb.so" "$share/extension/oauthdb.control" "$share/extension"/oauthdb--*.sql
cp "$build/postgres/oauthdb.so" "$pkglib/"
cp "$top/ext/postgres/oauthdb.control" "$top"/ext/postgres/oauthdb--*.sql "$share/extension/"
chmod -R a+rX "$dir"
echo "$bin"
