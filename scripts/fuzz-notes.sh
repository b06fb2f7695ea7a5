#!/usr/bin/env bash
# Fuzzes the note reader (dynprobe-format's read_stapsdt: stapsdt notes and
# the declared-types records of .note.dynprobe) for at least 10 million inputs
# with each engine:
#  - driver: test/drivers/src/bin/fuzz_notes.rs (stable Rust):
#    arbitrary bytes, crafted ELF structures and mutations of valid images,
#    every input replayable from its seed and index;
#  - libfuzzer: the coverage-guided target crates/dynprobe-format/fuzz
#    (cargo-fuzz on a nightly toolchain; skipped, loudly, without them),
#    started from the driver's corpus.
# Seeds: the image builder's images (x86-64 nop5/nop10, aarch64) and
# sys/sdt.h objects compiled here when gcc and systemtap-sdt-dev are there.
# Stops at the first panic, hang (per-input time limit) or allocation past
# the per-input memory limit, and says how to replay it. Not part of
# `npm test`: it takes many minutes.
#
#   scripts/fuzz-notes.sh                 # both engines, 10,000,000 inputs each
#   FUZZ_ENGINE=driver FUZZ_INPUTS=20000000 FUZZ_JOBS=2 FUZZ_SEED=7 scripts/fuzz-notes.sh
set -euo pipefail
cd "$(dirname "$0")/.."

inputs=${FUZZ_INPUTS:-10000000}
engine=${FUZZ_ENGINE:-all} # all, driver or libfuzzer
jobs=${FUZZ_JOBS:-1}
seed=${FUZZ_SEED:-$(date +%s)}
# Kept after the run: a finding replays with the same seed files.
work=target/fuzz-notes
crashes=${FUZZ_CRASH_DIR:-$work/crashes}
mkdir -p "$work"

cargo build --release --quiet -p dynprobe-test-drivers --bin fuzz_notes
driver=target/release/fuzz_notes

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

run_driver() {
  echo "fuzz-notes: driver: seed $seed; a finding replays with: $driver --seed $seed --replay INDEX ${seeds[*]}"
  local start
  start=$(date +%s)
  "$driver" --inputs "$inputs" --jobs "$jobs" --seed "$seed" --crash-dir "$crashes" "${seeds[@]}"
  echo "fuzz-notes: driver done in $(( $(date +%s) - start )) s"
}

run_libfuzzer() {
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz-notes: !!! SKIPPED libFuzzer: needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz)"
    [ "$engine" = libfuzzer ] && exit 1
    return 0
  fi
  local corpus=$work/corpus
  "$driver" --seed "$seed" --write-corpus "$corpus" "${seeds[@]}"
  local start
  start=$(date +%s)
  # -timeout: seconds per input; -malloc_limit_mb: the largest allowed
  # allocation; -rss_limit_mb: the whole process.
  (cd crates/dynprobe-format/fuzz && cargo +nightly fuzz run read_stapsdt "$OLDPWD/$corpus" -- \
    -runs="$inputs" -seed="$(( seed % 4294967295 ))" -timeout=2 -malloc_limit_mb=128 -rss_limit_mb=2048 \
    -max_len=262144 -print_final_stats=1 \
    -artifact_prefix="$OLDPWD/$crashes/") 2>&1 | tee "$work/libfuzzer.log" | grep --line-buffered -E '^#[0-9]+.*(pulse|DONE)|^Done|ERROR|SUMMARY|stat::' || true
  if grep -qE '^==[0-9]+== ERROR|panicked|SUMMARY: libFuzzer' "$work/libfuzzer.log"; then
    echo "fuzz-notes: libFuzzer FINDING: see $work/libfuzzer.log and $crashes/"
    exit 1
  fi
  local runs
  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/libfuzzer.log")
  [ -n "$runs" ] || { echo "fuzz-notes: libFuzzer did not finish; see $work/libfuzzer.log"; exit 1; }
  echo "fuzz-notes: libFuzzer: $runs inputs in $(( $(date +%s) - start )) s, 0 panics, 0 timeouts, 0 over the memory limit"
}

mkdir -p "$crashes"
case $engine in
  all) run_driver; run_libfuzzer ;;
  driver) run_driver ;;
  libfuzzer) run_libfuzzer ;;
  *) echo "FUZZ_ENGINE must be all, driver or libfuzzer"; exit 2 ;;
esac
