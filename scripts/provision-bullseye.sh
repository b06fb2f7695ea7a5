#!/usr/bin/env bash
# Provision the oldest glibc root reachable here: Debian bullseye (glibc
# 2.31), debootstrap --variant=minbase, in /var/lib/dynprobe/bullseye
# (DYNPROBE_BULLSEYE_ROOT moves it), plus Node 18 and 20 from npm
# (scripts/provision-node-majors.sh). The tests run those nodes chrooted in
# the root, with the checkout and the node binaries bound in at their host
# paths (test/tracers/harness.js, runtime.root). Idempotent; fast when provisioned.
set -euo pipefail
ROOT=${DYNPROBE_BULLSEYE_ROOT:-/var/lib/dynprobe/bullseye}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DEBIAN_FRONTEND=noninteractive
say() { echo "provision-bullseye: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
case $ROOT in /?*) ;; *) die "DYNPROBE_BULLSEYE_ROOT must be an absolute path, not /" ;; esac
mkdir -p "$(dirname "$ROOT")"
LOG=$ROOT.log
quiet() { "$@" >>"$LOG" 2>&1 </dev/null || { tail -n 25 "$LOG" >&2; die "failed: $*  (log: $LOG)"; }; }

if [ ! -e "$ROOT/.dynprobe-ready" ]; then
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    quiet apt-get update -q
    quiet apt-get install -y -q --no-install-recommends debootstrap
  fi
  # A stale bind (a test killed halfway, a manual chroot) must never meet rm -rf.
  under() { findmnt -rn -o TARGET | { grep "^$ROOT/" || true; } | sort -r; }
  under | xargs -r umount -l
  [ -z "$(under)" ] || die "cannot unmount everything under $ROOT"
  # shellcheck source=lib/host-mirror.sh
  . "$HERE/lib/host-mirror.sh"
  mirror=${DYNPROBE_MIRROR:-$(host_mirror)}
  [ -n "$mirror" ] || die "no Debian mirror found in the host apt configuration"
  say "debootstrap bullseye from $mirror into $ROOT"
  : >"$LOG"
  rm -rf --one-file-system "$ROOT"
  # In a private mount namespace: debootstrap's own /proc mounts die with it.
  quiet unshare -m --propagation private debootstrap --variant=minbase bullseye "$ROOT" "$mirror"
  glibc=$(chroot "$ROOT" /usr/bin/ldd --version | head -n 1) || die "the bullseye root does not run"
  say "$glibc"
  touch "$ROOT/.dynprobe-ready"
fi
"$HERE/provision-node-majors.sh" 18 20 >/dev/null
echo "bullseye: $ROOT ($(chroot "$ROOT" /usr/bin/ldd --version | head -n 1 | sed 's/.* //' | sed 's/^/glibc /'))"
