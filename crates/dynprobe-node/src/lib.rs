//! The native half of the npm package: loads providers and fires probes.
//!
//! The JavaScript layer (`lib/`) owns the dtrace-provider API. It checks a
//! probe's semaphore itself, through a typed array over the library's
//! semaphore memory that [`NativeProvider::semaphores`] hands out, and calls
//! in here only to fire a probe that a tracer is watching.

use std::cell::RefCell;
use std::ptr;

use dynprobe::{ArgType, ProbeDef, Provider, ProviderDef, MAX_ARGS};
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

fn definition(name: &str, module: &str, probes: &[ProbeSpec]) -> std::result::Result<ProviderDef, String> {
    let mut def = ProviderDef::new(name, module);
    for spec in probes {
        let args = spec.types.iter().map(|t| ArgType::from_c_name(t)).collect::<std::result::Result<Vec<_>, _>>();
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

/// A loaded provider. Dropped (garbage collected) or unloaded, its library
/// leaves the process.
#[napi]
pub struct NativeProvider {
    provider: Option<Provider>,
}

#[napi]
impl NativeProvider {
    #[napi(constructor)]
    pub fn new(name: String, module: String, probes: Vec<ProbeSpec>) -> Result<Self> {
        let def = definition(&name, &module, &probes).map_err(|m| Error::new(Status::InvalidArg, m))?;
        let provider = Provider::load(&def).map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
        Ok(NativeProvider { provider: Some(provider) })
    }

    fn loaded(&self) -> Result<&Provider> {
        self.provider.as_ref().ok_or_else(|| Error::new(Status::GenericFailure, "provider is unloaded"))
    }

    /// The module the library got (unique within this process).
    #[napi(getter)]
    pub fn module(&self) -> Result<String> {
        Ok(self.loaded()?.module().to_string())
    }

    /// The library's path as tracers see it.
    #[napi(getter)]
    pub fn path(&self) -> Result<String> {
        Ok(self.loaded()?.path().display().to_string())
    }

    /// An ArrayBuffer over the semaphores (one u16 per probe). The JS layer
    /// must pass it to [`NativeProvider::unload`], which detaches it before
    /// the memory goes away, and must drop it with this object otherwise.
    #[napi]
    pub fn semaphores(&self, env: Env) -> Result<Unknown<'_>> {
        let (ptr, count) = self.loaded()?.semaphores();
        let mut buffer = ptr::null_mut();
        // Raw N-API: napi-rs forbids two buffers over one address, which a
        // later library may legitimately reuse once this one is unloaded.
        // SAFETY: the memory stays mapped until unload(), which detaches the
        // buffer first; no finalizer is needed as the mapping owns the memory.
        let status = unsafe {
            sys::napi_create_external_arraybuffer(
                env.raw(),
                ptr as *mut std::ffi::c_void,
                count * 2,
                None,
                ptr::null_mut(),
                &mut buffer,
            )
        };
        check(status, "create semaphore buffer")?;
        // SAFETY: `buffer` is a live value of this env.
        unsafe { Unknown::from_napi_value(env.raw(), buffer) }
    }

    /// Detaches `semaphores` (so JS can no longer read the memory) and
    /// unmaps the library. Idempotent.
    #[napi]
    pub fn unload(&mut self, env: Env, semaphores: Option<Unknown>) -> Result<()> {
        if let Some(buffer) = semaphores {
            // SAFETY: a value of this env; detaching twice is refused harmlessly.
            let status = unsafe { sys::napi_detach_arraybuffer(env.raw(), buffer.raw()) };
            check(status, "detach semaphore buffer")?;
        }
        if let Some(provider) = self.provider.take() {
            provider.unload().map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
        }
        Ok(())
    }

    /// Fires probe `index` with the values of the array `values`, converted
    /// by the probe's types: integers by ToNumber (truncated, NaN as 0) or as
    /// BigInts (64 bits kept), strings by ToString in UTF-8. Missing values
    /// are `undefined`, which converts to 0 and "undefined".
    #[napi]
    pub fn fire(&self, env: Env, index: u32, values: Unknown) -> Result<bool> {
        let Some(probe) = self.provider.as_ref().and_then(|p| p.probe_at(index as usize)) else {
            return Ok(false);
        };
        let env = env.raw();
        let array = values.raw();
        SCRATCH.with(|scratch| {
            let mut strings = scratch.borrow_mut();
            strings.clear();
            let mut raw = [0u64; MAX_ARGS];
            let mut string_at = [usize::MAX; MAX_ARGS];
            for (i, &ty) in probe.args().iter().enumerate() {
                let mut value = ptr::null_mut();
                // SAFETY: env and array are live for this call.
                check(unsafe { sys::napi_get_element(env, array, i as u32, &mut value) }, "read value")?;
                if ty == ArgType::Str {
                    string_at[i] = strings.len();
                    // SAFETY: as above.
                    unsafe { append_string(env, value, &mut strings)? };
                } else {
                    // SAFETY: as above.
                    raw[i] = ty.normalize(unsafe { integer(env, value, ty == ArgType::U64)? });
                }
            }
            let base = strings.as_ptr() as u64;
            for (value, at) in raw.iter_mut().zip(string_at) {
                if at != usize::MAX {
                    *value = base + at as u64;
                }
            }
            // SAFETY: every string pointer points into `strings`, NUL-terminated
            // and alive until the end of this closure.
            unsafe { probe.fire_raw(&raw) };
            Ok(true)
        })
    }
}

thread_local! {
    /// Holds one fire's strings, NUL-terminated, reused so that a traced fire
    /// allocates nothing once warm.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    match status {
        sys::Status::napi_ok => Ok(()),
        // A JS exception (a throwing toString, say) is already pending: let it through.
        sys::Status::napi_pending_exception => Err(Error::new(Status::PendingException, what.to_string())),
        other => Err(Error::new(Status::from(other), format!("cannot {what}"))),
    }
}

