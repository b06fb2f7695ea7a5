#!/usr/bin/env bash
# Provision what the arm64 checks run on (test/platform-arm64.test.js):
#   - qemu-user (qemu-aarch64-static, registered with binfmt_misc) and
#     qemu-system-aarch64, from the host's Debian;
#   - an arm64 Debian sid root with nodejs and bpftrace, made by debootstrap
#     (the second stage runs under qemu-user): /var/lib/dynprobe/arm64/root;
#   - Debian's arm64 kernel (BPF, uprobes, BTF and the PL011 console built in)
#     and the root as an uncompressed cpio initramfs, for an arm64 virtual
#     machine under TCG: /var/lib/dynprobe/arm64/{vmlinuz,root.cpio}.
# Idempotent; markers make a run that died halfway resume, and a provisioned
# machine takes well under a second. Run as root; needs no stdin.
#   scripts/provision-arm64.sh [--qemu-only]   (--qemu-only: just qemu-user)
set -euo pipefail

BASE=${DYNPROBE_ARM64:-/var/lib/dynprobe/arm64}
ROOT=$BASE/root
LOG=$BASE/provision.log
PACKAGES=nodejs,bpftrace,ca-certificates
export DEBIAN_FRONTEND=noninteractive
say() { echo "provision-arm64: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
case $BASE in /?*) ;; *) die "DYNPROBE_ARM64 must be an absolute path, not /" ;; esac
mkdir -p "$BASE"
exec </dev/null
quiet() { "$@" >>"$LOG" 2>&1 || { tail -n 25 "$LOG" >&2; die "failed: $*  (log: $LOG)"; }; }

# --- host packages
missing=()
for p in qemu-user-static qemu-system-arm debootstrap cpio; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  quiet apt-get -o DPkg::Lock::Timeout=600 update -q
  quiet apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi
QEMU_USER=$(command -v qemu-aarch64-static) || die "qemu-aarch64-static is missing"

# --- binfmt_misc: arm64 executables run through qemu-user. The F flag opens
# the interpreter now, so it works inside chroots that do not contain it.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if ! grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
  echo ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU_USER"':F' \
    >/proc/sys/fs/binfmt_misc/register
fi
[ "${1:-}" = --qemu-only ] && exit 0
# One provisioning of the root at a time.
exec 9>"$BASE/.lock"; flock 9

# Same mirror logic as provision-tracers.sh: the sid root's sources.
mirror() {
  local m=${DYNPROBE_MIRROR:-}
  [ -n "$m" ] || m=$(awk '$1 == "deb" { print $2; exit }' /var/lib/dynprobe/sid/etc/apt/sources.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}
in_root() {
  unshare -m --propagation private bash -c 'set -e; r=$1; shift
    for d in proc sys dev; do mount --rbind "/$d" "$r/$d"; done
    exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"' _ "$ROOT" "$@"
}

# --- the arm64 root
if [ "$(cat "$ROOT/.dynprobe-ready" 2>/dev/null)" != "$PACKAGES" ]; then
  under() { findmnt -rn -o TARGET | { grep "^$ROOT/" || true; } | sort -r; }
  under | xargs -r umount -l
  [ -z "$(under)" ] || die "cannot unmount everything under $ROOT"
  if [ "$(cat "$BASE/.debootstrapped" 2>/dev/null)" != "$PACKAGES" ]; then
    rm -f "$BASE/.debootstrapped" "$BASE/root.cpio"
    rm -rf --one-file-system "$ROOT"
    say "debootstrap arm64 sid ($PACKAGES) from $(mirror) into $ROOT (first time: about 5 minutes)"
    quiet debootstrap --arch=arm64 --foreign --variant=minbase --include="$PACKAGES" sid "$ROOT" "$(mirror)"
    quiet in_root /debootstrap/debootstrap --second-stage
    echo "$PACKAGES" >"$BASE/.debootstrapped"
  fi
  echo 'Acquire::Check-Valid-Until "false";' >"$ROOT/etc/apt/apt.conf.d/99dynprobe"
  in_root node --version >/dev/null || die "node does not run in $ROOT"
  in_root bpftrace --version >/dev/null || die "bpftrace does not run in $ROOT"
  rm -f "$BASE/root.cpio"
  echo "$PACKAGES" >"$ROOT/.dynprobe-ready"
fi

# --- the kernel: Debian's arm64 image from the same archive, unpacked here
if [ ! -s "$BASE/vmlinuz" ]; then
  say "fetching Debian's arm64 kernel"
  tmp=$BASE/kernel.tmp; rm -rf "$tmp"; mkdir -p "$tmp"
  m=$(mirror)
  quiet sh -c "curl -fsSL '$m/dists/sid/main/binary-arm64/Packages.xz' | xz -d >'$tmp/Packages'"
  # A field of a package in the index; the dependency names starting with $3.
  field() { awk -v RS= -v p="$1" -v f="$2:" '$1 == "Package:" && $2 == p' "$tmp/Packages" |
    awk -v f="$2:" '$1 == f { sub(/^[^:]*: */, ""); print; exit }'; }
  deps() { field "$1" Depends | tr ',|' '\n\n' | sed 's/ *(.*//; s/^ *//' | grep "^$2" | head -n 1; }
  # linux-image-arm64 -> linux-image-VERSION-arm64 -> linux-binary-VERSION-arm64
  # (the image); older archives have the image in linux-image-VERSION-arm64.
  image=$(deps linux-image-arm64 linux-image-)
  [ -n "$image" ] || die "no linux-image-arm64 in $m sid arm64"
  pkg=$(deps "$image" linux-binary-); pkg=${pkg:-$image}
  file=$(field "$pkg" Filename)
  [ -n "$file" ] || die "no $pkg in $m sid arm64"
  quiet curl -fsSL -o "$tmp/kernel.deb" "$m/$file"
  quiet dpkg-deb -x "$tmp/kernel.deb" "$tmp/x"
  img=$(ls "$tmp"/x/boot/vmlinuz-* "$tmp"/x/usr/lib/modules/*/vmlinuz 2>/dev/null | head -n 1 || true)
  [ -s "$img" ] || die "no vmlinuz in $file"
  cp "$img" "$BASE/vmlinuz.tmp"; basename "$file" >"$BASE/kernel-package"
  mv "$BASE/vmlinuz.tmp" "$BASE/vmlinuz"; rm -rf "$tmp"
fi

# --- the root as an initramfs (the VM's / is a tmpfs holding all of it)
if [ ! -s "$BASE/root.cpio" ]; then
  say "packing $ROOT into $BASE/root.cpio"
  (cd "$ROOT" && find . -xdev \( -path ./proc/\* -o -path ./sys/\* -o -path ./dev/\* -o -path ./var/cache/apt/\* -o -path ./var/lib/apt/lists/\* \) -prune -o -print0 |
    cpio --null -o -H newc --quiet) >"$BASE/root.cpio.tmp"
  mv "$BASE/root.cpio.tmp" "$BASE/root.cpio"
fi
ver() { dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Version}' "$1"; }
say "arm64 root: nodejs $(ver nodejs), bpftrace $(ver bpftrace); kernel $(cat "$BASE/kernel-package"); root.cpio $(du -m "$BASE/root.cpio" | cut -f1) MB"
