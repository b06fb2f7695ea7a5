//! Fuzzes the note reader ([`read_stapsdt`]) with arbitrary bytes, crafted
//! ELF structures and mutations of valid images, and stops at the first
//! finding: a panic, an input that takes more CPU time than the limit (a hang),
//! or one that takes more heap than the memory limit. Run by
//! `scripts/fuzz-notes.sh`, which asks for at least 10 million inputs.
//!
//! Every input is made from the seed and its index alone, so a finding is
//! replayed with `--seed S --replay INDEX` (and is written to `--crash-dir`).
//!
//! ```text
//! fuzz_notes [--inputs N] [--seed S] [--jobs J] [--time-limit-ms T]
//!            [--memory-limit-mib M] [--crash-dir DIR] [--replay INDEX]
//!            [--write-corpus DIR] [SEED_FILE...]
//! ```
//!
//! `--write-corpus DIR` writes the seed images and a thousand generated
//! inputs to DIR, as a starting corpus for the libFuzzer target
//! (`fuzz/fuzz_targets/read_stapsdt.rs`), and exits.

#[path = "../../../../crates/dynprobe-format/tests/common/crafted.rs"]
mod crafted;
#[path = "../../../../crates/dynprobe-format/fuzz/invariants.rs"]
mod invariants;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crafted::{
    declared, named, note, stapsdt, Crafted, Phdr, Shdr, PT_LOAD, PT_NULL, SHT_NOTE, SHT_PROGBITS,
};
use dynprobe_format::read::{MAX_ARG_SPEC_LEN, MAX_NAME_LEN, MAX_NOTE_ARGS};
use dynprobe_format::{
    build_image, read_stapsdt, ArgNames, ArgType, Declared, DeclaredType, ProbeDef, ProviderDef,
    ReadError, SiteKind, Target,
};

// ---------------------------------------------------------------------------
// Memory: each thread counts its own live heap bytes and their peak; past
// the process-wide hard cap an allocation fails, which aborts (after saying
// which input did it) instead of taking the machine's memory.

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}
static TOTAL: AtomicUsize = AtomicUsize::new(0);
static HARD_CAP: AtomicUsize = AtomicUsize::new(usize::MAX);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size();
        if TOTAL.fetch_add(size, Ordering::Relaxed) + size > HARD_CAP.load(Ordering::Relaxed) {
            TOTAL.fetch_sub(size, Ordering::Relaxed);
            report_raw(b"over the hard memory cap");
            std::process::abort();
        }
        LIVE.with(|live| {
            let now = live.get() + size;
            live.set(now);
            PEAK.with(|peak| peak.set(peak.get().max(now)));
        });
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        TOTAL.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE.with(|live| live.set(live.get().saturating_sub(layout.size())));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The input each thread is reading, for reports from places that must not
/// allocate (the allocator) or cannot know it (the watchdog).
static CURRENT: [AtomicU64; MAX_JOBS] = [const { AtomicU64::new(u64::MAX) }; MAX_JOBS];
const MAX_JOBS: usize = 64;
thread_local! {
    static JOB: Cell<usize> = const { Cell::new(0) };
}

/// Writes "fuzz_notes: FINDING: <why> at input <index>" with no allocation.
fn report_raw(why: &[u8]) {
    let index = CURRENT[JOB.with(Cell::get)].load(Ordering::Relaxed);
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = index;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b"fuzz_notes: FINDING: ");
    let _ = err.write_all(why);
    let _ = err.write_all(b" at input ");
    let _ = err.write_all(&digits[at..]);
    let _ = err.write_all(b" (replay with --seed SEED --replay INDEX)\n");
}

// ---------------------------------------------------------------------------
// Options

