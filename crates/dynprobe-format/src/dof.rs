//! DOF, the DTrace Object Format, for one provider: what a process hands to
//! DTrace's helper device (`DTRACEHIOC_ADDDOF`) to register its USDT probes on
//! illumos, FreeBSD, macOS and Oracle's DTrace for Linux.
//!
//! Pure: a definition and the probe sites in, bytes out. The layout:
//!
//! ```text
//! header (64 bytes), section headers (32 bytes each), then each section:
//! 0 STRTAB    "\0", provider, per probe: function, probe name, argument types
//! 1 PROBES    one 48-byte entry per probe (function address, names, counts)
//! 2 PRARGS    per probe, the native argument index of each translated one
//! 3 PROFFS    probe site offsets from the probe's function address
//! 4 PROVIDER  names the sections above, and the stability attributes
//! 5 RELTAB    one "add the load base" relocation per probe's address
//! 6 URELHDR   names the relocation table and its target (PROBES)
//! 7 PRENOFFS  is-enabled site offsets (only when some probe has one)
//! ```
//!
//! Addresses are relative to the object's load base: the relocations make the
//! consumer add the base the helper passes (`dofhp_addr`), on every platform.
//! The string table is section 0 because a provider names "no is-enabled
//! section" by index 0.

use crate::definition::{DefinitionError, ProviderDef};
use crate::image::Image;
use std::fmt;

/// DTrace's limits, each counting the terminating NUL.
pub const DOF_MAX_PROVIDER_LEN: usize = 64 - 1;
pub const DOF_MAX_PROBE_LEN: usize = 64 - 1;
pub const DOF_MAX_FUNCTION_LEN: usize = 128 - 1;
/// `dofhp_mod` in the helper's argument: the module name DTrace shows.
pub const DOF_MAX_MODULE_LEN: usize = 64 - 1;

/// Which DTrace reads the DOF. The sections are the same everywhere; the
/// version differs, and with it what an is-enabled site means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DofFlavor {
    /// Oracle's DTrace for Linux (2.x, through `dtprobed`). Version 3: its
    /// parser ignores is-enabled offsets in version 2 DOF, and in version 3 an
    /// is-enabled site is a call `f(uint32_t *flag)` whose uprobe stores 1 in
    /// `*flag` for a traced process.
    OracleLinux,
    /// illumos (and Solaris): version 2; an is-enabled site is patched to
    /// return 1 in the return register.
    Illumos,
    /// FreeBSD, which carries illumos' DTrace: version 2, as illumos.
    FreeBsd,
    /// macOS, whose kernel accepts version 3 only.
    MacOs,
}

impl DofFlavor {
    pub const ALL: [DofFlavor; 4] = [
        DofFlavor::OracleLinux,
        DofFlavor::Illumos,
        DofFlavor::FreeBsd,
        DofFlavor::MacOs,
    ];

    /// The `dofh_ident[DOF_ID_VERSION]` byte.
    pub fn version(self) -> u8 {
        match self {
            DofFlavor::OracleLinux | DofFlavor::MacOs => 3,
            DofFlavor::Illumos | DofFlavor::FreeBsd => 2,
        }
    }
}

/// Where one probe's sites are: a function (its name, and its address from
/// the load base) and offsets from that address. An is-enabled site is what
/// a caller executes to ask whether the probe is traced (see [`DofFlavor`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DofProbeSites {
    pub function: String,
    pub address: u64,
    pub offsets: Vec<u32>,
    pub enabled_offsets: Vec<u32>,
}

/// The sites of a generated image: each probe's stub, whose first instruction
/// is the probe site. dynprobe's images have no is-enabled sites: a disabled
/// fire reads memory instead of calling anything.
pub fn image_sites(image: &Image) -> Vec<DofProbeSites> {
    image
        .probes
        .iter()
        .map(|p| DofProbeSites {
            function: p.symbol.clone(),
            address: p.stub,
            offsets: vec![0],
            enabled_offsets: Vec::new(),
        })
        .collect()
}

/// DTrace spells `__` in a probe name as `-` (its compiler does so for `.d`
/// providers, and its stapsdt provider for notes): the DOF carries the name
/// DTrace shows, so both views of a probe agree.
pub fn dof_probe_name(name: &str) -> String {
    name.replace("__", "-")
}

