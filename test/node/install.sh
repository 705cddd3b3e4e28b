#!/bin/sh
# install.sh: put better-sqlite3 12 into test/node/node_modules for
# test/clients.test, from the npm registry only (test/clients.test runs it; tools/deps.sh test installs what it needs).
#
# better-sqlite3's install script is `prebuild-install || node-gyp rebuild`:
# prebuild-install downloads a prebuilt binary from GitHub, and when that
# fails node-gyp compiles the module (and its bundled SQLite) with python3,
# make and g++. Here the download is never tried (build_from_source), so the
# result does not depend on whether GitHub answers, and node-gyp gets
# --nodedir, the headers installed with node (<prefix>/include/node), where
# it would otherwise download them from nodejs.org. So nothing comes from
# anywhere but the npm registry. Exit 0 when the module loads, 1 when it
# cannot be had (the reason on stderr).
#
# The build takes minutes and a fresh clone (CI's, or a second worktree)
# would repeat it on every run, so it is kept outside the checkout, in
# $OAUTHDB_NODE_CACHE (default ~/.cache/oauthdb/node), one directory per
# Node ABI, platform and package-lock.json digest: a new lock file or
# another Node builds anew, and test/node/node_modules is a symlink to the
# build in use. Nothing from the cache runs unless it loads here.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

why() { echo "test/node/install.sh: $*" >&2; exit 1; }
command -v node >/dev/null 2>&1 || why "no node (Debian package nodejs)"
command -v npm >/dev/null 2>&1 || why "no npm (Debian package npm)"
major=$(node -p 'process.versions.node.split(".")[0]')
# better-sqlite3 12 declares Node 20 and newer (its "engines"; npm only
# warns). Debian 12's own nodejs is 18.20, on which it builds from source
# and passes the tour (docs/CLIENTS.md says how that was checked); older
# Nodes are not tried.
[ "$major" -ge 18 ] || why "Node $(node -v) is older than 18 (better-sqlite3 12 declares 20 or newer)"

loads() { node -e 'require("better-sqlite3")' >/dev/null 2>&1; }
loads && exit 0

# A cached build for this Node and this lock file?
abi=$(node -p 'process.versions.modules + "-" + process.platform + "-" + process.arch')
lock=$(sha256sum package-lock.json | cut -c1-16)
cache=${OAUTHDB_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oauthdb/node}
built=$cache/$abi-$lock
use_cached() {
  [ -d "$built/node_modules" ] || return 1
  rm -rf node_modules
  ln -s "$built/node_modules" node_modules
  loads
}
use_cached && exit 0

prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
[ -e "$prefix/include/node/node.h" ] ||
  why "no Node headers in $prefix/include/node (node-gyp would download them from nodejs.org)"
for tool in python3 make g++; do
  command -v $tool >/dev/null 2>&1 || why "no $tool (node-gyp compiles better-sqlite3 with it)"
done

# node-gyp runs gyp with the first python3 on PATH; prefer Debian's.
[ -x /usr/bin/python3 ] && export PYTHON=/usr/bin/python3

echo "test/node/install.sh: npm ci into $built (builds better-sqlite3 from source; a few minutes, once)" >&2
log=$here/npm-install.log
mkdir -p "$cache"
# Built in a directory of its own and renamed into place when complete, so
# two runs at once (two checkouts) never see half a build.
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work/"
# JOBS: node-gyp compiles with every core.
if ! (cd "$work" && JOBS=max npm_config_build_from_source=better-sqlite3 \
      npm ci --nodedir="$prefix" --no-audit --no-fund) >"$log" 2>&1; then
  tail -20 "$log" >&2
  why "npm ci failed (full log: $log)"
fi
[ -d "$built" ] || mv "$work" "$built" 2>/dev/null || [ -d "$built" ] ||
  why "cannot move the build into $built"
use_cached || why "better-sqlite3 was installed but does not load (see $log)"
