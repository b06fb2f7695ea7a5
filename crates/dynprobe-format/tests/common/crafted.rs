//! Hand-made ELF64 little-endian files, for what no linker would write:
//! overlapping or repeated sections, extended section and program header
//! counts, notes of any size. Shared by the limit tests and the fuzz driver.
#![allow(dead_code)]

pub const SHT_PROGBITS: u32 = 1;
pub const SHT_STRTAB: u32 = 3;
pub const SHT_NOTE: u32 = 7;
pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
const PN_XNUM: u16 = 0xffff;
const SHN_LORESERVE: usize = 0xff00;
const SHN_XINDEX: u16 = 0xffff;

/// One section header, pointing anywhere in the file.
#[derive(Clone, Copy)]
pub struct Shdr {
    pub name: u32,
    pub sh_type: u32,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub align: u64,
}

/// One program header.
#[derive(Clone, Copy)]
pub struct Phdr {
    pub p_type: u32,
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
}

/// Contents first, then the section name table, program and section headers.
/// Section 0 (SHT_NULL) and the name table section (last) are added by
/// [`Crafted::finish`], which uses extended numbering where the counts need it.
pub struct Crafted {
    pub bytes: Vec<u8>,
    pub names: Vec<u8>,
    pub sections: Vec<Shdr>,
    pub segments: Vec<Phdr>,
}

impl Default for Crafted {
    fn default() -> Self {
        Crafted {
            bytes: vec![0; 64],
            names: vec![0],
            sections: Vec::new(),
            segments: Vec::new(),
        }
    }
}

impl Crafted {
    /// Appends bytes (8-aligned) and returns their offset.
    pub fn data(&mut self, bytes: &[u8]) -> u64 {
        while self.bytes.len() % 8 != 0 {
            self.bytes.push(0);
        }
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(bytes);
        offset
    }

    /// Adds a name to the section name table and returns its offset.
    pub fn name(&mut self, name: &str) -> u32 {
        let offset = self.names.len() as u32;
        self.names.extend_from_slice(name.as_bytes());
        self.names.push(0);
        offset
    }

    /// A section holding `bytes`, appended to the file.
    pub fn section(&mut self, name: &str, sh_type: u32, addr: u64, bytes: &[u8]) -> Shdr {
        let shdr = Shdr {
            name: self.name(name),
            sh_type,
            addr,
            offset: self.data(bytes),
            size: bytes.len() as u64,
            align: 4,
        };
        self.sections.push(shdr);
        shdr
    }

