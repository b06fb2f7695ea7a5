#!/usr/bin/env bash
# Build the prebuilt addon for linux-x64-gnu with a glibc 2.17 floor:
# cargo zigbuild for x86_64-unknown-linux-gnu.2.17 (zig links against glibc
# 2.17's symbol versions), stripped, written to
# build/prebuilt/linux-x64-gnu/dynprobe.node. Installs zig and cargo-zigbuild
# on first use (scripts/toolchain/zig.sh). Exits non-zero naming what is missing.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TRIPLE=x86_64-unknown-linux-gnu
FLOOR=2.17
DEST=$ROOT/build/prebuilt/linux-x64-gnu/dynprobe.node
say() { echo "build/linux-x64-gnu: $*" >&2; }
die() { say "$*"; exit 1; }

command -v cargo >/dev/null || die "cargo is missing (a Rust toolchain is needed to build the addon)"
rustc --print target-list 2>/dev/null | grep -qx "$TRIPLE" || die "rustc cannot target $TRIPLE"
[ -d "$(rustc --print sysroot)/lib/rustlib/$TRIPLE/lib" ] || die "the Rust std for $TRIPLE is not installed"
# shellcheck source=../toolchain/zig.sh
. "$HERE/../toolchain/zig.sh" || die "the zig toolchain could not be installed (scripts/toolchain/zig.sh)"
command -v zig >/dev/null || die "zig is not on PATH after scripts/toolchain/zig.sh"
command -v cargo-zigbuild >/dev/null || die "cargo-zigbuild is not on PATH after scripts/toolchain/zig.sh"

say "cargo zigbuild --release -p dynprobe-node --target $TRIPLE.$FLOOR"
# The release profile keeps debug=1 for local work; a shipped addon carries
# neither debug info nor a symbol table (8 MB -> ~0.7 MB).
(cd "$ROOT" && CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols \
  cargo zigbuild --release --quiet -p dynprobe-node --target "$TRIPLE.$FLOOR") \
  || die "cargo zigbuild failed for $TRIPLE.$FLOOR"

built=${CARGO_TARGET_DIR:-$ROOT/target}/$TRIPLE/release/libdynprobe_node.so
[ -f "$built" ] || die "cargo zigbuild did not produce $built"
mkdir -p "$(dirname "$DEST")"
# Copy and rename: a process that has the old file mapped keeps a consistent one.
cp "$built" "$DEST.$$.tmp" && mv -f "$DEST.$$.tmp" "$DEST"
say "wrote $DEST ($(stat -c %s "$DEST") bytes)"
