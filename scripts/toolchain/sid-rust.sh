#!/usr/bin/env bash
# Install, in the Debian sid root that scripts/provision-tracers.sh makes
# ($DYNPROBE_SID_ROOT), the Rust toolchain the arm64 and musl builds use:
# sid's rustc and cargo, the aarch64 glibc std (libstd-rust-dev:arm64) and
# the std sources (rust-src, for -Zbuild-std on musl, which has no published
# std). The tracer packages already there are left as they are: only
# packages are added. Idempotent; a marker makes it instant once done.
# Prints the rustc version on success.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
need_root "it installs packages into $DYNPROBE_SID_ROOT"
ROOT=$DYNPROBE_SID_ROOT
PACKAGES=(rustc cargo rust-src libstd-rust-dev:arm64 ca-certificates)
MARKER=$ROOT/.dynprobe-rust-ready

[ -e "$ROOT/.dynprobe-ready" ] || bash "$DP_SCRIPTS/provision-tracers.sh" >&2

if ! ready "$MARKER" "${PACKAGES[*]}"; then
  # One apt in the root at a time.
  lock "$ROOT/.dynprobe-apt"
  if ! ready "$MARKER" "${PACKAGES[*]}"; then
    grep -qx arm64 "$ROOT/var/lib/dpkg/arch" 2>/dev/null || quiet in_root "$ROOT" dpkg --add-architecture arm64
    step "installing ${PACKAGES[*]} in $ROOT"
    retry in_root "$ROOT" apt-get -q -o Acquire::Retries=2 update
    retry in_root "$ROOT" apt-get -q -o Acquire::Retries=2 -o DPkg::Options::=--force-unsafe-io \
      install -y --no-install-recommends "${PACKAGES[@]}"
    quiet in_root "$ROOT" apt-get clean
    quiet in_root "$ROOT" rustc --print sysroot
    [ -d "$ROOT/usr/lib/rustlib/aarch64-unknown-linux-gnu/lib" ] || die "no aarch64 std in $ROOT/usr/lib/rustlib"
    [ -e "$ROOT/usr/lib/rustlib/src/rust/library/Cargo.lock" ] || die "rust-src is not at $ROOT/usr/lib/rustlib/src/rust"
    echo "${PACKAGES[*]}" >"$MARKER"
  fi
fi
in_root "$ROOT" rustc --version
