#!/usr/bin/env bash
# Provision the other JavaScript runtimes the runtime tests run dynprobe
# under, installed the way their users install them: from npm's packages of
# their official builds, pinned, into
#   $DYNPROBE_RUNTIMES_CACHE/bun/bin/bun     Bun, glibc (@oven/bun-linux-x64)
#   $DYNPROBE_RUNTIMES_CACHE/deno/bin/deno   Deno 2 (@deno/linux-x64-glibc)
#   scripts/provision-runtimes.sh [bun|deno...]  (default: both)
# Idempotent; fast when provisioned. Needs npm (to fetch) and tar; x86-64;
# not root.
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
declare -A PACKAGE=([bun]=@oven/bun-linux-x64 [deno]=@deno/linux-x64-glibc)
declare -A PINNED=([bun]=1.4.5 [deno]=2.9.6)
# Where each package keeps its binary, and what `--version` says first.
declare -A BINARY=([bun]=package/bin/bun [deno]=package/deno)
declare -A SAYS=([bun]='' [deno]='deno ')
RUNTIMES=(bun deno)
CACHE=$DYNPROBE_RUNTIMES_CACHE
[ $# -gt 0 ] && RUNTIMES=("$@")
if [ "$(uname -m)" != x86_64 ]; then
  say "the pinned builds are x86-64 ones: nothing to do on $(uname -m)"
  exit 0
fi

known_pinned "${RUNTIMES[@]}"
wanted() { unready_pinned "$CACHE" "${RUNTIMES[@]}"; }

if [ -n "$(wanted)" ]; then
  lock "$CACHE/runtimes"
  command -v npm >/dev/null || die "npm is missing: it fetches ${PACKAGE[*]}"
  for runtime in $(wanted); do
    version=${PINNED[$runtime]}
    package=${PACKAGE[$runtime]}
    tmp=$CACHE/.tmp.$runtime
    rm -rf "$tmp"
    mkdir -p "$tmp"
    step "fetching $package@$version into $CACHE/$runtime"
    (
      cd "$tmp"
      DP_LOG=$tmp/npm.log
      retry npm pack --silent --no-audit --no-fund "$package@$version"
    )
    quiet tar -xzf "$tmp"/*.tgz -C "$tmp" "${BINARY[$runtime]}"
    mkdir -p "$tmp/out/bin"
    mv "$tmp/${BINARY[$runtime]}" "$tmp/out/bin/$runtime"
    chmod 755 "$tmp/out/bin/$runtime"
    got=$(first_line "$tmp/out/bin/$runtime" --version) || die "$runtime $version from npm does not run here"
    case $got in "${SAYS[$runtime]}$version"*) ;; *) die "$package@$version runs as $got" ;; esac
    echo "$version" >"$tmp/out/.dynprobe-ready"
    rm -rf "${CACHE:?}/$runtime"
    mv "$tmp/out" "$CACHE/$runtime"
    rm -rf "$tmp"
  done
fi
for runtime in "${RUNTIMES[@]}"; do
  printf '%s %s: %s/%s/bin/%s\n' "$runtime" "$(cat "$CACHE/$runtime/.dynprobe-ready")" "$CACHE" "$runtime" "$runtime"
done
