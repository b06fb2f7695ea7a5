//! Every generated image is parsed back with the `object` crate's ELF reader
//! (and, where installed, binutils' `objdump` and `readelf`) and checked
//! against the definition it came from, for every supported target.

#[path = "common/tools.rs"]
mod tools;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use tools::tool_available;

use dynprobe_format::{
    build_image, Arch, ArgType, DeclaredType, DefinitionError, Image, ProbeDef, ProviderDef,
    SiteKind, Target, MAX_ARGS,
};
use object::elf;
use object::read::elf::{
    Dyn, ElfFile64, FileHeader, ProgramHeader, SectionHeader, Sym, SymbolTable, VersionTable,
};
use object::{Endianness, Object, SectionIndex};

type Elf<'data> = ElfFile64<'data, Endianness>;
type Phdr = elf::ProgramHeader64<Endianness>;
type Shdr = elf::SectionHeader64<Endianness>;

const NT_STAPSDT: elf::NoteType = elf::NoteType(3);
/// A probe's slot: the kernel's u16 semaphore, then the loader's u16 flag.
const SEMAPHORE_SLOT: u64 = 4;
const STUB_SIZE: u64 = 16;
/// The smallest page any supported kernel uses: a probe site must not cross one.
const SMALL_PAGE: u64 = 4096;

// ---------------------------------------------------------------------------
// Targets

/// One target and everything the tests expect of its images.
struct Case {
    target: Target,
    /// Also used in temporary file names: no '/'.
    label: &'static str,
    machine: elf::Machine,
    /// Largest page size of the architecture: segments must not share one.
    page: u64,
    site: &'static [u8],
    ret: &'static [u8],
    /// The instruction that pads a stub to 16 bytes.
    trap: &'static [u8],
    objdump: &'static str,
    /// How `objdump -d` spells the probe site.
    site_asm: &'static str,
}

const CASES: [Case; 3] = [
    Case {
        target: Target::x86_64(SiteKind::Nop5),
        label: "x86_64-nop5",
        machine: elf::EM_X86_64,
        page: 0x1000,
        site: &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        ret: &[0xc3],
        trap: &[0xcc],
        objdump: "objdump",
        site_asm: "nopl 0x0(%rax,%rax,1)",
    },
    Case {
        target: Target::x86_64(SiteKind::Nop10),
        label: "x86_64-nop10",
        machine: elf::EM_X86_64,
        page: 0x1000,
        site: &[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        ret: &[0xc3],
        trap: &[0xcc],
        objdump: "objdump",
        site_asm: "cs nopw 0x0(%rax,%rax,1)",
    },
    Case {
        target: Target::aarch64(),
        label: "aarch64",
        machine: elf::EM_AARCH64,
        page: 0x10000,
        site: &[0x1f, 0x20, 0x03, 0xd5],
        ret: &[0xc0, 0x03, 0x5f, 0xd6],
        trap: &[0x00, 0x7d, 0x20, 0xd4], // brk #0x3e8
        objdump: "aarch64-linux-gnu-objdump",
        site_asm: "nop",
    },
];

// ---------------------------------------------------------------------------
// Definitions under test, with the argument strings each target must produce

use ArgType::*;

const ALL_TYPES: [ArgType; 9] = [I8, U8, I16, U16, I32, U32, I64, U64, Str];

/// 32 arguments cycling through every type.
const MAX_ARGS_TYPES: [ArgType; 32] = {
    let mut types = [I8; 32];
    let mut i = 0;
    while i < 32 {
        types[i] = ALL_TYPES[i % ALL_TYPES.len()];
        i += 1;
    }
    types
};

const X86_MAX_ARGS_SPEC: &str = "-1@%dil 1@%sil -2@%dx 2@%cx -4@%r8d 4@%r9d \
    -8@8(%rsp) 8@16(%rsp) 8@24(%rsp) -1@32(%rsp) 1@40(%rsp) -2@48(%rsp) 2@56(%rsp) \
    -4@64(%rsp) 4@72(%rsp) -8@80(%rsp) 8@88(%rsp) 8@96(%rsp) -1@104(%rsp) 1@112(%rsp) \
    -2@120(%rsp) 2@128(%rsp) -4@136(%rsp) 4@144(%rsp) -8@152(%rsp) 8@160(%rsp) \
    8@168(%rsp) -1@176(%rsp) 1@184(%rsp) -2@192(%rsp) 2@200(%rsp) -4@208(%rsp)";

const A64_MAX_ARGS_SPEC: &str = "-1@x0 1@x1 -2@x2 2@x3 -4@x4 4@x5 -8@x6 8@x7 \
    8@[sp, 0] -1@[sp, 8] 1@[sp, 16] -2@[sp, 24] 2@[sp, 32] -4@[sp, 40] 4@[sp, 48] \
    -8@[sp, 56] 8@[sp, 64] 8@[sp, 72] -1@[sp, 80] 1@[sp, 88] -2@[sp, 96] 2@[sp, 104] \
    -4@[sp, 112] 4@[sp, 120] -8@[sp, 128] 8@[sp, 136] 8@[sp, 144] -1@[sp, 152] \
    1@[sp, 160] -2@[sp, 168] 2@[sp, 176] -4@[sp, 184]";

/// A probe and the stapsdt argument string expected on each architecture.
struct ProbeCase {
    name: String,
    args: Vec<ArgType>,
    x86: &'static str,
    a64: &'static str,
}

impl ProbeCase {
    fn new(
        name: impl Into<String>,
        args: &[ArgType],
        x86: &'static str,
        a64: &'static str,
    ) -> Self {
        ProbeCase {
            name: name.into(),
            args: args.to_vec(),
            x86,
            a64,
        }
    }

    fn spec(&self, arch: Arch) -> &'static str {
        match arch {
            Arch::X86_64 => self.x86,
            Arch::Aarch64 => self.a64,
        }
    }
}

struct Fixture {
    label: &'static str,
    provider: String,
    module: String,
    probes: Vec<ProbeCase>,
}

impl Fixture {
    fn def(&self) -> ProviderDef {
        let mut def = ProviderDef::new(self.provider.as_str(), self.module.as_str());
        for p in &self.probes {
            def.add_probe(ProbeDef::new(p.name.as_str(), p.args.as_slice()))
                .unwrap();
        }
        def
    }
}

