//! Generated DOF is read back by a reader written here from the format's
//! description (not from the generator), which also applies the checks
//! DTrace's DOF consumers make before they accept a provider (header
//! identification, section bounds and alignment, string tables, entry sizes,
//! index ranges, unique offsets), and applies the relocations as they do.

#[path = "common/arg_types.rs"]
mod arg_types;
use arg_types::ALL_TYPES;

use dynprobe_format::dof::{
    build_dof, build_image_dof, dof_probe_name, image_sites, DofError, DofFlavor, DofProbeSites,
    NameField, DOF_MAX_PROBE_LEN,
};
use dynprobe_format::{
    build_image, ArgType, DefinitionError, ProbeDef, ProviderDef, SiteKind, Target, MAX_ARGS,
    MAX_PROVIDER_LEN,
};

// ---------------------------------------------------------------------------
// The reader

#[derive(Debug, PartialEq)]
struct Provider {
    name: String,
    attrs: [u32; 5],
    probes: Vec<Probe>,
}

#[derive(Debug, PartialEq)]
struct Probe {
    function: String,
    name: String,
    /// After the relocations, with the load base given to `read`.
    address: u64,
    native: Vec<String>,
    translated: Vec<String>,
    argmap: Vec<u8>,
    offsets: Vec<u32>,
    enabled_offsets: Vec<u32>,
}

#[derive(Debug)]
struct Dof {
    version: u8,
    providers: Vec<Provider>,
}

#[derive(Clone, Copy)]
struct Sec {
    kind: u32,
    align: u32,
    flags: u32,
    entsize: u32,
    offset: u64,
    size: u64,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A NUL-terminated string at `at` in a string table, or why not.
fn string(table: &[u8], at: u32, max: usize) -> Result<String, String> {
    let at = at as usize;
    let rest = table
        .get(at..)
        .ok_or(format!("string offset {at} past the table"))?;
    let len = rest
        .iter()
        .position(|&c| c == 0)
        .ok_or("unterminated string")?;
    if len > max {
        return Err(format!("string of {len} bytes, more than {max}"));
    }
    String::from_utf8(rest[..len].to_vec()).map_err(|e| e.to_string())
}

/// `count` consecutive strings starting at `at`.
fn strings(table: &[u8], mut at: u32, count: u8) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for _ in 0..count {
        let s = string(table, at, 127)?;
        at += s.len() as u32 + 1;
        out.push(s);
    }
    Ok(out)
}

