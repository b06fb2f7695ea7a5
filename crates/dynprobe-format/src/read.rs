//! Reading USDT probes back out of ELF bytes: the stapsdt notes of any
//! object (a dynprobe library, or anything built with `sys/sdt.h`), with each
//! argument's size, sign and location decoded. This is what `dynprobe list`
//! shows, without a tracer. Pure: bytes in, data out.
//!
//! The bytes may be hostile (`dynprobe list` runs as root over every
//! process's libraries), so reading costs time linear in the file's size and
//! memory within fixed limits, whatever the notes claim: nothing is
//! allocated from a count or size field before the bytes it describes were
//! found. The limits ([`MAX_PROBES`] and the others) sit far above what real
//! objects carry: dynprobe writes names of at most 64 bytes and at most 32
//! arguments; `sys/sdt.h` takes at most 12 arguments a probe, and its
//! largest users (QEMU's trace events) have a few thousand probes. An object
//! past any limit is refused whole, with [`ReadError::TooLarge`].
//!
//! A dynprobe library also records each probe's declared types
//! (`.note.dynprobe`, see [`crate::declared`]), read here under the same
//! limits and attached to the probes as [`StapsdtProbe::declared`]. A record
//! that does not fit its probe's note leaves that probe without declared
//! types, saying why; it never refuses the file.

use std::collections::HashMap;
use std::fmt;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::{Endian, Endianness, FileKind, SectionIndex};

use crate::declared::{self, ArgNames, Declared};
pub use crate::limits::{
    Limit, MAX_ARG_SPEC_LEN, MAX_DECODED_BYTES, MAX_LOAD_SEGMENTS, MAX_NAME_LEN, MAX_NOTES,
    MAX_NOTE_ARGS, MAX_PROBES, MAX_RECORDS,
};
use crate::stapsdt;
use crate::types::{ArgType, DeclaredType};

/// One probe as its stapsdt note describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StapsdtProbe {
    pub provider: String,
    pub name: String,
    /// The argument string as written in the note (`-4@%edi 8@%rsi`).
    pub arg_spec: String,
    pub args: Vec<NoteArg>,
    /// Address of the probe site, adjusted as tracers do when the object was
    /// prelinked (the note's `.stapsdt.base` differs from the section's).
    pub address: u64,
    /// Address of the 16-bit semaphore, 0 when the probe has none.
    pub semaphore: u64,
    /// File offsets of the two (what uprobes are keyed by), when a loadable
    /// segment holds them in the file.
    pub address_offset: Option<u64>,
    pub semaphore_offset: Option<u64>,
    /// The argument types as declared, when the file records them for this
    /// probe (dynprobe libraries do; `sys/sdt.h` objects do not).
    pub declared: Declared,
    /// The arguments' names, when the record of its declared types names
    /// them and is used.
    pub arg_names: ArgNames,
}

/// One argument of a probe: `SIZE@LOCATION` in the note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteArg {
    /// The token as written.
    pub spec: String,
    /// Size in bytes; 0 when the note does not say (or says something odd).
    pub size: u8,
    pub signed: bool,
    /// A floating-point value (`4f@`, `8f@` in newer `sys/sdt.h`).
    pub float: bool,
    /// Where the value is at the probe site: a register, or memory.
    pub location: String,
}

impl NoteArg {
    /// The C types this argument may have been declared with. A note gives
    /// only size and sign, so an unsigned 8-byte argument is a string
    /// (`char *`, which JSON arguments also are) or a `uint64_t`: both are
    /// returned, the string first. Empty when the size is unknown.
    pub fn types(&self) -> Vec<&'static str> {
        if self.float {
            return match self.size {
                4 => vec!["float"],
                8 => vec!["double"],
                _ => vec![],
            };
        }
        let int = match (self.size, self.signed) {
            (1, true) => ArgType::I8,
            (1, false) => ArgType::U8,
            (2, true) => ArgType::I16,
            (2, false) => ArgType::U16,
            (4, true) => ArgType::I32,
            (4, false) => ArgType::U32,
            (8, true) => ArgType::I64,
            (8, false) => return vec![ArgType::Str.c_name(), ArgType::U64.c_name()],
            _ => return vec![],
        };
        vec![int.c_name()]
    }
}

