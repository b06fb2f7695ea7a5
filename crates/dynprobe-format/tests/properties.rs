//! Property tests of the image builder and the note reader, over generated
//! definitions: names drawn from identifiers, near-limit lengths, white
//! space, control, invisible and bidirectional characters, and arbitrary
//! Unicode; any argument lists; duplicate and missing probes. Which of them
//! are valid is for [`ProviderDef::validate`] to say, so these properties
//! hold whatever the name grammar is:
//!
//! - a valid definition builds, and the image reads back (through this
//!   crate's reader, the `object` crate's ELF reader and `readelf -n`) with
//!   the same providers, names, argument specs, and addresses and
//!   semaphores where the symbols and segments say;
//! - its declared types (`int`, `json`, ... or the C names of its argument
//!   types) read back exactly, for every probe, and so do its argument
//!   names where it has them;
//! - an invalid one is refused by `build_image` with the error `validate`
//!   gives, and that error is about something the definition really has.
//!
//! Layout is not assumed: only what any correct image must satisfy.

#[path = "common/arg_types.rs"]
mod arg_types;
#[path = "common/tools.rs"]
mod tools;
use arg_types::ALL_TYPES;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use dynprobe_format::{
    build_image, read_stapsdt, ArgNames, ArgType, Declared, DeclaredType, DefinitionError, Image,
    NameKind, ProbeDef, ProviderDef, SiteKind, StapsdtProbe, Target, MAX_ARGS,
};
use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        Just(Target::x86_64(SiteKind::Nop5)),
        Just(Target::x86_64(SiteKind::Nop10)),
        Just(Target::aarch64()),
    ]
}

/// Names of every kind; most are plausible, so most definitions are valid.
fn name() -> impl Strategy<Value = String> {
    let nasty = prop_oneof![
        Just(" "),
        Just("\t"),
        Just("\n"),
        Just("\0"),
        Just("\u{1b}"),
        Just("\u{7}"),
        Just("\u{200b}"),
        Just("\u{202e}"),
        Just("\u{feff}"),
        Just("\u{a0}"),
        Just("/"),
        Just("."),
        Just(":"),
        Just("*"),
        Just("\""),
        Just("$"),
        Just("é"),
        Just("名"),
    ];
    prop_oneof![
        24 => "[a-z_][a-z0-9_]{0,15}",
        4 => "[A-Za-z_][A-Za-z0-9_.-]{0,30}",
        1 => ("[a-z]{1,8}", nasty, "[a-z]{0,8}").prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        1 => (50usize..=70).prop_map(|n| "n".repeat(n)),
        1 => (120usize..=135).prop_map(|n| "m".repeat(n)),
        1 => Just(String::new()),
        1 => prop_oneof![Just(".".to_string()), Just("..".to_string())],
        1 => any::<String>(),
    ]
}

/// Argument names: mostly C identifiers, some of the wrong length or with
/// characters no identifier has.
fn arg_name() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => "[A-Za-z_][A-Za-z0-9_]{0,20}",
        1 => (60usize..=70).prop_map(|n| "a".repeat(n)),
        1 => name(),
    ]
}

/// Names for a probe: none, one per argument, or (rarely) a wrong count.
fn with_names(probe: ProbeDef) -> impl Strategy<Value = ProbeDef> {
    let n = probe.args.len();
    let names = prop_oneof![
        4 => Just(None),
        5 => proptest::collection::vec(arg_name(), n..=n).prop_map(Some),
        1 => proptest::collection::vec(arg_name(), 0..=n + 2).prop_map(Some),
    ];
    names.prop_map(move |arg_names| ProbeDef {
        arg_names,
        ..probe.clone()
    })
}

