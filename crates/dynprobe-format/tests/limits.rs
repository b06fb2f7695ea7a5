//! The note reader on crafted files: each limit is reached and passed, and
//! what an attacker can put in a file (100k notes, 1 MiB names, huge counts
//! and offsets, overlapping or repeated section headers, extended header
//! counts, sizes that overflow) costs bounded memory and time. Memory is
//! measured by this binary's allocator; time is only a hang detector, with a
//! deadline hundreds of times what the reader needs.

#[path = "common/crafted.rs"]
mod crafted;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use crafted::{
    declared, named, note, stapsdt, with_notes, with_records, Crafted, Phdr, Shdr, PT_LOAD,
    PT_NULL, SHT_NOTE,
};
use dynprobe_format::read::{
    MAX_ARG_SPEC_LEN, MAX_DECODED_BYTES, MAX_LOAD_SEGMENTS, MAX_NAME_LEN, MAX_NOTES, MAX_NOTE_ARGS,
    MAX_PROBES, MAX_RECORDS,
};
use dynprobe_format::{
    read_stapsdt, ArgNames, Declared, DeclaredType, Limit, ReadError, StapsdtProbe,
};

/// Counts live heap bytes and their peak. Past `HARD_CAP` an allocation
/// fails (and the process aborts) rather than take the machine's memory.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
const HARD_CAP: usize = 1 << 30;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        if live > HARD_CAP {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        PEAK.fetch_max(live, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Memory is measured one test at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Any input finishes within this; the reader needs milliseconds.
const DEADLINE: Duration = Duration::from_secs(5);

/// Reads `file` on another thread, within [`DEADLINE`], and returns the result
/// with the most heap the read took beyond what was live before it.
fn measured_read(file: Vec<u8>) -> (Result<Vec<StapsdtProbe>, ReadError>, usize) {
    let file = Arc::new(file);
    let (send, receive) = mpsc::channel();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let reader = {
        let file = Arc::clone(&file);
        std::thread::spawn(move || {
            let result = read_stapsdt(&file);
            let peak = PEAK.load(Ordering::Relaxed);
            let _ = send.send((result, peak));
        })
    };
    let (result, peak) = receive.recv_timeout(DEADLINE).unwrap_or_else(|_| {
        panic!(
            "reading a {}-byte file took more than {DEADLINE:?}",
            file.len()
        )
    });
    reader.join().unwrap();
    (result, peak.saturating_sub(before))
}

fn too_large(limit: Limit) -> Result<Vec<StapsdtProbe>, ReadError> {
    Err(ReadError::TooLarge(limit))
}

/// A probe note with short names, the `i`th of a file.
fn small_probe(i: usize) -> Vec<u8> {
    stapsdt(
        0x1000 + i as u64 * 16,
        0,
        b"prov",
        format!("p{i}").as_bytes(),
        b"-4@%edi",
    )
}

fn notes(count: usize, each: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    (0..count).flat_map(each).collect()
}

#[test]
fn probes_up_to_the_limit_are_read_and_100k_notes_are_refused() {
    let _serial = serial();
    let (probes, _) = measured_read(with_notes(&notes(MAX_PROBES, small_probe)));
    let probes = probes.unwrap();
    assert_eq!(probes.len(), MAX_PROBES);
    assert_eq!(probes[MAX_PROBES - 1].name, format!("p{}", MAX_PROBES - 1));

    let (result, _) = measured_read(with_notes(&notes(MAX_PROBES + 1, small_probe)));
    assert_eq!(result, too_large(Limit::Probes));
    let (result, peak) = measured_read(with_notes(&notes(100_000, small_probe)));
    assert_eq!(result, too_large(Limit::Probes));
    assert!(
        peak <= 2 * MAX_DECODED_BYTES,
        "100k notes took {peak} bytes"
    );
}

#[test]
fn names_up_to_the_limit_are_read_and_a_1_mib_name_costs_no_mib() {
    let _serial = serial();
    let longest = vec![b'n'; MAX_NAME_LEN];
    let one_more = vec![b'n'; MAX_NAME_LEN + 1];
    let (probes, _) = measured_read(with_notes(&stapsdt(1, 0, &longest, &longest, b"")));
    assert_eq!(probes.unwrap()[0].name.len(), MAX_NAME_LEN);
    for (provider, name) in [(&one_more, &longest), (&longest, &one_more)] {
        let (result, _) = measured_read(with_notes(&stapsdt(1, 0, provider, name, b"")));
        assert_eq!(result, too_large(Limit::NameLen));
    }
    // Not even scanned to its end: refused once the limit is passed.
    let mib = vec![b'n'; 1 << 20];
    let (result, peak) = measured_read(with_notes(&stapsdt(1, 0, b"prov", &mib, b"")));
    assert_eq!(result, too_large(Limit::NameLen));
    assert!(peak < 64 << 10, "a 1 MiB name took {peak} bytes");
    // The last string of a descriptor needs no NUL, and is bounded the same.
    let mut desc = vec![0u8; 24];
    desc.extend_from_slice(b"prov\0");
    desc.extend_from_slice(&mib);
    let (result, peak) = measured_read(with_notes(&note(b"stapsdt", 3, &desc)));
    assert_eq!(result, too_large(Limit::NameLen));
    assert!(
        peak < 64 << 10,
        "a 1 MiB unterminated name took {peak} bytes"
    );
}

#[test]
fn argument_strings_and_counts_up_to_their_limits_are_read_and_past_them_refused() {
    let _serial = serial();
    let spec = |len: usize| vec![b'x'; len];
    let (probes, _) = measured_read(with_notes(&stapsdt(
        1,
        0,
        b"p",
        b"n",
        &spec(MAX_ARG_SPEC_LEN),
    )));
    assert_eq!(probes.unwrap()[0].arg_spec.len(), MAX_ARG_SPEC_LEN);
    let (result, _) = measured_read(with_notes(&stapsdt(
        1,
        0,
        b"p",
        b"n",
        &spec(MAX_ARG_SPEC_LEN + 1),
    )));
    assert_eq!(result, too_large(Limit::ArgSpecLen));
    let (result, peak) = measured_read(with_notes(&stapsdt(1, 0, b"p", b"n", &spec(1 << 20))));
    assert_eq!(result, too_large(Limit::ArgSpecLen));
    assert!(peak < 64 << 10, "a 1 MiB argument string took {peak} bytes");

    let args = |count: usize| vec!["-8@%rax"; count].join(" ").into_bytes();
    let (probes, _) = measured_read(with_notes(&stapsdt(1, 0, b"p", b"n", &args(MAX_NOTE_ARGS))));
    assert_eq!(probes.unwrap()[0].args.len(), MAX_NOTE_ARGS);
    let (result, _) = measured_read(with_notes(&stapsdt(
        1,
        0,
        b"p",
        b"n",
        &args(MAX_NOTE_ARGS + 1),
    )));
    assert_eq!(result, too_large(Limit::Args));
    // The most tokens a string within its limit can hold.
    let (result, _) = measured_read(with_notes(&stapsdt(
        1,
        0,
        b"p",
        b"n",
        &b"1 ".repeat(MAX_ARG_SPEC_LEN / 2),
    )));
    assert_eq!(result, too_large(Limit::Args));
}

#[test]
fn all_probes_together_stay_within_the_decoded_bytes_limit() {
    let _serial = serial();
    let big = |i: usize| {
        let name = format!("{i:0>width$}", width = MAX_NAME_LEN);
        stapsdt(
            1,
            0,
            name.as_bytes(),
            name.as_bytes(),
            &b"x".repeat(MAX_ARG_SPEC_LEN - 1),
        )
    };
    // Each probe is within every per-probe limit: only the total is too much
    // (their strings alone are more than the limit).
    let count = MAX_DECODED_BYTES / (2 * MAX_NAME_LEN + MAX_ARG_SPEC_LEN) + 1;
    let (probes, _) = measured_read(with_notes(&notes(count / 4, big)));
    assert_eq!(probes.unwrap().len(), count / 4);
    let (result, peak) = measured_read(with_notes(&notes(count, big)));
    assert_eq!(result, too_large(Limit::DecodedBytes));
    assert!(
        peak <= 2 * MAX_DECODED_BYTES,
        "{count} large probes took {peak} bytes"
    );
}

#[test]
fn notes_visited_are_bounded_even_when_none_is_a_probe() {
    let _serial = serial();
    let other = note(b"x", 1, b"");
    let (probes, _) = measured_read(with_notes(&other.repeat(MAX_NOTES)));
    assert_eq!(probes.unwrap(), []);
    let (result, _) = measured_read(with_notes(&other.repeat(MAX_NOTES + 1)));
    assert_eq!(result, too_large(Limit::Notes));
}

/// A file with `probes` small probe notes and the given program headers.
fn with_segments(probes: usize, segments: Vec<Phdr>) -> Vec<u8> {
    let mut elf = Crafted::default();
    elf.section(".note.stapsdt", SHT_NOTE, 0, &notes(probes, small_probe));
    elf.segments = segments;
    elf.finish()
}

#[test]
fn load_segments_are_bounded() {
    let _serial = serial();
    let load = |i: usize| Phdr {
        p_type: PT_LOAD,
        vaddr: 0x1000 + i as u64 * 0x100,
        offset: 0,
        filesz: 0x100,
    };
    let (probes, _) = measured_read(with_segments(2, (0..MAX_LOAD_SEGMENTS).map(load).collect()));
    let probes = probes.unwrap();
    assert_eq!(probes[0].address_offset, Some(0));
    assert_eq!(probes[1].address_offset, Some(0x10));
    let (result, _) = measured_read(with_segments(
        2,
        (0..=MAX_LOAD_SEGMENTS).map(load).collect(),
    ));
    assert_eq!(result, too_large(Limit::LoadSegments));
    // Every probe looked up in every header would take probes x headers steps.
    let (result, _) = measured_read(with_segments(MAX_PROBES, (0..200_000).map(load).collect()));
    assert_eq!(result, too_large(Limit::LoadSegments));
}

#[test]
fn program_headers_past_0xffff_cost_one_pass() {
    let _serial = serial();
    // Extended numbering; none loads anything, so each probe's lookup would
    // go through all 200,000.
    let null = |_| Phdr {
        p_type: PT_NULL,
        vaddr: 0,
        offset: 0,
        filesz: u64::MAX,
    };
    let (probes, _) = measured_read(with_segments(MAX_PROBES, (0..200_000).map(null).collect()));
    let probes = probes.unwrap();
    assert_eq!(probes.len(), MAX_PROBES);
    assert!(probes.iter().all(|p| p.address_offset.is_none()));
}

#[test]
fn overlapping_note_sections_never_repeat_notes() {
    let _serial = serial();
    let mut elf = Crafted::default();
    let first = elf.section(".note.stapsdt", SHT_NOTE, 0, &notes(10, small_probe));
    // 20,000 more headers for the same bytes: 200,000 probes from 10 notes.
    for _ in 0..20_000 {
        elf.sections.push(first);
    }
    let (result, peak) = measured_read(elf.finish());
    assert_eq!(
        result,
        Err(ReadError::Malformed(
            "the .note.stapsdt and .note.dynprobe sections overlap".into()
        ))
    );
    // A list of the sections (there are 20,001), not 200,000 probes.
    assert!(peak < 4 << 20, "repeated sections took {peak} bytes");
    // Two distinct sections are fine.
    let mut elf = Crafted::default();
    elf.section(".note.stapsdt", SHT_NOTE, 0, &small_probe(0));
    elf.section(".note.stapsdt", SHT_NOTE, 0, &small_probe(1));
    let (probes, _) = measured_read(elf.finish());
    assert_eq!(probes.unwrap().len(), 2);
}

#[test]
fn section_names_cost_no_scan_of_the_name_table() {
    let _serial = serial();
    // 60,000 sections all named by one 16 MiB string: looking each name up
    // as a string scans the whole table every time (1 TB of reading).
    let mut names = vec![b'a'; 16 << 20];
    names.push(0);
    let unnamed = Shdr {
        name: 0,
        sh_type: SHT_NOTE,
        addr: 0,
        offset: 0,
        size: 0,
        align: 4,
    };
    let mut elf = Crafted {
        names,
        sections: vec![unnamed; 60_000],
        ..Crafted::default()
    };
    elf.section(".note.stapsdt", SHT_NOTE, 0, &small_probe(7));
    let (probes, _) = measured_read(elf.finish());
    assert_eq!(probes.unwrap()[0].name, "p7");
}

#[test]
fn huge_counts_offsets_and_sizes_are_malformed_and_cost_nothing() {
    let _serial = serial();
    let valid = with_notes(&small_probe(0));
    let patched = |at: usize, value: &[u8]| {
        let mut file = valid.clone();
        file[at..at + value.len()].copy_from_slice(value);
        file
    };
    let shoff = u64::from_le_bytes(valid[40..48].try_into().unwrap()) as usize;
    let note_header = shoff + 64; // section 1's header
    let note_offset = u64::from_le_bytes(
        valid[note_header + 24..note_header + 32]
            .try_into()
            .unwrap(),
    ) as usize;
    let cases = [
        (
            "e_shoff near the end of the address space",
            patched(40, &(u64::MAX - 8).to_le_bytes()),
        ),
        (
            "e_phoff huge with one header",
            patched(32, &(u64::MAX / 2).to_le_bytes())
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 56 { 1 } else { b })
                .collect(),
        ),
        ("e_shnum 0xfeff", patched(60, &0xfeffu16.to_le_bytes())),
        ("e_shnum extended to 2^32 - 1", {
            let mut f = patched(60, &0u16.to_le_bytes());
            f[shoff + 32..shoff + 40].copy_from_slice(&u64::from(u32::MAX).to_le_bytes());
            f
        }),
        ("e_phnum extended to 2^32 - 1", {
            let mut f = patched(56, &0xffffu16.to_le_bytes());
            f[32..40].copy_from_slice(&64u64.to_le_bytes());
            f[shoff + 44..shoff + 48].copy_from_slice(&u32::MAX.to_le_bytes());
            f
        }),
        (
            "e_shstrndx past the sections",
            patched(62, &0xfe00u16.to_le_bytes()),
        ),
        (
            "a section size that overflows its offset",
            patched(note_header + 32, &u64::MAX.to_le_bytes()),
        ),
        (
            "a section offset past the file",
            patched(note_header + 24, &(u64::MAX - 3).to_le_bytes()),
        ),
        (
            "a name table offset past the table",
            patched(note_header, &u32::MAX.to_le_bytes()),
        ),
        (
            "note namesz 2^32 - 1",
            patched(note_offset, &u32::MAX.to_le_bytes()),
        ),
        (
            "note descsz 2^32 - 1",
            patched(note_offset + 4, &u32::MAX.to_le_bytes()),
        ),
        (
            "note descsz 2^32 - 4 (overflows when aligned)",
            patched(note_offset + 4, &(u32::MAX - 3).to_le_bytes()),
        ),
        (
            "note alignment 2^64 - 1",
            patched(note_header + 48, &u64::MAX.to_le_bytes()),
        ),
    ];
    for (what, file) in cases {
        let (result, peak) = measured_read(file);
        assert!(peak < 64 << 10, "{what}: took {peak} bytes");
        match result {
            Ok(probes) => assert!(probes.len() <= 1, "{what}: {probes:?}"),
            Err(ReadError::Malformed(_)) | Err(ReadError::NotElf) => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Declared-types records (.note.dynprobe)

fn unusable(probe: &StapsdtProbe) -> &str {
    match &probe.declared {
        Declared::Unusable(why) => why,
        other => panic!("{}: {other:?}", probe.name),
    }
}

#[test]
fn crafted_records_leave_their_probes_without_declared_types_saying_why() {
    let _serial = serial();
    let probe = |name: &[u8], args: &[u8]| stapsdt(0x1000, 0, b"prov", name, args);
    let notes: Vec<u8> = [
        probe(b"good", b"-8@%rdi 8@%rsi"),
        probe(b"unknown", b"-8@%rdi"),
        probe(b"escape", b"-8@%rdi"),
        probe(b"count", b"-8@%rdi 8@%rsi"),
        probe(b"size", b"-4@%edi"),
        probe(b"twice", b"-8@%rdi"),
        probe(b"many", b"-8@%rdi"),
        probe(b"longtype", b"-8@%rdi"),
        probe(b"none", b"-8@%rdi"),
        probe(b"float", b"8f@%xmm0"),
    ]
    .concat();
    let many: Vec<&[u8]> = vec![b"int"; 100_000];
    let long = vec![b'u'; 1 << 20];
    let records: Vec<u8> = [
        declared(b"prov", b"good", &[b"int", b"json"]),
        declared(b"prov", b"unknown", &[b"long double"]),
        declared(b"prov", b"escape", &[b"\x1b]0;pwned\x07"]),
        declared(b"prov", b"count", &[b"int"]),
        declared(b"prov", b"size", &[b"int"]),
        declared(b"prov", b"twice", &[b"int"]),
        declared(b"prov", b"twice", &[b"int64_t"]),
        declared(b"prov", b"many", &many),
        declared(b"prov", b"longtype", &[&long]),
        declared(b"prov", b"float", &[b"uint64_t"]),
        // Records for no probe, and ones naming none at all.
        declared(b"prov", b"nosuchprobe", &[b"int"]),
        note(b"dynprobe", 1, b""),
        note(b"dynprobe", 1, &vec![b'n'; MAX_NAME_LEN + 10]),
        note(b"dynprobe", 3, b"prov\0none\0int\0"),
        note(b"other", 1, b"prov\0none\0int\0"),
    ]
    .concat();
    let (result, peak) = measured_read(with_records(&notes, &records));
    assert!(peak < 256 << 10, "took {peak} bytes");
    let probes = result.unwrap();
    let by = |name: &str| probes.iter().find(|p| p.name == name).unwrap();
    assert_eq!(
        by("good").declared,
        Declared::Types(vec![DeclaredType::Int, DeclaredType::Json])
    );
    assert!(unusable(by("unknown")).contains(r#"unknown type "long double""#));
    assert!(unusable(by("escape")).contains(r#""\u{1b}]0;pwned\u{7}""#));
    assert!(unusable(by("count")).contains("1 types for the 2 arguments"));
    assert!(unusable(by("size"))
        .contains("says int for argument 0, which its note records as \"-4@%edi\""));
    assert!(unusable(by("twice")).contains("more than one declared-types record"));
    assert!(unusable(by("many")).contains("more than 64 types"));
    assert!(unusable(by("longtype")).contains("longer than 16 bytes"));
    assert!(unusable(by("float")).contains("8f@%xmm0"));
    // Other owners and types are not records.
    assert_eq!(by("none").declared, Declared::Absent);
}

fn unusable_names(probe: &StapsdtProbe) -> &str {
    match &probe.arg_names {
        ArgNames::Unusable(why) => why,
        other => panic!("{}: {other:?}", probe.name),
    }
}

#[test]
fn crafted_argument_names_are_refused_saying_why_and_the_types_kept() {
    let _serial = serial();
    let names = [
        "good", "fewer", "more", "empty", "digit", "escape", "long", "huge", "millions", "utf8",
        "badtypes", "twice",
    ];
    let notes: Vec<u8> = names
        .iter()
        .map(|n| stapsdt(0x1000, 0, b"prov", n.as_bytes(), b"-8@%rdi 8@%rsi"))
        .collect::<Vec<_>>()
        .concat();
    let types: &[&[u8]] = &[b"int", b"char *"];
    let longest = vec![b'n'; 64];
    let long = vec![b'n'; 65];
    let huge = vec![b'n'; 1 << 20];
    let millions: Vec<&[u8]> = [&[&b"a"[..], b"b"][..], &vec![&b"c"[..]; 1_000_000]].concat();
    let records: Vec<u8> = [
        named(b"prov", b"good", types, &[b"count", &longest]),
        named(b"prov", b"fewer", types, &[b"count"]),
        named(b"prov", b"more", types, &[b"a", b"b", b"c"]),
        named(b"prov", b"empty", types, &[b"a", b""]),
        named(b"prov", b"digit", types, &[b"a", b"2b"]),
        named(b"prov", b"escape", types, &[b"a", b"\x1b]0;pwned\x07"]),
        named(b"prov", b"long", types, &[b"a", &long]),
        named(b"prov", b"huge", types, &[&huge]),
        named(b"prov", b"millions", types, &millions),
        named(b"prov", b"utf8", types, &[b"a", b"\xc3\xa9"]),
        named(b"prov", b"badtypes", &[b"int"], &[b"a"]),
        named(b"prov", b"twice", types, &[b"a", b"b"]),
        declared(b"prov", b"twice", types),
    ]
    .concat();
    let (result, peak) = measured_read(with_records(&notes, &records));
    assert!(peak < 256 << 10, "took {peak} bytes");
    let probes = result.unwrap();
    let by = |name: &str| probes.iter().find(|p| p.name == name).unwrap();
    let longest = String::from_utf8(longest).unwrap();
    assert_eq!(
        by("good").arg_names,
        ArgNames::Names(vec!["count".into(), longest])
    );
    // Bad names: the types are used, the names are not, and why is said.
    for name in &names[1..10] {
        assert_eq!(
            by(name).declared,
            Declared::Types(vec![
                DeclaredType::Int,
                DeclaredType::C(dynprobe_format::ArgType::Str)
            ]),
            "{name}"
        );
    }
    assert!(unusable_names(by("fewer")).contains("names 1 arguments of 2"));
    assert!(unusable_names(by("more")).contains("more arguments than its 2 types"));
    assert!(unusable_names(by("empty")).contains(r#""" is empty"#));
    assert!(unusable_names(by("digit")).contains(r#""2b" is not a C identifier"#));
    assert!(unusable_names(by("escape")).contains(r#""\u{1b}]0;pwned\u{7}""#));
    assert!(unusable_names(by("long")).contains("longer than 64 bytes"));
    assert!(unusable_names(by("huge")).contains("longer than 64 bytes"));
    assert!(unusable_names(by("millions")).contains("more arguments than its 2 types"));
    assert!(unusable_names(by("utf8")).contains("not a C identifier"));
    // Types that do not fit the note: neither is used.
    assert!(unusable(by("badtypes")).contains("1 types for the 2 arguments"));
    assert_eq!(by("badtypes").arg_names, ArgNames::Absent);
    assert!(unusable(by("twice")).contains("more than one declared-types record"));
    assert_eq!(by("twice").arg_names, ArgNames::Absent);
}

#[test]
fn records_up_to_the_limit_are_read_and_more_are_refused() {
    let _serial = serial();
    let record = |i: usize| declared(b"prov", format!("p{i}").as_bytes(), &[b"int32_t"]);
    let probes = notes(MAX_PROBES, small_probe);
    let (result, _) = measured_read(with_records(&probes, &notes(MAX_RECORDS, record)));
    let read = result.unwrap();
    assert_eq!(read.len(), MAX_PROBES);
    assert!(read.iter().all(
        |p| p.declared == Declared::Types(vec![DeclaredType::C(dynprobe_format::ArgType::I32)])
    ));
    let (result, peak) = measured_read(with_records(&probes[..], &notes(MAX_RECORDS + 1, record)));
    assert_eq!(result, too_large(Limit::Records));
    assert!(peak < 64 << 20, "took {peak} bytes");
    // Notes of either kind count toward the notes limit.
    let other = |_| note(b"x", 1, b"");
    let (result, _) = measured_read(with_records(
        &notes(MAX_NOTES / 2, other),
        &notes(MAX_NOTES / 2 + 1, other),
    ));
    assert_eq!(result, too_large(Limit::Notes));
}

#[test]
fn a_records_section_repeated_or_overlapping_the_probes_is_malformed() {
    let _serial = serial();
    let mut elf = Crafted::default();
    let records = declared(b"prov", b"p0", &[b"int32_t"]);
    elf.section(".note.stapsdt", SHT_NOTE, 0, &small_probe(0));
    let shdr = elf.section(".note.dynprobe", SHT_NOTE, 0, &records);
    for _ in 0..20_000 {
        elf.sections.push(shdr);
    }
    let (result, peak) = measured_read(elf.finish());
    assert!(
        matches!(result, Err(ReadError::Malformed(ref m)) if m.contains("overlap")),
        "{result:?}"
    );
    assert!(peak < 4 << 20, "took {peak} bytes");
}