/// Why an object's probes could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Not an ELF file at all.
    NotElf,
    /// An ELF file whose headers or notes are damaged.
    Malformed(String),
    /// An ELF file past one of the reader's limits; nothing of it is returned.
    TooLarge(Limit),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotElf => f.write_str("not an ELF file"),
            ReadError::Malformed(why) => write!(f, "malformed ELF file: {why}"),
            ReadError::TooLarge(limit) => write!(f, "refused: the file has {limit}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<object::read::Error> for ReadError {
    fn from(e: object::read::Error) -> Self {
        ReadError::Malformed(e.to_string())
    }
}

/// The stapsdt probes of an ELF object, in note order. An object without
/// probes gives an empty list. Any bytes are safe to pass: time is linear
/// in the file's size and memory stays within the limits above.
pub fn read_stapsdt(data: &[u8]) -> Result<Vec<StapsdtProbe>, ReadError> {
    match FileKind::parse(data).map_err(|_| ReadError::NotElf)? {
        FileKind::Elf32 => read_elf::<elf::FileHeader32<Endianness>>(data),
        FileKind::Elf64 => read_elf::<elf::FileHeader64<Endianness>>(data),
        _ => Err(ReadError::NotElf),
    }
}

/// A `PT_LOAD` segment's addresses and where it is in the file.
struct Load {
    vaddr: u64,
    filesz: u64,
    offset: u64,
}

