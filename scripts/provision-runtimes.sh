#!/usr/bin/env bash
# Provision the other JavaScript runtimes dynprobe's runtime tests run under,
# installed the way their users install them: from npm's packages of their
# official builds, pinned, into
#   /var/lib/dynprobe/runtimes/bun/bin/bun     Bun, glibc (@oven/bun-linux-x64)
#   /var/lib/dynprobe/runtimes/deno/bin/deno   Deno 2 (@deno/linux-x64-glibc)
# (DYNPROBE_RUNTIMES_CACHE moves them)
#   scripts/provision-runtimes.sh [bun|deno...]  (default: both)
# Idempotent; fast when provisioned. Needs npm (to fetch) and tar; x86-64.
set -euo pipefail
declare -A PACKAGE=([bun]=@oven/bun-linux-x64 [deno]=@deno/linux-x64-glibc)
declare -A PINNED=([bun]=1.4.5 [deno]=2.9.6)
# Where each package keeps its binary, and what `--version` prints first.
declare -A BINARY=([bun]=package/bin/bun [deno]=package/deno)
declare -A SAYS=([bun]='' [deno]='deno ')
RUNTIMES=(bun deno)
CACHE=${DYNPROBE_RUNTIMES_CACHE:-/var/lib/dynprobe/runtimes}
say() { echo "provision-runtimes: $*" >&2; }
die() { say "$*"; exit 1; }
case $CACHE in /?*) ;; *) die "DYNPROBE_RUNTIMES_CACHE must be an absolute path, not /" ;; esac
[ "$(uname -m)" = x86_64 ] || { say "the pinned builds are x86-64 ones; nothing to do on $(uname -m)"; exit 0; }
[ $# -gt 0 ] && RUNTIMES=("$@")
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"; flock 9   # parallel runs wait instead of racing

for runtime in "${RUNTIMES[@]}"; do
  version=${PINNED[$runtime]:-}
  [ -n "$version" ] || die "unknown runtime $runtime (known: ${!PINNED[*]})"
  package=${PACKAGE[$runtime]}
  dir=$CACHE/$runtime
  [ "$(cat "$dir/.dynprobe-ready" 2>/dev/null)" = "$version" ] && continue
  command -v npm >/dev/null || die "npm is missing: it fetches $package@$version"
  say "fetching $package@$version into $dir"
  tmp=$CACHE/.tmp.$runtime.$$
  rm -rf "$CACHE/.tmp.$runtime."*; mkdir -p "$tmp"
  (cd "$tmp" && npm pack --silent "$package@$version" </dev/null >pack.out 2>pack.err) \
    || die "npm pack $package@$version failed: $(tail -n 5 "$tmp/pack.err")"
  tar -xzf "$tmp"/*.tgz -C "$tmp" "${BINARY[$runtime]}" || die "$package@$version holds no ${BINARY[$runtime]}"
  mkdir -p "$tmp/out/bin"; mv "$tmp/${BINARY[$runtime]}" "$tmp/out/bin/$runtime"; chmod 755 "$tmp/out/bin/$runtime"
  got=$("$tmp/out/bin/$runtime" --version | head -n 1) || die "$runtime $version from npm does not run here"
  case $got in "${SAYS[$runtime]}$version"*) ;; *) die "$package@$version runs as $got" ;; esac
  echo "$version" >"$tmp/out/.dynprobe-ready"
  rm -rf "$dir"; mv "$tmp/out" "$dir"; rm -rf "$tmp"
done
for runtime in "${RUNTIMES[@]}"; do printf '%s %s: %s/%s/bin/%s\n' "$runtime" "$(cat "$CACHE/$runtime/.dynprobe-ready")" "$CACHE" "$runtime" "$runtime"; done
