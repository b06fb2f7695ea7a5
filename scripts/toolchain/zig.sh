#!/usr/bin/env bash
# Install the cross toolchain the prebuilt addons are built with: zig and
# cargo-zigbuild, both pinned, from PyPI's wheels (ziglang; cargo-zigbuild's
# own, a prebuilt binary), in a venv in $DYNPROBE_TOOLCHAIN. Idempotent; fast
# when already there.
#
#   scripts/toolchain/zig.sh            installs if needed, prints `export PATH=...`
#   eval "$(scripts/toolchain/zig.sh)"  the same, and puts zig and cargo-zigbuild on PATH
#
# Chatter goes to stderr; stdout carries only the export line.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.0
STAMP="ziglang $ZIGLANG_VERSION cargo-zigbuild $CARGO_ZIGBUILD_VERSION"
venv=$DYNPROBE_TOOLCHAIN/zig-$ZIGLANG_VERSION-cargo-zigbuild-$CARGO_ZIGBUILD_VERSION

if ! ready "$venv/.dynprobe-ready" "$STAMP"; then
  mkdir -p "$DYNPROBE_TOOLCHAIN" || die "cannot create $DYNPROBE_TOOLCHAIN (run as root, or set DYNPROBE_TOOLCHAIN)"
  lock "$venv"
  if ! ready "$venv/.dynprobe-ready" "$STAMP"; then
    command -v python3 >/dev/null || die "python3 is missing: zig and cargo-zigbuild come from PyPI"
    step "installing ziglang $ZIGLANG_VERSION and cargo-zigbuild $CARGO_ZIGBUILD_VERSION into $venv"
    rm -rf "$venv"
    quiet python3 -m venv "$venv"
    retry "$venv/bin/pip" install --no-input -q --only-binary=:all: \
      "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
    # cargo-zigbuild looks for `zig` on PATH (or runs `python3 -m ziglang`): give it a real one.
    mkdir -p "$venv/zigbin"
    zigexe=$(find "$venv/lib" -path '*/ziglang/zig' -type f)
    zigexe=${zigexe%%$'\n'*}
    [ -x "$zigexe" ] || die "the ziglang wheel holds no zig executable (in $venv)"
    ln -sf "$zigexe" "$venv/zigbin/zig"
    ln -sf ../bin/cargo-zigbuild "$venv/zigbin/cargo-zigbuild"
    quiet "$venv/zigbin/zig" version
    quiet "$venv/zigbin/cargo-zigbuild" --version
    echo "$STAMP" >"$venv/.dynprobe-ready"
  fi
fi
# Only zigbin: the venv's bin would shadow python3 and pip.
echo "export PATH=\"$venv/zigbin:\$PATH\""