fn read_elf<H: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> Result<Vec<StapsdtProbe>, ReadError> {
    let header = H::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let word = if header.is_type_64() { 8 } else { 4 };

    let mut loads = Vec::new();
    for ph in header.program_headers(endian, data)? {
        if ph.p_type(endian) != elf::PT_LOAD {
            continue;
        }
        if loads.len() == MAX_LOAD_SEGMENTS {
            return Err(ReadError::TooLarge(Limit::LoadSegments));
        }
        loads.push(Load {
            vaddr: ph.p_vaddr(endian).into(),
            filesz: ph.p_filesz(endian).into(),
            offset: ph.p_offset(endian).into(),
        });
    }
    // File offset of a virtual address, if a loadable segment has it in the file.
    let offset_of = |addr: u64| {
        loads.iter().find_map(|load| {
            let inside = addr >= load.vaddr && addr - load.vaddr < load.filesz;
            inside.then(|| (addr - load.vaddr).wrapping_add(load.offset))
        })
    };

    // Section names are matched in place: looking each one up as a string
    // would scan the string table to its next NUL once per section, which a
    // table without NULs turns into sections times table size.
    let names = if sections.is_empty() {
        &[][..]
    } else {
        let index = header.shstrndx(endian, data)?;
        sections
            .section(SectionIndex(index as usize))?
            .data(endian, data)
            .map_err(|_| ReadError::Malformed("the section name table is out of bounds".into()))?
    };
    let named = |section: &H::SectionHeader, wanted: &[u8]| {
        let start = section.sh_name(endian) as usize;
        let name = names.get(start..).and_then(|n| n.get(..=wanted.len()));
        name.is_some_and(|n| n.ends_with(b"\0") && &n[..wanted.len()] == wanted)
    };
    let actual_base = sections
        .iter()
        .find(|s| named(s, stapsdt::BASE_SECTION))
        .map(|s| s.sh_addr(endian).into());

    // Sections that overlap would have the same notes read again and again
    // (one section's header repeated 20,000 times makes 20,000 copies of
    // each probe): the note sections must be disjoint in the file.
    // The declared-types sections too, checked with them.
    let mut note_sections = Vec::new();
    for section in sections.iter() {
        let records = named(section, declared::SECTION);
        if !records && !named(section, stapsdt::SECTION) {
            continue;
        }
        if let Some(notes) = section.notes(endian, data)? {
            let (offset, size) = (
                section.sh_offset(endian).into(),
                section.sh_size(endian).into(),
            );
            note_sections.push((offset, size, records, notes));
        }
    }
    let mut spans: Vec<(u64, u64)> = note_sections
        .iter()
        .filter(|(_, size, _, _)| *size > 0)
        .map(|&(offset, size, _, _)| (offset, size))
        .collect();
    spans.sort_unstable();
    // In bounds, as `notes` checked: no sum overflows.
    if spans.windows(2).any(|w| w[0].0 + w[0].1 > w[1].0) {
        return Err(ReadError::Malformed(
            "the .note.stapsdt and .note.dynprobe sections overlap".into(),
        ));
    }

    let mut probes = Vec::new();
    // Declared types by provider and probe name; more than one record for
    // a probe makes them all unusable (which one would be true?).
    let mut records: HashMap<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>), _> =
        HashMap::new();
    let (mut notes_seen, mut decoded, mut records_seen) = (0usize, 0usize, 0usize);
    for (_, _, is_records, mut notes) in note_sections {
        while let Some(note) = notes.next()? {
            notes_seen += 1;
            if notes_seen > MAX_NOTES {
                return Err(ReadError::TooLarge(Limit::Notes));
            }
            if is_records {
                let n_type = note.n_type(endian).0;
                if note.name() != declared::OWNER
                    || (n_type != declared::NT_DYNPROBE_DECLARED
                        && n_type != declared::NT_DYNPROBE_DECLARED_NAMED)
                {
                    continue;
                }
                records_seen += 1;
                if records_seen > MAX_RECORDS {
                    return Err(ReadError::TooLarge(Limit::Records));
                }
                let Some(record) =
                    declared::decode(note.desc(), n_type == declared::NT_DYNPROBE_DECLARED_NAMED)
                else {
                    continue;
                };
                decoded = decoded.saturating_add(record.footprint());
                if decoded > MAX_DECODED_BYTES {
                    return Err(ReadError::TooLarge(Limit::DecodedBytes));
                }
                records
                    .entry((record.provider, record.name))
                    .and_modify(|(types, names)| {
                        *types = Err(declared::duplicated());
                        *names = ArgNames::Absent;
                    })
                    .or_insert((record.types, record.names));
                continue;
            }
            if note.name() != stapsdt::OWNER || note.n_type(endian).0 != stapsdt::NT_STAPSDT {
                continue;
            }
            if probes.len() == MAX_PROBES {
                return Err(ReadError::TooLarge(Limit::Probes));
            }
            let raw = decode_descriptor(note.desc(), word, endian)?;
            let args =
                parse_args(&raw.args, MAX_NOTE_ARGS).ok_or(ReadError::TooLarge(Limit::Args))?;
            decoded = decoded
                .saturating_add(std::mem::size_of::<StapsdtProbe>())
                .saturating_add(raw.provider.len() + raw.name.len() + raw.args.len())
                .saturating_add(args.iter().map(NoteArg::footprint).sum());
            if decoded > MAX_DECODED_BYTES {
                return Err(ReadError::TooLarge(Limit::DecodedBytes));
            }
            // Prelink moved the object: move the addresses by as much.
            let shift = match actual_base {
                Some(base) if raw.base != 0 => base.wrapping_sub(raw.base),
                _ => 0,
            };
            let address = raw.pc.wrapping_add(shift);
            let semaphore = if raw.semaphore == 0 {
                0
            } else {
                raw.semaphore.wrapping_add(shift)
            };
            probes.push(StapsdtProbe {
                args,
                provider: raw.provider,
                name: raw.name,
                arg_spec: raw.args,
                address,
                semaphore,
                address_offset: offset_of(address),
                semaphore_offset: if semaphore == 0 {
                    None
                } else {
                    offset_of(semaphore)
                },
                declared: Declared::Absent,
                arg_names: ArgNames::Absent,
            });
        }
    }
    if !records.is_empty() {
        for probe in &mut probes {
            let key = (
                std::borrow::Cow::Borrowed(probe.provider.as_str()),
                std::borrow::Cow::Borrowed(probe.name.as_str()),
            );
            let record = records.get(&key);
            probe.declared = match record {
                None => Declared::Absent,
                Some((Err(why), _)) => Declared::Unusable(why.clone()),
                Some((Ok(types), _)) => check_against_note(types, &probe.args),
            };
            // Names only for types that are used: they are as many.
            probe.arg_names = match (record, &probe.declared) {
                (Some((_, names)), Declared::Types(_)) => names.clone(),
                _ => ArgNames::Absent,
            };
            decoded = decoded.saturating_add(match &probe.declared {
                Declared::Absent => 0,
                Declared::Types(types) => types.len(),
                Declared::Unusable(why) => why.len(),
            });
            decoded = decoded.saturating_add(match &probe.arg_names {
                ArgNames::Absent => 0,
                ArgNames::Names(names) => names
                    .iter()
                    .map(|n| std::mem::size_of::<String>() + n.len())
                    .sum(),
                ArgNames::Unusable(why) => why.len(),
            });
            if decoded > MAX_DECODED_BYTES {
                return Err(ReadError::TooLarge(Limit::DecodedBytes));
            }
        }
    }
    Ok(probes)
}