fn probe() -> impl Strategy<Value = ProbeDef> {
    let args = prop_oneof![
        9 => proptest::collection::vec(proptest::sample::select(&ALL_TYPES[..]), 0..=12),
        1 => proptest::collection::vec(proptest::sample::select(&ALL_TYPES[..]), MAX_ARGS - 1..=MAX_ARGS + 2),
    ];
    let declared =
        proptest::collection::vec(proptest::sample::select(&DeclaredType::ALL[..]), 0..=12);
    // A small pool of names too, so that duplicates come up.
    let probe_name = || prop_oneof![4 => name(), 1 => "p[0-3]"];
    prop_oneof![
        // C types only: the image records their C names.
        6 => (probe_name(), args).prop_map(|(name, args)| ProbeDef::new(name, args)),
        // Types as the API declares them (`int`, `json`, ...).
        3 => (probe_name(), declared.clone())
            .prop_map(|(name, declared)| ProbeDef::with_declared(name, declared)),
        // Declared types that are not the argument types: refused.
        1 => (probe_name(), declared, proptest::collection::vec(proptest::sample::select(&ALL_TYPES[..]), 0..=12))
            .prop_map(|(name, declared, args)| ProbeDef { declared: Some(declared), ..ProbeDef::new(name, args) }),
    ]
    .prop_flat_map(with_names)
}

fn definition() -> impl Strategy<Value = ProviderDef> {
    let probes = prop_oneof![
        1 => Just(Vec::new()),
        12 => proptest::collection::vec(probe(), 1..=6),
        1 => proptest::collection::vec(probe(), 40..=80),
    ];
    (name(), name(), probes).prop_map(|(provider, module, probes)| ProviderDef {
        probes,
        ..ProviderDef::new(provider, module)
    })
}

/// The refusal names something the definition has, of the kind it says.
fn check_refusal(def: &ProviderDef, error: &DefinitionError) -> Result<(), TestCaseError> {
    let has_name = |kind: NameKind, name: &str| match kind {
        NameKind::Provider => def.name == name,
        NameKind::Module => def.module == name,
        NameKind::Probe => def.probes.iter().any(|p| p.name == name),
    };
    match error {
        DefinitionError::BadName { kind, name, reason } => {
            prop_assert!(
                has_name(*kind, name),
                "{error} is about no {kind} of {def:?}"
            );
            prop_assert!(!reason.is_empty());
        }
        DefinitionError::NameTooLong { kind, name, max } => {
            prop_assert!(
                has_name(*kind, name),
                "{error} is about no {kind} of {def:?}"
            );
            prop_assert!(name.len() > *max);
        }
        DefinitionError::DuplicateProbe(name) => {
            let count = def.probes.iter().filter(|p| &p.name == name).count();
            prop_assert!(count >= 2, "{error}: {name:?} is there {count} times");
        }
        DefinitionError::TooManyArgs { probe, count } => {
            prop_assert!(*count > MAX_ARGS);
            prop_assert!(def
                .probes
                .iter()
                .any(|p| &p.name == probe && p.args.len() == *count));
        }
        DefinitionError::NoProbes(provider) => {
            prop_assert!(def.probes.is_empty());
            prop_assert_eq!(provider, &def.name);
        }
        DefinitionError::UnknownType(_) => prop_assert!(false, "no type is parsed here: {error}"),
        DefinitionError::DeclaredMismatch(name) => {
            prop_assert!(def.probes.iter().any(|p| &p.name == name
                && p.declared.as_ref().is_some_and(|d| d.len() != p.args.len()
                    || d.iter().zip(&p.args).any(|(d, a)| d.arg_type() != *a))));
        }
        DefinitionError::ArgNameCount { probe, names, args } => {
            prop_assert!(names != args);
            prop_assert!(def.probes.iter().any(|p| &p.name == probe
                && p.args.len() == *args
                && p.arg_names.as_ref().is_some_and(|n| n.len() == *names)));
        }
        DefinitionError::BadArgName {
            probe, index, name, ..
        } => {
            // A tracer's own argument words (arg0, sarg1, args) are refused too.
            let valid = |n: &str| {
                (1..=64).contains(&n.len())
                    && n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !dynprobe_format::types::is_tracer_arg_word(n)
            };
            prop_assert!(def.probes.iter().any(|p| &p.name == probe
                && p.arg_names
                    .as_ref()
                    .is_some_and(|n| n.get(*index) == Some(name)
                        && (!valid(name) || n[..*index].contains(name)))));
        }
    }
    prop_assert!(!error.to_string().is_empty());
    Ok(())
}