/// Every type, every register name, the register/stack split of both ABIs,
/// no arguments, and 32 arguments.
fn sample_fixture() -> Fixture {
    Fixture {
        label: "sample",
        provider: "nodeapp".into(),
        module: "libnodeapp.so".into(),
        probes: vec![
            ProbeCase::new(
                "all-types",
                &ALL_TYPES,
                "-1@%dil 1@%sil -2@%dx 2@%cx -4@%r8d 4@%r9d -8@8(%rsp) 8@16(%rsp) 8@24(%rsp)",
                "-1@x0 1@x1 -2@x2 2@x3 -4@x4 4@x5 -8@x6 8@x7 8@[sp, 0]",
            ),
            ProbeCase::new(
                "abi",
                &[I8, U16, I32, U64, Str, I64, U8, I16],
                "-1@%dil 2@%si -4@%edx 8@%rcx 8@%r8 -8@%r9 1@8(%rsp) -2@16(%rsp)",
                "-1@x0 2@x1 -4@x2 8@x3 8@x4 -8@x5 1@x6 -2@x7",
            ),
            ProbeCase::new("no_args", &[], "", ""),
            ProbeCase::new("string", &[Str], "8@%rdi", "8@x0"),
            ProbeCase::new(
                "max-args",
                &MAX_ARGS_TYPES,
                X86_MAX_ARGS_SPEC,
                A64_MAX_ARGS_SPEC,
            ),
            // Every argument register under each of its four names.
            ProbeCase::new(
                "regs8",
                &[I8, U8, I8, U8, I8, U8],
                "-1@%dil 1@%sil -1@%dl 1@%cl -1@%r8b 1@%r9b",
                "-1@x0 1@x1 -1@x2 1@x3 -1@x4 1@x5",
            ),
            ProbeCase::new(
                "regs16",
                &[I16, U16, I16, U16, I16, U16],
                "-2@%di 2@%si -2@%dx 2@%cx -2@%r8w 2@%r9w",
                "-2@x0 2@x1 -2@x2 2@x3 -2@x4 2@x5",
            ),
            ProbeCase::new(
                "regs32",
                &[I32, U32, I32, U32, I32, U32],
                "-4@%edi 4@%esi -4@%edx 4@%ecx -4@%r8d 4@%r9d",
                "-4@x0 4@x1 -4@x2 4@x3 -4@x4 4@x5",
            ),
            ProbeCase::new(
                "regs64",
                &[I64, U64, I64, Str, I64, U64],
                "-8@%rdi 8@%rsi -8@%rdx 8@%rcx -8@%r8 8@%r9",
                "-8@x0 8@x1 -8@x2 8@x3 -8@x4 8@x5",
            ),
        ],
    }
}

/// Enough probes that the symbol tables and the text span several pages.
fn many_probes_fixture() -> Fixture {
    const SPECS: [(&[ArgType], &str, &str); 3] = [
        (&[], "", ""),
        (&[U32], "4@%edi", "4@x0"),
        (&[I16, Str], "-2@%di 8@%rsi", "-2@x0 8@x1"),
    ];
    let probes = (0..300)
        .map(|i| {
            let (args, x86, a64) = SPECS[i % SPECS.len()];
            ProbeCase::new(format!("probe{i}"), args, x86, a64)
        })
        .collect();
    Fixture {
        label: "300 probes",
        provider: "many".into(),
        module: "many".into(),
        probes,
    }
}

/// Names at exactly their length limits (provider 54, module 128, probe 64).
fn longest_names_fixture() -> Fixture {
    Fixture {
        label: "longest names",
        provider: "p".repeat(54),
        module: "m".repeat(128),
        probes: vec![ProbeCase::new("n".repeat(64), &[U8], "1@%dil", "1@x0")],
    }
}

fn fixtures() -> Vec<Fixture> {
    vec![
        sample_fixture(),
        many_probes_fixture(),
        longest_names_fixture(),
    ]
}

/// One image: the target, the fixture it was built from, and the result.
struct Subject<'a> {
    case: &'static Case,
    fixture: &'a Fixture,
    image: Image,
}

impl Subject<'_> {
    fn elf(&self) -> Elf<'_> {
        Elf::parse(self.image.bytes.as_slice())
            .unwrap_or_else(|e| panic!("{}: not a valid ELF64 file: {e}", self.ctx()))
    }

    fn ctx(&self) -> String {
        format!("{} / {}", self.case.label, self.fixture.label)
    }

    fn spec(&self, probe: usize) -> &'static str {
        self.fixture.probes[probe].spec(self.case.target.arch())
    }
}

/// Runs `check` on the image of every fixture for every target.
fn for_each_image(mut check: impl FnMut(&Subject<'_>)) {
    for fixture in &fixtures() {
        let def = fixture.def();
        for case in &CASES {
            let image = build_image(&def, case.target).expect("valid definition");
            check(&Subject {
                case,
                fixture,
                image,
            });
        }
    }
}

// ---------------------------------------------------------------------------
// Small readers on top of `object`

fn section<'data>(elf: &Elf<'data>, name: &str) -> (SectionIndex, &'data Shdr) {
    elf.elf_section_table()
        .section_by_name(elf.endian(), name.as_bytes())
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// The addresses a section occupies.
fn section_span(elf: &Elf<'_>, name: &str) -> Range<u64> {
    let (_, shdr) = section(elf, name);
    let start = shdr.sh_addr(elf.endian());
    start..start + shdr.sh_size(elf.endian())
}

/// The addresses a segment occupies.
fn segment_span(elf: &Elf<'_>, phdr: &Phdr) -> Range<u64> {
    let start = phdr.p_vaddr(elf.endian());
    start..start + phdr.p_memsz(elf.endian())
}

/// The pages (of `page` bytes) of the file a segment maps.
fn file_pages(elf: &Elf<'_>, phdr: &Phdr, page: u64) -> Range<u64> {
    let (offset, size) = phdr.file_range(elf.endian());
    offset / page..(offset + size).div_ceil(page)
}

fn contains(outer: &Range<u64>, inner: &Range<u64>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn segments<'data>(elf: &Elf<'data>, p_type: elf::ProgramType) -> Vec<&'data Phdr> {
    elf.elf_program_headers()
        .iter()
        .filter(|p| p.p_type(elf.endian()) == p_type)
        .collect()
}

/// The only `PT_LOAD` with exactly these permissions.
fn load_segment<'data>(elf: &Elf<'data>, flags: elf::ProgramFlags) -> &'data Phdr {
    let found: Vec<_> = segments(elf, elf::PT_LOAD)
        .into_iter()
        .filter(|p| p.p_flags(elf.endian()) == flags)
        .collect();
    assert_eq!(found.len(), 1, "PT_LOAD segments with flags {flags:?}");
    found[0]
}

fn text_segment<'data>(elf: &Elf<'data>) -> &'data Phdr {
    load_segment(elf, elf::PF_R | elf::PF_X)
}

fn data_segment<'data>(elf: &Elf<'data>) -> &'data Phdr {
    load_segment(elf, elf::PF_R | elf::PF_W)
}

/// The bytes loaded at `address`, read through the program headers.
fn loaded_bytes<'data>(elf: &Elf<'data>, address: u64, size: u64) -> &'data [u8] {
    segments(elf, elf::PT_LOAD)
        .into_iter()
        .find_map(|p| {
            p.data_range(elf.endian(), elf.data(), address, size)
                .unwrap()
        })
        .unwrap_or_else(|| panic!("nothing loaded at {address:#x}..+{size}"))
}

/// The file offset of a loaded address.
fn file_offset(elf: &Elf<'_>, address: u64) -> u64 {
    let endian = elf.endian();
    let phdr = segments(elf, elf::PT_LOAD)
        .into_iter()
        .find(|p| segment_span(elf, p).contains(&address))
        .unwrap_or_else(|| panic!("{address:#x} is not loaded"));
    address - phdr.p_vaddr(endian) + phdr.p_offset(endian)
}

/// One decoded `NT_STAPSDT` note.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StapsdtNote {
    pc: u64,
    base: u64,
    semaphore: u64,
    provider: String,
    name: String,
    args: String,
}

fn stapsdt_notes(elf: &Elf<'_>) -> Vec<StapsdtNote> {
    let endian = elf.endian();
    let (_, shdr) = section(elf, ".note.stapsdt");
    let notes = shdr
        .notes(endian, elf.data())
        .unwrap()
        .expect(".note.stapsdt is SHT_NOTE");
    notes
        .map(|note| {
            let note = note.unwrap();
            assert_eq!(note.name(), b"stapsdt", "note owner");
            assert_eq!(note.n_type(endian), NT_STAPSDT, "note type");
            decode_stapsdt(note.desc())
        })
        .collect()
}

