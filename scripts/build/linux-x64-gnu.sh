#!/usr/bin/env bash
# Builds build/prebuilt/linux-x64-gnu/dynprobe.node: the addon for x86-64
# Linux with glibc 2.17 or later, stripped. The host's Rust, linked by zig
# against glibc 2.17's symbols (cargo zigbuild --target
# x86_64-unknown-linux-gnu.2.17). Installs zig and cargo-zigbuild on first
# use (scripts/toolchain/zig.sh); needs no root when $DYNPROBE_TOOLCHAIN is
# writable. Exits non-zero naming what is missing or failed.
set -euo pipefail
# shellcheck source=../toolchain/prebuilt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../toolchain/prebuilt.sh"
TRIPLE=x86_64-unknown-linux-gnu

command -v cargo >/dev/null || die "cargo is missing (a Rust toolchain is needed to build the addon)"
grep -qx "$TRIPLE" <<<"$(rustc --print target-list)" || die "rustc cannot target $TRIPLE"
[ -d "$(rustc --print sysroot)/lib/rustlib/$TRIPLE/lib" ] || die "the Rust std for $TRIPLE is not installed"
zig_export=$(bash "$DP_SCRIPTS/toolchain/zig.sh") || die "the zig toolchain could not be installed (scripts/toolchain/zig.sh)"
eval "$zig_export"

# As root (npm test, CI), the build's target directory is cached on the
# machine, so that a fresh clone rebuilds only what changed.
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ "$(id -u)" = 0 ]; then export CARGO_TARGET_DIR=$DYNPROBE_CACHE/target-zig; fi

start=$SECONDS
step "cargo zigbuild --release -p dynprobe-node --target $TRIPLE.2.17"
# The release profile keeps debug=1 for local work; a shipped addon carries
# neither debug info nor a symbol table (8 MB -> ~0.7 MB).
(cd "$SRC" && quiet env CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_NET_RETRY=5 \
  cargo zigbuild --release --locked -p dynprobe-node --target "$TRIPLE.2.17")
check_prebuilt linux-x64-gnu "${CARGO_TARGET_DIR:-$SRC/target}/$TRIPLE/release/libdynprobe_node.so"
say "built in $((SECONDS - start)) s"
