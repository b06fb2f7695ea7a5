#!/usr/bin/env bash
# Builds build/prebuilt/linux-arm64-musl/dynprobe.node: the addon for
# arm64 Linux with musl (Alpine), stripped: sid's rustc with std
# built from source (-Zbuild-std), zig bringing musl and the linker.
#   scripts/build/linux-arm64-musl.sh [TARGET...]
# builds the other TARGETs of the same kind (scripts/toolchain/prebuilt.sh)
# in the same cargo run. As root; the toolchain is made on first use
# (scripts/toolchain/).
set -euo pipefail
# shellcheck source=../toolchain/prebuilt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../toolchain/prebuilt.sh"
build_prebuilt linux-arm64-musl "$@"