/// Three 64-bit addresses, then provider, name and arguments, each NUL-terminated.
fn decode_stapsdt(desc: &[u8]) -> StapsdtNote {
    let addr = |i: usize| u64::from_le_bytes(desc[8 * i..8 * (i + 1)].try_into().unwrap());
    let strings: Vec<String> = desc[24..]
        .strip_suffix(&[0])
        .expect("descriptor ends with a NUL")
        .split(|&b| b == 0)
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    let [provider, name, args] = <[String; 3]>::try_from(strings).expect("exactly three strings");
    StapsdtNote {
        pc: addr(0),
        base: addr(1),
        semaphore: addr(2),
        provider,
        name,
        args,
    }
}

/// The notes a subject's image must carry, from its definition and layout.
fn expected_notes(subject: &Subject<'_>, base: u64) -> Vec<StapsdtNote> {
    subject
        .image
        .probes
        .iter()
        .enumerate()
        .map(|(i, layout)| StapsdtNote {
            pc: layout.stub,
            base,
            semaphore: layout.semaphore,
            provider: subject.fixture.provider.clone(),
            name: subject.fixture.probes[i].name.clone(),
            args: subject.spec(i).to_string(),
        })
        .collect()
}

/// The descriptor of the one note in the one `PT_NOTE` segment, checked to be
/// a GNU build-id.
fn build_id_from_note(elf: &Elf<'_>) -> Vec<u8> {
    let endian = elf.endian();
    let [phdr] = segments(elf, elf::PT_NOTE)[..] else {
        panic!("expected exactly one PT_NOTE");
    };
    let notes: Vec<_> = phdr
        .notes(endian, elf.data())
        .unwrap()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let [note] = &notes[..] else {
        panic!(
            "expected exactly one note in PT_NOTE, found {}",
            notes.len()
        );
    };
    assert_eq!(note.name(), b"GNU");
    assert_eq!(note.n_type(endian), elf::NT_GNU_BUILD_ID);
    note.desc().to_vec()
}

#[derive(Debug)]
struct DynSymbol {
    name: String,
    value: u64,
    size: u64,
    kind: elf::SymbolType,
    bind: elf::SymbolBind,
    visibility: elf::SymbolVisibility,
    section: Option<u16>,
}

fn dynsym_table<'data>(elf: &Elf<'data>) -> SymbolTable<'data, elf::FileHeader64<Endianness>> {
    elf.elf_section_table()
        .symbols(elf.endian(), elf.data(), elf::SHT_DYNSYM)
        .unwrap()
}

/// The dynamic symbols after the null one.
fn dynamic_symbols(elf: &Elf<'_>) -> Vec<DynSymbol> {
    let endian = elf.endian();
    let table = dynsym_table(elf);
    let (null, symbols) = table.symbols().split_first().expect("a null symbol");
    assert_eq!(null.st_name(endian), 0);
    assert_eq!(null.st_value(endian), 0);
    symbols
        .iter()
        .map(|sym| DynSymbol {
            name: String::from_utf8(table.symbol_name(endian, sym).unwrap().to_vec()).unwrap(),
            value: sym.st_value(endian),
            size: sym.st_size(endian),
            kind: sym.st_type(),
            bind: sym.st_bind(),
            visibility: sym.st_visibility(),
            section: sym.st_shndx(endian).index(),
        })
        .collect()
}

/// The `PT_DYNAMIC` entries, as (tag, value).
fn dynamic_entries(elf: &Elf<'_>) -> Vec<(elf::DynamicTag, u64)> {
    let endian = elf.endian();
    let [phdr] = segments(elf, elf::PT_DYNAMIC)[..] else {
        panic!("expected exactly one PT_DYNAMIC");
    };
    phdr.dynamic(endian, elf.data())
        .unwrap()
        .unwrap()
        .iter()
        .map(|d| (d.tag(endian), d.val(endian)))
        .collect()
}

fn dynamic_value(entries: &[(elf::DynamicTag, u64)], tag: elf::DynamicTag) -> u64 {
    let values: Vec<u64> = entries.iter().filter(|e| e.0 == tag).map(|e| e.1).collect();
    assert_eq!(values.len(), 1, "entries with tag {tag:?}");
    values[0]
}

// ---------------------------------------------------------------------------
// ELF header, segments, sections

#[test]
fn elf_header_is_a_64_bit_little_endian_shared_object_for_the_target() {
    for_each_image(|s| {
        let elf = s.elf();
        let endian = elf.endian();
        let header = elf.elf_header();
        let ident = header.e_ident();
        assert_eq!(ident.magic, elf::ELFMAG);
        assert_eq!(ident.class, elf::ELFCLASS64, "{}", s.ctx());
        assert_eq!(ident.data, elf::ELFDATA2LSB, "{}", s.ctx());
        assert_eq!(endian, Endianness::Little);
        assert_eq!(header.e_type(endian), elf::ET_DYN, "{}", s.ctx());
        assert_eq!(header.e_machine(endian), s.case.machine, "{}", s.ctx());
        assert_eq!(header.e_entry(endian), 0, "{}", s.ctx());
    });
}

#[test]
fn text_segment_is_the_only_executable_one_and_holds_every_stub() {
    for_each_image(|s| {
        let elf = s.elf();
        let endian = elf.endian();
        let text = text_segment(&elf);
        let executable = segments(&elf, elf::PT_LOAD)
            .into_iter()
            .filter(|p| p.p_flags(endian).contains(elf::PF_X))
            .count();
        assert_eq!(executable, 1, "{}", s.ctx());
        let span = segment_span(&elf, text);
        assert!(contains(&span, &section_span(&elf, ".text")), "{}", s.ctx());
        for probe in &s.image.probes {
            assert!(
                contains(&span, &(probe.stub..probe.stub + STUB_SIZE)),
                "{}",
                s.ctx()
            );
        }
    });
}

#[test]
fn data_segment_is_file_backed_and_holds_only_dynamic_and_semaphores() {
    for_each_image(|s| {
        let elf = s.elf();
        let endian = elf.endian();
        let data = data_segment(&elf);
        assert_eq!(data.p_filesz(endian), data.p_memsz(endian), "{}", s.ctx());
        let span = segment_span(&elf, data);
        let dynamic = section_span(&elf, ".dynamic");
        let probes = section_span(&elf, ".probes");
        assert!(contains(&span, &probes), "{}", s.ctx());
        // `.dynamic` first, the semaphores right after it, nothing else.
        assert_eq!(
            span,
            dynamic.start..probes.end,
            "{}: only .dynamic and semaphores are writable",
            s.ctx()
        );
        assert_eq!(probes.start, dynamic.end.next_multiple_of(8), "{}", s.ctx());
        let (_, shdr) = section(&elf, ".probes");
        assert_eq!(shdr.sh_type(endian), elf::SHT_PROGBITS, "{}", s.ctx());
        // Semaphores start at zero: no tracer is attached yet.
        assert!(
            loaded_bytes(&elf, probes.start, probes.end - probes.start)
                .iter()
                .all(|&b| b == 0),
            "{}",
            s.ctx()
        );
        let writable_exec = segments(&elf, elf::PT_LOAD)
            .into_iter()
            .any(|p| p.p_flags(endian).contains(elf::PF_W | elf::PF_X));
        assert!(!writable_exec, "{}: a W+X segment", s.ctx());
    });
}

