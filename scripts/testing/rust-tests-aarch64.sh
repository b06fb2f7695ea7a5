#!/usr/bin/env bash
# Builds the Rust crates' test binaries for aarch64 (release, no debug info),
# which test/platform-arm64.test.js runs in its arm64 virtual machines: Debian
# sid's Rust with cargo-zigbuild (scripts/toolchain/sid-cargo.sh), linked
# against glibc 2.28 (memfd_create's). `npm test` builds them in a job of
# its own as the tests start (scripts/test.js); the test builds again, which
# finds them fresh or waits on cargo's lock (docs/testing.md).
#   scripts/testing/rust-tests-aarch64.sh [CARGO ARGS...]   (as root)
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/../toolchain/sid-cargo.sh" CARGO_PROFILE_RELEASE_DEBUG=0 \
  cargo zigbuild --release --locked --quiet --tests -p dynprobe-format -p dynprobe \
  --target aarch64-unknown-linux-gnu.2.28 "$@"
