# shellcheck shell=bash
# Sourced by scripts/build/*.sh (with scripts/lib/common.sh):
#   build_prebuilt NAME...
#       builds the addon for the targets NAME (all of one kind, see TARGETS)
#       in one cargo run with sid's Rust (scripts/toolchain/sid-cargo.sh):
#       two targets built together keep both cores busy, where each alone
#       leaves one idle for long stretches; then check_prebuilt's each
#   check_prebuilt NAME FILE
#       checks a built addon (machine, stripped, the libc it links: glibc
#       2.17 at most, or musl) and installs it as build/prebuilt/NAME/dynprobe.node
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
SRC=$(dirname "$DP_SCRIPTS")

# NAME: RUST_TARGET ZIG_TARGET ELF_MACHINE LIBC
declare -A TARGETS=(
  [linux-x64-gnu]="x86_64-unknown-linux-gnu x86_64-unknown-linux-gnu.2.17 X86-64 glibc"
  [linux-arm64-gnu]="aarch64-unknown-linux-gnu aarch64-unknown-linux-gnu.2.17 AArch64 glibc"
  [linux-x64-musl]="x86_64-unknown-linux-musl x86_64-unknown-linux-musl X86-64 musl"
  [linux-arm64-musl]="aarch64-unknown-linux-musl aarch64-unknown-linux-musl AArch64 musl"
)
# What a musl build adds: no musl std is published where this machine can
# reach, so std is built from sid's rust-src (-Zbuild-std, allowed on stable
# rustc by RUSTC_BOOTSTRAP); dynamically linked against libc.so
# (-crt-static), as a Node addon is loaded into a process that already has
# its libc.
MUSL_ENV=(RUSTC_BOOTSTRAP=1 "RUSTFLAGS=-C target-feature=-crt-static")
MUSL_ARGS=("-Zbuild-std=std,panic_unwind")

target_field() {
  local fields
  read -r -a fields <<<"${TARGETS[$1]:-}"
  [ ${#fields[@]} = 4 ] || die "unknown target $1 (the targets: ${!TARGETS[*]})"
  echo "${fields[$2]}"
}

build_prebuilt() {
  need_root "it builds in $DYNPROBE_RUST_ROOT, a root holding sid's Rust toolchain (scripts/toolchain/sid-rust.sh makes it)"
  local name libc='' args=() envs=()
  for name in "$@"; do
    [ -z "$libc" ] || [ "$libc" = "$(target_field "$name" 3)" ] || die "$* are not all of one kind: build them one by one"
    libc=$(target_field "$name" 3)
    args+=(--target "$(target_field "$name" 1)")
  done
  # The musl builds have a target directory of their own, so that they can
  # run beside the glibc ones (cargo locks a target directory while it builds).
  local target_dir=$DYNPROBE_SID_TARGET_DIR
  if [ "$libc" = musl ]; then
    envs=("${MUSL_ENV[@]}")
    args+=("${MUSL_ARGS[@]}")
    target_dir=$DYNPROBE_SID_TARGET_DIR-musl
  fi
  local start=$SECONDS
  step "cargo zigbuild --release -p dynprobe-node ${args[*]}"
  # No debug info and stripped: the published addon is about 0.7 MB.
  DYNPROBE_SID_TARGET_DIR=$target_dir quiet "$DP_SCRIPTS/toolchain/sid-cargo.sh" \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols "${envs[@]}" \
    cargo zigbuild --release --locked -p dynprobe-node "${args[@]}"
  for name in "$@"; do
    check_prebuilt "$name" "$target_dir/$(target_field "$name" 0)/release/libdynprobe_node.so"
  done
  say "built $* in $((SECONDS - start)) s"
}

check_prebuilt() {
  local name=$1 built=$2 machine libc
  machine=$(target_field "$name" 2)
  libc=$(target_field "$name" 3)
  [ -s "$built" ] || die "the build wrote no $built"
  # (here-strings, not pipes: grep -q stops reading at its first match)
  grep -q "Machine:.*$machine" <<<"$(readelf -h "$built")" || die "$built is not for $machine"
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