/// glibc before 2.35 adds the load base to `.dynamic`'s pointers in place,
/// whatever the flags: the bytes must be writable. glibc 2.35 and later write
/// them only when `PT_DYNAMIC` has PF_W: it must not, so that loading writes
/// to no page there.
#[test]
fn dynamic_is_in_the_writable_segment_but_pt_dynamic_says_read_only() {
    for_each_image(|s| {
        let elf = s.elf();
        let endian = elf.endian();
        let [dynamic] = segments(&elf, elf::PT_DYNAMIC)[..] else {
            panic!("{}: expected one PT_DYNAMIC", s.ctx());
        };
        assert_eq!(
            dynamic.p_flags(endian),
            elf::PF_R,
            "{}: PT_DYNAMIC flags",
            s.ctx()
        );
        let data = segment_span(&elf, data_segment(&elf));
        assert!(
            contains(&data, &segment_span(&elf, dynamic)),
            "{}: .dynamic is not in the writable PT_LOAD (glibc < 2.35 writes to it)",
            s.ctx()
        );
        // The writable segment starts a page of its own: text and data never share one.
        assert_eq!(data.start % s.case.page, 0, "{}", s.ctx());
    });
}

#[test]
fn dynamic_note_and_stack_segments_are_present_and_sane() {
    for_each_image(|s| {
        let elf = s.elf();
        let endian = elf.endian();
        let [dynamic] = segments(&elf, elf::PT_DYNAMIC)[..] else {
            panic!("{}: expected one PT_DYNAMIC", s.ctx());
        };
        assert_eq!(
            segment_span(&elf, dynamic),
            section_span(&elf, ".dynamic"),
            "{}",
            s.ctx()
        );
        let [note] = segments(&elf, elf::PT_NOTE)[..] else {
            panic!("{}: expected one PT_NOTE", s.ctx());
        };
        assert_eq!(
            segment_span(&elf, note),
            section_span(&elf, ".note.gnu.build-id"),
            "{}",
            s.ctx()
        );
        let [stack] = segments(&elf, elf::PT_GNU_STACK)[..] else {
            panic!("{}: expected one PT_GNU_STACK", s.ctx());
        };
        assert!(
            !stack.p_flags(endian).contains(elf::PF_X),
            "{}: executable stack",
            s.ctx()
        );
        // PT_DYNAMIC and PT_NOTE must be loaded.
        let loads = segments(&elf, elf::PT_LOAD);
        for phdr in [dynamic, note] {
            let span = segment_span(&elf, phdr);
            assert!(
                loads
                    .iter()
                    .any(|l| contains(&segment_span(&elf, l), &span)),
                "{}: {:?} not inside a PT_LOAD",
                s.ctx(),
                phdr.p_type(endian)
            );
        }
    });
}

#[test]
fn load_segments_are_congruent_ordered_and_on_distinct_file_pages() {
    for_each_image(|s| {
        let elf = s.elf();
        let endian = elf.endian();
        let loads = segments(&elf, elf::PT_LOAD);
        assert_eq!(loads.len(), 2, "{}: R+X and R+W", s.ctx());
        for phdr in &loads {
            let align = phdr.p_align(endian);
            assert_eq!(align, s.case.page, "{}: p_align", s.ctx());
            assert_eq!(
                phdr.p_offset(endian) % align,
                phdr.p_vaddr(endian) % align,
                "{}: p_offset and p_vaddr not congruent",
                s.ctx()
            );
            assert!(phdr.p_filesz(endian) <= phdr.p_memsz(endian), "{}", s.ctx());
        }
        for pair in loads.windows(2) {
            let (a, b) = (segment_span(&elf, pair[0]), segment_span(&elf, pair[1]));
            assert!(
                a.end <= b.start,
                "{}: PT_LOADs unordered or overlapping",
                s.ctx()
            );
            let (a, b) = (
                file_pages(&elf, pair[0], s.case.page),
                file_pages(&elf, pair[1], s.case.page),
            );
            assert!(a.end <= b.start, "{}: PT_LOADs share a file page", s.ctx());
        }
        // Spelled out for the pair that matters: the kernel arms a uprobe in
        // every mapping of the text page, and reads semaphores in a writable one.
        let text_pages = file_pages(&elf, text_segment(&elf), s.case.page);
        for probe in &s.image.probes {
            let page = file_offset(&elf, probe.semaphore) / s.case.page;
            assert!(
                !text_pages.contains(&page),
                "{}: semaphore on a text page",
                s.ctx()
            );
        }
    });
}

#[test]
fn allocated_sections_sit_in_a_load_segment_with_matching_permissions() {
    for_each_image(|s| {
        let elf = s.elf();
        let endian = elf.endian();
        let table = elf.elf_section_table();
        for shdr in table.iter() {
            let flags = shdr.sh_flags(endian);
            if !flags.contains(elf::SHF_ALLOC) {
                continue;
            }
            let name = String::from_utf8_lossy(table.section_name(endian, shdr).unwrap());
            let start = shdr.sh_addr(endian);
            let span = start..start + shdr.sh_size(endian);
            let owners: Vec<_> = segments(&elf, elf::PT_LOAD)
                .into_iter()
                .filter(|p| contains(&segment_span(&elf, p), &span))
                .collect();
            let [load] = owners[..] else {
                panic!("{}: {name} is in {} PT_LOADs", s.ctx(), owners.len());
            };
            let p_flags = load.p_flags(endian);
            // Code must be executable; read-only data shares the text segment.
            if flags.contains(elf::SHF_EXECINSTR) {
                assert!(
                    p_flags.contains(elf::PF_X),
                    "{}: {name} not executable",
                    s.ctx()
                );
            }
            assert_eq!(
                p_flags.contains(elf::PF_W),
                flags.contains(elf::SHF_WRITE),
                "{}: {name} writable?",
                s.ctx()
            );
            assert_eq!(
                shdr.sh_offset(endian) - load.p_offset(endian),
                start - load.p_vaddr(endian),
                "{}: {name} file offset and address disagree",
                s.ctx()
            );
        }
    });
}

// ---------------------------------------------------------------------------
// stapsdt notes

#[test]
fn stapsdt_notes_describe_every_probe_in_order() {
    for_each_image(|s| {
        let elf = s.elf();
        let (_, base) = section(&elf, ".stapsdt.base");
        let (_, notes_section) = section(&elf, ".note.stapsdt");
        assert_eq!(notes_section.sh_type(elf.endian()), elf::SHT_NOTE);
        let notes = stapsdt_notes(&elf);
        assert_eq!(
            notes,
            expected_notes(s, base.sh_addr(elf.endian())),
            "{}",
            s.ctx()
        );
    });
}

#[test]
fn stapsdt_base_is_an_allocated_byte_the_notes_point_at() {
    for_each_image(|s| {
        let elf = s.elf();
        let (_, base) = section(&elf, ".stapsdt.base");
        let endian = elf.endian();
        assert_eq!(base.sh_size(endian), 1, "{}", s.ctx());
        assert!(
            base.sh_flags(endian).contains(elf::SHF_ALLOC),
            "{}",
            s.ctx()
        );
        for note in stapsdt_notes(&elf) {
            assert_eq!(note.base, base.sh_addr(endian), "{}", s.ctx());
        }
    });
}

