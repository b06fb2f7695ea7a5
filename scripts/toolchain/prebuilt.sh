# Sourced by scripts/build/linux-{arm64-gnu,x64-musl,arm64-musl}.sh: builds
# the addon with sid's Rust (scripts/toolchain/sid-cargo.sh) and installs it,
# stripped and checked, as build/prebuilt/<target>/dynprobe.node.
#   build_prebuilt NAME RUST_TARGET ZIG_TARGET ELF_MACHINE LIBC [NAME=VALUE... cargo args...]
set -euo pipefail
TOOLCHAIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$TOOLCHAIN_DIR/../.." && pwd)
export DYNPROBE_SID_TARGET_DIR=${DYNPROBE_SID_TARGET_DIR:-/var/lib/dynprobe/target-sid}

build_prebuilt() {
  local name=$1 rust_target=$2 zig_target=$3 machine=$4 libc=$5; shift 5
  local say="build/$name"
  [ "$(id -u)" = 0 ] || { echo "$say: needs root: it builds in the Debian sid root /var/lib/dynprobe/sid, which holds the Rust toolchain for $rust_target (scripts/toolchain/sid-rust.sh installs it)" >&2; return 1; }
  local envs=()
  while [ $# -gt 0 ] && [[ $1 == [A-Za-z_]*=* ]]; do envs+=("$1"); shift; done
  local start=$SECONDS
  # No debug info and stripped: the published addon is about 0.7 MB.
  "$TOOLCHAIN_DIR/sid-cargo.sh" CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols "${envs[@]}" \
    cargo zigbuild --release --locked --quiet -p dynprobe-node --target "$zig_target" "$@" ||
    { echo "$say: cargo zigbuild --target $zig_target failed" >&2; return 1; }
  local built=$DYNPROBE_SID_TARGET_DIR/$rust_target/release/libdynprobe_node.so
  [ -s "$built" ] || { echo "$say: the build wrote no $built" >&2; return 1; }
  local header; header=$(readelf -h "$built")
  grep -q "Machine:.*$machine" <<<"$header" || { echo "$say: $built is not for $machine" >&2; return 1; }
  if readelf -S -W "$built" | grep -qE ' \.(debug_info|symtab) '; then
    echo "$say: $built is not stripped" >&2; return 1
  fi
  local needed; needed=$(readelf -d -W "$built" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  if [ "$libc" = glibc ]; then
    # The floor: no symbol version newer than GLIBC_2.17.
    local newest; newest=$(readelf -V -W "$built" | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -n 1)
    [ "${newest#GLIBC_2.}" -le 17 ] || { echo "$say: $built needs $newest (the floor is GLIBC_2.17)" >&2; return 1; }
  else
    grep -q 'libc\.so' <<<"$needed" || { echo "$say: $built needs no libc.so (NEEDED: $needed)" >&2; return 1; }
    if grep -q 'GLIBC_' < <(readelf -V -W "$built"); then echo "$say: $built has glibc symbol versions" >&2; return 1; fi
  fi
  local out=$SRC/build/prebuilt/$name/dynprobe.node
  mkdir -p "$(dirname "$out")"
  cp "$built" "$out.$$.tmp" && mv "$out.$$.tmp" "$out"
  echo "$say: $out ($(($(stat -c %s "$out") / 1024)) KB, NEEDED: $needed; $((SECONDS - start)) s)" >&2
}
