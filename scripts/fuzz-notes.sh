#!/usr/bin/env bash
# Fuzzes the stapsdt note reader (dynprobe-format's read_stapsdt) for at least
# 10 million inputs: arbitrary bytes, crafted ELF structures and mutations of
# valid images (the image builder's, for x86-64 nop5/nop10 and aarch64, plus
# sys/sdt.h objects compiled here when gcc and systemtap-sdt-dev are
# installed). Stops at the first panic, hang or over-limit allocation, and
# prints how to replay it. Not part of `npm test`: it takes minutes.
#
#   scripts/fuzz-notes.sh            # 10,000,000 inputs, a new seed
#   FUZZ_INPUTS=20000000 FUZZ_JOBS=2 FUZZ_SEED=7 scripts/fuzz-notes.sh
set -euo pipefail
cd "$(dirname "$0")/.."

inputs=${FUZZ_INPUTS:-10000000}
jobs=${FUZZ_JOBS:-1}
seed=${FUZZ_SEED:-$(date +%s)}
# Kept after the run: a finding replays with the same seed files.
work=target/fuzz-notes
crashes=${FUZZ_CRASH_DIR:-$work/crashes}
mkdir -p "$work"

cargo build --release --quiet -p dynprobe-format --example fuzz_notes
driver=target/release/examples/fuzz_notes

seeds=()
if command -v gcc >/dev/null && echo '#include <sys/sdt.h>' | gcc -E -x c - >/dev/null 2>&1; then
  cat >"$work/plain.c" <<'C'
#include <sys/sdt.h>
#include <stdint.h>
int sink(int a, const char *s, long l, double d, uint8_t b, int16_t h) {
  STAP_PROBE(app, none);
  STAP_PROBE1(app, one, a);
  STAP_PROBE2(app, two, a, s);
  STAP_PROBE3(app, three, l, b, h);
  STAP_PROBE4(app, float_arg, d, a, s, l);
  STAP_PROBE6(app, six, a, s, l, b, h, a + 1);
  STAP_PROBE12(app, twelve, a, a, a, a, l, l, l, l, b, b, h, h);
  return a + (int)l;
}
C
  cat >"$work/guarded.c" <<'C'
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
unsigned short app_guarded_semaphore __attribute__((section(".probes"), used));
void guarded(long l) {
  if (app_guarded_semaphore)
    STAP_PROBE1(app, guarded, l);
}
C
  for opt in -O0 -O2; do
    gcc $opt -c -fPIC -o "$work/plain$opt.o" "$work/plain.c"
    gcc $opt -shared -fPIC -o "$work/sdt$opt.so" "$work/plain.c" "$work/guarded.c"
    seeds+=("$work/plain$opt.o" "$work/sdt$opt.so")
  done
  if gcc -m32 -c -o "$work/plain-m32.o" "$work/plain.c" 2>/dev/null; then
    seeds+=("$work/plain-m32.o")
  fi
  echo "fuzz-notes: sys/sdt.h seeds: ${#seeds[@]} objects"
else
  echo "fuzz-notes: !!! no gcc or no sys/sdt.h (apt-get install gcc systemtap-sdt-dev): builder images only"
fi

echo "fuzz-notes: seed $seed; a finding replays with: $driver --seed $seed --replay INDEX ${seeds[*]}"
start=$(date +%s)
"$driver" --inputs "$inputs" --jobs "$jobs" --seed "$seed" \
  --crash-dir "$crashes" "${seeds[@]}"
echo "fuzz-notes: done in $(( $(date +%s) - start )) s"