#[test]
fn note_pcs_are_the_stubs_in_text() {
    for_each_image(|s| {
        let elf = s.elf();
        let text = section_span(&elf, ".text");
        let notes = stapsdt_notes(&elf);
        for (i, note) in notes.iter().enumerate() {
            assert_eq!(note.pc, text.start + i as u64 * STUB_SIZE, "{}", s.ctx());
            assert!(
                contains(&text, &(note.pc..note.pc + STUB_SIZE)),
                "{}",
                s.ctx()
            );
        }
        assert_eq!(
            text.end - text.start,
            notes.len() as u64 * STUB_SIZE,
            "{}",
            s.ctx()
        );
    });
}

#[test]
fn semaphores_are_distinct_four_byte_aligned_slots_inside_probes_section() {
    assert_eq!(Image::SEMAPHORE_SLOT, SEMAPHORE_SLOT);
    for_each_image(|s| {
        let elf = s.elf();
        let probes = section_span(&elf, ".probes");
        let n = s.fixture.probes.len() as u64;
        assert_eq!(probes.end - probes.start, n * SEMAPHORE_SLOT, "{}", s.ctx());
        // The whole block is zero in the file: no tracer, no flag.
        let bytes = &s.image.bytes[probes.start as usize..probes.end as usize];
        assert!(bytes.iter().all(|&b| b == 0), "{}", s.ctx());
        assert_eq!(s.image.semaphores, probes.start, "{}", s.ctx());
        let notes = stapsdt_notes(&elf);
        let mut seen = HashSet::new();
        for (i, note) in notes.iter().enumerate() {
            let sem = note.semaphore;
            assert_eq!(
                sem,
                s.image.semaphores + i as u64 * SEMAPHORE_SLOT,
                "{}",
                s.ctx()
            );
            assert_eq!(sem % SEMAPHORE_SLOT, 0, "{}: misaligned semaphore", s.ctx());
            assert!(
                contains(&probes, &(sem..sem + SEMAPHORE_SLOT)),
                "{}",
                s.ctx()
            );
            assert!(seen.insert(sem), "{}: semaphore {sem:#x} shared", s.ctx());
        }
    });
}

#[test]
fn argument_specs_are_exact_for_every_type_and_for_32_arguments() {
    // The sample fixture holds the interesting specs; the loop covers all targets.
    for_each_image(|s| {
        let notes = stapsdt_notes(&s.elf());
        for (i, (note, layout)) in notes.iter().zip(&s.image.probes).enumerate() {
            assert_eq!(note.args, s.spec(i), "{}: probe {}", s.ctx(), note.name);
            assert_eq!(layout.arg_spec, s.spec(i), "{}: ProbeLayout", s.ctx());
        }
    });
    let fixture = sample_fixture();
    let max = fixture
        .probes
        .iter()
        .find(|p| p.name == "max-args")
        .unwrap();
    assert_eq!(max.args.len(), MAX_ARGS);
    assert_eq!(max.x86.split(' ').count(), MAX_ARGS);
    assert_eq!(max.a64.matches('@').count(), MAX_ARGS);
}

// ---------------------------------------------------------------------------
// Machine code

#[test]
fn each_stub_is_the_site_nop_then_return_padded_with_traps() {
    for_each_image(|s| {
        let elf = s.elf();
        let case = s.case;
        for probe in &s.image.probes {
            let ctx = format!("{}: stub {} at {:#x}", s.ctx(), probe.name, probe.stub);
            assert_eq!(probe.stub % STUB_SIZE, 0, "{ctx}: not 16-byte aligned");
            assert_eq!(
                probe.stub / SMALL_PAGE,
                (probe.stub + STUB_SIZE - 1) / SMALL_PAGE,
                "{ctx}: crosses a page"
            );
            let bytes = loaded_bytes(&elf, probe.stub, STUB_SIZE);
            let (site, rest) = bytes.split_at(case.site.len());
            let (ret_bytes, padding) = rest.split_at(case.ret.len());
            assert_eq!(site, case.site, "{ctx}: site");
            assert_eq!(ret_bytes, case.ret, "{ctx}: return");
            for (i, &b) in padding.iter().enumerate() {
                assert_eq!(b, case.trap[i % case.trap.len()], "{ctx}: padding");
            }
        }
    });
}

// ---------------------------------------------------------------------------
// Dynamic symbols and the dynamic section

#[test]
fn dynsym_exports_a_function_per_probe() {
    for_each_image(|s| {
        let elf = s.elf();
        let (text_index, _) = section(&elf, ".text");
        let symbols: HashMap<String, DynSymbol> = dynamic_symbols(&elf)
            .into_iter()
            .map(|sym| (sym.name.clone(), sym))
            .collect();
        assert_eq!(
            symbols.len(),
            s.fixture.probes.len(),
            "{}: symbol names not unique",
            s.ctx()
        );
        for (probe, layout) in s.fixture.probes.iter().zip(&s.image.probes) {
            let name = format!("{}__{}", s.fixture.provider, probe.name);
            assert_eq!(layout.symbol, name, "{}", s.ctx());
            let sym = symbols
                .get(&name)
                .unwrap_or_else(|| panic!("{}: no symbol {name}", s.ctx()));
            assert_eq!(sym.value, layout.stub, "{}: {name}", s.ctx());
            assert_eq!(sym.kind, elf::STT_FUNC, "{}: {name}", s.ctx());
            assert_eq!(sym.bind, elf::STB_GLOBAL, "{}: {name}", s.ctx());
            assert_eq!(sym.visibility, elf::STV_DEFAULT, "{}: {name}", s.ctx());
            assert_eq!(
                sym.section.map(usize::from),
                Some(text_index.0),
                "{}: {name}",
                s.ctx()
            );
            assert!(sym.size > 0, "{}: {name}", s.ctx());
        }
    });
}

#[test]
fn every_symbol_is_found_through_the_sysv_hash_table() {
    for_each_image(|s| {
        let elf = s.elf();
        let endian = elf.endian();
        let (hash, link) = elf
            .elf_section_table()
            .hash(endian, elf.data())
            .unwrap()
            .expect("a .hash section");
        let (dynsym_index, _) = section(&elf, ".dynsym");
        assert_eq!(link, dynsym_index, "{}", s.ctx());
        let table = dynsym_table(&elf);
        assert_eq!(
            hash.symbol_table_length() as usize,
            table.symbols().len(),
            "{}",
            s.ctx()
        );
        let versions = VersionTable::default();
        for sym in dynamic_symbols(&elf) {
            let name = sym.name.as_bytes();
            let (_, found) = hash
                .find(endian, name, elf::hash(name), None, &table, &versions)
                .unwrap_or_else(|| panic!("{}: {} not found by hash", s.ctx(), sym.name));
            assert_eq!(found.st_value(endian), sym.value, "{}", s.ctx());
        }
    });
}