struct Options {
    inputs: u64,
    seed: u64,
    jobs: usize,
    time_limit: Duration,
    memory_limit: usize,
    crash_dir: PathBuf,
    replay: Option<u64>,
    write_corpus: Option<PathBuf>,
    seed_files: Vec<PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        inputs: 1_000_000,
        seed: 1,
        jobs: 1,
        time_limit: Duration::from_millis(2000),
        memory_limit: 128 << 20,
        crash_dir: std::env::temp_dir().join("fuzz-notes-crashes"),
        replay: None,
        write_corpus: None,
        seed_files: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        let number = |name: &str, text: String| {
            text.replace('_', "")
                .parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{name}: not a number: {text}")))
        };
        match arg.as_str() {
            "--inputs" => o.inputs = number("--inputs", value("--inputs")),
            "--seed" => o.seed = number("--seed", value("--seed")),
            "--jobs" => {
                o.jobs = number("--jobs", value("--jobs")).clamp(1, MAX_JOBS as u64) as usize
            }
            "--time-limit-ms" => {
                o.time_limit =
                    Duration::from_millis(number("--time-limit-ms", value("--time-limit-ms")))
            }
            "--memory-limit-mib" => {
                o.memory_limit =
                    number("--memory-limit-mib", value("--memory-limit-mib")) as usize * (1 << 20)
            }
            "--crash-dir" => o.crash_dir = value("--crash-dir").into(),
            "--replay" => o.replay = Some(number("--replay", value("--replay"))),
            "--write-corpus" => o.write_corpus = Some(value("--write-corpus").into()),
            flag if flag.starts_with("--") => usage(&format!("unknown option {flag}")),
            file => o.seed_files.push(file.into()),
        }
    }
    o
}

fn usage(why: &str) -> ! {
    eprintln!("fuzz_notes: {why}");
    eprintln!(
        "usage: fuzz_notes [--inputs N] [--seed S] [--jobs J] [--time-limit-ms T] \
         [--memory-limit-mib M] [--crash-dir DIR] [--replay INDEX] [--write-corpus DIR] \
         [SEED_FILE...]"
    );
    std::process::exit(2);
}

// ---------------------------------------------------------------------------
// Seed corpus: images from the builder for every target, plus given files.

fn builder_images() -> Vec<Vec<u8>> {
    use ArgType::*;
    let all = [I8, U8, I16, U16, I32, U32, I64, U64, Str];
    let mut defs = Vec::new();
    let mut one = ProviderDef::new("nodeapp", "nodeapp");
    one.add_probe(ProbeDef::new("request-start", vec![Str, I32]))
        .unwrap();
    // Declared types as the API names them, recorded in .note.dynprobe.
    let api: Vec<DeclaredType> = DeclaredType::ALL.to_vec();
    one.add_probe(ProbeDef::with_declared("declared", api))
        .unwrap();
    // And the arguments' names (a type 2 record).
    one.add_probe(ProbeDef {
        arg_names: Some(vec!["request_struct".into(), "url".into(), "fd".into()]),
        ..ProbeDef::with_declared(
            "named",
            vec![
                DeclaredType::C(U64),
                DeclaredType::C(Str),
                DeclaredType::C(I32),
            ],
        )
    })
    .unwrap();
    defs.push(one);
    let mut many = ProviderDef::new("many", "many-probes");
    for i in 0..40 {
        let args: Vec<ArgType> = (0..i % 9).map(|j| all[(i + j) % all.len()]).collect();
        many.add_probe(ProbeDef::new(format!("probe{i}"), args))
            .unwrap();
    }
    defs.push(many);
    let mut wide = ProviderDef::new("p".repeat(54), "m".repeat(128));
    wide.add_probe(ProbeDef::new("n".repeat(64), vec![U64; 32]))
        .unwrap();
    wide.add_probe(ProbeDef::new("none", vec![])).unwrap();
    defs.push(wide);
    let targets = [
        Target::x86_64(SiteKind::Nop5),
        Target::x86_64(SiteKind::Nop10),
        Target::aarch64(),
    ];
    let mut images = Vec::new();
    for def in &defs {
        for target in targets {
            images.push(
                build_image(def, target)
                    .expect("seed definitions are valid")
                    .bytes,
            );
        }
    }
    images
}

struct Corpus {
    seeds: Vec<Vec<u8>>,
}

static CORPUS: OnceLock<Corpus> = OnceLock::new();

// ---------------------------------------------------------------------------
// Inputs

/// Integers that sit on the edges parsers get wrong.
const INTERESTING: [u64; 18] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    0x10,
    0x40,
    0x7f,
    0x80,
    0xff,
    0xff00,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

