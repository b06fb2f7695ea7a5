#!/usr/bin/env bash
# Provision the tracers dynprobe is tested against (docs/platforms.md): host
# bpftrace 0.17 and gdb, and a Debian sid root ($DYNPROBE_SID_ROOT) holding
# Oracle DTrace 2.0.7 and bpftrace 0.27, which scripts/dtrace and
# scripts/bpftrace-sid run.
# The DTrace VM boots into the same root (scripts/provision-dtrace-vm.sh).
# Idempotent; a marker makes a provisioned machine take well under a second.
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
need_root "it mounts tracefs and debootstraps a root"

ROOT=$DYNPROBE_SID_ROOT
LIBDIR=$DYNPROBE_DTRACE_LIBDIR
PACKAGES=dtrace,bpftrace

# --- tracefs and debugfs (DTrace hard-codes /sys/kernel/debug/tracing)
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
[ -e /sys/kernel/debug/tracing/uprobe_events ] || die "/sys/kernel/debug/tracing is not usable"

# --- the sid root
if [ ! -e "$ROOT/.dynprobe-ready" ]; then
  apt_need_for roots
  lock "$ROOT"
  if [ ! -e "$ROOT/.dynprobe-ready" ]; then
    step "making the sid root with $PACKAGES in $ROOT (mmdebstrap)"
    # policy-rc.d: no package starts a service.
    # shellcheck disable=SC2016 # the hooks' $1 (the root) is mmdebstrap's
    mmdebstrap_root sid "$ROOT" --variant=minbase --include="$PACKAGES" \
      --dpkgopt=force-unsafe-io \
      --setup-hook='mkdir -p "$1/usr/sbin" && printf "#!/bin/sh\nexit 101\n" >"$1/usr/sbin/policy-rc.d" && chmod +x "$1/usr/sbin/policy-rc.d"' \
      --customize-hook='echo "Acquire::Check-Valid-Until \"false\";" >"$1/etc/apt/apt.conf.d/99dynprobe"'
    [ -x "$ROOT/usr/sbin/dtrace" ] || die "no dtrace in $ROOT after mmdebstrap"
    echo "$PACKAGES" >"$ROOT/.dynprobe-ready"
  fi
fi

# The host's tracers and what the tests build probes with.
apt_need_for tracers

# --- patched D library dir: io.d reads vmlinux`major_names, which kallsyms
# does not export here, so every dtrace command would fail to compile it.
# With it, the library scripts/dtrace and scripts/dtrace-vm preload into
# DTrace (scripts/lib/dtrace-keep-ctf.c says why).
src=$ROOT/usr/lib/x86_64-linux-gnu/dtrace
keep_ctf=$DP_SCRIPTS/lib/dtrace-keep-ctf.c
sum=$( (cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum <"$keep_ctf") | sha256sum)
sum=${sum%% *}
if ! ready "$LIBDIR/.source-sum" "$sum"; then
  lock "$LIBDIR"
  tmp=$LIBDIR.tmp.$$
  rm -rf "$LIBDIR".tmp.*
  cp -a "$src" "$tmp"
  # The expression spans lines (and old kernels' index nests brackets):
  # stringof(((struct blk_major_name **)&vmlinux`major_names)[...]->name)
  find "$tmp" -name io.d -exec perl -0pi -e \
    's/stringof\(\(\(struct blk_major_name \*\*\)&vmlinux`major_names\)\[(?:[^][]|\[[^]]*\])*\]\s*->name\)/"unknown"/g' {} +
  ! grep -rq 'vmlinux`major_names' "$tmp" || die "could not patch io.d in $src"
  quiet gcc -shared -fPIC -O2 -nostdlib -o "$tmp/$DP_DTRACE_PRELOAD" "$keep_ctf"
  echo "$sum" >"$tmp/.source-sum"
  rm -rf "$LIBDIR"
  mv "$tmp" "$LIBDIR"
fi

echo "tracers: host $(first_line bpftrace --version 2>&1); sid $(first_line "$DP_SCRIPTS/bpftrace-sid" --version 2>&1);" \
  "$(first_line "$DP_SCRIPTS/dtrace" -V 2>&1) (dtrace $(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Version}' dtrace))"
