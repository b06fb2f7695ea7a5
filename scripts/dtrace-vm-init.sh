#!/bin/sh
# PID 1 of the DTrace VM's initramfs (scripts/provision-dtrace-vm.sh packs it):
# load the 9p and CUSE modules, mount the sid root read-only and the share,
# give the root writable tmpfs where programs write, and hand over to the
# share's stage-2 script, which scripts/dtrace-vm writes.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m; do
  insmod "/modules/$m" || echo "dtrace-vm init: insmod $m failed"
done </modules/order
opts=trans=virtio,version=9p2000.L,msize=262144
if ! mount -t 9p -o "$opts,ro,cache=loose" root /newroot ||
   ! mount -t 9p -o "$opts" share /newroot/mnt; then
  echo "dtrace-vm init: cannot mount the 9p shares"
  echo o >/proc/sysrq-trigger
fi
for d in run tmp var/tmp root; do mount -t tmpfs tmpfs "/newroot/$d"; done
for d in dev proc sys; do mount -o move "/$d" "/newroot/$d"; done
# (on the console: what a boot that gives no result reached)
echo "dtrace-vm init: root mounted at $(cut -d' ' -f1 /proc/uptime) s"
exec switch_root /newroot /bin/sh /mnt/.stage2