fn interesting(rng: &mut fastrand::Rng, len: usize) -> u64 {
    match rng.u8(0..8) {
        0 => len as u64,
        1 => (len as u64).wrapping_add(rng.u64(0..16)).wrapping_sub(8),
        2 => rng.u64(..),
        3 => INTERESTING[rng.usize(..INTERESTING.len())].wrapping_sub(rng.u64(0..3)),
        _ => INTERESTING[rng.usize(..INTERESTING.len())],
    }
}

/// An offset to mutate: the ELF header, a header table, a note, or anywhere.
fn hot_offset(rng: &mut fastrand::Rng, file: &[u8]) -> usize {
    let len = file.len().max(1);
    let read = |at: usize| {
        file.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    let in_table = |rng: &mut fastrand::Rng, base: Option<usize>, table_len: usize| {
        base.filter(|&b| b < len)
            .map(|b| b.saturating_add(rng.usize(..table_len)))
            .unwrap_or(0)
    };
    let at = match rng.u8(0..6) {
        0 => rng.usize(16..64),
        1 => in_table(rng, read(32), 56 * 6),
        2 => in_table(rng, read(40), 64 * 20),
        _ => rng.usize(..len),
    };
    at.min(len - 1)
}

fn put(file: &mut [u8], at: usize, value: u64, width: usize, big_endian: bool) {
    let bytes = if big_endian {
        value.to_be_bytes()[8 - width..].to_vec()
    } else {
        value.to_le_bytes()[..width].to_vec()
    };
    for (i, b) in bytes.into_iter().enumerate() {
        if let Some(slot) = file.get_mut(at + i) {
            *slot = b;
        }
    }
}

fn mutate(rng: &mut fastrand::Rng, file: &mut Vec<u8>) {
    for _ in 0..rng.usize(1..=8) {
        let len = file.len();
        if len == 0 {
            file.extend((0..rng.usize(1..64)).map(|_| rng.u8(..)));
            continue;
        }
        match rng.u8(0..12) {
            0 | 1 => {
                let at = hot_offset(rng, file);
                file[at] ^= 1 << rng.u8(0..8);
            }
            2 => {
                let at = hot_offset(rng, file);
                file[at] = rng.u8(..);
            }
            3..=6 => {
                let at = hot_offset(rng, file);
                let width = [1, 2, 4, 8][rng.usize(..4)];
                let value = interesting(rng, len);
                put(file, at, value, width, rng.u8(0..8) == 0);
            }
            7 => file.truncate(rng.usize(..len)),
            8 => {
                // Copy a chunk over another place (repeats headers and notes).
                let from = rng.usize(..len);
                let size = rng.usize(..(len - from).min(4096) + 1);
                let chunk = file[from..from + size].to_vec();
                let to = rng.usize(..len);
                for (i, b) in chunk.into_iter().enumerate() {
                    if let Some(slot) = file.get_mut(to + i) {
                        *slot = b;
                    }
                }
            }
            9 => {
                let at = rng.usize(..=len);
                let bytes: Vec<u8> = (0..rng.usize(1..256)).map(|_| rng.u8(..)).collect();
                file.splice(at..at, bytes);
            }
            10 => {
                let at = rng.usize(..len);
                let end = (at + rng.usize(1..256)).min(len);
                file.drain(at..end);
            }
            _ => {
                // Grow with a repeated tail, as a note section might.
                let from = rng.usize(..len);
                let tail = file[from..].iter().take(512).copied().collect::<Vec<u8>>();
                for _ in 0..rng.usize(1..8) {
                    file.extend_from_slice(&tail);
                }
            }
        }
    }
}

/// Bytes for a note string: names, tokens, white space, brackets, NULs,
/// invalid UTF-8, and now and then something near a limit.
fn note_string(rng: &mut fastrand::Rng) -> Vec<u8> {
    const PIECES: [&[u8]; 14] = [
        b"prov",
        b"-4@%edi",
        b"8@%rsi",
        b" ",
        b"\t",
        b"[sp, 8]",
        b"[",
        b"]",
        b"@",
        b"8f@%xmm0",
        b"\xff\xfe",
        b"\xe2\x80\xae",
        b"\0",
        b"-8@-16(%rbp)",
    ];
    match rng.u8(0..20) {
        0 => vec![b'n'; MAX_NAME_LEN + rng.usize(0..2)],
        1 => vec![b'x'; MAX_ARG_SPEC_LEN + rng.usize(0..2)],
        2 => vec!["1@%a"; MAX_NOTE_ARGS + rng.usize(0..2)]
            .join(" ")
            .into_bytes(),
        3 => (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
        _ => (0..rng.usize(0..12))
            .flat_map(|_| PIECES[rng.usize(..PIECES.len())].iter().copied())
            .collect(),
    }
}

/// A provider or probe name: often one of a few, so that declared-types
/// records and probes name each other.
fn pooled_name(rng: &mut fastrand::Rng) -> Vec<u8> {
    const POOL: [&[u8]; 4] = [b"prov", b"p0", b"p1", b"p\xff"];
    if rng.bool() {
        POOL[rng.usize(..POOL.len())].to_vec()
    } else {
        note_string(rng)
    }
}

fn crafted_file(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut elf = Crafted::default();
    let names = [
        ".note.stapsdt",
        ".note.dynprobe",
        ".note.dynprobe",
        ".stapsdt.base",
        ".text",
        ".note.stapsdt\0x",
        "",
    ];
    for _ in 0..rng.usize(0..6) {
        let mut notes = Vec::new();
        for i in 0..rng.usize(0..40) {
            notes.extend(match rng.u8(0..13) {
                0 => note(b"GNU", 3, &[0; 20]),
                // Declared-types records: for one of the probes (p{i} of
                // provider "prov" is what note_string often writes), with
                // type names real, odd, too many or too long.
                10 | 11 => {
                    let types: Vec<Vec<u8>> = (0..match rng.u8(0..10) {
                        0 => 64 + rng.usize(0..3),
                        _ => rng.usize(0..6),
                    })
                        .map(|_| match rng.u8(0..6) {
                            0 => note_string(rng),
                            1 => vec![b'u'; 16 + rng.usize(0..2)],
                            _ => DeclaredType::ALL[rng.usize(..DeclaredType::ALL.len())]
                                .name()
                                .as_bytes()
                                .to_vec(),
                        })
                        .collect();
                    let refs: Vec<&[u8]> = types.iter().map(Vec::as_slice).collect();
                    if rng.bool() {
                        declared(&pooled_name(rng), &pooled_name(rng), &refs)
                    } else {
                        // Argument names: as many as the types or not,
                        // identifiers, odd bytes, or at and past 64 bytes.
                        let count = match rng.u8(0..8) {
                            0 => rng.usize(0..70),
                            1 => 1 << rng.u32(10..18),
                            _ => refs.len(),
                        };
                        let names: Vec<Vec<u8>> = (0..count)
                            .map(|i| match rng.u8(0..8) {
                                0 => note_string(rng),
                                1 => vec![b'a'; 64 + rng.usize(0..2)],
                                2 if count <= 8 => vec![b'a'; 1 << rng.u32(7..21)],
                                _ => format!("arg_{i}").into_bytes(),
                            })
                            .collect();
                        let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
                        named(&pooled_name(rng), &pooled_name(rng), &refs, &names)
                    }
                }
                12 => note(b"dynprobe", rng.u32(0..3), &note_string(rng)),
                1 => note(b"stapsdt", rng.u32(0..5), &note_string(rng)),
                2 => {
                    let mut desc = vec![0u8; rng.usize(0..30)];
                    desc.extend(note_string(rng));
                    note(b"stapsdt", 3, &desc)
                }
                _ => stapsdt(
                    0x1000 + i as u64 * 16,
                    if rng.bool() { 0x2000 + i as u64 * 2 } else { 0 },
                    &pooled_name(rng),
                    &pooled_name(rng),
                    &note_string(rng),
                ),
            });
        }
        let name = names[rng.usize(..names.len())];
        let sh_type = if rng.u8(0..8) == 0 {
            SHT_PROGBITS
        } else {
            SHT_NOTE
        };
        let shdr = elf.section(name, sh_type, rng.u64(0..0x3000), &notes);
        // Sometimes the same bytes again, or a header pointing into them.
        match rng.u8(0..6) {
            0 => {
                for _ in 0..rng.usize(1..100) {
                    elf.sections.push(shdr);
                }
            }
            1 => elf.sections.push(Shdr {
                offset: shdr.offset + rng.u64(0..shdr.size.max(1)),
                align: [0, 1, 2, 4, 8, 16, u64::MAX][rng.usize(..7)],
                ..shdr
            }),
            _ => {}
        }
    }
    let many = rng.u8(0..30) == 0;
    let phnum = if many {
        0x10000 + rng.usize(0..100)
    } else {
        rng.usize(0..6)
    };
    for i in 0..phnum {
        elf.segments.push(Phdr {
            p_type: if rng.u8(0..4) == 0 { PT_NULL } else { PT_LOAD },
            vaddr: rng.u64(0..4) * 0x1000 + i as u64,
            offset: interesting(rng, 0x4000),
            filesz: interesting(rng, 0x4000),
        });
    }
    if rng.u8(0..30) == 0 {
        // Past 0xff00 sections: extended numbering.
        let section = *elf.sections.first().unwrap_or(&Shdr {
            name: 0,
            sh_type: SHT_NOTE,
            addr: 0,
            offset: 0,
            size: 0,
            align: 4,
        });
        elf.sections.resize(0xff00 + rng.usize(0..10), section);
    }
    elf.finish()
}

/// The input of index `index`: from the seed and the index alone.
fn make_input(seed: u64, index: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let seeds = &CORPUS.get().expect("corpus is set").seeds;
    let pick = |rng: &mut fastrand::Rng| seeds[rng.usize(..seeds.len())].clone();
    match rng.u8(0..100) {
        // A valid image with argument names, one byte of a name changed
        // (a NUL splits it, a dash or a high byte makes it no identifier).
        0..=4 => {
            let mut file = pick(&mut rng);
            let at = file
                .windows(b"request_struct".len())
                .position(|w| w == b"request_struct");
            if let Some(at) = at {
                let byte = [0, b'-', b'9', 0xff, b' ', rng.u8(..)][rng.usize(..6)];
                file[at + rng.usize(..b"request_struct\0url\0fd\0".len())] = byte;
            } else {
                mutate(&mut rng, &mut file);
            }
            file
        }
        // A valid image, mutated.
        5..=59 => {
            let mut file = pick(&mut rng);
            mutate(&mut rng, &mut file);
            file
        }
        // A crafted structure, sometimes mutated.
        60..=74 => {
            let mut file = crafted_file(&mut rng);
            if rng.bool() {
                mutate(&mut rng, &mut file);
            }
            file
        }
        // Arbitrary bytes behind an ELF identification of any class/order.
        75..=89 => {
            let mut file = vec![0x7f, b'E', b'L', b'F', rng.u8(0..4), rng.u8(0..4), 1];
            file.extend((0..rng.usize(0..4096)).map(|_| rng.u8(..)));
            file
        }
        // Two images spliced.
        90..=94 => {
            let (mut a, b) = (pick(&mut rng), pick(&mut rng));
            let cut = rng.usize(..=a.len());
            a.truncate(cut);
            let from = rng.usize(..=b.len());
            a.extend_from_slice(&b[from..]);
            mutate(&mut rng, &mut a);
            a
        }
        // Anything at all.
        _ => (0..rng.usize(0..256)).map(|_| rng.u8(..)).collect(),
    }
}

// ---------------------------------------------------------------------------
// The run

fn save(options: &Options, index: u64, why: &str) {
    let _ = std::fs::create_dir_all(&options.crash_dir);
    let path = options
        .crash_dir
        .join(format!("seed{}-input{index}.elf", options.seed));
    let written = std::fs::write(&path, make_input(options.seed, index));
    eprintln!(
        "fuzz_notes: FINDING: {why} at input {index}; replay: --seed {} --replay {index}; input {}",
        options.seed,
        match written {
            Ok(()) => format!("written to {}", path.display()),
            Err(e) => format!("not written ({e})"),
        }
    );
}

#[derive(Default)]
struct Stats {
    ok: u64,
    errors: u64,
    too_large: u64,
    probes: u64,
    /// Probes read with usable declared types, and with a record refused.
    declared: u64,
    unusable: u64,
    /// Probes read with argument names, and with names refused.
    names: u64,
    names_unusable: u64,
    slowest: Duration,
    slowest_index: u64,
    most_memory: usize,
    most_memory_index: u64,
}

fn run_job(
    options: &Options,
    job: usize,
    done: &AtomicU64,
    started: &[AtomicU64],
) -> (Stats, bool) {
    JOB.with(|j| j.set(job));
    let epoch = *EPOCH.get().expect("epoch is set");
    let mut stats = Stats::default();
    let mut index = job as u64;
    while index < options.inputs {
        let input = make_input(options.seed, index);
        let before = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(before));
        CURRENT[job].store(index, Ordering::Relaxed);
        started[job].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let start = thread_cpu_time();
        let result = read_stapsdt(&input);
        let took = thread_cpu_time().saturating_sub(start);
        let peak = PEAK.with(Cell::get) - before;
        match &result {
            Ok(probes) => {
                invariants::check(probes);
                stats.ok += 1;
                stats.probes += probes.len() as u64;
                for p in probes {
                    match p.declared {
                        Declared::Types(_) => stats.declared += 1,
                        Declared::Unusable(_) => stats.unusable += 1,
                        Declared::Absent => {}
                    }
                    match p.arg_names {
                        ArgNames::Names(_) => stats.names += 1,
                        ArgNames::Unusable(_) => stats.names_unusable += 1,
                        ArgNames::Absent => {}
                    }
                }
            }
            Err(ReadError::TooLarge(_)) => stats.too_large += 1,
            Err(_) => stats.errors += 1,
        }
        drop(result);
        started[job].store(0, Ordering::Relaxed);
        if took > stats.slowest {
            (stats.slowest, stats.slowest_index) = (took, index);
        }
        if peak > stats.most_memory {
            (stats.most_memory, stats.most_memory_index) = (peak, index);
        }
        if took > options.time_limit {
            save(
                options,
                index,
                &format!(
                    "took {took:?} of CPU time, more than {:?}",
                    options.time_limit
                ),
            );
            return (stats, false);
        }
        if peak > options.memory_limit {
            save(
                options,
                index,
                &format!(
                    "took {peak} bytes of heap, more than {}",
                    options.memory_limit
                ),
            );
            return (stats, false);
        }
        done.fetch_add(1, Ordering::Relaxed);
        index += options.jobs as u64;
    }
    (stats, true)
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// CPU time of the calling thread: what an input costs, whatever else the
/// machine is doing (wall time on a loaded machine stalls for seconds).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid pointer to a timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let options = Arc::new(options());
    let mut seeds = builder_images();
    for path in &options.seed_files {
        match std::fs::read(path) {
            Ok(bytes) => seeds.push(bytes),
            Err(e) => usage(&format!("cannot read seed file {}: {e}", path.display())),
        }
    }
    let seed_count = seeds.len();
    for seed in &seeds {
        read_stapsdt(seed).expect("every seed reads");
    }
    let _ = CORPUS.set(Corpus { seeds });
    let _ = EPOCH.set(Instant::now());
    // Far above the memory limit: what an input got past it to.
    HARD_CAP.store(
        TOTAL.load(Ordering::Relaxed) + options.jobs * 4 * options.memory_limit + (256 << 20),
        Ordering::Relaxed,
    );

    let panicked = Arc::new(AtomicBool::new(false));
    {
        let (options, panicked) = (Arc::clone(&options), Arc::clone(&panicked));
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            panicked.store(true, Ordering::Relaxed);
            let index = CURRENT[JOB.with(Cell::get)].load(Ordering::Relaxed);
            save(&options, index, "panic");
            std::process::exit(1);
        }));
    }

    if let Some(dir) = &options.write_corpus {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| usage(&format!("{}: {e}", dir.display())));
        let seeds = &CORPUS.get().unwrap().seeds;
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}.elf")), seed).unwrap();
        }
        for index in 0..1000 {
            let input = make_input(options.seed, index);
            std::fs::write(dir.join(format!("generated-{index}.elf")), input).unwrap();
        }
        println!(
            "fuzz_notes: wrote {} seeds and 1000 generated inputs to {}",
            seeds.len(),
            dir.display()
        );
        return;
    }

    if let Some(index) = options.replay {
        let input = make_input(options.seed, index);
        let start = Instant::now();
        CURRENT[0].store(index, Ordering::Relaxed);
        let result = read_stapsdt(&input);
        println!(
            "input {index}: {} bytes, {:?}, {:?}",
            input.len(),
            start.elapsed(),
            result.map(|p| p.len())
        );
        return;
    }

    println!(
        "fuzz_notes: {} inputs, seed {}, {} job(s), {} seed images; limits: {:?} and {} MiB per input",
        options.inputs,
        options.seed,
        options.jobs,
        seed_count,
        options.time_limit,
        options.memory_limit >> 20
    );
    let done = Arc::new(AtomicU64::new(0));
    let started: Arc<Vec<AtomicU64>> =
        Arc::new((0..options.jobs).map(|_| AtomicU64::new(0)).collect());
    let finished = Arc::new(AtomicBool::new(false));

    // Watchdog: an input still running long past the time limit is a hang.
    // Wall time, so with room for a loaded machine's stalls.
    let watchdog = {
        let (options, started, finished) = (
            Arc::clone(&options),
            Arc::clone(&started),
            Arc::clone(&finished),
        );
        std::thread::spawn(move || {
            let epoch = *EPOCH.get().unwrap();
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                for (job, since) in started.iter().enumerate() {
                    let since = since.load(Ordering::Relaxed);
                    let now = epoch.elapsed().as_nanos() as u64;
                    if since != 0
                        && now.saturating_sub(since) > 15 * options.time_limit.as_nanos() as u64
                    {
                        let index = CURRENT[job].load(Ordering::Relaxed);
                        save(
                            &options,
                            index,
                            "hang (still running at 15 times the time limit)",
                        );
                        std::process::exit(1);
                    }
                }
            }
        })
    };
    // Progress, every 10 seconds.
    let progress = {
        let (done, finished, total) = (Arc::clone(&done), Arc::clone(&finished), options.inputs);
        std::thread::spawn(move || {
            let epoch = *EPOCH.get().unwrap();
            let mut last = Instant::now();
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() >= Duration::from_secs(10) {
                    last = Instant::now();
                    let n = done.load(Ordering::Relaxed);
                    let secs = epoch.elapsed().as_secs_f64();
                    println!(
                        "fuzz_notes: {n} / {total} inputs, {:.0} s, {:.0} inputs/s",
                        secs,
                        n as f64 / secs
                    );
                }
            }
        })
    };

    let start = Instant::now();
    let jobs: Vec<_> = (0..options.jobs)
        .map(|job| {
            let (options, done, started) = (
                Arc::clone(&options),
                Arc::clone(&done),
                Arc::clone(&started),
            );
            std::thread::spawn(move || run_job(&options, job, &done, &started))
        })
        .collect();
    let results: Vec<(Stats, bool)> = jobs
        .into_iter()
        .map(|j| j.join().unwrap_or_default())
        .collect();
    let elapsed = start.elapsed();
    finished.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    let _ = progress.join();

    let mut total = Stats::default();
    let mut failed = false;
    for (s, passed) in results {
        failed |= !passed;
        total.ok += s.ok;
        total.errors += s.errors;
        total.too_large += s.too_large;
        total.probes += s.probes;
        total.declared += s.declared;
        total.unusable += s.unusable;
        total.names += s.names;
        total.names_unusable += s.names_unusable;
        if s.slowest > total.slowest {
            (total.slowest, total.slowest_index) = (s.slowest, s.slowest_index);
        }
        if s.most_memory > total.most_memory {
            (total.most_memory, total.most_memory_index) = (s.most_memory, s.most_memory_index);
        }
    }
    let count = done.load(Ordering::Relaxed);
    println!(
        "fuzz_notes: {count} inputs in {:.1} s ({:.0}/s): {} read ({} probes), {} malformed, {} past a limit",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        total.ok,
        total.probes,
        total.errors,
        total.too_large
    );
    println!(
        "fuzz_notes: declared types: {} probes with them, {} with a record refused",
        total.declared, total.unusable
    );
    println!(
        "fuzz_notes: argument names: {} probes with them, {} with names refused",
        total.names, total.names_unusable
    );
    println!(
        "fuzz_notes: slowest input {:?} (#{}), most heap {} KiB (#{})",
        total.slowest,
        total.slowest_index,
        total.most_memory >> 10,
        total.most_memory_index
    );
    if failed || panicked.load(Ordering::Relaxed) {
        println!("fuzz_notes: FAILED");
        std::process::exit(1);
    }
    println!("fuzz_notes: 0 panics, 0 hangs, 0 over the memory limit");
}
