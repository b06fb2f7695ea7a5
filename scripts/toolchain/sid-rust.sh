#!/usr/bin/env bash
# Install, in the Debian sid root that scripts/provision-tracers.sh made
# (/var/lib/dynprobe/sid), the Rust toolchain the arm64 and musl builds use:
# sid's rustc and cargo, the aarch64 glibc std (libstd-rust-dev:arm64) and
# the std sources (rust-src, for -Zbuild-std on musl, which has no published
# std). The tracer packages already there are left as they are: only
# packages are added. Idempotent; a marker makes it instant once done.
# Prints the rustc version on success.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${DYNPROBE_SID_ROOT:-/var/lib/dynprobe/sid}
LOG=$(dirname "$ROOT")/sid-rust.log
export DEBIAN_FRONTEND=noninteractive
say() { echo "sid-rust: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (installs packages into $ROOT)"
PACKAGES=(rustc cargo rust-src libstd-rust-dev:arm64 ca-certificates)
MARKER=$ROOT/.dynprobe-rust-ready

quiet() { "$@" >>"$LOG" 2>&1 || { tail -n 25 "$LOG" >&2; die "failed: $*  (log: $LOG)"; }; }
# shellcheck source=../lib/in-root.sh
. "$HERE/../lib/in-root.sh"

if [ ! -e "$ROOT/.dynprobe-ready" ]; then
  say "the sid root is not provisioned; running scripts/provision-tracers.sh"
  bash "$HERE/../provision-tracers.sh" </dev/null >&2
fi

if [ "$(cat "$MARKER" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
  : >"$LOG"
  # Serialise with any other apt run in the same root.
  exec 9>"$ROOT/.dynprobe-apt.lock"; flock 9
  grep -qx arm64 "$ROOT/var/lib/dpkg/arch" 2>/dev/null || quiet in_root dpkg --add-architecture arm64
  say "installing ${PACKAGES[*]} in $ROOT (first time: a few minutes)"
  quiet in_root apt-get update -q
  quiet in_root apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
  quiet in_root apt-get clean
  in_root rustc --print sysroot >/dev/null || die "rustc does not run in $ROOT"
  [ -d "$ROOT/usr/lib/rustlib/aarch64-unknown-linux-gnu/lib" ] || die "no aarch64 std in $ROOT/usr/lib/rustlib"
  [ -e "$ROOT/usr/lib/rustlib/src/rust/library/Cargo.lock" ] || die "rust-src is not at $ROOT/usr/lib/rustlib/src/rust"
  echo "${PACKAGES[*]}" >"$MARKER"
fi
in_root rustc --version
