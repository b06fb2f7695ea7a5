#!/usr/bin/env bash
# Builds build/prebuilt/linux-arm64-musl/dynprobe.node: the addon for arm64
# Linux with musl (Alpine), stripped. No musl std is published where this
# machine can reach, so std is built from Debian sid's rust-src
# (-Zbuild-std, allowed on stable rustc by RUSTC_BOOTSTRAP); zig brings musl
# and the linker. Dynamically linked against libc.so (-crt-static): a Node
# addon is loaded into a process that already has its libc.
# As root; installs its toolchain on first use (scripts/toolchain/).
set -euo pipefail
# shellcheck source=../toolchain/prebuilt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../toolchain/prebuilt.sh"
build_prebuilt linux-arm64-musl aarch64-unknown-linux-musl aarch64-unknown-linux-musl AArch64 musl \
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C target-feature=-crt-static" -Zbuild-std=std,panic_unwind