#[test]
fn dynamic_section_names_the_soname_and_points_at_the_tables() {
    for_each_image(|s| {
        let elf = s.elf();
        let endian = elf.endian();
        let entries = dynamic_entries(&elf);
        assert_eq!(entries.last(), Some(&(elf::DT_NULL, 0)), "{}", s.ctx());
        let addr = |name| section_span(&elf, name).start;
        assert_eq!(
            dynamic_value(&entries, elf::DT_HASH),
            addr(".hash"),
            "{}",
            s.ctx()
        );
        assert_eq!(
            dynamic_value(&entries, elf::DT_STRTAB),
            addr(".dynstr"),
            "{}",
            s.ctx()
        );
        assert_eq!(
            dynamic_value(&entries, elf::DT_SYMTAB),
            addr(".dynsym"),
            "{}",
            s.ctx()
        );
        let dynstr = section_span(&elf, ".dynstr");
        assert_eq!(
            dynamic_value(&entries, elf::DT_STRSZ),
            dynstr.end - dynstr.start,
            "{}",
            s.ctx()
        );
        assert_eq!(dynamic_value(&entries, elf::DT_SYMENT), 24, "{}", s.ctx());
        let (dynstr_index, _) = section(&elf, ".dynstr");
        let strings = elf
            .elf_section_table()
            .strings(endian, elf.data(), dynstr_index)
            .unwrap();
        let soname = dynamic_value(&entries, elf::DT_SONAME);
        let soname = strings.get(u32::try_from(soname).unwrap()).unwrap();
        assert_eq!(soname, s.fixture.module.as_bytes(), "{}", s.ctx());
    });
}

// ---------------------------------------------------------------------------
// Build-id and determinism

#[test]
fn build_id_note_holds_image_build_id() {
    for_each_image(|s| {
        let elf = s.elf();
        let id = build_id_from_note(&elf);
        assert_eq!(id.len(), 20, "{}", s.ctx());
        assert_eq!(id, s.image.build_id, "{}", s.ctx());
        assert_eq!(
            elf.build_id().unwrap(),
            Some(&s.image.build_id[..]),
            "{}",
            s.ctx()
        );
        let hex = id
            .iter()
            .fold(String::new(), |hex, b| hex + &format!("{b:02x}"));
        assert_eq!(s.image.build_id_hex(), hex, "{}", s.ctx());
    });
}

#[test]
fn the_same_definition_always_gives_the_same_bytes() {
    for fixture in &fixtures() {
        for case in &CASES {
            let first = build_image(&fixture.def(), case.target).unwrap();
            let again = build_image(&fixture.def().clone(), case.target).unwrap();
            assert!(
                first.bytes == again.bytes,
                "{} / {}",
                case.label,
                fixture.label
            );
            assert_eq!(first.build_id, again.build_id);
            assert_eq!(first.probes, again.probes);
            assert_eq!(first.semaphores, again.semaphores);
        }
    }
}

type Edit = fn(&mut ProviderDef);

fn edited(def: &ProviderDef, edit: impl FnOnce(&mut ProviderDef)) -> ProviderDef {
    let mut def = def.clone();
    edit(&mut def);
    def
}

#[test]
fn any_change_to_definition_or_target_changes_the_build_id() {
    let base = sample_fixture().def();
    let edits: [(&str, Edit); 12] = [
        ("provider", |d| d.name.push('x')),
        ("module", |d| d.module.push('x')),
        ("provider/module boundary", |d| {
            let last = d.name.pop().unwrap();
            d.module.insert(0, last);
        }),
        ("probe name", |d| d.probes[0].name.push('x')),
        ("arg type", |d| d.probes[0].args[0] = U8),
        ("arg added", |d| d.probes[2].args.push(U8)),
        ("arg removed", |d| d.probes[3].args.clear()),
        ("arg moved to the next probe", |d| {
            let arg = d.probes[1].args.pop().unwrap();
            d.probes[2].args.push(arg);
        }),
        ("probes reordered", |d| d.probes.swap(0, 1)),
        ("probe added", |d| d.probes.push(ProbeDef::new("extra", []))),
        ("probe removed", |d| d.probes.truncate(4)),
        ("declared as int and json", |d| {
            for p in &mut d.probes {
                let api_names = p.args.iter().map(|&a| match a {
                    I64 => DeclaredType::Int,
                    Str => DeclaredType::Json,
                    a => DeclaredType::C(a),
                });
                p.declared = Some(api_names.collect());
            }
        }),
    ];
    let retargeted = CASES.iter().map(|c| (c.label, base.clone(), c.target));
    let nop5 = CASES[0].target;
    let edited_defs = edits.map(|(what, edit)| (what, edited(&base, edit), nop5));
    let mut ids = HashMap::new();
    for (what, def, target) in retargeted.chain(edited_defs) {
        let image = build_image(&def, target).unwrap_or_else(|e| panic!("{what}: {e}"));
        let elf = Elf::parse(image.bytes.as_slice()).unwrap();
        assert_eq!(build_id_from_note(&elf), image.build_id, "{what}");
        if let Some(other) = ids.insert(image.build_id, what) {
            panic!("{what} has the same build-id as {other}");
        }
    }
    // Declaring the C names themselves is what no declaration records.
    let explicit = edited(&base, |d| {
        for p in &mut d.probes {
            p.declared = Some(p.declared_types());
        }
    });
    assert_eq!(
        build_image(&explicit, nop5).unwrap().bytes,
        build_image(&base, nop5).unwrap().bytes
    );
}

// ---------------------------------------------------------------------------
// Validation

fn one_probe(provider: &str, module: &str, probe: &str) -> ProviderDef {
    ProviderDef {
        name: provider.into(),
        module: module.into(),
        probes: vec![ProbeDef::new(probe, [U64])],
    }
}

type DefNamed = fn(&str) -> ProviderDef;

/// Each kind of name (as `Debug` spells `NameKind`), its length limit, and a
/// one-probe definition with a given name in its place.
const NAME_KINDS: [(&str, usize, DefNamed); 3] = [
    ("Provider", 54, |name| one_probe(name, "m", "p")),
    ("Module", 128, |name| one_probe("p", name, "p")),
    ("Probe", 64, |name| one_probe("p", "m", name)),
];

/// `validate` and `build_image` for every target refuse `def` with `expected`
/// (compared by its `Debug` form, as `NameKind` is not exported).
fn assert_refused(def: &ProviderDef, expected: &str) {
    let err = def.validate().expect_err(expected);
    assert_eq!(format!("{err:?}"), expected);
    assert!(!err.to_string().is_empty());
    for case in &CASES {
        match build_image(def, case.target) {
            Ok(image) => panic!(
                "{}: built {} bytes for a definition refused with {expected}",
                case.label,
                image.bytes.len()
            ),
            Err(e) => assert_eq!(e, err, "{}", case.label),
        }
    }
}

#[test]
fn empty_nul_white_space_and_control_characters_are_refused_in_every_name() {
    const SPACE: &str = "contains white space or a control character";
    let bad = [
        ("", "is empty"),
        ("a\0b", "contains a NUL byte"),
        ("a b", SPACE),
        ("a\tb", SPACE),
        ("a\nb", SPACE),
        (" a", SPACE),
        ("a ", SPACE),
        ("a\u{a0}b", SPACE),
        ("a\u{7}b", SPACE),
        ("a\u{7f}b", SPACE),
    ];
    for (kind, _, def_named) in NAME_KINDS {
        for (name, reason) in bad {
            let expected =
                format!("BadName {{ kind: {kind}, name: {name:?}, reason: {reason:?} }}");
            assert_refused(&def_named(name), &expected);
        }
    }
}

