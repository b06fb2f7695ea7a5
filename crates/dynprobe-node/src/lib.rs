//! The native half of the npm package: loads providers and fires probes.
//!
//! The JavaScript layer (`lib/`) owns the dtrace-provider API. It checks a
//! probe's semaphore itself, through a typed array over the library's
//! semaphore memory that [`NativeProvider::semaphores`] hands out, and calls
//! in here only to fire a probe that a tracer is watching.

use std::ptr;
use std::cell::RefCell;
use std::rc::Rc;

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

/// The provider behind a [`NativeProvider`] and the handles given to
/// [`fire`]; `None` once unloaded. Not a lock: N-API calls this addon for an
/// environment on that environment's one JS thread only, and no JS runs while
/// `fire` holds the borrow (it converts primitives only).
type Shared = RefCell<Option<Provider>>;

fn unavailable() -> Error {
    Error::new(Status::GenericFailure, "provider is in use".to_string())
}

/// A loaded provider. Unloaded, or garbage collected together with its
/// handle, its library leaves the process.
#[napi]
pub struct NativeProvider {
    shared: Rc<Shared>,
}

#[napi]
impl NativeProvider {
    #[napi(constructor)]
    pub fn new(name: String, module: String, probes: Vec<ProbeSpec>) -> Result<Self> {
        let def = definition(&name, &module, &probes).map_err(|m| Error::new(Status::InvalidArg, m))?;
        let provider = Provider::load(&def).map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
        Ok(NativeProvider { shared: Rc::new(RefCell::new(Some(provider))) })
    }

    fn with_loaded<T>(&self, f: impl FnOnce(&Provider) -> T) -> Result<T> {
        let guard = self.shared.try_borrow().map_err(|_| unavailable())?;
        let provider = guard.as_ref().ok_or_else(|| Error::new(Status::GenericFailure, "provider is unloaded"))?;
        Ok(f(provider))
    }

    /// The handle that [`fire`] takes: an External sharing this provider.
    #[napi]
    pub fn handle(&self, env: Env) -> Result<Unknown<'_>> {
        let data = Rc::into_raw(self.shared.clone()) as *mut std::ffi::c_void;
        let mut value = ptr::null_mut();
        // SAFETY: `data` is an Rc reference that the finalizer gives back.
        let status =
            unsafe { sys::napi_create_external(env.raw(), data, Some(release_handle), ptr::null_mut(), &mut value) };
        if status != sys::Status::napi_ok {
            // SAFETY: not handed to N-API; reclaim it here.
            drop(unsafe { Rc::from_raw(data as *const Shared) });
        }
        check(status, "create provider handle")?;
        // SAFETY: `value` is a live value of this env.
        unsafe { Unknown::from_napi_value(env.raw(), value) }
    }

    /// An ArrayBuffer over the semaphores (one u16 per probe). The JS layer
    /// must pass it to [`NativeProvider::unload`], which detaches it before
    /// the memory goes away, and must drop it with this object otherwise.
    #[napi]
    pub fn semaphores(&self, env: Env) -> Result<Unknown<'_>> {
        let (ptr, count) = self.with_loaded(|p| p.semaphores())?;
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
        let provider = self.shared.try_borrow_mut().map_err(|_| unavailable())?.take();
        if let Some(provider) = provider {
            provider.unload().map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
        }
        Ok(())
    }
}

unsafe extern "C" fn release_handle(_env: sys::napi_env, data: *mut std::ffi::c_void, _hint: *mut std::ffi::c_void) {
    // SAFETY: `data` came from Rc::into_raw in `handle`, released once, on
    // the environment's JS thread like every other use.
    drop(unsafe { Rc::from_raw(data as *const Shared) });
}

/// Registers [`fire`] as a plain N-API function: the traced path is the only
/// hot native call, and napi-rs's per-call bookkeeping would cost more than
/// the kernel's uprobe itself.
#[napi(module_exports)]
pub fn register_fire(mut exports: Object, env: Env) -> Result<()> {
    let mut function = ptr::null_mut();
    // SAFETY: a static name and a callback with the N-API signature.
    let status = unsafe {
        sys::napi_create_function(env.raw(), c"fire".as_ptr(), 4, Some(fire), ptr::null_mut(), &mut function)
    };
    check(status, "create fire")?;
    // SAFETY: `function` is a live value of this env.
    exports.set_named_property("fire", unsafe { Unknown::from_napi_value(env.raw(), function)? })
}