fn read(dof: &[u8], base: u64) -> Result<Dof, String> {
    if dof.len() < 64 {
        return Err("shorter than a header".into());
    }
    if dof[..4] != [0x7f, b'D', b'O', b'F'] {
        return Err("bad magic".into());
    }
    let (model, encoding, version) = (dof[4], dof[5], dof[6]);
    if model != 2 || encoding != 1 {
        return Err(format!(
            "model {model} encoding {encoding}: want LP64 (2), LSB (1)"
        ));
    }
    if !(1..=3).contains(&version) {
        return Err(format!("version {version}"));
    }
    if dof[7] != 2 || dof[8] > 8 || dof[9] > 8 {
        return Err("DIF version or register counts".into());
    }
    if dof[10..16].iter().any(|&b| b != 0) {
        return Err("padding of the identification is not zero".into());
    }
    let (flags, hdrsize, secsize, secnum) =
        (le32(dof, 16), le32(dof, 20), le32(dof, 24), le32(dof, 28));
    let (secoff, loadsz, filesz) = (le64(dof, 32), le64(dof, 40), le64(dof, 48));
    if flags != 0 || hdrsize != 64 || secsize != 32 {
        return Err(format!("flags {flags} hdrsize {hdrsize} secsize {secsize}"));
    }
    if loadsz < 64 || loadsz > filesz || filesz != dof.len() as u64 {
        return Err(format!(
            "loadsz {loadsz} filesz {filesz} length {}",
            dof.len()
        ));
    }
    if secoff % 8 != 0 || secoff + u64::from(secnum) * 32 > loadsz {
        return Err("section headers misaligned or truncated".into());
    }
    // DTrace reads exactly `loadsz` bytes from the process.
    let dof = &dof[..loadsz as usize];
    let mut secs = Vec::new();
    for i in 0..secnum as usize {
        let at = secoff as usize + i * 32;
        let s = Sec {
            kind: le32(dof, at),
            align: le32(dof, at + 4),
            flags: le32(dof, at + 8),
            entsize: le32(dof, at + 12),
            offset: le64(dof, at + 16),
            size: le64(dof, at + 24),
        };
        if s.flags != 1 {
            return Err(format!("section {i} is not loadable"));
        }
        if s.align == 0 || !s.align.is_power_of_two() || s.offset % u64::from(s.align) != 0 {
            return Err(format!(
                "section {i} misaligned ({} at {:#x})",
                s.align, s.offset
            ));
        }
        if s.offset.checked_add(s.size).is_none_or(|end| end > loadsz) {
            return Err(format!("section {i} past the loaded bytes"));
        }
        if s.kind == 8 && (s.size == 0 || dof[(s.offset + s.size - 1) as usize] != 0) {
            return Err(format!("string table {i} is not NUL-terminated"));
        }
        secs.push(s);
    }
    let data = |s: &Sec| &dof[s.offset as usize..(s.offset + s.size) as usize];
    let sec = |i: u32, kind: u32| -> Result<Sec, String> {
        let s = *secs
            .get(i as usize)
            .ok_or(format!("section index {i} out of range"))?;
        if s.kind != kind {
            return Err(format!("section {i} is of type {}, not {kind}", s.kind));
        }
        Ok(s)
    };

    // Relocations, applied to a copy, as the consumers do.
    let mut patched: Vec<Vec<u8>> = secs.iter().map(|s| data(s).to_vec()).collect();
    for s in &secs {
        if s.kind != 12 {
            continue;
        }
        if s.size < 12 || s.align != 4 {
            return Err("relocation header size or alignment".into());
        }
        let h = data(s);
        sec(le32(h, 0), 8)?;
        let rel = sec(le32(h, 4), 10)?;
        let target = le32(h, 8) as usize;
        secs.get(target).ok_or("relocation target out of range")?;
        if rel.entsize < 24 || rel.align != 8 {
            return Err("relocation table entry size or alignment".into());
        }
        let table = data(&rel);
        for r in table.chunks_exact(rel.entsize as usize) {
            let (kind, offset) = (le32(r, 4), le64(r, 8) as usize);
            match kind {
                0 => {}
                1 => {
                    let t = &mut patched[target];
                    if offset + 8 > t.len() || offset % 8 != 0 {
                        return Err(format!("relocation at {offset} outside or misaligned"));
                    }
                    let v = le64(t, offset) + base;
                    t[offset..offset + 8].copy_from_slice(&v.to_le_bytes());
                }
                _ => return Err(format!("relocation type {kind}")),
            }
        }
    }

    let mut providers = Vec::new();
    for (pi, s) in secs.iter().enumerate() {
        if s.kind != 15 {
            continue;
        }
        let want = if version == 1 { 40 } else { 44 };
        if s.size < want || s.offset % 4 != 0 {
            return Err(format!("provider section {pi} too small or misaligned"));
        }
        let p = data(s);
        let strtab_s = sec(le32(p, 0), 8)?;
        let probes_s = sec(le32(p, 4), 16)?;
        let args_s = sec(le32(p, 8), 17)?;
        let offs_s = sec(le32(p, 12), 18)?;
        let enoffs_s = if version > 1 && le32(p, 40) != 0 {
            Some(sec(le32(p, 40), 26)?)
        } else {
            None
        };
        let strtab = data(&strtab_s);
        let name = string(strtab, le32(p, 16), 63)?;
        let attrs = [
            le32(p, 20),
            le32(p, 24),
            le32(p, 28),
            le32(p, 32),
            le32(p, 36),
        ];
        if probes_s.entsize < 48
            || probes_s.entsize % 8 != 0
            || probes_s.size % u64::from(probes_s.entsize) != 0
        {
            return Err("probe entry size".into());
        }
        if offs_s.entsize != 4 || args_s.entsize != 1 {
            return Err("offset or argument entry size".into());
        }
        if let Some(e) = enoffs_s {
            if e.entsize != 4 {
                return Err("is-enabled offset entry size".into());
            }
        }
        let probes_data = &patched[le32(p, 4) as usize];
        let args = data(&args_s);
        let offs = data(&offs_s);
        let enoffs = enoffs_s.map(|e| data(&e)).unwrap_or(&[]);
        let mut probes = Vec::new();
        for e in probes_data.chunks_exact(probes_s.entsize as usize) {
            let (func, pname, nargv, xargv) = (le32(e, 8), le32(e, 12), le32(e, 16), le32(e, 20));
            let (argidx, offidx) = (le32(e, 24), le32(e, 28));
            let (nargc, xargc, noffs) = (e[32], e[33], le16(e, 34));
            let (enoffidx, nenoffs) = (le32(e, 36), le16(e, 40));
            if le16(e, 42) != 0 || le32(e, 44) != 0 {
                return Err("probe padding not zero".into());
            }
            let range = |idx: u32, n: u16, bytes: &[u8], size: usize| -> Result<Vec<u32>, String> {
                let end = (idx as usize + n as usize) * size;
                if end > bytes.len() {
                    return Err(format!("index range {idx}+{n} past its section"));
                }
                Ok((idx as usize..idx as usize + n as usize)
                    .map(|i| le32(bytes, i * 4))
                    .collect())
            };
            let offsets = range(offidx, noffs, offs, 4)?;
            if enoffs_s.is_none() && (enoffidx != 0 || nenoffs != 0) {
                return Err("is-enabled offsets without their section".into());
            }
            let enabled_offsets = range(enoffidx, nenoffs, enoffs, 4)?;
            if offsets.is_empty() && enabled_offsets.is_empty() {
                return Err("a probe with no site".into());
            }
            for list in [&offsets, &enabled_offsets] {
                let mut l = list.clone();
                l.sort_unstable();
                if l.windows(2).any(|w| w[0] == w[1]) {
                    return Err("repeated offsets".into());
                }
            }
            if argidx as usize + xargc as usize > args.len() {
                return Err("argument map past its section".into());
            }
            let argmap = args[argidx as usize..argidx as usize + xargc as usize].to_vec();
            if argmap.iter().any(|&a| a >= nargc) {
                return Err("translated argument maps to no native one".into());
            }
            probes.push(Probe {
                function: string(strtab, func, 127)?,
                name: string(strtab, pname, 63)?,
                address: le64(e, 0),
                native: strings(strtab, nargv, nargc)?,
                translated: strings(strtab, xargv, xargc)?,
                argmap,
                offsets,
                enabled_offsets,
            });
        }
        providers.push(Provider {
            name,
            attrs,
            probes,
        });
    }
    Ok(Dof { version, providers })
}

