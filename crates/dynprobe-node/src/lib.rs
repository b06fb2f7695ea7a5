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

    /// The handle that [`fire`] takes for probe `index`: an External holding
    /// this provider and the index, so that a traced fire reads one value to
    /// find its probe.
    #[napi]
    pub fn handle(&self, env: Env, index: u32) -> Result<Unknown<'_>> {
        let site = self.with_loaded(|p| p.probe_at(index as usize).map(|probe| probe.site_call()))?;
        let site = site.ok_or_else(|| Error::new(Status::InvalidArg, format!("no probe at index {index}")))?;
        let data = Box::into_raw(Box::new(ProbeHandle { shared: self.shared.clone(), site }));
        let mut value = ptr::null_mut();
        // SAFETY: `data` is a Box that the finalizer gives back.
        let status = unsafe {
            sys::napi_create_external(env.raw(), data.cast(), Some(release_handle), ptr::null_mut(), &mut value)
        };
        if status != sys::Status::napi_ok {
            // SAFETY: not handed to N-API; reclaim it here.
            drop(unsafe { Box::from_raw(data) });
        }
        check(status, "create probe handle")?;
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

/// What a probe's handle holds: its provider, to know that it is still
/// loaded, and what firing the probe takes, in the handle itself.
struct ProbeHandle {
    shared: Rc<Shared>,
    site: dynprobe::SiteCall,
}

unsafe extern "C" fn release_handle(_env: sys::napi_env, data: *mut std::ffi::c_void, _hint: *mut std::ffi::c_void) {
    // SAFETY: `data` came from Box::into_raw in `handle`, released once, on
    // the environment's JS thread like every other use.
    drop(unsafe { Box::from_raw(data as *mut ProbeHandle) });
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

/// `fire(handle, ...values)`: fires the probe behind `handle` (from
/// [`NativeProvider::handle`]) with the values (positional arguments: reading
/// them costs nothing, unlike array elements through N-API), converted by the
/// probe's types: integers by ToNumber (truncated, NaN as 0) or as BigInts
/// (64 bits kept), strings by ToString in UTF-8. Missing values are
/// `undefined`, which converts to 0 and "undefined". Does nothing once the
/// provider is unloaded. A conversion that throws (a Symbol) throws here.
/// Returns `false`, having fired nothing, when a value is an object:
/// converting one would run user code, which the JS layer runs first.
///
/// A traced fire costs a kernel trip, after which cold code costs about
/// twice what it costs warm, so everything down to the probe site is inlined
/// into this one function, and the common cases (a number, a short string)
/// take one N-API call each.
unsafe extern "C" fn fire(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // Room for the handle and two values, the common case; more are asked
    // for again, exactly as many as there are (N-API fills every slot it is
    // given, which costs).
    const FIRST: usize = 1 + 2;
    const ALL: usize = 1 + MAX_ARGS;
    // Not initialised: N-API writes every slot it is given, the ones past the
    // arguments as `undefined`.
    let mut argv = [std::mem::MaybeUninit::<sys::napi_value>::uninit(); ALL];
    let mut argc = FIRST;
    let mut data: *mut std::ffi::c_void = ptr::null_mut();
    // SAFETY: N-API calls on the live env and values of this callback, with
    // room for `argc` values.
    let mut status = unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr().cast(), ptr::null_mut(), ptr::null_mut()) };
    let mut filled = FIRST;
    if status == sys::Status::napi_ok && argc > FIRST {
        argc = argc.min(ALL);
        filled = argc;
        // SAFETY: as above.
        status = unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr().cast(), ptr::null_mut(), ptr::null_mut()) };
    }
    // SAFETY: N-API wrote the first `filled` slots.
    let argv = unsafe { std::slice::from_raw_parts(argv.as_ptr().cast::<sys::napi_value>(), filled) };
    if status == sys::Status::napi_ok && argc >= 1 {
        // SAFETY: as above.
        status = unsafe { sys::napi_get_value_external(env, argv[0], &mut data) };
    }
    if status != sys::Status::napi_ok || argc < 1 {
        // SAFETY: throwing on the live env.
        unsafe { sys::napi_throw_type_error(env, ptr::null(), c"fire(handle, ...values): bad handle".as_ptr()) };
        return ptr::null_mut();
    }
    // SAFETY: only `handle` makes these externals (JS code cannot make one),
    // each owning a ProbeHandle until its finalizer runs.
    let handle = unsafe { &*(data as *const ProbeHandle) };
    // Held until the probe has fired: nothing unloads the provider meanwhile.
    let Ok(guard) = handle.shared.try_borrow() else {
        return ptr::null_mut();
    };
    if guard.is_none() {
        return ptr::null_mut();
    }
    // Values past the slots N-API filled are missing.
    let values = &argv[1..];
    // SAFETY: as above.
    match unsafe { fire_values(env, &handle.site, values) } {
        Ok(()) => {}
        // The JS exception is pending and propagates.
        Err(e) if e.status == Status::PendingException => {}
        // Nothing has fired: the JS layer converts the values and fires again.
        Err(e) if e.status == NEEDS_CONVERSION => {
            let mut result = ptr::null_mut();
            // SAFETY: the live env.
            unsafe { sys::napi_get_boolean(env, false, &mut result) };
            return result;
        }
        Err(e) => {
            let message = std::ffi::CString::new(e.reason.replace('\0', " ")).unwrap_or_default();
            // SAFETY: throwing on the live env.
            unsafe { sys::napi_throw_error(env, ptr::null(), message.as_ptr()) };
        }
    }
    ptr::null_mut()
}

