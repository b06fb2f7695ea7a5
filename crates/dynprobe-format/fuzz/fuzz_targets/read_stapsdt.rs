//! The note reader (stapsdt notes and the declared-types records of
//! `.note.dynprobe`) on any bytes: no panic, and what it returns is within
//! its limits. libFuzzer's own `-timeout` and `-malloc_limit_mb` (set by
//! scripts/fuzz-notes.sh) catch hangs and large allocations.
#![no_main]

#[path = "../invariants.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(probes) = dynprobe_format::read_stapsdt(data) {
        invariants::check(&probes);
    }
});