// ---------------------------------------------------------------------------
// Helpers

const BASE: u64 = 0x7f12_3456_0000;

fn def_of(name: &str, probes: Vec<ProbeDef>) -> ProviderDef {
    let mut def = ProviderDef::new(name, format!("{name}-mod"));
    for p in probes {
        def.add_probe(p).unwrap();
    }
    def
}

fn simple_sites(def: &ProviderDef) -> Vec<DofProbeSites> {
    (0..def.probes.len())
        .map(|i| DofProbeSites {
            function: format!("f{i}"),
            address: 0x1000 + 16 * i as u64,
            offsets: vec![0],
            enabled_offsets: Vec::new(),
        })
        .collect()
}

/// Reads `dof` and checks it says exactly what `def` and `sites` say.
fn check(def: &ProviderDef, sites: &[DofProbeSites], flavor: DofFlavor, dof: &[u8]) {
    let parsed =
        read(dof, BASE).unwrap_or_else(|e| panic!("{flavor:?}: DTrace would refuse this DOF: {e}"));
    assert_eq!(parsed.version, flavor.version());
    assert_eq!(parsed.providers.len(), 1);
    let p = &parsed.providers[0];
    assert_eq!(p.name, def.name);
    // Evolving/Evolving/Common for the provider, name and arguments.
    assert_eq!(p.attrs[0], 0x0505_0500);
    assert_eq!(p.probes.len(), def.probes.len());
    for ((got, want), site) in p.probes.iter().zip(&def.probes).zip(sites) {
        let types: Vec<String> = want.args.iter().map(|t| t.c_name().to_string()).collect();
        assert_eq!(got.name, dof_probe_name(&want.name));
        assert_eq!(got.function, site.function);
        assert_eq!(
            got.address,
            BASE + site.address,
            "{}: relocated address",
            want.name
        );
        assert_eq!(got.native, types);
        assert_eq!(got.translated, types);
        assert_eq!(got.argmap, (0..want.args.len() as u8).collect::<Vec<_>>());
        assert_eq!(got.offsets, site.offsets);
        assert_eq!(got.enabled_offsets, site.enabled_offsets);
    }
}