/// What a valid definition's image must read back as, by this crate's
/// reader and by the `object` crate's view of its symbols and segments.
fn check_round_trip(def: &ProviderDef, image: &Image) -> Result<Vec<StapsdtProbe>, TestCaseError> {
    let probes = read_stapsdt(&image.bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(probes.len(), def.probes.len());
    prop_assert_eq!(image.probes.len(), def.probes.len());

    let elf = ElfFile64::<Endianness>::parse(&image.bytes[..])
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let endian = elf.endian();
    let symbols: std::collections::HashMap<String, u64> = elf
        .dynamic_symbols()
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.address())))
        .collect();
    let loads: Vec<_> = elf
        .elf_program_headers()
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD)
        .collect();
    // The flags of the loaded segment holding `size` bytes at `addr`, and
    // that address's file offset.
    let segment_of = |addr: u64, size: u64| {
        loads.iter().find_map(|p| {
            let (vaddr, filesz) = (p.p_vaddr(endian), p.p_filesz(endian));
            (addr >= vaddr && addr + size <= vaddr + filesz)
                .then(|| (p.p_flags(endian), addr - vaddr + p.p_offset(endian)))
        })
    };

    let mut semaphores = HashSet::new();
    for ((read, defined), layout) in probes.iter().zip(&def.probes).zip(&image.probes) {
        prop_assert_eq!(&read.provider, &def.name);
        prop_assert_eq!(&read.name, &defined.name);
        prop_assert_eq!(&read.arg_spec, &layout.arg_spec);
        prop_assert_eq!(read.args.len(), defined.args.len());
        prop_assert_eq!(&read.declared, &Declared::Types(defined.declared_types()));
        let names = match &defined.arg_names {
            None => ArgNames::Absent,
            Some(names) => ArgNames::Names(names.clone()),
        };
        prop_assert_eq!(&read.arg_names, &names);
        for (arg, ty) in read.args.iter().zip(&defined.args) {
            prop_assert_eq!(arg.size, ty.size(), "{}", arg.spec);
            prop_assert_eq!(arg.signed, ty.is_signed(), "{}", arg.spec);
            prop_assert!(!arg.float);
            prop_assert!(arg.types().contains(&ty.c_name()), "{} {:?}", arg.spec, ty);
        }
        // The probe site is the probe's exported function, in executable
        // memory backed by the file.
        prop_assert_eq!(read.address, layout.stub);
        prop_assert_eq!(
            symbols.get(&layout.symbol),
            Some(&read.address),
            "{}",
            layout.symbol
        );
        let (flags, offset) = segment_of(read.address, 1)
            .ok_or_else(|| TestCaseError::fail(format!("{:#x} is not loaded", read.address)))?;
        prop_assert!(
            flags.0 & elf::PF_X.0 != 0,
            "site {:#x} is not executable",
            read.address
        );
        prop_assert_eq!(read.address_offset, Some(offset));
        // The semaphore slot: four zero bytes of its own (the kernel's
        // semaphore, then the loader's flag), 4-aligned, in writable memory
        // backed by the file.
        prop_assert_eq!(read.semaphore, layout.semaphore);
        prop_assert!(read.semaphore != 0);
        prop_assert!(
            semaphores.insert(read.semaphore),
            "semaphore {:#x} shared",
            read.semaphore
        );
        prop_assert_eq!(read.semaphore % 4, 0);
        let (flags, offset) = segment_of(read.semaphore, 4)
            .ok_or_else(|| TestCaseError::fail(format!("{:#x} is not loaded", read.semaphore)))?;
        prop_assert!(
            flags.0 & elf::PF_W.0 != 0,
            "semaphore {:#x} is not writable",
            read.semaphore
        );
        prop_assert_eq!(read.semaphore_offset, Some(offset));
        prop_assert_eq!(&image.bytes[offset as usize..offset as usize + 4], &[0; 4]);
    }
    let semaphore_slots: Vec<u64> = semaphores.iter().flat_map(|&s| s..s + 4).collect();
    prop_assert_eq!(
        semaphore_slots.iter().collect::<HashSet<_>>().len(),
        4 * semaphores.len(),
        "semaphores overlap"
    );
    Ok(probes)
}

