//! What an `Ok` result of the note reader must satisfy whatever the input:
//! shared by the seeded driver (test/drivers/src/bin/fuzz_notes.rs) and the libFuzzer
//! target (fuzz/fuzz_targets/read_stapsdt.rs), so both check the same.

use dynprobe_format::read::{MAX_ARG_SPEC_LEN, MAX_NAME_LEN, MAX_NOTE_ARGS, MAX_PROBES};
use dynprobe_format::{ArgNames, Declared, StapsdtProbe};

/// Panics if `probes` breaks one of the reader's promises.
pub fn check(probes: &[StapsdtProbe]) {
    assert!(probes.len() <= MAX_PROBES);
    for p in probes {
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
            Declared::Unusable(why) => assert!(why.len() < 512, "{why}"),
            Declared::Absent => {}
        }
        // Names only with used types, one per argument, each a C identifier.
        match &p.arg_names {
            ArgNames::Names(names) => {
                assert_eq!(Some(names.len()), p.declared.types().map(<[_]>::len));
                for (i, n) in names.iter().enumerate() {
                    assert_eq!(dynprobe_format::declared::check_arg_name(n), None, "{n:?}");
                    assert!(!names[..i].contains(n), "{n:?} twice");
                }
            }
            ArgNames::Unusable(why) => {
                assert!(p.declared.types().is_some());
                assert!(why.len() < 512, "{why}");
            }
            ArgNames::Absent => {}
        }
    }
}