/// `fire(handle, index, ...values)`: fires probe `index` of the provider
/// behind `handle` with the values (positional arguments: reading them costs
/// nothing, unlike array elements through N-API), converted by the probe's
/// types: integers by ToNumber (truncated, NaN as 0) or as BigInts (64 bits
/// kept), strings by ToString in UTF-8. Missing values are `undefined`, which
/// converts to 0 and "undefined". Does nothing once the provider is unloaded.
/// A conversion that throws (a Symbol, a throwing toString) throws here.
unsafe extern "C" fn fire(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argv = [ptr::null_mut(); 2 + MAX_ARGS];
    let mut argc = argv.len();
    let mut shared: *mut std::ffi::c_void = ptr::null_mut();
    let mut index = 0u32;
    // SAFETY: N-API calls on the live env and values of this callback.
    let status = unsafe {
        match sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) {
            sys::Status::napi_ok => match sys::napi_get_value_external(env, argv[0], &mut shared) {
                sys::Status::napi_ok => sys::napi_get_value_uint32(env, argv[1], &mut index),
                other => other,
            },
            other => other,
        }
    };
    if status != sys::Status::napi_ok || argc < 2 {
        // SAFETY: throwing on the live env.
        unsafe { sys::napi_throw_type_error(env, ptr::null(), c"fire(handle, index, ...values): bad arguments".as_ptr()) };
        return ptr::null_mut();
    }
    // SAFETY: only `handle` makes these externals, each holding an Rc.
    let shared = unsafe { &*(shared as *const Shared) };
    let Ok(guard) = shared.try_borrow() else {
        return ptr::null_mut();
    };
    let Some(probe) = guard.as_ref().and_then(|p| p.probe_at(index as usize)) else {
        return ptr::null_mut();
    };
    // SAFETY: as above.
    // N-API fills the slots past `argc` with `undefined`.
    match unsafe { fire_values(env, probe, &argv[2..]) } {
        Ok(()) => {}
        // The JS exception is pending and propagates.
        Err(e) if e.status == Status::PendingException => {}
        Err(e) => {
            let message = std::ffi::CString::new(e.reason.replace('\0', " ")).unwrap_or_default();
            // SAFETY: throwing on the live env.
            unsafe { sys::napi_throw_error(env, ptr::null(), message.as_ptr()) };
        }
    }
    ptr::null_mut()
}

unsafe fn fire_values(env: sys::napi_env, probe: dynprobe::Probe<'_>, values: &[sys::napi_value]) -> Result<()> {
    let mut strings = Strings::new();
    let mut raw = [0u64; MAX_ARGS];
    let mut string_at = [usize::MAX; MAX_ARGS];
    for (i, (&ty, &value)) in probe.args().iter().zip(values).enumerate() {
        // SAFETY: env and value are live for this call.
        let kind = unsafe { primitive_kind(env, value)? };
        if ty == ArgType::Str {
            string_at[i] = strings.len;
            // SAFETY: as above.
            unsafe { append_string(env, value, kind, &mut strings)? };
        } else {
            // SAFETY: as above.
            raw[i] = ty.normalize(unsafe { integer(env, value, kind, ty == ArgType::U64)? });
        }
    }
    let base = strings.base() as u64;
    for (value, at) in raw.iter_mut().zip(string_at) {
        if at != usize::MAX {
            *value = base + at as u64;
        }
    }
    // SAFETY: every string pointer points into `strings`, NUL-terminated and
    // alive until the end of this function.
    unsafe { probe.fire_raw(&raw) };
    Ok(())
}

