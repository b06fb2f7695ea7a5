#!/usr/bin/env bash
# Builds build/prebuilt/linux-arm64-gnu/dynprobe.node: the addon for
# arm64 Linux with glibc 2.17 or later, stripped: Debian sid's rustc with
# its aarch64 std, linked by zig against glibc 2.17's symbols (cargo-zigbuild).
#   scripts/build/linux-arm64-gnu.sh [TARGET...]
# builds the other TARGETs of the same kind (scripts/toolchain/prebuilt.sh)
# in the same cargo run. As root; the toolchain is made on first use
# (scripts/toolchain/).
set -euo pipefail
# shellcheck source=../toolchain/prebuilt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../toolchain/prebuilt.sh"
build_prebuilt linux-arm64-gnu "$@"
