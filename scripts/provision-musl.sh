#!/usr/bin/env bash
# Provision the musl runtimes the musl checks run on (test/platform-musl.test.js).
# No musl Node is published on npm; Bun's musl builds implement Node-API:
#   /var/lib/dynprobe/musl/x64/bin/bun     @oven/bun-linux-x64-musl, runs on the host
#   /var/lib/dynprobe/musl/arm64/bin/bun   @oven/bun-linux-aarch64-musl, runs under
#                                          qemu-user (binfmt_misc, provision-arm64.sh)
# Bun needs musl's loader and musl builds of libstdc++ and libgcc_s. Each
# DIR holds its own: Debian sid's musl unpacked in DIR/musl (1.2.6; the
# host's 1.2.3 predates DT_RELR, which the libraries use), the libraries of
# a PyPI musllinux wheel (numpy's) in DIR/lib, and bin/bun points at both
# (patchelf: interpreter DIR/musl/lib/ld-musl-ARCH.so.1, and rpath). Nothing is installed system-wide and
# no environment is needed: DIR/bin/bun runs as it is.
# Pinned versions; idempotent; fast when provisioned. Run as root, no stdin.
set -euo pipefail
BUN_VERSION=1.4.5
NUMPY_VERSION=2.2.6
BASE=${DYNPROBE_MUSL:-/var/lib/dynprobe/musl}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG=$BASE/provision.log
export DEBIAN_FRONTEND=noninteractive
say() { echo "provision-musl: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
case $BASE in /?*) ;; *) die "DYNPROBE_MUSL must be an absolute path, not /" ;; esac
mkdir -p "$BASE"
exec </dev/null
quiet() { "$@" >>"$LOG" 2>&1 || { tail -n 25 "$LOG" >&2; die "failed: $*  (log: $LOG)"; }; }
exec 9>"$BASE/.lock"; flock 9
. "$HERE/lib/host-mirror.sh"

if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' patchelf 2>/dev/null)" != "ii " ]; then
  say "installing patchelf"
  quiet apt-get -o DPkg::Lock::Timeout=600 update -q
  quiet apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends patchelf
fi
command -v python3 >/dev/null || die "python3 is missing: pip fetches the musllinux wheel with libstdc++"
command -v npm >/dev/null || die "npm is missing: it fetches Bun"

# Debian sid's musl for DEB_ARCH into DIR/musl; prints its loader's path.
fetch_musl() {
  local deb_arch=$1 dir=$2 tmp=$BASE/.musl.$1 m=${DYNPROBE_MIRROR:-$(host_mirror)}
  rm -rf "$tmp"; mkdir -p "$tmp"
  quiet sh -c "curl -fsSL '$m/dists/sid/main/binary-$deb_arch/Packages.xz' | xz -d >'$tmp/Packages'"
  local file; file=$(awk -v RS= '/(^|\n)Package: musl\n/' "$tmp/Packages" | sed -n 's/^Filename: //p' | head -n 1)
  [ -n "$file" ] || die "no musl $deb_arch package in $m sid"
  quiet curl -fsSL -o "$tmp/musl.deb" "$m/$file"
  quiet dpkg-deb -x "$tmp/musl.deb" "$dir/musl"
  rm -rf "$tmp"
}

# The libraries of the numpy musllinux wheel for ARCH (x86_64, aarch64) into
# DIR/lib, also under the plain names Bun asks for (the wheel's carry a hash).
wheel_libs() {
  local arch=$1 dir=$2 tmp=$BASE/.wheel.$1
  rm -rf "$tmp"; mkdir -p "$tmp" "$dir/lib"
  quiet python3 -m pip download --no-input -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform "musllinux_1_2_$arch" -d "$tmp" "numpy==$NUMPY_VERSION"
  quiet python3 -c 'import sys, zipfile, glob
z = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
for n in z.namelist():
    if n.startswith("numpy.libs/lib") and ("stdc++" in n or "gcc_s" in n): z.extract(n, sys.argv[1])' "$tmp"
  cp "$tmp"/numpy.libs/* "$dir/lib/"
  local want f
  for want in libstdc++ libgcc_s; do
    f=$(cd "$dir/lib" && ls "$want"-*.so* 2>/dev/null | head -n 1)
    [ -n "$f" ] || die "the numpy $NUMPY_VERSION musllinux_1_2_$arch wheel holds no $want"
  done
  ln -sf "$(cd "$dir/lib" && ls libstdc++-*.so* | head -n 1)" "$dir/lib/libstdc++.so.6"
  rm -rf "$tmp"
}

# Bun's musl build for NPM_ARCH (x64, aarch64) into DIR/bin/bun, pointed at
# DIR's musl loader and libraries.
fetch_bun() {
  local npm_arch=$1 dir=$2 loader=$3 tmp=$BASE/.bun.$1
  rm -rf "$tmp"; mkdir -p "$tmp" "$dir/bin"
  (cd "$tmp" && npm pack --silent "@oven/bun-linux-$npm_arch-musl@$BUN_VERSION" >pack.out 2>pack.err) ||
    die "npm pack @oven/bun-linux-$npm_arch-musl@$BUN_VERSION failed: $(tail -n 5 "$tmp/pack.err")"
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/bin/bun || die "@oven/bun-linux-$npm_arch-musl holds no bin/bun"
  [ -e "$dir/musl/$loader" ] || die "no musl loader at $dir/musl/$loader"
  # The loader under the name Alpine gives it (a copy: /proc/PID/maps names
  # the file, and dynprobe tells musl by this name).
  local name=ld-musl-${npm_arch/x64/x86_64}.so.1
  mkdir -p "$dir/musl/lib"; cp "$dir/musl/$loader" "$dir/musl/lib/$name"
  quiet patchelf --set-interpreter "$dir/musl/lib/$name" --set-rpath "$dir/lib" "$tmp/package/bin/bun"
  chmod +x "$tmp/package/bin/bun"; mv "$tmp/package/bin/bun" "$dir/bin/bun"; rm -rf "$tmp"
}

stamp="bun $BUN_VERSION numpy $NUMPY_VERSION musl sid, ld-musl"
for arch in x64 arm64; do
  dir=$BASE/$arch
  [ "$(cat "$dir/.dynprobe-ready" 2>/dev/null)" = "$stamp" ] && continue
  case $arch in
    x64) deb=amd64 wheel=x86_64 npm=x64 loader=usr/lib/x86_64-linux-musl/libc.so ;;
    arm64) deb=arm64 wheel=aarch64 npm=aarch64 loader=usr/lib/aarch64-linux-musl/libc.so
           bash "$HERE/provision-arm64.sh" --qemu-only ;;
  esac
  say "fetching Bun $BUN_VERSION ($arch musl), sid's musl and musl libstdc++/libgcc_s into $dir"
  rm -rf "$dir"; mkdir -p "$dir"
  fetch_musl "$deb" "$dir"
  wheel_libs "$wheel" "$dir"
  fetch_bun "$npm" "$dir" "$loader"
  got=$("$dir/bin/bun" --version 2>&1) || die "Bun $arch musl does not run: $got"
  [ "$got" = "$BUN_VERSION" ] || die "Bun $arch musl says $got, expected $BUN_VERSION"
  echo "$stamp" >"$dir/.dynprobe-ready"
done
echo "musl runtimes: Bun $BUN_VERSION (Node-API, node $("$BASE/x64/bin/bun" -p process.versions.node)) at $BASE/x64/bin/bun and $BASE/arm64/bin/bun"