/// Converts the values and fires. The caller keeps the provider loaded.
#[inline(always)]
unsafe fn fire_values(env: sys::napi_env, site: &dynprobe::SiteCall, values: &[sys::napi_value]) -> Result<()> {
    let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    let mut strings = Strings { stack: &mut stack, heap: None, len: 0 };
    let args = site.args();
    // Written for each argument below; not cleared first (a traced fire
    // touches as little memory as it can).
    let mut raw = [std::mem::MaybeUninit::<u64>::uninit(); MAX_ARGS];
    // Bit i set: raw[i] is an offset into `strings` until they stop moving.
    let mut string_args = 0u32;
    for (i, &ty) in args.iter().enumerate() {
        let value = values.get(i).copied();
        let bits = if ty == ArgType::Str {
            string_args |= 1 << i;
            let offset = strings.len as u64;
            match value {
                // SAFETY: env and value are live for this call.
                Some(value) => unsafe { append_string(env, value, &mut strings)? },
                None => strings.push_utf16(&UNDEFINED),
            }
            offset
        } else if let Some(value) = value {
            // SAFETY: as above.
            ty.normalize(unsafe { integer(env, value, ty == ArgType::U64)? })
        } else {
            0
        };
        raw[i].write(bits);
    }
    // SAFETY: the first `args.len()` values were written above.
    let raw = unsafe { std::slice::from_raw_parts_mut(raw.as_mut_ptr().cast::<u64>(), args.len()) };
    let base = strings.base() as u64;
    while string_args != 0 {
        raw[string_args.trailing_zeros() as usize] += base;
        string_args &= string_args - 1;
    }
    // SAFETY: the caller keeps the provider loaded; every string pointer
    // points into `strings`, NUL-terminated and alive until the end of this
    // function.
    unsafe { site.call(raw) };
    Ok(())
}

/// What a missing string value reads as (ToString(undefined)).
const UNDEFINED: [u16; 9] = [b'u' as u16, b'n' as u16, b'd' as u16, b'e' as u16, b'f' as u16, b'i' as u16, b'n' as u16, b'e' as u16, b'd' as u16];

/// One fire's strings, NUL-terminated, on the stack unless they are long: a
/// traced fire allocates nothing (and touches no thread-local storage, which
/// costs a call in a shared object).
struct Strings<'a> {
    stack: &'a mut [std::mem::MaybeUninit<u8>],
    heap: Option<Vec<u8>>,
    len: usize,
}

