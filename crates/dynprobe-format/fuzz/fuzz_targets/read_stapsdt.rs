//! The note reader (stapsdt notes and the declared-types records of
//! `.note.dynprobe`) on any bytes: no panic, and what it returns is within
//! its limits. libFuzzer's own `-timeout` and `-malloc_limit_mb` (set by
//! scripts/fuzz-notes.sh) catch hangs and large allocations.
#![no_main]

use dynprobe_format::read::{MAX_ARG_SPEC_LEN, MAX_NAME_LEN, MAX_NOTE_ARGS, MAX_PROBES};
use dynprobe_format::Declared;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(probes) = dynprobe_format::read_stapsdt(data) {
        assert!(probes.len() <= MAX_PROBES);
        for p in &probes {
            // Lossy UTF-8 may triple a byte.
            assert!(p.provider.len() <= 3 * MAX_NAME_LEN && p.name.len() <= 3 * MAX_NAME_LEN);
            assert!(p.arg_spec.len() <= 3 * MAX_ARG_SPEC_LEN);
            assert!(p.args.len() <= MAX_NOTE_ARGS);
            if p.semaphore == 0 {
                assert_eq!(p.semaphore_offset, None);
            }
            // Declared types are used only when they fit the note, one per argument.
            match &p.declared {
                Declared::Types(types) => {
                    assert_eq!(types.len(), p.args.len());
                    for (t, a) in types.iter().zip(&p.args) {
                        assert!(!a.float && a.size == t.arg_type().size());
                        assert_eq!(a.signed, t.arg_type().is_signed());
                    }
                }
                Declared::Unusable(why) => assert!(why.len() < 512),
                Declared::Absent => {}
            }
        }
    }
});
