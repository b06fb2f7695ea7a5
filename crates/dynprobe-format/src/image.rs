//! The ELF shared object for one provider, laid out in two phases with the
//! `object` crate's writer: reserve every range, then write in the same order.
//!
//! Layout (addresses equal file offsets; P is the target's largest page):
//!
//! ```text
//! 0     R+X  ELF and program headers, build-id note, .stapsdt.base,
//!            .dynsym, .hash, .dynstr, then
//!            .text: one 16-byte stub per probe (NOP site, then return)
//! P     R+W  .dynamic, then .probes (one 4-byte slot per probe: the u16
//!            semaphore the kernel counts tracers in, then a u16 flag that
//!            the loader sets while a tracer that knows no semaphore, such
//!            as DTrace's own registration, has a uprobe at the site)
//! ...        .note.stapsdt, .note.dynprobe (declared types, see declared.rs),
//!            .shstrtab, section headers (not loaded)
//! ```
//!
//! Two loaded segments, so `dlopen` maps the library with two mappings. The
//! writable segment starts its own page of the file, so no mapping of the
//! text is also a mapping of the semaphores: the kernel arms a uprobe in
//! every mapping of its file offset, and reads a semaphore only in a writable
//! one.
//!
//! `.dynamic` sits in the writable segment, but `PT_DYNAMIC` is marked
//! read-only (`PF_R`). glibc before 2.35 relocates the pointers in a
//! library's `.dynamic` in place whatever the flags say, so it needs the page
//! writable (in the text segment it dies with SIGSEGV). glibc 2.35 and later
//! read `PT_DYNAMIC`'s own flags and leave a read-only `.dynamic` as it is:
//! there, loading writes to no page. musl never writes to `.dynamic`.

use crate::arch::Target;
use crate::declared;
use crate::definition::{DefinitionError, ProviderDef};
use crate::stapsdt;
use object::elf;
use object::write::elf::{FileHeader, ProgramHeader, SectionHeader, Sym, Writer};
use object::Endianness;

/// Where one probe ended up in the image (addresses relative to the load base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeLayout {
    pub name: String,
    /// Address of the stub function, which is also the probe site.
    pub stub: u64,
    /// Address of the probe's 16-bit semaphore, the first half of its
    /// [`Image::SEMAPHORE_SLOT`]-byte slot (the loader's flag is the second).
    pub semaphore: u64,
    /// The stapsdt argument string, as tracers will read it.
    pub arg_spec: String,
    /// The stub's symbol name.
    pub symbol: String,
}

/// A generated shared object and what a loader needs to know about it.
#[derive(Debug, Clone)]
pub struct Image {
    pub bytes: Vec<u8>,
    /// SHA-1 of the definition and target; also the GNU build-id.
    pub build_id: [u8; 20],
    /// Address of the first semaphore slot; the others follow,
    /// [`Image::SEMAPHORE_SLOT`] bytes apart, in the order of the probes.
    pub semaphores: u64,
    pub probes: Vec<ProbeLayout>,
}

impl Image {
    /// Bytes per probe in the semaphore block, 4-aligned: the kernel's u16
    /// semaphore (the stapsdt note's address), then a u16 the loader owns.
    /// Reading the slot as one u32 tells whether either is set.
    pub const SEMAPHORE_SLOT: u64 = 4;

