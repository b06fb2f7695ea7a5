#!/usr/bin/env bash
# Make the root that the arm64 and musl builds run in ($DYNPROBE_RUST_ROOT):
# Debian sid's rustc and cargo, the aarch64 glibc std (libstd-rust-dev:arm64)
# and the std sources (rust-src, for -Zbuild-std on musl, which has no
# published std). Its packages are only unpacked (mmdebstrap's extract
# variant): the compilers need no maintainer script, and it is ready in well
# under a minute, with no other step before it but mmdebstrap's install.
# scripts/toolchain/sid-cargo.sh runs commands in it. Idempotent; a marker
# makes it instant once done. Prints the rustc version on success.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
need_root "it makes a root file system"
ROOT=$DYNPROBE_RUST_ROOT
PACKAGES=rustc,cargo,rust-src,libstd-rust-dev:arm64
# What running them in the root needs besides: sid-cargo.sh's shell and env,
# the shell of cargo-zigbuild's linker scripts.
BASE_PACKAGES=base-files,libc-bin,dash,coreutils

if ! ready "$ROOT/.dynprobe-ready" "$PACKAGES"; then
  apt_need_for roots
  lock "$ROOT"
  if ! ready "$ROOT/.dynprobe-ready" "$PACKAGES"; then
    step "unpacking sid's $PACKAGES into $ROOT (mmdebstrap, extract)"
    mmdebstrap_root sid "$ROOT" --variant=extract --architectures=amd64,arm64 --include="$BASE_PACKAGES,$PACKAGES"
    step "setting up $ROOT"
    [ -e "$ROOT/bin/sh" ] || ln -s dash "$ROOT/usr/bin/sh"
    # The link gcc's alternatives would make: cargo links the build scripts
    # and proc-macros (host code) with cc.
    [ -e "$ROOT/usr/bin/cc" ] || ln -s gcc "$ROOT/usr/bin/cc"
    # sid-cargo.sh binds the host's CA bundle here.
    mkdir -p "$ROOT/etc/ssl/certs"
    touch "$ROOT/etc/ssl/certs/ca-certificates.crt"
    quiet in_root "$ROOT" ldconfig
    quiet in_root "$ROOT" rustc --print sysroot
    quiet in_root "$ROOT" cargo --version
    quiet in_root "$ROOT" cc --version
    [ -d "$ROOT/usr/lib/rustlib/aarch64-unknown-linux-gnu/lib" ] || die "no aarch64 std in $ROOT/usr/lib/rustlib"
    [ -e "$ROOT/usr/lib/rustlib/src/rust/library/Cargo.lock" ] || die "rust-src is not at $ROOT/usr/lib/rustlib/src/rust"
    echo "$PACKAGES" >"$ROOT/.dynprobe-ready"
  fi
fi
in_root "$ROOT" rustc --version
