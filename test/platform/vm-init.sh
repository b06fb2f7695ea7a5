#!/bin/sh
# PID 1 of the arm64 virtual machine (test/platform/arm64-vm.js): the root
# is the initramfs (the arm64 Debian root plus /dynprobe). Runs the basic
# tracer cases under the machine's bpftrace and the Rust test binaries,
# printing @@ markers the host parses, and powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TMPDIR=/tmp
# Everything here is emulated (TCG) and several times slower: the tests'
# bounds on waits for a tracer are stretched by this factor.
export DYNPROBE_TEST_PATIENCE=5
# The loading tests' leak check: 25 000 load/unload cycles here, 100 000 on
# the host (each costs ~2.5 ms under TCG, ~40 us on the host). An RSS growth
# of 84 bytes a cycle still fails it; its counts of descriptors and mappings
# are exact whatever the number.
export DYNPROBE_LEAK_CYCLES=25000
# The host's cache paths (test/platform/arm64-vm.js writes them).
# shellcheck source=/dev/null
[ -f /dynprobe/env ] && . /dynprobe/env
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mkdir -p /dev/shm /dev/pts && mount -t tmpfs tmpfs /dev/shm
# devtmpfs has no /dev/fd, which bpftrace 0.27 uses.
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin; ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs tmpfs /tmp
# shellcheck disable=SC3045 # (dash has it)
ulimit -l unlimited 2>/dev/null
# bpftrace reads the kernel's types from a file of the few it needs to
# trace USDT probes (test/platform/usdt-btf.js says why); should that fail,
# from the kernel's whole BTF, as it would by default.
if btf=$(node /dynprobe/pkg/test/platform/usdt-btf.js /tmp/usdt.btf 2>&1); then
  export BPFTRACE_BTF=/tmp/usdt.btf
  btf="bpftrace's BTF: $btf"
else
  btf="bpftrace's BTF: the kernel's whole (test/platform/usdt-btf.js failed: $btf)"
fi
echo "@@VM-UP $(uname -m) $(uname -r) $(node --version) $(bpftrace --version 2>&1); $btf"
# Two lanes, one per vCPU: the tracers' lane runs the tracer cases, then the
# Rust semaphore test (it attaches bpftrace too: tracers go one at a time);
# the other lane runs the other Rust test binaries, which attach no tracer
# (the two lanes take about as long: cases 190-200 s + semaphore 120-140 s,
# against 330-360 s). A Rust
# binary's output goes to a file, printed whole once both lanes are done, so
# that the console's lines never mix.
mkdir -p /tmp/rust
rust_test() {
  "$1" --test-threads=1 --color never </dev/null >"/tmp/rust/${1##*/}" 2>&1
  echo $? >"/tmp/rust/${1##*/}.status"
}
tracer_lane="/dynprobe/tests/dynprobe_semaphore"
(
  for t in /dynprobe/tests/*; do
    case " $tracer_lane " in *" $t "*) continue ;; esac
    [ -x "$t" ] && rust_test "$t"
  done
) &
other_lane=$!
(cd /dynprobe/pkg && node test/platform/vm-cases.js </dev/null)
for t in $tracer_lane; do
  [ -x "$t" ] && rust_test "$t"
done
wait "$other_lane"
for t in /dynprobe/tests/*; do
  [ -x "$t" ] || continue
  echo "@@RUST-BEGIN ${t##*/}"
  cat "/tmp/rust/${t##*/}"
  echo "@@RUST-END ${t##*/} $(cat "/tmp/rust/${t##*/}.status" 2>/dev/null || echo 127)"
done
echo "@@VM-DONE"
echo o >/proc/sysrq-trigger
sleep 30