/// Appends ToString(value) as UTF-8 and a NUL. A tracer reads up to the first
/// NUL, which cuts strings that contain one, as the contract asks.
unsafe fn append_string(env: sys::napi_env, value: sys::napi_value, out: &mut Vec<u8>) -> Result<()> {
    let mut string = value;
    let mut kind = 0;
    check(unsafe { sys::napi_typeof(env, value, &mut kind) }, "inspect value")?;
    if kind != sys::ValueType::napi_string {
        check(unsafe { sys::napi_coerce_to_string(env, value, &mut string) }, "convert value to string")?;
    }
    let mut len = 0usize;
    check(unsafe { sys::napi_get_value_string_utf8(env, string, ptr::null_mut(), 0, &mut len) }, "read string")?;
    let start = out.len();
    out.resize(start + len + 1, 0);
    let mut written = 0usize;
    let buf = unsafe { out.as_mut_ptr().add(start) } as *mut std::ffi::c_char;
    check(unsafe { sys::napi_get_value_string_utf8(env, string, buf, len + 1, &mut written) }, "read string")?;
    out.truncate(start + written + 1);
    out[start + written] = 0;
    Ok(())
}

/// The 64-bit register form of an integer argument.
unsafe fn integer(env: sys::napi_env, value: sys::napi_value, unsigned: bool) -> Result<u64> {
    let mut kind = 0;
    check(unsafe { sys::napi_typeof(env, value, &mut kind) }, "inspect value")?;
    if kind == sys::ValueType::napi_bigint {
        let mut lossless = false;
        // The low 64 bits, as a C cast would keep them.
        return Ok(if unsigned {
            let mut v = 0u64;
            check(unsafe { sys::napi_get_value_bigint_uint64(env, value, &mut v, &mut lossless) }, "read BigInt")?;
            v
        } else {
            let mut v = 0i64;
            check(unsafe { sys::napi_get_value_bigint_int64(env, value, &mut v, &mut lossless) }, "read BigInt")?;
            v as u64
        });
    }
    let mut number = value;
    if kind != sys::ValueType::napi_number {
        check(unsafe { sys::napi_coerce_to_number(env, value, &mut number) }, "convert value to number")?;
    }
    let mut f = 0f64;
    check(unsafe { sys::napi_get_value_double(env, number, &mut f) }, "read number")?;
    // Truncate toward zero; NaN becomes 0 and out-of-range values saturate.
    Ok(if unsigned && f >= 0.0 { f as u64 } else { f as i64 as u64 })
}