/// DOF for `def` with its probes at `sites` (one entry per probe, in order).
pub fn build_dof(
    def: &ProviderDef,
    sites: &[DofProbeSites],
    flavor: DofFlavor,
) -> Result<Vec<u8>, DofError> {
    def.validate()?;
    check_len(NameField::Provider, &def.name, DOF_MAX_PROVIDER_LEN)?;
    if sites.len() != def.probes.len() {
        return Err(DofError::SiteCount {
            probes: def.probes.len(),
            sites: sites.len(),
        });
    }
    for (probe, site) in def.probes.iter().zip(sites) {
        let name = dof_probe_name(&probe.name);
        check_len(NameField::Probe, &name, DOF_MAX_PROBE_LEN)?;
        check_len(NameField::Function, &site.function, DOF_MAX_FUNCTION_LEN)?;
        if site.function.is_empty() || site.function.contains('\0') {
            return Err(DofError::BadFunctionName {
                probe: probe.name.clone(),
                function: site.function.clone(),
            });
        }
        if site.offsets.is_empty() && site.enabled_offsets.is_empty() {
            return Err(DofError::NoSites(probe.name.clone()));
        }
        for (list, enabled) in [(&site.offsets, false), (&site.enabled_offsets, true)] {
            if list.len() > usize::from(u16::MAX) {
                return Err(DofError::TooManySites {
                    probe: probe.name.clone(),
                    count: list.len(),
                });
            }
            let mut sorted = list.clone();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(DofError::DuplicateOffset {
                    probe: probe.name.clone(),
                    offset: w[0],
                    enabled,
                });
            }
            if let Some(&last) = sorted.last() {
                if site.address.checked_add(u64::from(last)).is_none() {
                    return Err(DofError::AddressOverflow {
                        probe: probe.name.clone(),
                    });
                }
            }
        }
    }
    let any_enabled = sites.iter().any(|s| !s.enabled_offsets.is_empty());

    // The string table, and each probe's entries in it.
    let mut strtab = vec![0u8];
    let mut add_str = |s: &str| -> u32 {
        let at = strtab.len() as u32;
        strtab.extend_from_slice(s.as_bytes());
        strtab.push(0);
        at
    };
    let provider_name = add_str(&def.name);
    let mut probes = Vec::new();
    let mut prargs = Vec::new();
    let mut proffs: Vec<u8> = Vec::new();
    let mut prenoffs: Vec<u8> = Vec::new();
    let mut reltab = Vec::new();
    let (mut offidx, mut enoffidx) = (0u32, 0u32);
    for (i, (probe, site)) in def.probes.iter().zip(sites).enumerate() {
        let function = add_str(&site.function);
        let name = add_str(&dof_probe_name(&probe.name));
        // Native and translated types are the same strings: the argument map
        // is the identity, so the translated list can point at the native one.
        let nargv = if probe.args.is_empty() {
            0
        } else {
            let first = add_str(probe.args[0].c_name());
            for ty in &probe.args[1..] {
                add_str(ty.c_name());
            }
            first
        };
        let argc = probe.args.len() as u8;
        let argidx = prargs.len() as u32;
        prargs.extend(0..argc);

        put_u64(&mut probes, site.address);
        for v in [function, name, nargv, nargv, argidx, offidx] {
            put_u32(&mut probes, v);
        }
        probes.push(argc); // dofpr_nargc
        probes.push(argc); // dofpr_xargc
        put_u16(&mut probes, site.offsets.len() as u16);
        put_u32(
            &mut probes,
            if site.enabled_offsets.is_empty() {
                0
            } else {
                enoffidx
            },
        );
        put_u16(&mut probes, site.enabled_offsets.len() as u16);
        put_u16(&mut probes, 0);
        put_u32(&mut probes, 0);

        for &off in &site.offsets {
            put_u32(&mut proffs, off);
        }
        for &off in &site.enabled_offsets {
            put_u32(&mut prenoffs, off);
        }
        offidx += site.offsets.len() as u32;
        enoffidx += site.enabled_offsets.len() as u32;

        // Add the load base to this probe's dofpr_addr (the entry's first field).
        put_u32(&mut reltab, function);
        put_u32(&mut reltab, DOF_RELO_SETX);
        put_u64(&mut reltab, (i * PROBE_SIZE) as u64);
        put_u64(&mut reltab, 0);
    }

    const STRTAB: u32 = 0;
    const PROBES: u32 = 1;
    const PRARGS: u32 = 2;
    const PROFFS: u32 = 3;
    const PROVIDER: u32 = 4;
    const RELTAB: u32 = 5;
    const PRENOFFS: u32 = 7;
    let mut provider = Vec::new();
    for v in [STRTAB, PROBES, PRARGS, PROFFS, provider_name] {
        put_u32(&mut provider, v);
    }
    for attr in PROVIDER_ATTRS {
        put_u32(&mut provider, attr);
    }
    put_u32(&mut provider, if any_enabled { PRENOFFS } else { 0 });
    let mut urelhdr = Vec::new();
    for v in [STRTAB, RELTAB, PROBES] {
        put_u32(&mut urelhdr, v);
    }

    let mut sections: Vec<Section> = vec![
        Section::new(DOF_SECT_STRTAB, 1, 0, strtab),
        Section::new(DOF_SECT_PROBES, 8, PROBE_SIZE as u32, probes),
        Section::new(DOF_SECT_PRARGS, 1, 1, prargs),
        Section::new(DOF_SECT_PROFFS, 4, 4, proffs),
        Section::new(DOF_SECT_PROVIDER, 4, 0, provider),
        Section::new(DOF_SECT_RELTAB, 8, RELO_SIZE, reltab),
        Section::new(DOF_SECT_URELHDR, 4, 0, urelhdr),
    ];
    if any_enabled {
        sections.push(Section::new(DOF_SECT_PRENOFFS, 4, 4, prenoffs));
    }
    debug_assert_eq!(sections[PROVIDER as usize].kind, DOF_SECT_PROVIDER);

    let secoff = HEADER_SIZE as u64;
    let mut offset = secoff + (sections.len() * SECTION_HEADER_SIZE) as u64;
    let mut placed = Vec::with_capacity(sections.len());
    for s in &sections {
        offset = offset.div_ceil(s.align) * s.align;
        placed.push(offset);
        offset += s.data.len() as u64;
    }
    let total = offset.div_ceil(8) * 8;

    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&[0x7f, b'D', b'O', b'F']);
    out.push(DOF_MODEL_LP64);
    out.push(DOF_ENCODE_LSB);
    out.push(flavor.version());
    out.push(DIF_VERSION_2);
    out.push(DIF_DIR_NREGS);
    out.push(DIF_DTR_NREGS);
    out.extend_from_slice(&[0; 6]);
    put_u32(&mut out, 0); // dofh_flags
    put_u32(&mut out, HEADER_SIZE as u32);
    put_u32(&mut out, SECTION_HEADER_SIZE as u32);
    put_u32(&mut out, sections.len() as u32);
    put_u64(&mut out, secoff);
    put_u64(&mut out, total); // dofh_loadsz: every section is loaded
    put_u64(&mut out, total); // dofh_filesz
    put_u64(&mut out, 0);
    debug_assert_eq!(out.len(), HEADER_SIZE);
    for (s, &at) in sections.iter().zip(&placed) {
        put_u32(&mut out, s.kind);
        put_u32(&mut out, s.align as u32);
        put_u32(&mut out, DOF_SECF_LOAD);
        put_u32(&mut out, s.entsize);
        put_u64(&mut out, at);
        put_u64(&mut out, s.data.len() as u64);
    }
    for (s, &at) in sections.iter().zip(&placed) {
        out.resize(at as usize, 0);
        out.extend_from_slice(&s.data);
    }
    out.resize(total as usize, 0);
    Ok(out)
}

