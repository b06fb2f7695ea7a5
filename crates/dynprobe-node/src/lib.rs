//! The native half of the npm package: loads providers and fires probes.
//!
//! The JavaScript layer (`lib/`) owns the dtrace-provider API. It checks a
//! probe's semaphore itself, through a typed array over the library's
//! semaphore memory that `NativeProvider.semaphores()` hands out, and calls
//! in here only to fire a probe that a tracer is watching.

mod address;
mod fire;
mod native_provider;
mod registry;

use dynprobe::{ArgType, ProbeDef, ProviderDef};
use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

/// One probe as the JS layer describes it: C type names, already mapped from
/// dtrace-provider's loose spellings.
#[napi(object)]
pub struct ProbeSpec {
    pub name: String,
    pub types: Vec<String>,
}

fn definition(
    name: &str,
    module: &str,
    probes: &[ProbeSpec],
) -> std::result::Result<ProviderDef, String> {
    let mut def = ProviderDef::new(name, module);
    for spec in probes {
        let args = spec
            .types
            .iter()
            .map(|t| ArgType::from_c_name(t))
            .collect::<std::result::Result<Vec<_>, _>>();
        let probe = ProbeDef::new(spec.name.as_str(), args.map_err(|e| e.to_string())?);
        def.add_probe(probe).map_err(|e| e.to_string())?;
    }
    Ok(def)
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

/// Registers the raw N-API part of the addon: the class `NativeProvider`
/// (see [`native_provider`]) and `fire`, a plain N-API function: the traced
/// path is the only hot native call, and napi-rs's per-call bookkeeping
/// would cost more than the kernel's uprobe itself.
#[napi(module_exports)]
pub fn register_natives(mut exports: Object, env: Env) -> Result<()> {
    native_provider::register(env.raw(), &mut exports)
}

pub(crate) fn check(status: sys::napi_status, what: &str) -> Result<()> {
    match status {
        sys::Status::napi_ok => Ok(()),
        // A JS exception (a throwing toString, say) is already pending: let it through.
        sys::Status::napi_pending_exception => {
            Err(Error::new(Status::PendingException, what.to_string()))
        }
        other => Err(Error::new(Status::from(other), format!("cannot {what}"))),
    }
}

/// One argument of a probe as its stapsdt note describes it.
#[napi(object)]
pub struct NoteArgInfo {
    /// The `SIZE@LOCATION` token as written in the note.
    pub spec: String,
    /// Size in bytes, 0 when the note does not say.
    pub size: u32,
    pub signed: bool,
    pub float: bool,
    pub location: String,
    /// The C types it may have been declared with: one, or `char *` and
    /// `uint64_t` for an unsigned 8-byte argument (the note cannot tell).
    pub types: Vec<String>,
}

/// One stapsdt note of an object file.
#[napi(object)]
pub struct ProbeNote {
    pub provider: String,
    pub name: String,
    pub arg_spec: String,
    pub args: Vec<NoteArgInfo>,
    /// Probe site address and semaphore address (0: none), relative to the
    /// object's load base.
    pub address: i64,
    pub semaphore: i64,
    /// The same as file offsets (uprobes are keyed by these), or null.
    pub address_offset: Option<i64>,
    pub semaphore_offset: Option<i64>,
}

/// The USDT probes (stapsdt notes) of the ELF file at `path`, in note order:
/// what `dynprobe list` shows. Reads the file; no tracer involved.
#[napi]
pub fn read_probes(path: String) -> Result<Vec<ProbeNote>> {
    let bytes = std::fs::read(&path)
        .map_err(|e| Error::new(Status::GenericFailure, format!("cannot read {path}: {e}")))?;
    let probes = dynprobe_format::read_stapsdt(&bytes)
        .map_err(|e| Error::new(Status::InvalidArg, format!("{path}: {e}")))?;
    let as_js = |v: u64| v as i64;
    Ok(probes
        .into_iter()
        .map(|p| ProbeNote {
            args: p
                .args
                .iter()
                .map(|a| NoteArgInfo {
                    spec: a.spec.clone(),
                    size: u32::from(a.size),
                    signed: a.signed,
                    float: a.float,
                    location: a.location.clone(),
                    types: a.types().into_iter().map(String::from).collect(),
                })
                .collect(),
            provider: p.provider,
            name: p.name,
            arg_spec: p.arg_spec,
            address: as_js(p.address),
            semaphore: as_js(p.semaphore),
            address_offset: p.address_offset.map(as_js),
            semaphore_offset: p.semaphore_offset.map(as_js),
        })
        .collect())
}