/// The record's types if they fit the probe's stapsdt arguments: as many,
/// and each of the size and sign the note records.
fn check_against_note(types: &[DeclaredType], args: &[NoteArg]) -> Declared {
    if types.len() != args.len() {
        return Declared::Unusable(format!(
            "its declared-types record lists {} types for the {} arguments of its note",
            types.len(),
            args.len()
        ));
    }
    for (i, (t, arg)) in types.iter().zip(args).enumerate() {
        let a = t.arg_type();
        if arg.float || arg.size != a.size() || arg.signed != a.is_signed() {
            // The token as the note has it, cut: it may be 8 KiB long.
            let spec: String = arg.spec.chars().take(64).collect();
            return Declared::Unusable(format!(
                "its declared-types record says {t} for argument {i}, which its note records as {spec:?}"
            ));
        }
    }
    Declared::Types(types.to_vec())
}

struct RawNote {
    pc: u64,
    base: u64,
    semaphore: u64,
    provider: String,
    name: String,
    args: String,
}

/// A descriptor: three addresses of the object's word size, then provider,
/// name and argument string, each NUL-terminated.
fn decode_descriptor(desc: &[u8], word: usize, endian: Endianness) -> Result<RawNote, ReadError> {
    let short = || ReadError::Malformed("a stapsdt note is too short".into());
    if desc.len() < 3 * word {
        return Err(short());
    }
    let addr = |i: usize| {
        let bytes = &desc[i * word..(i + 1) * word];
        if word == 8 {
            endian.read_u64(bytes.try_into().expect("8 bytes"))
        } else {
            u64::from(endian.read_u32(bytes.try_into().expect("4 bytes")))
        }
    };
    let mut strings = Strings(Some(&desc[3 * word..]));
    let provider = strings.next(Limit::NameLen)?.ok_or_else(short)?;
    let name = strings.next(Limit::NameLen)?.ok_or_else(short)?;
    // A note from before arguments were recorded may end after the name.
    let args = strings.next(Limit::ArgSpecLen)?.unwrap_or_default();
    Ok(RawNote {
        pc: addr(0),
        base: addr(1),
        semaphore: addr(2),
        provider,
        name,
        args,
    })
}

/// The NUL-separated strings of a descriptor; the last needs no NUL. `None`
/// once every string was taken.
struct Strings<'a>(Option<&'a [u8]>);