fn build_and_check(def: &ProviderDef, sites: &[DofProbeSites]) {
    for flavor in DofFlavor::ALL {
        let dof = build_dof(def, sites, flavor).unwrap();
        check(def, sites, flavor, &dof);
        assert_eq!(dof, build_dof(def, sites, flavor).unwrap(), "deterministic");
    }
}

// ---------------------------------------------------------------------------
// Valid definitions

#[test]
fn every_argument_type_alone_and_together() {
    let mut probes: Vec<ProbeDef> = ALL_TYPES
        .iter()
        .map(|&t| ProbeDef::new(format!("only-{}", t.c_name().replace(' ', "")), vec![t]))
        .collect();
    probes.push(ProbeDef::new("all", ALL_TYPES.to_vec()));
    let def = def_of("types", probes);
    build_and_check(&def, &simple_sites(&def));
}

#[test]
fn zero_to_thirty_two_arguments() {
    let probes = (0..=MAX_ARGS)
        .map(|n| {
            let args: Vec<ArgType> = (0..n)
                .map(|i| ALL_TYPES[(i * 7 + n) % ALL_TYPES.len()])
                .collect();
            ProbeDef::new(format!("args{n}"), args)
        })
        .collect();
    let def = def_of("counts", probes);
    build_and_check(&def, &simple_sites(&def));
}

#[test]
fn many_probes() {
    let probes = (0..500)
        .map(|i| ProbeDef::new(format!("p{i}"), vec![ArgType::I64; i % 5]))
        .collect();
    let def = def_of("many", probes);
    build_and_check(&def, &simple_sites(&def));
}

#[test]
fn names_at_the_limits() {
    let provider = "p".repeat(MAX_PROVIDER_LEN);
    let probe = "n".repeat(DOF_MAX_PROBE_LEN);
    let mut def = def_of(&provider, vec![ProbeDef::new(probe, vec![ArgType::Str])]);
    let function = "f".repeat(127);
    let sites = vec![DofProbeSites {
        function,
        address: 0,
        offsets: vec![0],
        enabled_offsets: Vec::new(),
    }];
    build_and_check(&def, &sites);
    // One byte more in the probe name: within the definition's limit, but not DTrace's.
    def.probes[0].name.push('n');
    assert!(def.validate().is_ok());
    assert!(matches!(
        build_dof(&def, &sites, DofFlavor::OracleLinux),
        Err(DofError::NameTooLong {
            field: NameField::Probe,
            max: 63,
            ..
        })
    ));
}