#[test]
fn names_are_accepted_up_to_their_limit_and_refused_beyond() {
    for (kind, max, def_named) in NAME_KINDS {
        def_named(&"a".repeat(max)).validate().unwrap();
        // The limit is in bytes, not characters.
        def_named(&"\u{e9}".repeat(max / 2)).validate().unwrap();
        let too_long = "a".repeat(max + 1);
        let expected = format!("NameTooLong {{ kind: {kind}, name: {too_long:?}, max: {max} }}");
        assert_refused(&def_named(&too_long), &expected);
        let wide = "\u{e9}".repeat(max / 2 + 1);
        let expected = format!("NameTooLong {{ kind: {kind}, name: {wide:?}, max: {max} }}");
        assert_refused(&def_named(&wide), &expected);
    }
}

#[test]
fn module_must_be_a_file_name() {
    const REASON: &str = "must be usable as a file name (no '/', not '.' or '..')";
    for module in ["a/b", "/abs", "dir/", ".", ".."] {
        let expected = format!("BadName {{ kind: Module, name: {module:?}, reason: {REASON:?} }}");
        assert_refused(&one_probe("p", module, "p"), &expected);
    }
    // Dots are fine inside a name.
    one_probe("p", "libp.so.1", "p").validate().unwrap();
    one_probe("p", "...", "p").validate().unwrap();
}