impl Strings<'_> {
    /// The next string, looked for no further than its limit allows.
    fn next(&mut self, limit: Limit) -> Result<Option<String>, ReadError> {
        let Some(rest) = self.0 else {
            return Ok(None);
        };
        let window = &rest[..rest.len().min(limit.max() + 1)];
        let bytes = match window.iter().position(|&b| b == 0) {
            Some(end) => {
                self.0 = Some(&rest[end + 1..]);
                &rest[..end]
            }
            None if rest.len() > limit.max() => return Err(ReadError::TooLarge(limit)),
            None => {
                self.0 = None;
                rest
            }
        };
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// Splits an argument string into its arguments. Tokens are separated by
/// white space, except inside brackets (aarch64 writes `-4@[sp, 8]`). Every
/// token gives an argument; one that cannot be understood has size 0.
pub fn parse_arg_spec(spec: &str) -> Vec<NoteArg> {
    parse_args(spec, usize::MAX).unwrap_or_default()
}

/// [`parse_arg_spec`], or `None` past `max` arguments (found before any
/// more is allocated).
fn parse_args(spec: &str, max: usize) -> Option<Vec<NoteArg>> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut depth = 0u32;
    let push = |token: &mut String, args: &mut Vec<NoteArg>| {
        if token.is_empty() {
            return Some(());
        }
        if args.len() == max {
            return None;
        }
        args.push(parse_arg(std::mem::take(token)));
        Some(())
    };
    for c in spec.chars() {
        match c {
            '[' => depth = depth.saturating_add(1),
            ']' => depth = depth.saturating_sub(1),
            c if c.is_whitespace() && depth == 0 => {
                push(&mut current, &mut args)?;
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    push(&mut current, &mut args)?;
    // Most probes have a few arguments: no spare capacity for each.
    args.shrink_to_fit();
    Some(args)
}

impl NoteArg {
    /// What this argument takes in memory, as [`MAX_DECODED_BYTES`] counts.
    fn footprint(&self) -> usize {
        std::mem::size_of::<NoteArg>() + self.spec.len() + self.location.len()
    }
}

fn parse_arg(spec: String) -> NoteArg {
    let unknown = |spec: String| NoteArg {
        location: spec.clone(),
        spec,
        size: 0,
        signed: false,
        float: false,
    };
    let Some((size, location)) = spec.split_once('@') else {
        return unknown(spec);
    };
    let (size, float) = match size.strip_suffix('f') {
        Some(s) => (s, true),
        None => (size, false),
    };
    let (digits, signed) = match size.strip_prefix('-') {
        Some(d) => (d, true),
        None => (size, false),
    };
    match digits.parse::<u8>() {
        Ok(n @ (1 | 2 | 4 | 8)) if !digits.starts_with('+') => NoteArg {
            location: location.to_string(),
            size: n,
            signed,
            float,
            spec,
        },
        _ => unknown(spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build_image, DeclaredType, ProbeDef, ProviderDef, SiteKind, Target};
    use ArgType::*;

    fn def() -> ProviderDef {
        let mut def = ProviderDef::new("myprov", "mymod");
        def.add_probe(ProbeDef::new("first", vec![I32, Str, U8]))
            .unwrap();
        def.add_probe(ProbeDef::new("second-probe", vec![I64; 8]))
            .unwrap();
        def.add_probe(ProbeDef::new("none", vec![])).unwrap();
        def.add_probe(ProbeDef::with_declared(
            "declared",
            vec![DeclaredType::Int, DeclaredType::Json, DeclaredType::C(U64)],
        ))
        .unwrap();
        def.add_probe(ProbeDef {
            arg_names: Some(vec!["request_struct".into(), "url".into()]),
            ..ProbeDef::with_declared("named", vec![DeclaredType::C(U64), DeclaredType::C(Str)])
        })
        .unwrap();
        def
    }

    #[test]
    fn reads_back_what_the_generator_wrote() {
        for target in [
            Target::x86_64(SiteKind::Nop5),
            Target::x86_64(SiteKind::Nop10),
            Target::aarch64(),
        ] {
            let image = build_image(&def(), target).unwrap();
            let probes = read_stapsdt(&image.bytes).unwrap();
            assert_eq!(probes.len(), 5);
            for (probe, layout) in probes.iter().zip(&image.probes) {
                assert_eq!(probe.provider, "myprov");
                assert_eq!(probe.name, layout.name);
                assert_eq!(probe.arg_spec, layout.arg_spec);
                assert_eq!(probe.address, layout.stub);
                assert_eq!(probe.semaphore, layout.semaphore);
                // Addresses equal file offsets in a generated image.
                assert_eq!(probe.address_offset, Some(layout.stub));
                assert_eq!(probe.semaphore_offset, Some(layout.semaphore));
            }
            let types: Vec<Vec<&str>> = probes[0].args.iter().map(NoteArg::types).collect();
            assert_eq!(
                types,
                [vec!["int32_t"], vec!["char *", "uint64_t"], vec!["uint8_t"]]
            );
            assert_eq!(probes[1].args.len(), 8);
            assert!(probes[1].args.iter().all(|a| a.types() == ["int64_t"]));
            assert!(probes[2].args.is_empty());
            // What was declared, exactly; C names where nothing else was.
            let declared: Vec<Vec<&str>> = probes
                .iter()
                .map(|p| {
                    p.declared
                        .types()
                        .unwrap()
                        .iter()
                        .map(|t| t.name())
                        .collect()
                })
                .collect();
            assert_eq!(
                declared,
                [
                    vec!["int32_t", "char *", "uint8_t"],
                    vec!["int64_t"; 8],
                    vec![],
                    vec!["int", "json", "uint64_t"],
                    vec!["uint64_t", "char *"],
                ]
            );
            // Names only where they were given.
            assert!(probes[..4].iter().all(|p| p.arg_names == ArgNames::Absent));
            assert_eq!(
                probes[4].arg_names.names().unwrap(),
                ["request_struct", "url"]
            );
        }
    }

    #[test]
    fn decodes_x86_and_aarch64_locations() {
        let args = parse_arg_spec("-4@%edi 8@%rsi -8@16(%rsp) 1@%dil");
        let got: Vec<(u8, bool, &str)> = args
            .iter()
            .map(|a| (a.size, a.signed, a.location.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (4, true, "%edi"),
                (8, false, "%rsi"),
                (8, true, "16(%rsp)"),
                (1, false, "%dil")
            ]
        );
        let args = parse_arg_spec("-4@x0  -4@[sp, 8] 8@[sp, 16]");
        assert_eq!(args.len(), 3);
        assert_eq!(args[1].location, "[sp, 8]");
        assert_eq!(args[1].spec, "-4@[sp, 8]");
        assert_eq!(args[2].types(), ["char *", "uint64_t"]);
    }

    #[test]
    fn odd_tokens_have_unknown_size_and_floats_are_named() {
        let args = parse_arg_spec("%eax 3@%ebx x@%ecx 8f@%xmm0 4f@%xmm1 +4@%edx");
        assert!(args[..3]
            .iter()
            .all(|a| a.size == 0 && a.types().is_empty()));
        assert_eq!(args[0].location, "%eax");
        assert_eq!(args[3].types(), ["double"]);
        assert_eq!(args[4].types(), ["float"]);
        assert_eq!(args[5].size, 0);
        assert!(parse_arg_spec("").is_empty());
    }

    #[test]
    fn refuses_what_is_not_elf_and_survives_truncation() {
        assert_eq!(
            read_stapsdt(b"not an elf file at all"),
            Err(ReadError::NotElf)
        );
        let image = build_image(&def(), Target::x86_64(SiteKind::Nop5)).unwrap();
        for len in [0, 16, 64, image.bytes.len() / 2, image.bytes.len() - 1] {
            // Never a panic: an error, or fewer probes.
            let _ = read_stapsdt(&image.bytes[..len]);
        }
    }

    #[test]
    fn short_descriptors_are_malformed() {
        assert!(matches!(
            decode_descriptor(&[0; 10], 8, Endianness::Little),
            Err(ReadError::Malformed(_))
        ));
        let mut desc = vec![0u8; 24];
        desc.extend_from_slice(b"prov\0name\0");
        let raw = decode_descriptor(&desc, 8, Endianness::Little).unwrap();
        assert_eq!(
            (raw.provider.as_str(), raw.name.as_str(), raw.args.as_str()),
            ("prov", "name", "")
        );
    }

    #[test]
    fn types_must_fit_the_note() {
        use DeclaredType::*;
        let args = parse_arg_spec("-8@%rdi 8@%rsi 8@%rdx -4@%ecx");
        let fits = [Int, C(ArgType::Str), Json, C(ArgType::I32)];
        assert_eq!(
            check_against_note(&fits, &args),
            Declared::Types(fits.to_vec())
        );
        let u64s = [
            C(ArgType::I64),
            C(ArgType::U64),
            C(ArgType::U64),
            C(ArgType::I32),
        ];
        assert!(check_against_note(&u64s, &args).types().is_some());
        let Declared::Unusable(why) = check_against_note(&fits[..3], &args) else {
            panic!()
        };
        assert!(why.contains("3 types for the 4 arguments"), "{why}");
        let wrong = [Int, C(ArgType::Str), Json, C(ArgType::Str)];
        let Declared::Unusable(why) = check_against_note(&wrong, &args) else {
            panic!()
        };
        assert!(
            why.contains("char * for argument 3") && why.contains("-4@%ecx"),
            "{why}"
        );
        let floats = parse_arg_spec("8f@%xmm0");
        assert!(check_against_note(&[Int], &floats).types().is_none());
    }
}