#[test]
fn double_underscores_become_dashes_as_dtrace_shows_them() {
    let def = def_of(
        "bunyan",
        vec![ProbeDef::new("log__trace", vec![ArgType::Str])],
    );
    let dof = build_dof(&def, &simple_sites(&def), DofFlavor::OracleLinux).unwrap();
    let parsed = read(&dof, 0).unwrap();
    assert_eq!(parsed.providers[0].probes[0].name, "log-trace");
    // "a-b" stays as it is: DTrace matches the dash.
    assert_eq!(dof_probe_name("log-debug"), "log-debug");
}

#[test]
fn several_sites_and_is_enabled_sites() {
    let def = def_of(
        "multi",
        vec![
            ProbeDef::new("a", vec![ArgType::I32]),
            ProbeDef::new("b", vec![]),
            ProbeDef::new("c", vec![ArgType::Str, ArgType::U8]),
        ],
    );
    let sites = vec![
        DofProbeSites {
            function: "fa".into(),
            address: 0x2000,
            offsets: vec![4, 0x40, 0x13],
            enabled_offsets: vec![0x20],
        },
        DofProbeSites {
            function: "fb".into(),
            address: 0x3000,
            offsets: vec![],
            enabled_offsets: vec![8, 0],
        },
        DofProbeSites {
            function: "fc".into(),
            address: 0x4000,
            offsets: vec![0],
            enabled_offsets: vec![],
        },
    ];
    build_and_check(&def, &sites);
}

#[test]
fn without_is_enabled_sites_there_is_no_is_enabled_section() {
    let def = def_of("plain", vec![ProbeDef::new("a", vec![ArgType::I64])]);
    let dof = build_dof(&def, &simple_sites(&def), DofFlavor::OracleLinux).unwrap();
    let secnum = le32(&dof, 28) as usize;
    let kinds: Vec<u32> = (0..secnum).map(|i| le32(&dof, 64 + i * 32)).collect();
    assert!(!kinds.contains(&26), "{kinds:?}");
    assert_eq!(
        kinds[0], 8,
        "the string table is section 0: index 0 means 'none'"
    );
}

#[test]
fn versions_per_platform() {
    let def = def_of("v", vec![ProbeDef::new("a", vec![])]);
    let sites = simple_sites(&def);
    let version = |f| build_dof(&def, &sites, f).unwrap()[6];
    // Oracle Linux honours is-enabled offsets from version 3 only; macOS
    // accepts nothing else; illumos and FreeBSD accept 1 and 2.
    assert_eq!(version(DofFlavor::OracleLinux), 3);
    assert_eq!(version(DofFlavor::MacOs), 3);
    assert_eq!(version(DofFlavor::Illumos), 2);
    assert_eq!(version(DofFlavor::FreeBsd), 2);
}

#[test]
fn an_image_s_sites_are_its_stubs() {
    let def = def_of(
        "nodeapp",
        vec![
            ProbeDef::new("probe1", vec![ArgType::I64, ArgType::I64]),
            ProbeDef::new("probe2", vec![ArgType::Str]),
        ],
    );
    for target in [
        Target::x86_64(SiteKind::Nop5),
        Target::x86_64(SiteKind::Nop10),
        Target::aarch64(),
    ] {
        let image = build_image(&def, target).unwrap();
        let sites = image_sites(&image);
        assert_eq!(sites.len(), 2);
        for (site, layout) in sites.iter().zip(&image.probes) {
            assert_eq!(site.address, layout.stub);
            assert_eq!(site.function, layout.symbol);
            assert_eq!(site.offsets, vec![0]);
            assert!(site.enabled_offsets.is_empty());
        }
        let dof = build_image_dof(&def, &image, DofFlavor::OracleLinux).unwrap();
        check(&def, &sites, DofFlavor::OracleLinux, &dof);
        let parsed = read(&dof, BASE).unwrap();
        assert_eq!(parsed.providers[0].probes[1].function, "nodeapp__probe2");
    }
}