/// One fire's strings, NUL-terminated, on the stack unless they are long: a
/// traced fire allocates nothing (and touches no thread-local storage, which
/// costs a call in a shared object).
struct Strings {
    stack: [std::mem::MaybeUninit<u8>; 2048],
    heap: Option<Vec<u8>>,
    len: usize,
}

impl Strings {
    fn new() -> Strings {
        Strings { stack: [std::mem::MaybeUninit::uninit(); 2048], heap: None, len: 0 }
    }

    /// Room for `extra` more bytes at the end; moves everything to the heap
    /// when the stack part is too small.
    fn spare(&mut self, extra: usize) -> *mut u8 {
        if self.heap.is_none() && self.len + extra > self.stack.len() {
            // SAFETY: the first `len` bytes were written.
            let written = unsafe { std::slice::from_raw_parts(self.stack.as_ptr() as *const u8, self.len) };
            self.heap = Some(written.to_vec());
        }
        match &mut self.heap {
            Some(heap) => {
                heap.resize(self.len + extra, 0);
                // SAFETY: in bounds after the resize.
                unsafe { heap.as_mut_ptr().add(self.len) }
            }
            // SAFETY: in bounds, checked above.
            None => unsafe { (self.stack.as_mut_ptr() as *mut u8).add(self.len) },
        }
    }

    fn base(&self) -> *const u8 {
        self.heap.as_ref().map_or(self.stack.as_ptr() as *const u8, |h| h.as_ptr())
    }
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    match status {
        sys::Status::napi_ok => Ok(()),
        // A JS exception (a throwing toString, say) is already pending: let it through.
        sys::Status::napi_pending_exception => Err(Error::new(Status::PendingException, what.to_string())),
        other => Err(Error::new(Status::from(other), format!("cannot {what}"))),
    }
}

/// The value's type, refusing objects: converting one would run user code
/// (toString, valueOf) while the provider is locked. The JS layer converts
/// objects before it calls `fire`.
unsafe fn primitive_kind(env: sys::napi_env, value: sys::napi_value) -> Result<sys::napi_valuetype> {
    let mut kind = 0;
    check(unsafe { sys::napi_typeof(env, value, &mut kind) }, "inspect value")?;
    match kind {
        sys::ValueType::napi_object | sys::ValueType::napi_function | sys::ValueType::napi_external => {
            Err(Error::new(Status::InvalidArg, "fire takes primitive values (convert objects first)".to_string()))
        }
        _ => Ok(kind),
    }
}

/// Appends ToString(value) as UTF-8 and a NUL. A tracer reads up to the first
/// NUL, which cuts strings that contain one, as the contract asks.
unsafe fn append_string(
    env: sys::napi_env,
    value: sys::napi_value,
    kind: sys::napi_valuetype,
    out: &mut Strings,
) -> Result<()> {
    let mut string = value;
    if kind != sys::ValueType::napi_string {
        // A primitive: no user code runs (a Symbol throws a TypeError).
        check(unsafe { sys::napi_coerce_to_string(env, value, &mut string) }, "convert value to string")?;
    }
    // The UTF-16 length is known without a pass over the string, and bounds
    // the UTF-8 length: one pass writes the whole string.
    let mut units = 0usize;
    check(unsafe { sys::napi_get_value_string_utf16(env, string, ptr::null_mut(), 0, &mut units) }, "read string")?;
    let room = 3 * units + 1;
    let buf = out.spare(room) as *mut std::ffi::c_char;
    let mut written = 0usize;
    check(unsafe { sys::napi_get_value_string_utf8(env, string, buf, room, &mut written) }, "read string")?;
    // N-API wrote a NUL after the `written` bytes.
    out.len += written + 1;
    Ok(())
}

/// The 64-bit register form of an integer argument.
unsafe fn integer(env: sys::napi_env, value: sys::napi_value, kind: sys::napi_valuetype, unsigned: bool) -> Result<u64> {
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
    let bytes = std::fs::read(&path).map_err(|e| Error::new(Status::GenericFailure, format!("cannot read {path}: {e}")))?;
    let probes = dynprobe_format::read_stapsdt(&bytes).map_err(|e| Error::new(Status::InvalidArg, format!("{path}: {e}")))?;
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