impl Strings<'_> {
    /// Room for `extra` more bytes at the end; moves everything to the heap
    /// when the stack part is too small.
    #[inline(always)]
    fn spare(&mut self, extra: usize) -> *mut u8 {
        if self.heap.is_none() && self.len + extra <= self.stack.len() {
            // SAFETY: in bounds, checked above.
            return unsafe { self.stack.as_mut_ptr().add(self.len) }.cast();
        }
        self.spare_on_heap(extra)
    }

    #[cold]
    fn spare_on_heap(&mut self, extra: usize) -> *mut u8 {
        let heap = self.heap.get_or_insert_with(|| {
            // SAFETY: the first `len` bytes were written.
            unsafe { std::slice::from_raw_parts(self.stack.as_ptr().cast::<u8>(), self.len) }.to_vec()
        });
        heap.resize(self.len + extra, 0);
        // SAFETY: in bounds after the resize.
        unsafe { heap.as_mut_ptr().add(self.len) }
    }

    /// Appends UTF-16 as UTF-8 and a NUL, a lone surrogate as U+FFFD (as V8
    /// writes it).
    #[inline(always)]
    fn push_utf16(&mut self, units: &[u16]) {
        // At most 3 bytes a unit: a pair of units makes 4.
        let out = self.spare(3 * units.len() + 1);
        let mut n = 0;
        let mut rest = units;
        // ASCII, the common case, a byte a unit.
        while let Some((&u, tail)) = rest.split_first() {
            if u >= 0x80 {
                break;
            }
            // SAFETY: `out` has room for 3 bytes a unit and a NUL.
            unsafe { *out.add(n) = u as u8 };
            n += 1;
            rest = tail;
        }
        for c in char::decode_utf16(rest.iter().copied()) {
            let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
            let mut bytes = [0u8; 4];
            let encoded = c.encode_utf8(&mut bytes);
            // SAFETY: as above.
            unsafe { ptr::copy_nonoverlapping(encoded.as_ptr(), out.add(n), encoded.len()) };
            n += encoded.len();
        }
        // SAFETY: as above.
        unsafe { *out.add(n) = 0 };
        self.len += n + 1;
    }

    fn base(&self) -> *const u8 {
        self.heap.as_ref().map_or(self.stack.as_ptr().cast(), |h| h.as_ptr())
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

/// Why `fire` returned `false` without firing: a value is an object.
const NEEDS_CONVERSION: Status = Status::ObjectExpected;

/// The value's type, refusing objects: converting one would run user code
/// (toString, valueOf) while the provider is locked. The JS layer converts
/// objects before it calls `fire`.
unsafe fn primitive_kind(env: sys::napi_env, value: sys::napi_value) -> Result<sys::napi_valuetype> {
    let mut kind = 0;
    check(unsafe { sys::napi_typeof(env, value, &mut kind) }, "inspect value")?;
    match kind {
        sys::ValueType::napi_object | sys::ValueType::napi_function | sys::ValueType::napi_external => {
            Err(Error::new(NEEDS_CONVERSION, "fire takes primitive values (convert objects first)".to_string()))
        }
        _ => Ok(kind),
    }
}

/// UTF-16 units read from a string in one N-API call: V8 copies them much
/// faster than it writes UTF-8, and short strings are the common case.
const SCRATCH_UNITS: usize = 512;

/// Appends ToString(value) as UTF-8 and a NUL. A tracer reads up to the first
/// NUL, which cuts strings that contain one, as the contract asks.
#[inline(always)]
unsafe fn append_string(env: sys::napi_env, value: sys::napi_value, out: &mut Strings) -> Result<()> {
    let mut scratch = [std::mem::MaybeUninit::<u16>::uninit(); SCRATCH_UNITS];
    let mut copied = 0usize;
    // SAFETY: `scratch` has room for SCRATCH_UNITS units, the NUL included.
    let status = unsafe {
        sys::napi_get_value_string_utf16(env, value, scratch.as_mut_ptr().cast(), SCRATCH_UNITS, &mut copied)
    };
    match status {
        // All of it, unless it filled the scratch space.
        sys::Status::napi_ok if copied < SCRATCH_UNITS - 1 => {
            // SAFETY: N-API wrote the first `copied` units.
            let units = unsafe { std::slice::from_raw_parts(scratch.as_ptr().cast::<u16>(), copied) };
            out.push_utf16(units);
            Ok(())
        }
        sys::Status::napi_ok | sys::Status::napi_string_expected => unsafe { append_string_exactly(env, value, out) },
        other => check(other, "read string"),
    }
}

#[cold]
unsafe fn append_string_exactly(env: sys::napi_env, value: sys::napi_value, out: &mut Strings) -> Result<()> {
    let mut string = value;
    // SAFETY: env and value are live for this call.
    if unsafe { primitive_kind(env, value)? } != sys::ValueType::napi_string {
        // A primitive: no user code runs (a Symbol throws a TypeError).
        check(unsafe { sys::napi_coerce_to_string(env, value, &mut string) }, "convert value to string")?;
    }
    let mut len = 0usize;
    check(unsafe { sys::napi_get_value_string_utf16(env, string, ptr::null_mut(), 0, &mut len) }, "read string")?;
    let mut units = vec![0u16; len + 1];
    let mut copied = 0usize;
    check(
        unsafe { sys::napi_get_value_string_utf16(env, string, units.as_mut_ptr(), units.len(), &mut copied) },
        "read string",
    )?;
    out.push_utf16(&units[..copied]);
    Ok(())
}

/// The 64-bit register form of an integer argument: a number in one call,
/// anything else converted first.
#[inline(always)]
unsafe fn integer(env: sys::napi_env, value: sys::napi_value, unsigned: bool) -> Result<u64> {
    let mut f = 0f64;
    // SAFETY: env and value are live for this call.
    match unsafe { sys::napi_get_value_double(env, value, &mut f) } {
        sys::Status::napi_ok => Ok(truncate(f, unsigned)),
        sys::Status::napi_number_expected => unsafe { converted_integer(env, value, unsigned) },
        other => check(other, "read number").map(|()| 0),
    }
}

/// Truncates toward zero; NaN becomes 0 and out-of-range values saturate.
fn truncate(f: f64, unsigned: bool) -> u64 {
    if unsigned && f >= 0.0 { f as u64 } else { f as i64 as u64 }
}

#[cold]
unsafe fn converted_integer(env: sys::napi_env, value: sys::napi_value, unsigned: bool) -> Result<u64> {
    // SAFETY: env and value are live for this call.
    let kind = unsafe { primitive_kind(env, value)? };
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
    check(unsafe { sys::napi_coerce_to_number(env, value, &mut number) }, "convert value to number")?;
    let mut f = 0f64;
    check(unsafe { sys::napi_get_value_double(env, number, &mut f) }, "read number")?;
    Ok(truncate(f, unsigned))
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
