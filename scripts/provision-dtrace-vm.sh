#!/usr/bin/env bash
# Provision the virtual machine that runs Oracle DTrace 2.0.7 with its helper
# daemon, dtprobed (see docs/dtrace-registration.md): this
# machine's kernel has no CUSE, so dtprobed cannot serve /dev/dtrace/helper
# here. The guest is Debian's 6.12 kernel (CUSE as a module, uprobes, BPF,
# BTF) booted as an ELF vmlinux under TCG, a busybox initramfs that loads the
# 9p and CUSE modules, and the sid root that scripts/provision-tracers.sh
# makes, shared read-only over 9p (it is never written). scripts/dtrace-vm
# runs a script in it.
#
# Idempotent; a few seconds when cached. Runs as root, needs no stdin.
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
need_root "it reads the sid root, whose files keep their owners"
SID=$DYNPROBE_SID_ROOT
DIR=$DYNPROBE_DTRACE_VM

# The VM's files are rebuilt when this script or the guest's init changes.
STAMP=$(cat "${BASH_SOURCE[0]}" "$DP_SCRIPTS/dtrace-vm-init.sh" | sha256sum)
STAMP=${STAMP:0:16}
if ready "$DIR/.ready" "$STAMP" && [ -e "$SID/.dynprobe-ready" ] && command -v qemu-system-x86_64 >/dev/null; then
  exit 0
fi
t0=$SECONDS

# --- the sid root with dtrace and dtprobed
if [ ! -e "$SID/.dynprobe-ready" ]; then
  step "making the sid root (scripts/provision-tracers.sh)"
  bash "$DP_SCRIPTS/provision-tracers.sh"
fi
[ -x "$SID/usr/sbin/dtprobed" ] || die "$SID has no dtprobed"

apt_need_for dtrace-vm
lock "$DIR/vm"

# --- the kernel: the newest Debian 6.12 generic amd64 image the host's apt knows
kernel_package() {
  apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb[0-9]+-amd64-unsigned$' | awk '{print $1}' | sort -V | tail -n 1
}
pkg=$(kernel_package)
if [ -z "$pkg" ]; then
  apt_get update
  pkg=$(kernel_package)
fi
[ -n "$pkg" ] || die "no linux-image-6.12.*-amd64-unsigned package in the host's apt sources"
step "unpacking the kernel package $pkg"
work=$(mktemp -d "$DIR/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$DIR/cache"
debs=("$DIR/cache/${pkg}"_*.deb)
if [ ! -e "${debs[0]}" ]; then
  rm -f "$DIR"/cache/*.deb
  (cd "$DIR/cache" && apt_get download "$pkg")
  debs=("$DIR/cache/${pkg}"_*.deb)
fi
quiet dpkg-deb -x "${debs[0]}" "$work/k"
kvers=("$work"/k/lib/modules/*)
[ -d "${kvers[0]}" ] || die "no modules in $pkg"
kver=${kvers[0]##*/}

# vmlinux: the ELF kernel inside the bzImage, which QEMU boots directly (PVH),
# skipping the decompressor, which is slow under TCG.
extract_vmlinux() {
  local img=$1 out=$2 magic cmd off
  for magic in 'fd377a585a00:xz -dc' '28b52ffd:zstd -dcq' '1f8b0800:gzip -dc'; do
    cmd=${magic#*:}; magic=${magic%%:*}
    for off in $(od -An -v -tx1 -w1 "$img" | tr -d ' \n' | grep -ob "$magic" | cut -d: -f1); do
      [ $((off % 2)) = 0 ] || continue
      tail -c +$((off / 2 + 1)) "$img" | $cmd >"$out" 2>/dev/null || true
      [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] && return 0
    done
  done
  return 1
}
step "extracting the ELF kernel and packing the initramfs"
extract_vmlinux "$work/k/boot/vmlinuz-$kver" "$work/vmlinux" || die "cannot find the ELF kernel in vmlinuz-$kver"

# --- the initramfs: busybox, the modules (with their dependencies), /init
moddir=$work/k/lib/modules/$kver
ir=$work/initramfs
mkdir -p "$ir"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$ir/bin/busybox"
for a in sh mount umount mkdir insmod switch_root sleep cat echo ls ln poweroff; do ln -s busybox "$ir/bin/$a"; done
# The package ships no modules.dep (depmod makes it at install): read each
# module's dependencies from its own .modinfo and load the deepest first.
want="9p 9pnet_virtio cuse virtio_pci"
order=$work/order
: >"$order"
decompress() {
  case $1 in
    *.xz) xz -dc "$1" ;;
    *.zst) zstd -dcq "$1" ;;
    *) cat "$1" ;;
  esac
}
add_module() {
  local name=$1 path dep deps
  grep -qE "/${name//[_-]/[_-]}\.ko(\.[a-z]+)?$" "$moddir/modules.builtin" && return 0
  path=$(grep -m 1 -E "/${name//[_-]/[_-]}\.ko(\.[a-z]+)?$" "$moddir/modules.order") || true
  [ -n "$path" ] || die "module $name is neither built in nor in modules.order"
  grep -qxF "$path" "$order" && return 0
  local files=("$moddir/$path"*)
  path=${files[0]#"$moddir/"}
  deps=$(decompress "$moddir/$path" | tr '\0' '\n' | sed -n 's/^depends=//p')
  deps=${deps%%$'\n'*}
  for dep in ${deps//,/ }; do add_module "$dep"; done
  grep -qxF "$path" "$order" || echo "$path" >>"$order"
}
for m in $want; do add_module "$m"; done
while read -r path; do
  f=$(basename "$path")
  decompress "$moddir/$path" >"$ir/modules/${f%%.ko*}.ko"
  echo "${f%%.ko*}.ko" >>"$ir/modules/order"
done <"$order"
install -m 0755 "$DP_SCRIPTS/dtrace-vm-init.sh" "$ir/init"
( cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initramfs.gz" )

mv "$work/vmlinux" "$DIR/vmlinux"
mv "$work/initramfs.gz" "$DIR/initramfs.gz"
echo "$kver" >"$DIR/kernel-version"
echo "$STAMP" >"$DIR/.ready"
say "ready in $DIR (kernel $kver, $((SECONDS - t0)) s)"