    pub fn build_id_hex(&self) -> String {
        self.build_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// In the build-id: a layout change must give existing definitions new
/// file names, or a cache would keep serving files of the old layout.
const FORMAT_VERSION: &[u8] = b"dynprobe-image-5";
const SEMAPHORE_SLOT: u64 = Image::SEMAPHORE_SLOT;

/// Builds the image for `def` on `target`. The same inputs always give the
/// same bytes, which is what lets loaders share one file between processes.
pub fn build_image(def: &ProviderDef, target: Target) -> Result<Image, DefinitionError> {
    def.validate()?;
    debug_assert!(
        target.is_consistent(),
        "site kind {:?} does not belong to {:?}",
        target.site(),
        target.arch()
    );

    let build_id = hash_definition(def, target);
    let page = target.max_page_size();
    let n = def.probes.len();
    let symbols: Vec<String> = def
        .probes
        .iter()
        .map(|p| format!("{}__{}", def.name, p.name))
        .collect();

    let specs: Vec<String> = def
        .probes
        .iter()
        .map(|p| target.arg_spec(&p.args))
        .collect();

    let mut bytes = Vec::new();
    let mut w = Writer::new(Endianness::Little, true, &mut bytes);

    // Phase 1: reserve.
    w.reserve_file_header();
    w.reserve_program_headers(5);
    let build_id_note = note(b"GNU", elf::NT_GNU_BUILD_ID.0, &build_id);
    let build_id_off = w.reserve(build_id_note.len() as u64, 4);
    let base_off = w.reserve(1, 1);

    let soname = w.add_dynamic_string(def.module.as_bytes());
    let mut dynsyms = Vec::with_capacity(n);
    for name in &symbols {
        w.reserve_dynamic_symbol_index();
        dynsyms.push(w.add_dynamic_string(name.as_bytes()));
    }
    let dynsym_off = w.reserve_dynsym();
    let symbol_count = w.dynamic_symbol_count();
    let hash_off = w.reserve_hash(symbol_count, symbol_count);
    let dynstr_off = w.reserve_dynstr().map_err(|_| unreachable_write())?;

    let text_len = n as u64 * Target::STUB_ALIGN;
    let text_off = w.reserve(text_len, Target::STUB_ALIGN);
    w.reserve_until(align(w.reserved_len(), page));
    let data_off = w.reserved_len();
    const DYNAMIC_ENTRIES: usize = 7;
    let dynamic_off = w.reserve_dynamic(DYNAMIC_ENTRIES);
    let probes_off = w.reserve(n as u64 * SEMAPHORE_SLOT, 8);
    let rw_end = w.reserved_len();

    // The probe notes point at final addresses, known now.
    let mut notes = Vec::new();
    let mut layouts = Vec::with_capacity(n);
    for (i, probe) in def.probes.iter().enumerate() {
        let stub = text_off + i as u64 * Target::STUB_ALIGN;
        let semaphore = probes_off + i as u64 * SEMAPHORE_SLOT;
        let desc =
            stapsdt::descriptor(stub, base_off, semaphore, &def.name, &probe.name, &specs[i]);
        notes.extend_from_slice(&note(stapsdt::OWNER, stapsdt::NT_STAPSDT, &desc));
        layouts.push(ProbeLayout {
            name: probe.name.clone(),
            stub,
            semaphore,
            arg_spec: specs[i].clone(),
            symbol: symbols[i].clone(),
        });
    }
    let stapsdt_off = w.reserve(notes.len() as u64, 4);
    let declared: Vec<u8> = def
        .probes
        .iter()
        .flat_map(|p| {
            let (n_type, desc) = declared::encode(
                &def.name,
                &p.name,
                &p.declared_types(),
                p.arg_names.as_deref(),
            );
            note(declared::OWNER, n_type, &desc)
        })
        .collect();
    let declared_off = w.reserve(declared.len() as u64, 4);

    let build_id_name = w.add_section_name(b".note.gnu.build-id");
    let base_name = w.add_section_name(stapsdt::BASE_SECTION);
    let text_name = w.add_section_name(b".text");
    let probes_name = w.add_section_name(b".probes");
    let stapsdt_name = w.add_section_name(stapsdt::SECTION);
    let declared_name = w.add_section_name(declared::SECTION);
    w.reserve_null_section_index();
    let build_id_index = w.reserve_section_index();
    w.reserve_section_index(); // .stapsdt.base
    w.reserve_dynsym_section_index();
    w.reserve_hash_section_index();
    w.reserve_dynstr_section_index();
    let text_index = w.reserve_section_index();
    w.reserve_dynamic_section_index();
    w.reserve_section_index(); // .probes
    w.reserve_section_index(); // .note.stapsdt
    w.reserve_section_index(); // .note.dynprobe
    w.reserve_shstrtab_section_index();
    w.reserve_shstrtab().map_err(|_| unreachable_write())?;
    w.reserve_section_headers();

    // Phase 2: write, in the same order.
    w.write_file_header(&FileHeader {
        os_abi: elf::ELFOSABI_NONE,
        abi_version: 0,
        e_type: elf::ET_DYN,
        e_machine: target.machine(),
        e_entry: 0,
        e_flags: Default::default(),
    })
    .map_err(|_| unreachable_write())?;

    w.write_align_program_headers();
    let segment = |p_type, p_flags, offset: u64, size: u64, p_align| ProgramHeader {
        p_type,
        p_flags,
        p_offset: offset,
        p_vaddr: offset,
        p_paddr: offset,
        p_filesz: size,
        p_memsz: size,
        p_align,
    };
    let text_end = text_off + text_len;
    w.write_program_header(&segment(
        elf::PT_LOAD,
        elf::PF_R | elf::PF_X,
        0,
        text_end,
        page,
    ));
    w.write_program_header(&segment(
        elf::PT_LOAD,
        elf::PF_R | elf::PF_W,
        data_off,
        rw_end - data_off,
        page,
    ));
    // PF_R although its bytes are writable: glibc 2.35+ then leaves them alone.
    w.write_program_header(&segment(
        elf::PT_DYNAMIC,
        elf::PF_R,
        dynamic_off,
        DYNAMIC_ENTRIES as u64 * 16,
        8,
    ));
    w.write_program_header(&segment(
        elf::PT_NOTE,
        elf::PF_R,
        build_id_off,
        build_id_note.len() as u64,
        4,
    ));
    w.write_program_header(&segment(elf::PT_GNU_STACK, elf::PF_R | elf::PF_W, 0, 0, 16));

    w.write_align(4);
    w.write(&build_id_note);
    w.write(&[0]); // .stapsdt.base: tracers compare its address with the notes' to detect prelinking

    w.write_null_dynamic_symbol();
    let text_section = Some(text_index.0);
    for i in 0..n {
        w.write_dynamic_symbol(&Sym {
            section: text_section,
            st_name: w.dynamic_string_offset(Some(dynsyms[i])),
            st_info: elf::SymbolInfo::new(elf::STB_GLOBAL, elf::STT_FUNC),
            st_other: elf::STV_DEFAULT.into(),
            st_shndx: Default::default(),
            st_value: layouts[i].stub,
            st_size: Target::STUB_ALIGN,
        });
    }
    w.write_hash(symbol_count, symbol_count, |i| {
        // Index 0 is the null symbol.
        (i > 0).then(|| elf::hash(symbols[i as usize - 1].as_bytes()))
    });
    w.write_dynstr();

    w.pad_until(text_off);
    let stub = target.stub();
    for _ in 0..n {
        w.write(&stub);
    }

    w.pad_until(data_off);
    w.write_align_dynamic();
    debug_assert_eq!(w.len(), dynamic_off);
    let dynstr_len = u64::from(w.dynstr_len());
    let entries = [
        (elf::DT_HASH, hash_off),
        (elf::DT_STRTAB, dynstr_off),
        (elf::DT_SYMTAB, dynsym_off),
        (elf::DT_STRSZ, dynstr_len),
        (elf::DT_SYMENT, 24),
    ];
    for (tag, value) in entries {
        w.write_dynamic(tag, value)
            .map_err(|_| unreachable_write())?;
    }
    w.write_dynamic_string(elf::DT_SONAME, soname)
        .map_err(|_| unreachable_write())?;
    w.write_dynamic(elf::DT_NULL, 0)
        .map_err(|_| unreachable_write())?;
    w.pad_until(probes_off);
    w.write(&vec![0u8; n * SEMAPHORE_SLOT as usize]);

    w.write_align(4);
    w.write(&notes);
    w.write_align(4);
    w.write(&declared);
    w.write_shstrtab();

    w.write_null_section_header();
    let alloc = elf::SHF_ALLOC;
    let header = |name, sh_type, sh_flags, addr: u64, size: u64, align: u64| SectionHeader {
        sh_name: name,
        sh_type,
        sh_flags,
        sh_addr: addr,
        sh_offset: addr,
        sh_size: size,
        sh_link: 0,
        sh_info: 0,
        sh_addralign: align,
        sh_entsize: 0,
    };
    let name = |w: &Writer<'_>, id| w.section_name_offset(Some(id));
    let build_id_header = header(
        name(&w, build_id_name),
        elf::SHT_NOTE,
        alloc,
        build_id_off,
        build_id_note.len() as u64,
        4,
    );
    let written = w.write_section_header(&build_id_header);
    debug_assert_eq!(written, build_id_index);
    w.write_section_header(&header(
        name(&w, base_name),
        elf::SHT_PROGBITS,
        alloc,
        base_off,
        1,
        1,
    ));
    w.write_dynsym_section_header(dynsym_off, 1);
    w.write_hash_section_header(hash_off);
    w.write_dynstr_section_header(dynstr_off);
    w.write_section_header(&header(
        name(&w, text_name),
        elf::SHT_PROGBITS,
        alloc | elf::SHF_EXECINSTR,
        text_off,
        text_len,
        16,
    ));
    w.write_dynamic_section_header(dynamic_off);
    w.write_section_header(&header(
        name(&w, probes_name),
        elf::SHT_PROGBITS,
        alloc | elf::SHF_WRITE,
        probes_off,
        n as u64 * SEMAPHORE_SLOT,
        8,
    ));
    let mut stapsdt_header = header(
        name(&w, stapsdt_name),
        elf::SHT_NOTE,
        Default::default(),
        0,
        notes.len() as u64,
        4,
    );
    stapsdt_header.sh_offset = stapsdt_off;
    w.write_section_header(&stapsdt_header);
    let mut declared_header = header(
        name(&w, declared_name),
        elf::SHT_NOTE,
        Default::default(),
        0,
        declared.len() as u64,
        4,
    );
    declared_header.sh_offset = declared_off;
    w.write_section_header(&declared_header);
    w.write_shstrtab_section_header();

    drop(w);
    Ok(Image {
        bytes,
        build_id,
        semaphores: probes_off,
        probes: layouts,
    })
}

/// Writing into a `Vec` cannot fail; the writer's errors are for overflowing
/// 32-bit files and fallible buffers, neither of which occurs here.
fn unreachable_write() -> DefinitionError {
    unreachable!("writing an ELF image into memory failed")
}

fn align(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

/// One ELF note: sizes, type, owner name and descriptor, each padded to 4.
fn note(owner: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(owner.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&n_type.to_le_bytes());
    out.extend_from_slice(owner);
    out.push(0);
    out.resize(align(out.len() as u64, 4) as usize, 0);
    out.extend_from_slice(desc);
    out.resize(align(out.len() as u64, 4) as usize, 0);
    out
}

/// A canonical encoding of everything that shapes the image, hashed.
fn hash_definition(def: &ProviderDef, target: Target) -> [u8; 20] {
    let mut h = sha1_smol::Sha1::new();
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u32).to_le_bytes());
        h.update(bytes);
    };
    field(FORMAT_VERSION);
    field(&[target.code()]);
    field(def.name.as_bytes());
    field(def.module.as_bytes());
    for probe in &def.probes {
        field(probe.name.as_bytes());
        field(&probe.args.iter().map(|a| a.code()).collect::<Vec<u8>>());
        field(
            &probe
                .declared_types()
                .iter()
                .map(|t| t.code())
                .collect::<Vec<u8>>(),
        );
        // Names or none (0), then each name: a probe without names and one
        // with zero arguments named are different records.
        match &probe.arg_names {
            None => field(&[0]),
            Some(names) => {
                field(&[1]);
                names.iter().for_each(|n| field(n.as_bytes()));
            }
        }
    }
    h.digest().bytes()
}
