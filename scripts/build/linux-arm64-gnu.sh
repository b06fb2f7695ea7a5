#!/usr/bin/env bash
# Builds build/prebuilt/linux-arm64-gnu/dynprobe.node: the addon for arm64
# Linux with glibc 2.17 or later, stripped. Debian sid's rustc with its
# aarch64 std, linked by zig against glibc 2.17's symbols (cargo-zigbuild).
# As root; installs its toolchain on first use (scripts/toolchain/).
set -euo pipefail
# shellcheck source=../toolchain/prebuilt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../toolchain/prebuilt.sh"
build_prebuilt linux-arm64-gnu aarch64-unknown-linux-gnu aarch64-unknown-linux-gnu.2.17 AArch64 glibc
