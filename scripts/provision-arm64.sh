#!/usr/bin/env bash
# Provision what the arm64 checks run on (test/platform-arm64.test.js), in
# $DYNPROBE_ARM64:
#   - qemu-user (qemu-aarch64-static, registered with binfmt_misc) and
#     qemu-system-aarch64, from the host's Debian;
#   - root/: an arm64 Debian sid root with nodejs and bpftrace, for
#     qemu-user and as the virtual machine's root. Its packages are only
#     unpacked (mmdebstrap's extract variant), not configured: running dpkg
#     and the maintainer scripts under emulation took ten minutes, and the
#     two programs need none of it beyond the files done here by hand (the
#     users, the library cache);
#   - vmlinuz: Debian's arm64 kernel (BPF, uprobes, BTF and the PL011
#     console built in), and root.cpio, the root as an uncompressed
#     initramfs (without documentation), for the virtual machine under TCG.
# Idempotent; a provisioned machine takes well under a second.
#   scripts/provision-arm64.sh [--qemu-only]   (--qemu-only: just qemu-user)
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
need_root "it registers qemu-user with binfmt_misc"

BASE=$DYNPROBE_ARM64
ROOT=$BASE/root
# What the tests use, and the stamp of a root made for them.
PACKAGES=nodejs,bpftrace,ca-certificates
# Around them, the packages of a minbase root (essential, required, apt), as
# debootstrap made it: with fewer (only what the programs need), the Rust
# loading tests in the VM see a mapping more after an unload than before.
BASE_PACKAGES=('--include=?essential' '--include=?priority(required)' --include=apt)

case ${1:-} in
  --qemu-only) apt_need_for arm64-qemu ;;
  '') apt_need_for roots arm64 ;;
  *) die "usage: provision-arm64.sh [--qemu-only]" ;;
esac
QEMU_USER=$(command -v qemu-aarch64-static) || die "qemu-aarch64-static is missing"

# --- binfmt_misc: arm64 executables run through qemu-user. The F flag opens
# the interpreter now, so it works inside roots that do not contain it.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if ! grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
  # (two processes may race here: the loser finds it registered)
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU_USER"':F' \
    >/proc/sys/fs/binfmt_misc/register 2>/dev/null ||
    grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "cannot register qemu-aarch64 with binfmt_misc"
fi
[ "${1:-}" = --qemu-only ] && exit 0

lock "$BASE/root"
if [ -e "$BASE/vmlinuz" ] && [ -e "$BASE/root.cpio" ] && ready "$ROOT/.dynprobe-ready" "$PACKAGES"; then
  exit 0
fi

# --- the kernel: Debian's arm64 image, fetched while the root is made.
kernel() {
  local index image pkg file tmp=$BASE/kernel.tmp
  index=$(debian_index sid arm64)
  # A dependency of PACKAGE whose name starts with PREFIX.
  dep() { debian_field "$index" "$1" Depends | tr ',|' '\n' | awk -v p="$2" '{ sub(/ *\(.*/, ""); sub(/^ */, "") } index($0, p) == 1 && !n++'; }
  # linux-image-arm64 -> linux-image-VERSION-arm64 -> linux-binary-VERSION-arm64
  # (the image); older archives have the image in linux-image-VERSION-arm64.
  image=$(dep linux-image-arm64 linux-image-)
  [ -n "$image" ] || die "no linux-image-arm64 in the sid arm64 index"
  pkg=$(dep "$image" linux-binary-)
  pkg=${pkg:-$image}
  file=$(debian_field "$index" "$pkg" Filename)
  [ -n "$file" ] || die "no $pkg in the sid arm64 index"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  fetch "$(host_mirror)/$file" "$tmp/kernel.deb"
  # Only the image: the modules are not needed (what the tests use is built in).
  dpkg-deb --fsys-tarfile "$tmp/kernel.deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*' './usr/lib/modules/*/vmlinuz' 2>/dev/null || true
  local img
  for img in "$tmp"/boot/vmlinuz-* "$tmp"/usr/lib/modules/*/vmlinuz; do
    [ -s "$img" ] || continue
    cp "$img" "$BASE/vmlinuz.tmp"
    basename "$file" >"$BASE/kernel-package"
    mv "$BASE/vmlinuz.tmp" "$BASE/vmlinuz"
    rm -rf "$tmp"
    return 0
  done
  die "no vmlinuz in $file"
}
kernel_pid=
if [ ! -s "$BASE/vmlinuz" ]; then
  step "fetching Debian's arm64 kernel"
  kernel &
  kernel_pid=$!
  trap 'kill "$kernel_pid" 2>/dev/null || true' EXIT
fi

# --- the root
if ! ready "$ROOT/.dynprobe-ready" "$PACKAGES"; then
  rm -f "$BASE/root.cpio"
  step "unpacking arm64 sid with $PACKAGES into $ROOT (mmdebstrap, extract)"
  mmdebstrap_root sid "$ROOT" --variant=extract --architectures=arm64 "${BASE_PACKAGES[@]}" --include="$PACKAGES"
  step "setting up $ROOT"
  # What the maintainer scripts would have made that the programs use.
  for f in passwd group; do
    [ -e "$ROOT/etc/$f" ] || cp "$ROOT/usr/share/base-passwd/$f.master" "$ROOT/etc/$f"
  done
  [ -e "$ROOT/bin/sh" ] || ln -s dash "$ROOT/usr/bin/sh"
  quiet in_root "$ROOT" /sbin/ldconfig
  quiet in_root "$ROOT" node --version
  quiet in_root "$ROOT" bpftrace --version
  echo "$PACKAGES" >"$ROOT/.dynprobe-ready"
fi

if [ -n "$kernel_pid" ]; then
  wait "$kernel_pid" || die "fetching the kernel failed (see above)"
  trap - EXIT
fi

# --- the root as an initramfs (the VM's / is a tmpfs holding all of it)
if [ ! -s "$BASE/root.cpio" ]; then
  step "packing $ROOT into $BASE/root.cpio"
  (cd "$ROOT" && find . -xdev \( -path ./proc/\* -o -path ./sys/\* -o -path ./dev/\* -o -path ./var/cache/apt/\* \
    -o -path ./var/lib/apt/lists/\* -o -path ./usr/share/doc/\* -o -path ./usr/share/man/\* -o -path ./usr/share/info/\* \
    -o -path ./usr/share/locale/\* -o -path ./usr/share/lintian/\* \) -prune -o -print0 |
    cpio --null -o -H newc --quiet) >"$BASE/root.cpio.tmp"
  mv "$BASE/root.cpio.tmp" "$BASE/root.cpio"
fi
say "arm64 root: nodejs $(first_line in_root "$ROOT" node --version), $(first_line in_root "$ROOT" bpftrace --version);" \
  "kernel $(cat "$BASE/kernel-package"); root.cpio $(du -m "$BASE/root.cpio" | cut -f1) MB"
