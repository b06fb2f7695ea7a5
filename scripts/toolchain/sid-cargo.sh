#!/usr/bin/env bash
# Runs a command (cargo, cargo zigbuild) with Debian sid's Rust toolchain:
# chrooted in the root scripts/toolchain/sid-rust.sh makes ($DYNPROBE_RUST_ROOT),
# with zig and cargo-zigbuild (scripts/toolchain/zig.sh) on PATH, and this
# checkout bound at its own path, so paths in and out are the host's.
#
#   scripts/toolchain/sid-cargo.sh [NAME=VALUE...] COMMAND [ARGS...]
#
# Cargo's home and target directory are caches on the machine
# ($DYNPROBE_CACHE/cargo-sid, $DYNPROBE_SID_TARGET_DIR): a second build
# recompiles only what changed. Binds live in a private mount namespace.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
need_root "it chroots into $DYNPROBE_RUST_ROOT"
SRC=$(dirname "$DP_SCRIPTS")
ROOT=$DYNPROBE_RUST_ROOT

bash "$DP_SCRIPTS/toolchain/sid-rust.sh" >/dev/null
zig_export=$(bash "$DP_SCRIPTS/toolchain/zig.sh")
# zig.sh prints `export PATH="ZIGDIR:$PATH"`: keep the directory it adds.
ZIGPATH=${zig_export#export PATH=\"}
ZIGPATH=${ZIGPATH%%:*}

HOME_DIR=$DYNPROBE_CACHE/cargo-sid
TARGET_DIR=$DYNPROBE_SID_TARGET_DIR
mkdir -p "$HOME_DIR" "$TARGET_DIR"
envs=()
while [ $# -gt 0 ] && [[ $1 == [A-Za-z_]*=* ]]; do
  envs+=("$1")
  shift
done
[ $# -gt 0 ] || die "usage: sid-cargo.sh [NAME=VALUE...] COMMAND [ARGS...]"

# shellcheck disable=SC2016 # expanded by the inner shells
exec unshare -m --propagation private bash -c '
  set -e; r=$1; shift; n=$1; shift
  binds=("${@:1:$n}"); shift "$n"
  for d in proc sys dev; do mount --rbind "/$d" "$r/$d"; done
  for b in "${binds[@]}"; do mkdir -p "$r$b"; mount --bind "$b" "$r$b"; done
  # The host'"'"'s CA bundle: it may trust a proxy that the sid root does not.
  mount --bind /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
  exec chroot "$r" "$@"' sid-cargo "$ROOT" 4 "$SRC" "$DYNPROBE_TOOLCHAIN" "$HOME_DIR" "$TARGET_DIR" \
  /bin/sh -c 'cd "$0" && exec "$@"' "$SRC" \
  /usr/bin/env -i PATH="$ZIGPATH:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/root LC_ALL=C.UTF-8 \
  CARGO_HOME="$HOME_DIR" CARGO_TARGET_DIR="$TARGET_DIR" CARGO_TERM_COLOR=never CARGO_NET_RETRY=5 \
  "${envs[@]}" "$@"