fn check_definition(def: &ProviderDef, target: Target) -> Result<Option<Image>, TestCaseError> {
    let verdict = def.validate();
    let built = build_image(def, target);
    match (verdict, built) {
        (Err(expected), Err(got)) => {
            prop_assert_eq!(&got, &expected);
            check_refusal(def, &got)?;
            Ok(None)
        }
        (Ok(()), Ok(image)) => {
            check_round_trip(def, &image)?;
            Ok(Some(image))
        }
        (verdict, built) => Err(TestCaseError::fail(format!(
            "validate says {verdict:?} but build_image says {:?}",
            built.map(|i| i.probes.len())
        ))),
    }
}

#[test]
fn every_definition_round_trips_or_is_refused_with_its_error() {
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    let valid = std::cell::Cell::new(0);
    runner
        .run(&(definition(), target()), |(def, target)| {
            if check_definition(&def, target)?.is_some() {
                valid.set(valid.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // Both branches were exercised, whatever the grammar.
    assert!(
        valid.get() >= 300,
        "only {} of 3000 definitions were valid",
        valid.get()
    );
    assert!(
        valid.get() <= 2700,
        "{} of 3000 definitions were valid",
        valid.get()
    );
}

// ---------------------------------------------------------------------------
// readelf

/// One stapsdt note as `readelf -n` prints it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Printed {
    provider: String,
    name: String,
    location: u64,
    semaphore: u64,
    arguments: String,
}

/// `readelf -n --wide` on several files: the stapsdt notes of each, in
/// order, and how many notes of owner `dynprobe` (declared types) it shows.
fn readelf_notes(files: &[PathBuf]) -> Vec<(Vec<Printed>, usize)> {
    let out = Command::new("readelf")
        .args(["-n", "--wide"])
        .args(files)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "readelf: {stderr}"
    );
    let text = String::from_utf8(out.stdout).expect("readelf printed the names as they are");
    // readelf names each file ("File: ...") only when given several: a
    // batch with one valid definition has no such line (a flake, seen once).
    let mut per_file: Vec<(Vec<Printed>, usize)> = Vec::new();
    if files.len() == 1 {
        per_file.push((Vec::new(), 0));
    }
    let mut current = Printed::default();
    let hex = |v: &str| u64::from_str_radix(v.trim().trim_start_matches("0x"), 16).unwrap();
    for line in text.lines() {
        // `--wide` puts the first line of a note's description after a tab.
        for part in line.split('\t') {
            let part = part.trim_start();
            if part.starts_with("File: ") && files.len() > 1 {
                per_file.push((Vec::new(), 0));
            } else if part.starts_with("dynprobe ") {
                per_file.last_mut().expect("a File: line first").1 += 1;
            } else if let Some(v) = part.strip_prefix("Provider: ") {
                current.provider = v.to_string();
            } else if let Some(v) = part.strip_prefix("Name: ") {
                current.name = v.to_string();
            } else if part.starts_with("Location: ") {
                for field in part.split(", ") {
                    if let Some(v) = field.strip_prefix("Location: ") {
                        current.location = hex(v);
                    } else if let Some(v) = field.strip_prefix("Semaphore: ") {
                        current.semaphore = hex(v);
                    }
                }
            } else if let Some(v) = part.strip_prefix("Arguments:") {
                current.arguments = v.trim().to_string();
                per_file
                    .last_mut()
                    .expect("a File: line first")
                    .0
                    .push(std::mem::take(&mut current));
            }
        }
    }
    per_file
}

/// Images written to files in a fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dynprobe-format-properties-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn readelf_reads_every_valid_definition_as_the_reader_does() {
    let test = "readelf_reads_every_valid_definition_as_the_reader_does";
    if !tools::tool_available("readelf", test) {
        return;
    }
    // 40 batches of 50 definitions, one readelf run per batch.
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let checked = std::cell::Cell::new(0);
    let batch = proptest::collection::vec((definition(), target()), 50);
    runner
        .run(&batch, |batch| {
            let dir = TempDir::new();
            let mut files = Vec::new();
            let mut expected = Vec::new();
            for (i, (def, target)) in batch.iter().enumerate() {
                let Some(image) = check_definition(def, *target)? else {
                    continue;
                };
                let path = dir.0.join(format!("{i}.so"));
                std::fs::write(&path, &image.bytes).unwrap();
                files.push(path);
                expected.push(read_stapsdt(&image.bytes).unwrap());
            }
            if files.is_empty() {
                return Ok(());
            }
            let printed = readelf_notes(&files);
            prop_assert_eq!(printed.len(), files.len());
            for ((notes, records), probes) in printed.iter().zip(&expected) {
                // One declared-types note per probe, which readelf parses too.
                prop_assert_eq!(*records, probes.len());
                let read: Vec<Printed> = probes
                    .iter()
                    .map(|p| Printed {
                        provider: p.provider.clone(),
                        name: p.name.clone(),
                        location: p.address,
                        semaphore: p.semaphore,
                        arguments: p.arg_spec.clone(),
                    })
                    .collect();
                prop_assert_eq!(notes, &read);
            }
            checked.set(checked.get() + files.len());
            Ok(())
        })
        .unwrap();
    assert!(
        checked.get() >= 300,
        "readelf checked only {} images",
        checked.get()
    );
}

// ---------------------------------------------------------------------------
// The reader on damaged images (the fuzz script does this at scale)

#[test]
fn the_reader_survives_any_damage_to_a_valid_image() {
    let mut def = ProviderDef::new("prov", "module");
    for i in 0..5 {
        def.add_probe(ProbeDef::new(format!("p{i}"), ALL_TYPES[..i * 2].to_vec()))
            .unwrap();
    }
    let images: Vec<Vec<u8>> = [
        Target::x86_64(SiteKind::Nop5),
        Target::x86_64(SiteKind::Nop10),
        Target::aarch64(),
    ]
    .into_iter()
    .map(|t| build_image(&def, t).unwrap().bytes)
    .collect();
    let edits =
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..16);
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(0usize..3, edits, any::<prop::sample::Index>()),
            |(which, edits, cut)| {
                let mut file = images[which].clone();
                // In the headers most of the time: that is where lengths are.
                for (at, value, region) in edits {
                    let len = match region {
                        0 => 64,
                        1 => 4096.min(file.len()),
                        _ => file.len(),
                    };
                    file[at.index(len)] = value;
                }
                let end = cut.index(file.len() + 1).max(file.len() / 2);
                file.truncate(end);
                // An error or some probes, never a panic.
                let _ = read_stapsdt(&file);
                Ok(())
            },
        )
        .unwrap();
}

/// readelf prints no "File:" line when given one file: one file's notes are
/// still that file's (a batch of the test above may hold one valid definition).
#[test]
fn readelf_notes_of_one_file() {
    if !tools::tool_available("readelf", "readelf_notes_of_one_file") {
        return;
    }
    let mut def = ProviderDef::new("one", "one");
    def.add_probes([
        ProbeDef::new("first", vec![ArgType::I32]),
        ProbeDef::new("second", vec![ArgType::Str, ArgType::U8]),
    ])
    .unwrap();
    let image = build_image(&def, Target::x86_64(SiteKind::Nop5)).unwrap();
    let dir = TempDir::new();
    let path = dir.0.join("one.so");
    std::fs::write(&path, &image.bytes).unwrap();
    let printed = readelf_notes(&[path]);
    assert_eq!(printed.len(), 1);
    let names: Vec<&str> = printed[0].0.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(printed[0].1, 2);
}
