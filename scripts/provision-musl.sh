#!/usr/bin/env bash
# Provision the musl runtimes the musl checks run on (test/platform-musl.test.js).
# No musl Node is published on npm; Bun's musl builds implement Node-API:
#   $DYNPROBE_MUSL/x64/bin/bun     @oven/bun-linux-x64-musl, runs on the host
#   $DYNPROBE_MUSL/arm64/bin/bun   @oven/bun-linux-aarch64-musl, runs under
#                                  qemu-user (binfmt_misc, provision-arm64.sh)
# Bun needs musl's loader and musl builds of libstdc++ and libgcc_s. Each
# DIR holds its own: Debian sid's musl unpacked in DIR/musl (1.2.6; the
# host's 1.2.3 predates DT_RELR, which the libraries use), the libraries of
# a PyPI musllinux wheel (numpy's) in DIR/lib, and bin/bun points at both
# (patchelf: interpreter DIR/musl/lib/ld-musl-ARCH.so.1, and rpath). Nothing
# is installed system-wide and no environment is needed: DIR/bin/bun runs as
# it is. Pinned versions; idempotent; fast when provisioned. Run as root.
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
need_root "it registers qemu-user for the arm64 build"
BUN_VERSION=1.4.5
NUMPY_VERSION=2.2.6
BASE=$DYNPROBE_MUSL
STAMP="bun $BUN_VERSION numpy $NUMPY_VERSION musl sid, ld-musl"

if ready "$BASE/x64/.dynprobe-ready" "$STAMP" && ready "$BASE/arm64/.dynprobe-ready" "$STAMP"; then
  echo "musl runtimes: Bun $BUN_VERSION at $BASE/x64/bin/bun and $BASE/arm64/bin/bun"
  exit 0
fi
apt_need_for musl
command -v python3 >/dev/null || die "python3 is missing: pip fetches the musllinux wheel with libstdc++"
command -v npm >/dev/null || die "npm is missing: it fetches Bun"
bash "$DP_SCRIPTS/provision-arm64.sh" --qemu-only
lock "$BASE/runtimes"

# Debian sid's musl for DEB_ARCH, unpacked into DIR/musl.
fetch_musl() {
  local deb_arch=$1 dir=$2 index file
  index=$(debian_index sid "$deb_arch")
  file=$(debian_field "$index" musl Filename)
  [ -n "$file" ] || die "no musl package in the sid $deb_arch index"
  fetch "$(host_mirror)/$file" "$dir/.tmp/musl.deb"
  quiet dpkg-deb -x "$dir/.tmp/musl.deb" "$dir/musl"
}

# The libraries of the numpy musllinux wheel for ARCH (x86_64, aarch64) into
# DIR/lib, also under the plain names Bun asks for (the wheel's carry a hash).
wheel_libs() {
  local arch=$1 dir=$2 tmp=$2/.tmp want f
  mkdir -p "$dir/lib"
  retry python3 -m pip download --no-input -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform "musllinux_1_2_$arch" -d "$tmp" "numpy==$NUMPY_VERSION"
  quiet python3 -c 'import sys, zipfile, glob
z = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
for n in z.namelist():
    if n.startswith("numpy.libs/lib") and ("stdc++" in n or "gcc_s" in n): z.extract(n, sys.argv[1])' "$tmp"
  cp "$tmp"/numpy.libs/* "$dir/lib/"
  for want in libstdc++ libgcc_s; do
    f=$(cd "$dir/lib" && compgen -G "$want-*.so*") || die "the numpy $NUMPY_VERSION musllinux_1_2_$arch wheel holds no $want"
    [ "$want" = libstdc++ ] && ln -sf "${f%%$'\n'*}" "$dir/lib/libstdc++.so.6"
  done
  return 0
}

# Bun's musl build for NPM_ARCH (x64, aarch64) into DIR/bin/bun, pointed at
# DIR's musl loader (LOADER, under DIR/musl) and libraries.
fetch_bun() {
  local npm_arch=$1 dir=$2 loader=$3 tmp=$2/.tmp name
  (cd "$tmp" && retry npm pack --silent --no-audit --no-fund "@oven/bun-linux-$npm_arch-musl@$BUN_VERSION")
  quiet tar -xzf "$tmp/oven-bun-linux-$npm_arch-musl-$BUN_VERSION.tgz" -C "$tmp" package/bin/bun
  [ -e "$dir/musl/$loader" ] || die "no musl loader at $dir/musl/$loader"
  # The loader under the name Alpine gives it (a copy: /proc/PID/maps names
  # the file, and dynprobe tells musl by this name).
  name=ld-musl-${npm_arch/x64/x86_64}.so.1
  mkdir -p "$dir/musl/lib" "$dir/bin"
  cp "$dir/musl/$loader" "$dir/musl/lib/$name"
  quiet patchelf --set-interpreter "$dir/musl/lib/$name" --set-rpath "$dir/lib" "$tmp/package/bin/bun"
  chmod +x "$tmp/package/bin/bun"
  mv "$tmp/package/bin/bun" "$dir/bin/bun"
}

runtime() {
  local arch=$1 deb wheel npm loader dir=$BASE/$1 got
  case $arch in
    x64) deb=amd64 wheel=x86_64 npm=x64 loader=usr/lib/x86_64-linux-musl/libc.so ;;
    arm64) deb=arm64 wheel=aarch64 npm=aarch64 loader=usr/lib/aarch64-linux-musl/libc.so ;;
  esac
  # Each its own log: the two are fetched side by side.
  DP_LOG=$DP_LOG.$arch
  step "fetching Bun $BUN_VERSION ($arch musl), sid's musl and musl libstdc++/libgcc_s into $dir"
  rm -rf "${dir:?}"
  mkdir -p "$dir/.tmp"
  fetch_musl "$deb" "$dir"
  wheel_libs "$wheel" "$dir"
  fetch_bun "$npm" "$dir" "$loader"
  rm -rf "$dir/.tmp"
  got=$("$dir/bin/bun" --version 2>&1) || die "Bun $arch musl does not run: $got"
  [ "$got" = "$BUN_VERSION" ] || die "Bun $arch musl says $got, expected $BUN_VERSION"
  echo "$STAMP" >"$dir/.dynprobe-ready"
}

# The index is fetched once for both.
debian_index sid amd64 >/dev/null
debian_index sid arm64 >/dev/null
pids=()
for arch in x64 arm64; do
  ready "$BASE/$arch/.dynprobe-ready" "$STAMP" && continue
  runtime "$arch" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || die "a musl runtime could not be provisioned (see above)"; done
echo "musl runtimes: Bun $BUN_VERSION (Node-API, node $("$BASE/x64/bin/bun" -p process.versions.node)) at $BASE/x64/bin/bun and $BASE/arm64/bin/bun"