    pub fn finish(mut self) -> Vec<u8> {
        let shstrtab_name = self.name(".shstrtab");
        let names = std::mem::take(&mut self.names);
        let names_offset = self.data(&names);
        self.sections.push(Shdr {
            name: shstrtab_name,
            sh_type: SHT_STRTAB,
            addr: 0,
            offset: names_offset,
            size: names.len() as u64,
            align: 1,
        });
        let shnum = self.sections.len() + 1;
        let shstrndx = shnum - 1;
        let phnum = self.segments.len();

        let phoff = self.data(&[]);
        for ph in &self.segments {
            let mut b = Vec::with_capacity(56);
            b.extend_from_slice(&ph.p_type.to_le_bytes());
            b.extend_from_slice(&5u32.to_le_bytes()); // R+X
            b.extend_from_slice(&ph.offset.to_le_bytes());
            b.extend_from_slice(&ph.vaddr.to_le_bytes());
            b.extend_from_slice(&ph.vaddr.to_le_bytes());
            b.extend_from_slice(&ph.filesz.to_le_bytes());
            b.extend_from_slice(&ph.filesz.to_le_bytes());
            b.extend_from_slice(&0x1000u64.to_le_bytes());
            self.bytes.extend_from_slice(&b);
        }
        let shoff = self.data(&[]);
        // Section 0 carries the counts that do not fit the header.
        let section0 = Shdr {
            name: 0,
            sh_type: 0,
            addr: 0,
            offset: 0,
            size: if shnum >= SHN_LORESERVE {
                shnum as u64
            } else {
                0
            },
            align: 0,
        };
        let link0 = if shstrndx >= SHN_LORESERVE {
            shstrndx as u32
        } else {
            0
        };
        let info0 = if phnum >= PN_XNUM as usize {
            phnum as u32
        } else {
            0
        };
        for (i, sh) in std::iter::once(section0)
            .chain(self.sections.iter().copied())
            .enumerate()
        {
            let (link, info) = if i == 0 { (link0, info0) } else { (0, 0) };
            let b = &mut self.bytes;
            b.extend_from_slice(&sh.name.to_le_bytes());
            b.extend_from_slice(&sh.sh_type.to_le_bytes());
            b.extend_from_slice(&2u64.to_le_bytes()); // SHF_ALLOC
            b.extend_from_slice(&sh.addr.to_le_bytes());
            b.extend_from_slice(&sh.offset.to_le_bytes());
            b.extend_from_slice(&sh.size.to_le_bytes());
            b.extend_from_slice(&link.to_le_bytes());
            b.extend_from_slice(&info.to_le_bytes());
            b.extend_from_slice(&sh.align.to_le_bytes());
            b.extend_from_slice(&0u64.to_le_bytes());
        }

        let h = &mut self.bytes[..64];
        h[..16].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        h[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        h[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[32..40].copy_from_slice(&(if phnum == 0 { 0 } else { phoff }).to_le_bytes());
        h[40..48].copy_from_slice(&shoff.to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        let e_phnum = if phnum >= PN_XNUM as usize {
            PN_XNUM
        } else {
            phnum as u16
        };
        h[56..58].copy_from_slice(&e_phnum.to_le_bytes());
        h[58..60].copy_from_slice(&64u16.to_le_bytes());
        let e_shnum = if shnum >= SHN_LORESERVE {
            0
        } else {
            shnum as u16
        };
        h[60..62].copy_from_slice(&e_shnum.to_le_bytes());
        let e_shstrndx = if shstrndx >= SHN_LORESERVE {
            SHN_XINDEX
        } else {
            shstrndx as u16
        };
        h[62..64].copy_from_slice(&e_shstrndx.to_le_bytes());
        self.bytes
    }
}

/// One ELF note, padded to 4 bytes.
pub fn note(owner: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + owner.len() + desc.len() + 8);
    out.extend_from_slice(&(owner.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&n_type.to_le_bytes());
    out.extend_from_slice(owner);
    out.push(0);
    pad4(&mut out);
    out.extend_from_slice(desc);
    pad4(&mut out);
    out
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// A stapsdt (type 3) note with 64-bit addresses.
pub fn stapsdt(pc: u64, semaphore: u64, provider: &[u8], name: &[u8], args: &[u8]) -> Vec<u8> {
    let mut desc = Vec::with_capacity(24 + provider.len() + name.len() + args.len() + 3);
    for addr in [pc, 0, semaphore] {
        desc.extend_from_slice(&addr.to_le_bytes());
    }
    for s in [provider, name, args] {
        desc.extend_from_slice(s);
        desc.push(0);
    }
    note(b"stapsdt", 3, &desc)
}

/// A file whose one `.note.stapsdt` section holds `notes`.
pub fn with_notes(notes: &[u8]) -> Vec<u8> {
    let mut elf = Crafted::default();
    elf.section(".note.stapsdt", SHT_NOTE, 0, notes);
    elf.finish()
}

/// A declared-types record (owner `dynprobe`, type 1): provider, probe and
/// each type name, NUL-terminated.
pub fn declared(provider: &[u8], name: &[u8], types: &[&[u8]]) -> Vec<u8> {
    let mut desc = Vec::new();
    for s in [provider, name].into_iter().chain(types.iter().copied()) {
        desc.extend_from_slice(s);
        desc.push(0);
    }
    note(b"dynprobe", 1, &desc)
}

/// A declared-types record that names the arguments (type 2): the types, an
/// empty field, the names.
pub fn named(provider: &[u8], name: &[u8], types: &[&[u8]], names: &[&[u8]]) -> Vec<u8> {
    let mut desc = Vec::new();
    let fields = [provider, name].into_iter().chain(types.iter().copied());
    for s in fields.chain([&b""[..]]).chain(names.iter().copied()) {
        desc.extend_from_slice(s);
        desc.push(0);
    }
    note(b"dynprobe", 2, &desc)
}

/// A file with a `.note.stapsdt` section holding `notes` and a
/// `.note.dynprobe` section holding `records`.
pub fn with_records(notes: &[u8], records: &[u8]) -> Vec<u8> {
    let mut elf = Crafted::default();
    elf.section(".note.stapsdt", SHT_NOTE, 0, notes);
    elf.section(".note.dynprobe", SHT_NOTE, 0, records);
    elf.finish()
}