#[test]
fn the_reader_refuses_damaged_dof() {
    // The reader must be able to fail, or the tests above prove nothing.
    let def = def_of("dmg", vec![ProbeDef::new("a", vec![ArgType::I64])]);
    let good = build_dof(&def, &simple_sites(&def), DofFlavor::OracleLinux).unwrap();
    let damaged = |at: usize, byte: u8| {
        let mut d = good.clone();
        d[at] = byte;
        read(&d, 0).map(|_| ()).unwrap_err()
    };
    assert_eq!(damaged(1, b'E'), "bad magic");
    assert!(damaged(6, 4).starts_with("version"));
    assert!(damaged(12, 1).contains("padding"));
    // The string table's last byte is no longer NUL.
    let strtab_end = (le64(&good, 64 + 16) + le64(&good, 64 + 24) - 1) as usize;
    assert!(damaged(strtab_end, b'x').contains("NUL-terminated"));
    // The first section loses its load flag.
    assert!(damaged(64 + 8, 0).contains("not loadable"));
}

// ---------------------------------------------------------------------------
// Invalid input: specific errors, never bytes

#[test]
fn invalid_definitions_are_definition_errors() {
    let empty = ProviderDef::new("empty", "empty");
    assert_eq!(
        build_dof(&empty, &[], DofFlavor::OracleLinux),
        Err(DofError::Definition(DefinitionError::NoProbes(
            "empty".into()
        )))
    );
    let mut bad = def_of("ok", vec![ProbeDef::new("a", vec![])]);
    bad.probes.push(ProbeDef::new("a", vec![]));
    assert_eq!(
        build_dof(&bad, &simple_sites(&bad), DofFlavor::Illumos),
        Err(DofError::Definition(DefinitionError::DuplicateProbe(
            "a".into()
        )))
    );
}

#[test]
fn invalid_sites_are_specific_errors() {
    let def = def_of(
        "s",
        vec![ProbeDef::new("a", vec![]), ProbeDef::new("b", vec![])],
    );
    let good = simple_sites(&def);
    let with = |f: &dyn Fn(&mut Vec<DofProbeSites>)| {
        let mut s = good.clone();
        f(&mut s);
        build_dof(&def, &s, DofFlavor::OracleLinux).unwrap_err()
    };
    assert_eq!(
        with(&|s| {
            s.pop();
        }),
        DofError::SiteCount {
            probes: 2,
            sites: 1
        }
    );
    assert_eq!(
        with(&|s| s[1].offsets.clear()),
        DofError::NoSites("b".into())
    );
    assert_eq!(
        with(&|s| s[0].offsets = vec![8, 0, 8]),
        DofError::DuplicateOffset {
            probe: "a".into(),
            offset: 8,
            enabled: false
        }
    );
    assert_eq!(
        with(&|s| s[1].enabled_offsets = vec![4, 4]),
        DofError::DuplicateOffset {
            probe: "b".into(),
            offset: 4,
            enabled: true
        }
    );
    assert_eq!(
        with(&|s| {
            s[0].address = u64::MAX - 2;
            s[0].offsets = vec![3];
        }),
        DofError::AddressOverflow { probe: "a".into() }
    );
    assert_eq!(
        with(&|s| s[0].offsets = (0..70_000).collect()),
        DofError::TooManySites {
            probe: "a".into(),
            count: 70_000
        }
    );
    assert!(matches!(
        with(&|s| s[0].function.clear()),
        DofError::BadFunctionName { .. }
    ));
    assert!(matches!(
        with(&|s| s[0].function = "a\0b".into()),
        DofError::BadFunctionName { .. }
    ));
    assert!(matches!(
        with(&|s| s[0].function = "f".repeat(128)),
        DofError::NameTooLong {
            field: NameField::Function,
            max: 127,
            ..
        }
    ));
    // Every error explains itself.
    for e in [
        with(&|s| {
            s.pop();
        }),
        with(&|s| s[0].offsets = vec![1, 1]),
    ] {
        assert!(!e.to_string().is_empty());
    }
}
