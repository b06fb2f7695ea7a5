# shellcheck shell=bash
# Sourced by scripts/build/*.sh (with scripts/lib/common.sh):
#   build_prebuilt NAME RUST_TARGET ZIG_TARGET ELF_MACHINE LIBC [NAME=VALUE... cargo args...]
#       builds the addon with sid's Rust (scripts/toolchain/sid-cargo.sh),
#       then check_prebuilt's it
#   check_prebuilt NAME FILE ELF_MACHINE LIBC
#       checks a built addon (machine, stripped, the libc it links: glibc
#       2.17 or musl) and installs it as build/prebuilt/NAME/dynprobe.node
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
SRC=$(dirname "$DP_SCRIPTS")

build_prebuilt() {
  local name=$1 rust_target=$2 zig_target=$3 machine=$4 libc=$5
  shift 5
  need_root "it builds in $DYNPROBE_RUST_ROOT, a root holding sid's Rust toolchain for $rust_target (scripts/toolchain/sid-rust.sh makes it)"
  local envs=()
  while [ $# -gt 0 ] && [[ $1 == [A-Za-z_]*=* ]]; do
    envs+=("$1")
    shift
  done
  local start=$SECONDS
  step "cargo zigbuild --release -p dynprobe-node --target $zig_target $*"
  # No debug info and stripped: the published addon is about 0.7 MB.
  quiet "$DP_SCRIPTS/toolchain/sid-cargo.sh" CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols "${envs[@]}" \
    cargo zigbuild --release --locked -p dynprobe-node --target "$zig_target" "$@"
  check_prebuilt "$name" "$DYNPROBE_SID_TARGET_DIR/$rust_target/release/libdynprobe_node.so" "$machine" "$libc"
  say "built in $((SECONDS - start)) s"
}

check_prebuilt() {
  local name=$1 built=$2 machine=$3 libc=$4
  [ -s "$built" ] || die "the build wrote no $built"
  grep -q "Machine:.*$machine" <<<"$(readelf -h "$built")" || die "$built is not for $machine"
  # (here-strings, not pipes: grep -q stops reading at its first match)
  ! grep -qE ' \.(debug_info|symtab) ' <<<"$(readelf -S -W "$built")" || die "$built is not stripped"
  local needed versions newest
  needed=$(readelf -d -W "$built" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  versions=$(readelf -V -W "$built")
  if [ "$libc" = glibc ]; then
    # The floor: no symbol version newer than GLIBC_2.17.
    newest=$(grep -o 'GLIBC_2\.[0-9]*' <<<"$versions" | sort -t. -k2 -n -u | tail -n 1)
    [ "${newest#GLIBC_2.}" -le 17 ] || die "$built needs $newest (the floor is GLIBC_2.17)"
  else
    grep -q 'libc\.so' <<<"$needed" || die "$built needs no libc.so (NEEDED: $needed)"
    ! grep -q 'GLIBC_' <<<"$versions" || die "$built has glibc symbol versions"
  fi
  local out=$SRC/build/prebuilt/$name/dynprobe.node
  mkdir -p "$(dirname "$out")"
  # Copy and rename: a process that has the old file mapped keeps a consistent one.
  cp "$built" "$out.$$.tmp"
  mv -f "$out.$$.tmp" "$out"
  say "$out ($(($(stat -c %s "$out") / 1024)) KB, NEEDED: $needed)"
}