#[test]
fn duplicate_probes_too_many_args_and_no_probes_are_refused() {
    let duplicate = edited(&one_probe("p", "m", "dup"), |d| {
        d.probes.push(ProbeDef::new("dup", []));
    });
    assert_refused(&duplicate, r#"DuplicateProbe("dup")"#);
    let too_many = edited(&one_probe("p", "m", "p"), |d| {
        d.probes[0].args = vec![U8; MAX_ARGS + 1];
    });
    assert_refused(&too_many, r#"TooManyArgs { probe: "p", count: 33 }"#);
    let empty = ProviderDef::new("lonely", "m");
    assert_refused(&empty, r#"NoProbes("lonely")"#);
    // The errors are the typed values, not just their spelling.
    assert_eq!(
        duplicate.validate(),
        Err(DefinitionError::DuplicateProbe("dup".into()))
    );
    assert_eq!(
        too_many.validate(),
        Err(DefinitionError::TooManyArgs {
            probe: "p".into(),
            count: 33
        })
    );
    assert_eq!(
        empty.validate(),
        Err(DefinitionError::NoProbes("lonely".into()))
    );
}

#[test]
fn add_probe_refuses_bad_probes_and_keeps_the_provider_unchanged() {
    let mut def = ProviderDef::new("p", "m");
    def.add_probe(ProbeDef::new("first", [U8; MAX_ARGS]))
        .unwrap();
    let refusals = [
        (
            ProbeDef::new("first", []),
            DefinitionError::DuplicateProbe("first".into()),
        ),
        (
            ProbeDef::new("wide", vec![U8; MAX_ARGS + 1]),
            DefinitionError::TooManyArgs {
                probe: "wide".into(),
                count: MAX_ARGS + 1,
            },
        ),
    ];
    for (probe, expected) in refusals {
        assert_eq!(def.add_probe(probe).unwrap_err(), expected);
    }
    let err = def.add_probe(ProbeDef::new("has space", [])).unwrap_err();
    assert!(matches!(err, DefinitionError::BadName { ref name, .. } if name == "has space"));
    assert_eq!(def.probes.len(), 1);
    assert!(def.probe("first").is_some());
    build_image(&def, Target::aarch64()).unwrap();
}

#[test]
fn add_probes_refuses_as_add_probe_does_and_adds_none_on_a_refusal() {
    let mut def = ProviderDef::new("p", "m");
    def.add_probe(ProbeDef::new("first", [U8])).unwrap();
    let batch = |names: &[&str]| {
        names
            .iter()
            .map(|n| ProbeDef::new(*n, [U8]))
            .collect::<Vec<_>>()
    };
    let refusals = [
        (
            batch(&["a", "first"]),
            DefinitionError::DuplicateProbe("first".into()),
        ),
        (
            batch(&["a", "b", "a"]),
            DefinitionError::DuplicateProbe("a".into()),
        ),
    ];
    for (probes, expected) in refusals {
        assert_eq!(def.add_probes(probes).unwrap_err(), expected);
        assert_eq!(def.probes.len(), 1);
    }
    let mut wide = batch(&["a"]);
    wide.push(ProbeDef::new("wide", vec![U8; MAX_ARGS + 1]));
    assert!(matches!(
        def.add_probes(wide),
        Err(DefinitionError::TooManyArgs { .. })
    ));
    assert_eq!(def.probes.len(), 1);
    // Many at once, in order, in one pass (not each name against every
    // other).
    let names: Vec<String> = (0..20_000).map(|i| format!("p{i}")).collect();
    def.add_probes(names.iter().map(|n| ProbeDef::new(n.as_str(), [U8])))
        .unwrap();
    assert_eq!(def.probes.len(), 20_001);
    assert_eq!(def.probes[20_000].name, "p19999");
    def.validate().unwrap();
    assert_eq!(
        def.add_probes(batch(&["p7"])).unwrap_err(),
        DefinitionError::DuplicateProbe("p7".into())
    );
}

#[test]
fn c_type_names_parse_exactly_and_unknown_ones_are_refused() {
    for ty in ALL_TYPES {
        assert_eq!(ArgType::from_c_name(ty.c_name()), Ok(ty));
    }
    let aliases = [
        ("int", I64),
        ("char*", Str),
        ("string", Str),
        (" int32_t ", I32),
    ];
    for (name, ty) in aliases {
        assert_eq!(ArgType::from_c_name(name), Ok(ty), "{name:?}");
    }
    for name in ["float", "", "int8", "uint", "INT32_T", "char  *", "long"] {
        assert_eq!(
            ArgType::from_c_name(name),
            Err(DefinitionError::UnknownType(name.trim().to_string())),
            "{name:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Cross-checks with binutils

/// An image written to a uniquely named temporary file, removed on drop.
struct TempImage(PathBuf);

impl TempImage {
    fn new(label: &str, bytes: &[u8]) -> TempImage {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "dynprobe-format-test-{}-{}-{label}.so",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, bytes).unwrap();
        TempImage(path)
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `tool args... file`, which must succeed without a word on stderr.
fn run_tool(tool: &str, args: &[&str], file: &Path) -> String {
    let out = Command::new(tool).args(args).arg(file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "{tool} {args:?} complained: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `objdump -d --no-show-raw-insn` output as address -> instruction (white
/// space collapsed), and the addresses of the `<symbol>:` labels.
fn parse_disassembly(text: &str) -> (HashMap<u64, String>, HashMap<String, u64>) {
    let mut instructions = HashMap::new();
    let mut labels = HashMap::new();
    for line in text.lines() {
        if let Some(label) = line.strip_suffix(">:") {
            let (addr, name) = label.split_once(" <").expect("address <symbol>:");
            labels.insert(name.to_string(), u64::from_str_radix(addr, 16).unwrap());
        } else if let Some((addr, insn)) = line.trim_start().split_once(":\t") {
            if let Ok(addr) = u64::from_str_radix(addr, 16) {
                let insn = insn.split_whitespace().collect::<Vec<_>>().join(" ");
                instructions.insert(addr, insn);
            }
        }
    }
    (instructions, labels)
}

#[test]
fn objdump_disassembles_each_stub_to_the_site_nop_then_ret() {
    let def = sample_fixture().def();
    for case in &CASES {
        let test = format!(
            "objdump_disassembles_each_stub_to_the_site_nop_then_ret ({})",
            case.label
        );
        if !tool_available(case.objdump, &test) {
            continue;
        }
        let image = build_image(&def, case.target).unwrap();
        let file = TempImage::new(case.label, &image.bytes);
        let listing = run_tool(case.objdump, &["-d", "--no-show-raw-insn"], &file.0);
        let (instructions, labels) = parse_disassembly(&listing);
        for probe in &image.probes {
            let at = |addr: u64| instructions.get(&addr).map(String::as_str);
            assert_eq!(
                labels.get(&probe.symbol),
                Some(&probe.stub),
                "{test}: {}",
                probe.symbol
            );
            assert_eq!(
                at(probe.stub),
                Some(case.site_asm),
                "{test}: {}",
                probe.symbol
            );
            let ret = probe.stub + case.site.len() as u64;
            assert_eq!(at(ret), Some("ret"), "{test}: {}", probe.symbol);
        }
    }
}

/// The stapsdt notes as `readelf -n` prints them: `Provider:` and `Name:`
/// lines, a `Location: .., Base: .., Semaphore: ..` line, then `Arguments:`.
fn parse_readelf_notes(text: &str) -> Vec<StapsdtNote> {
    let mut notes = Vec::new();
    let mut fields: HashMap<&str, &str> = HashMap::new();
    // `--wide` puts the first line of a note's description after a tab.
    for line in text.lines().flat_map(|l| l.split('\t')).map(str::trim) {
        let Some(args) = line.strip_prefix("Arguments:") else {
            for part in line.split(", ") {
                if let Some((key, value)) = part.split_once(": ") {
                    fields.insert(key, value.trim());
                }
            }
            continue;
        };
        let hex =
            |key: &str| u64::from_str_radix(fields[key].trim_start_matches("0x"), 16).unwrap();
        notes.push(StapsdtNote {
            pc: hex("Location"),
            base: hex("Base"),
            semaphore: hex("Semaphore"),
            provider: fields["Provider"].to_string(),
            name: fields["Name"].to_string(),
            args: args.trim().to_string(),
        });
        fields.clear();
    }
    notes
}

#[test]
fn readelf_lists_the_stapsdt_notes() {
    if !tool_available("readelf", "readelf_lists_the_stapsdt_notes") {
        return;
    }
    let fixture = sample_fixture();
    let def = fixture.def();
    for case in &CASES {
        let subject = Subject {
            case,
            fixture: &fixture,
            image: build_image(&def, case.target).unwrap(),
        };
        let base = section_span(&subject.elf(), ".stapsdt.base").start;
        let file = TempImage::new(case.label, &subject.image.bytes);
        let text = run_tool("readelf", &["-n"], &file.0);
        let build_id = format!("Build ID: {}", subject.image.build_id_hex());
        assert!(text.contains(&build_id), "{}", case.label);
        assert_eq!(
            parse_readelf_notes(&text),
            expected_notes(&subject, base),
            "{}",
            case.label
        );
    }
}

// ---------------------------------------------------------------------------
// The system's own dynamic linker

/// The targets this machine runs.
fn native_cases() -> impl Iterator<Item = &'static Case> {
    let host = if cfg!(target_arch = "x86_64") {
        Some(Arch::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Arch::Aarch64)
    } else {
        None
    };
    CASES.iter().filter(move |c| Some(c.target.arch()) == host)
}

/// One mapping in `/proc/self/smaps`: permissions, and the kB of its pages
/// that are anonymous, i.e. copies made when the process wrote to them (not
/// `Private_Dirty`, which also counts page-cache pages of a freshly written
/// file).
#[derive(Debug)]
struct Mapping {
    perms: String,
    written_kb: u64,
}

/// The mappings of `file` in this process.
fn mappings_of(file: &Path) -> Vec<Mapping> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let wanted = file.to_str().unwrap();
    let mut found = Vec::new();
    let mut current: Option<Mapping> = None;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A mapping's first line: `start-end perms offset dev inode [path]`.
        if fields
            .first()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            found.extend(current.take());
            if fields.len() >= 6 && fields[5..].join(" ") == wanted {
                current = Some(Mapping {
                    perms: fields[1].to_string(),
                    written_kb: 0,
                });
            }
        } else if let (Some(m), ["Anonymous:", kb, "kB"]) = (current.as_mut(), &fields[..]) {
            m.written_kb = kb.parse().unwrap();
        }
    }
    found.extend(current);
    found
}

/// glibc's version as (major, minor), or None on another libc.
fn glibc_version() -> Option<(u32, u32)> {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        let mut parts = v.to_str().ok()?.split('.').map(|p| p.parse().ok());
        Some((parts.next()??, parts.next()??))
    }
    #[cfg(not(target_env = "gnu"))]
    None
}

/// The real loader maps every image as two mappings, R+X and R+W (never W
/// and X at once), its stubs run, and on glibc 2.35+ and musl no page of the
/// library is written by loading. Older glibc writes `.dynamic`: there only
/// the writable mapping may have a written page.
#[test]
fn the_system_loader_maps_each_image_writes_no_page_and_runs_its_stubs() {
    let writes_dynamic = glibc_version().is_some_and(|v| v < (2, 35));
    for fixture in [sample_fixture(), many_probes_fixture()] {
        let def = fixture.def();
        for case in native_cases() {
            let ctx = format!("{} / {}", case.label, fixture.label);
            let image = build_image(&def, case.target).unwrap();
            let file = TempImage::new(case.label, &image.bytes);
            let path = std::ffi::CString::new(file.0.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: the image has no initialisers; it is closed below.
            let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if handle.is_null() {
                // SAFETY: dlerror returns a NUL-terminated message after a failure.
                let why = unsafe { std::ffi::CStr::from_ptr(libc::dlerror()) };
                panic!("{ctx}: dlopen refused the image: {why:?}");
            }
            // Where the page is smaller than the image's alignment (aarch64
            // with 4 KiB pages), the loader leaves the gap between the
            // segments mapped with no access: not one of the two.
            let maps: Vec<Mapping> = mappings_of(&file.0)
                .into_iter()
                .filter(|m| !m.perms.starts_with("---"))
                .collect();
            let perms: Vec<&str> = maps.iter().map(|m| &m.perms[..3]).collect();
            assert_eq!(perms, ["r-x", "rw-"], "{ctx}: {maps:?}");
            assert!(
                maps.iter().all(|m| m.perms.ends_with('p')),
                "{ctx}: {maps:?}"
            );
            assert_eq!(
                maps[0].written_kb, 0,
                "{ctx}: loading wrote the text: {maps:?}"
            );
            if !writes_dynamic {
                assert_eq!(
                    maps[1].written_kb,
                    0,
                    "{ctx}: loading wrote a page ({:?}): {maps:?}",
                    glibc_version()
                );
            }
            for probe in &image.probes {
                let symbol = std::ffi::CString::new(probe.symbol.as_str()).unwrap();
                // SAFETY: handle is open; the symbol names a stub function.
                let stub = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
                assert!(!stub.is_null(), "{ctx}: no symbol {}", probe.symbol);
                // SAFETY: a stub is a probe site then a return, callable with no arguments.
                let call: extern "C" fn() = unsafe { std::mem::transmute(stub) };
                call();
            }
            // SAFETY: opened above; nothing from it is used after this.
            assert_eq!(unsafe { libc::dlclose(handle) }, 0, "{ctx}");
        }
    }
}
