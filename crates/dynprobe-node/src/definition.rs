//! Provider definitions as the JS layer describes them, checked by the
//! format crate's rules: `checkProvider` and `checkProbe` say why names are
//! refused, and `NativeProvider` builds its definition here.

use dynprobe::{ArgType, ProbeDef, ProviderDef};
use dynprobe_format::DeclaredType;
use napi_derive::napi;

/// One probe as the JS layer describes it: C type names, already mapped from
/// dtrace-provider's loose spellings, and optionally the types as declared
/// (`int`, `json`, exact C names) and the arguments' names (C identifiers),
/// which the library records for listings.
#[napi(object)]
pub struct ProbeSpec {
    pub name: String,
    pub types: Vec<String>,
    pub declared: Option<Vec<String>>,
    pub arg_names: Option<Vec<String>>,
}

pub(crate) fn definition(
    name: &str,
    module: &str,
    probes: &[ProbeSpec],
) -> std::result::Result<ProviderDef, String> {
    let probes = probes
        .iter()
        .map(probe_def)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut def = ProviderDef::new(name, module);
    def.add_probes(probes).map_err(|e| e.to_string())?;
    Ok(def)
}

fn probe_def(spec: &ProbeSpec) -> std::result::Result<ProbeDef, String> {
    let args = spec
        .types
        .iter()
        .map(|t| ArgType::from_c_name(t))
        .collect::<std::result::Result<Vec<_>, _>>();
    let mut probe = ProbeDef::new(spec.name.as_str(), args.map_err(|e| e.to_string())?);
    if let Some(declared) = &spec.declared {
        let types = declared
            .iter()
            .map(|t| {
                DeclaredType::from_name(t)
                    .ok_or_else(|| format!("unknown declared type {t:?} of probe {:?}", spec.name))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        probe.declared = Some(types);
    }
    probe.arg_names = spec.arg_names.clone();
    Ok(probe)
}

/// Checks a provider's names without loading anything; returns why they are
/// refused, or null. (Probes are checked one by one with [`check_probe`].)
#[napi]
pub fn check_provider(name: String, module: String) -> Option<String> {
    let mut def = definition(&name, &module, &[]).ok()?;
    def.probes.push(ProbeDef::new("p", Vec::new()));
    def.validate().err().map(|e| e.to_string())
}

/// Checks one probe's name and types; returns why it is refused, or null.
#[napi]
pub fn check_probe(probe: ProbeSpec) -> Option<String> {
    definition("p", "p", std::slice::from_ref(&probe)).err()
}

/// One argument type as the API names it (`lib/arg-types.json` spells the
/// same table for the JS layer; a test compares the two).
#[napi(object)]
pub struct ArgTypeInfo {
    /// As `addProbe` takes it and the library records it: `int`, `json`,
    /// `char *`, `int8_t` ... `uint64_t`.
    pub name: String,
    /// The C type it travels as (`int` as `int64_t`, `json` as `char *`).
    pub travels_as: String,
    /// What a tracer reads: size in bytes and sign.
    pub size: u32,
    pub signed: bool,
    /// How a reader shows it: `int`, `uint`, `str` or `json`.
    pub kind: String,
}

/// The argument types and the limits of a definition, as the format crate
/// has them.
#[napi(object)]
pub struct FormatTable {
    pub types: Vec<ArgTypeInfo>,
    pub max_args: u32,
    pub max_arg_name_len: u32,
    pub max_provider_len: u32,
    pub max_probe_len: u32,
    pub max_module_len: u32,
}

/// The format crate's table of argument types and limits, for the test that
/// checks the JS layer's copy (`lib/arg-types.json`) against it.
#[napi]
pub fn format_table() -> FormatTable {
    let types = DeclaredType::ALL
        .iter()
        .map(|&t| {
            let travels = t.arg_type();
            let kind = match t {
                DeclaredType::Json => "json",
                _ if travels == ArgType::Str => "str",
                _ if travels.is_signed() => "int",
                _ => "uint",
            };
            ArgTypeInfo {
                name: t.name().to_string(),
                travels_as: travels.c_name().to_string(),
                size: u32::from(travels.size()),
                signed: travels.is_signed(),
                kind: kind.to_string(),
            }
        })
        .collect();
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    FormatTable {
        types,
        max_args: n(dynprobe_format::MAX_ARGS),
        max_arg_name_len: n(dynprobe_format::MAX_ARG_NAME_LEN),
        max_provider_len: n(dynprobe_format::MAX_PROVIDER_LEN),
        max_probe_len: n(dynprobe_format::MAX_PROBE_LEN),
        max_module_len: n(dynprobe_format::MAX_MODULE_LEN),
    }
}