/// DOF for a generated image's provider: [`build_dof`] with [`image_sites`].
pub fn build_image_dof(
    def: &ProviderDef,
    image: &Image,
    flavor: DofFlavor,
) -> Result<Vec<u8>, DofError> {
    build_dof(def, &image_sites(image), flavor)
}

const HEADER_SIZE: usize = 64;
const SECTION_HEADER_SIZE: usize = 32;
const PROBE_SIZE: usize = 48;
const RELO_SIZE: u32 = 24;
const DOF_MODEL_LP64: u8 = 2;
const DOF_ENCODE_LSB: u8 = 1;
const DIF_VERSION_2: u8 = 2;
const DIF_DIR_NREGS: u8 = 8;
const DIF_DTR_NREGS: u8 = 8;
const DOF_SECF_LOAD: u32 = 1;
const DOF_SECT_STRTAB: u32 = 8;
const DOF_SECT_RELTAB: u32 = 10;
const DOF_SECT_URELHDR: u32 = 12;
const DOF_SECT_PROVIDER: u32 = 15;
const DOF_SECT_PROBES: u32 = 16;
const DOF_SECT_PRARGS: u32 = 17;
const DOF_SECT_PROFFS: u32 = 18;
const DOF_SECT_PRENOFFS: u32 = 26;
const DOF_RELO_SETX: u32 = 1;

