#!/usr/bin/env bash
# Provision the tracers dynprobe is tested against (see
# docs/platforms.md): host bpftrace 0.17 + gdb, and
# a Debian sid root holding Oracle DTrace 2.0.7 and bpftrace 0.27, run through
# scripts/dtrace and scripts/bpftrace-sid. Idempotent; fast when provisioned.
set -euo pipefail

ROOT=${DYNPROBE_SID_ROOT:-/var/lib/dynprobe/sid}
LIBDIR=${DYNPROBE_DTRACE_LIBDIR:-/var/lib/dynprobe/dtrace-libdir}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG=$(dirname "$ROOT")/provision.log
export DEBIAN_FRONTEND=noninteractive
say() { echo "provision-tracers: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
case $ROOT in /?*) ;; *) die "DYNPROBE_SID_ROOT must be an absolute path, not /" ;; esac
mkdir -p "$(dirname "$ROOT")"

# Run a step with its chatter in $LOG; show the tail only if it fails.
quiet() { "$@" >>"$LOG" 2>&1 || { tail -n 25 "$LOG" >&2; die "failed: $*  (log: $LOG)"; }; }

# --- host packages (dpkg -s also succeeds for removed-but-configured packages)
missing=()
for p in bpftrace gdb debootstrap binutils-aarch64-linux-gnu gcc systemtap-sdt-dev; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  quiet apt-get update -q
  quiet apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- tracefs and debugfs (DTrace hard-codes /sys/kernel/debug/tracing)
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
[ -e /sys/kernel/debug/tracing/uprobe_events ] || die "/sys/kernel/debug/tracing is not usable"

# host_mirror: the mirror the host's apt uses; in_root: run a command in ROOT.
# shellcheck source=lib/host-mirror.sh
. "$HERE/lib/host-mirror.sh"
# shellcheck source=lib/in-root.sh
. "$HERE/lib/in-root.sh"

# --- the sid root; markers make a run that died halfway resumable
if [ ! -e "$ROOT/.dynprobe-ready" ]; then
  # A stale bind (e.g. from a manual chroot) must never meet rm -rf: detach.
  under() { findmnt -rn -o TARGET | { grep "^$ROOT/" || true; } | sort -r; }
  under | xargs -r umount -l
  [ -z "$(under)" ] || die "cannot unmount everything under $ROOT"
  : >"$LOG"
  if [ ! -e "$ROOT/.dynprobe-debootstrapped" ]; then
    mirror=${DYNPROBE_MIRROR:-$(host_mirror)}
    [ -n "$mirror" ] || die "no Debian mirror found in the host apt configuration"
    say "debootstrap sid from $mirror into $ROOT"
    rm -rf --one-file-system "$ROOT"
    # (its own /proc, /sys mounts in the target die with the namespace)
    quiet unshare -m --propagation private debootstrap --variant=minbase sid "$ROOT" "$mirror"
    touch "$ROOT/.dynprobe-debootstrapped"
  fi
  # The mirror's sid Release file is past its Valid-Until date.
  echo 'Acquire::Check-Valid-Until "false";' >"$ROOT/etc/apt/apt.conf.d/99dynprobe"
  printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"  # start no services
  chmod +x "$ROOT/usr/sbin/policy-rc.d"
  say "installing dtrace and bpftrace in $ROOT"
  quiet in_root dpkg --configure -a
  quiet in_root apt-get update -q
  quiet in_root apt-get install -y -q --no-install-recommends dtrace bpftrace
  quiet in_root apt-get clean
  touch "$ROOT/.dynprobe-ready"
fi

# --- patched D library dir: io.d reads vmlinux`major_names, which kallsyms
# does not export here, so every dtrace command would fail to compile it.
src=$ROOT/usr/lib/x86_64-linux-gnu/dtrace
sum=$(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ "$(cat "$LIBDIR/.source-sum" 2>/dev/null)" != "$sum" ]; then
  tmp=$LIBDIR.tmp.$$
  rm -rf "$LIBDIR".tmp.*; cp -a "$src" "$tmp"
  # The expression spans lines (and old kernels' index nests brackets):
  # stringof(((struct blk_major_name **)&vmlinux`major_names)[...]->name)
  find "$tmp" -name io.d -exec perl -0pi -e \
    's/stringof\(\(\(struct blk_major_name \*\*\)&vmlinux`major_names\)\[(?:[^][]|\[[^]]*\])*\]\s*->name\)/"unknown"/g' {} +
  ! grep -rq 'vmlinux`major_names' "$tmp" || die "could not patch io.d in $src"
  echo "$sum" >"$tmp/.source-sum"
  rm -rf "$LIBDIR"; mv "$tmp" "$LIBDIR"
fi

echo "tracers: host $(bpftrace --version 2>&1 | head -1); sid $("$HERE/bpftrace-sid" --version 2>&1 | head -1);" \
  "$("$HERE/dtrace" -V 2>&1 | head -1) (dtrace $(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Version}' dtrace))"