/// `DOF_ATTR(name stability, data stability, dependency class)`.
const fn attr(name: u32, data: u32, class: u32) -> u32 {
    (name << 24) | (data << 16) | (class << 8)
}
const STABILITY_PRIVATE: u32 = 1;
const STABILITY_EVOLVING: u32 = 5;
const CLASS_UNKNOWN: u32 = 0;
const CLASS_COMMON: u32 = 5;
/// Provider, module, function, name, arguments: what dtrace-provider declared.
const PROVIDER_ATTRS: [u32; 5] = [
    attr(STABILITY_EVOLVING, STABILITY_EVOLVING, CLASS_COMMON),
    attr(STABILITY_PRIVATE, STABILITY_PRIVATE, CLASS_UNKNOWN),
    attr(STABILITY_PRIVATE, STABILITY_PRIVATE, CLASS_UNKNOWN),
    attr(STABILITY_EVOLVING, STABILITY_EVOLVING, CLASS_COMMON),
    attr(STABILITY_EVOLVING, STABILITY_EVOLVING, CLASS_COMMON),
];

struct Section {
    kind: u32,
    align: u64,
    entsize: u32,
    data: Vec<u8>,
}

impl Section {
    fn new(kind: u32, align: u64, entsize: u32, data: Vec<u8>) -> Section {
        Section {
            kind,
            align,
            entsize,
            data,
        }
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn check_len(field: NameField, name: &str, max: usize) -> Result<(), DofError> {
    if name.len() > max {
        return Err(DofError::NameTooLong {
            field,
            name: name.to_string(),
            max,
        });
    }
    Ok(())
}

/// Which name a [`DofError::NameTooLong`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameField {
    Provider,
    Probe,
    Function,
}

impl fmt::Display for NameField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameField::Provider => "provider name",
            NameField::Probe => "probe name",
            NameField::Function => "function name",
        })
    }
}

/// Why no DOF was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DofError {
    Definition(DefinitionError),
    /// DTrace keeps names shorter than the definition's own limits allow.
    NameTooLong {
        field: NameField,
        name: String,
        max: usize,
    },
    BadFunctionName {
        probe: String,
        function: String,
    },
    SiteCount {
        probes: usize,
        sites: usize,
    },
    NoSites(String),
    TooManySites {
        probe: String,
        count: usize,
    },
    DuplicateOffset {
        probe: String,
        offset: u32,
        enabled: bool,
    },
    AddressOverflow {
        probe: String,
    },
}

impl From<DefinitionError> for DofError {
    fn from(e: DefinitionError) -> DofError {
        DofError::Definition(e)
    }
}

impl fmt::Display for DofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DofError::Definition(e) => e.fmt(f),
            DofError::NameTooLong { field, name, max } => write!(
                f,
                "{field} {name:?} is {} bytes long; DTrace allows at most {max}",
                name.len()
            ),
            DofError::BadFunctionName { probe, function } => write!(
                f,
                "probe {probe:?}: function name {function:?} is empty or contains a NUL byte"
            ),
            DofError::SiteCount { probes, sites } => write!(
                f,
                "{probes} probes but {sites} site lists: one list per probe, in order"
            ),
            DofError::NoSites(probe) => {
                write!(f, "probe {probe:?} has no probe or is-enabled site")
            }
            DofError::TooManySites { probe, count } => {
                write!(
                    f,
                    "probe {probe:?} has {count} sites of one kind; DOF holds at most 65535"
                )
            }
            DofError::DuplicateOffset {
                probe,
                offset,
                enabled,
            } => write!(
                f,
                "probe {probe:?} lists {}offset {offset:#x} twice",
                if *enabled { "is-enabled " } else { "" }
            ),
            DofError::AddressOverflow { probe } => {
                write!(f, "probe {probe:?}: a site's address overflows 64 bits")
            }
        }
    }
}

impl std::error::Error for DofError {}
