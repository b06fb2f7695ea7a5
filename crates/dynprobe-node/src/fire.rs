//! Firing a traced probe: the one native call a fire makes, and the hot
//! path of the addon. A traced fire costs a kernel trip, after which cold
//! code costs about twice what it costs warm: this path is short, allocates
//! nothing, and inlines everything down to the probe site.

use std::ptr;

use dynprobe::{ArgType, SiteCall, MAX_ARGS};
use napi::bindgen_prelude::*;
use napi::sys;

use crate::registry::Id;
use crate::shared::Shared;
use crate::status::check;

/// `fire(handle, ...values)`: fires the probe behind `handle` (from
/// `NativeProvider.handle()`) with the values (positional arguments: reading
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
pub(crate) unsafe extern "C" fn fire(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // Room for the handle and two values, the common case; more are asked
    // for again, exactly as many as there are (N-API fills every slot it is
    // given, which costs).
    const FIRST: usize = 1 + 2;
    const ALL: usize = 1 + MAX_ARGS;
    // Not initialised: a successful read writes every slot it is given, the
    // ones past the arguments as `undefined`.
    let mut argv = [std::mem::MaybeUninit::<sys::napi_value>::uninit(); ALL];
    let argv_out = argv.as_mut_ptr().cast();
    let mut data: *mut std::ffi::c_void = ptr::null_mut();
    let mut shared: *mut std::ffi::c_void = ptr::null_mut();
    // Reads up to `*argc` arguments; sets `*argc` to how many were passed.
    // SAFETY: N-API calls on the live env and values of this callback, with
    // room for `*argc` values.
    let read = |argc: &mut usize, shared: &mut *mut std::ffi::c_void| unsafe {
        sys::napi_get_cb_info(env, info, argc, argv_out, ptr::null_mut(), shared)
    };
    let mut argc = FIRST;
    let mut status = read(&mut argc, &mut shared);
    let mut filled = FIRST;
    if status == sys::Status::napi_ok && argc > FIRST {
        argc = argc.min(ALL);
        filled = argc;
        status = read(&mut argc, &mut shared);
    }
    if status == sys::Status::napi_ok && argc >= 1 {
        // SAFETY: N-API wrote the first slot.
        let handle = unsafe { argv[0].assume_init() };
        // SAFETY: a value of this call.
        status = unsafe { sys::napi_get_value_external(env, handle, &mut data) };
    }
    let id = Id::decode(data);
    if status != sys::Status::napi_ok || argc < 1 || id.is_none() || shared.is_null() {
        // SAFETY: throwing on the live env.
        unsafe {
            sys::napi_throw_type_error(
                env,
                ptr::null(),
                c"fire(handle, ...values): bad handle".as_ptr(),
            )
        };
        return ptr::null_mut();
    }
    // SAFETY: N-API wrote the first `filled` slots (the reads succeeded).
    let argv =
        unsafe { std::slice::from_raw_parts(argv.as_ptr().cast::<sys::napi_value>(), filled) };
    // SAFETY: the function's data is the environment's registry, which
    // outlives it.
    let shared = unsafe { &*(shared as *const Shared) };
    // Held until the probe has fired: nothing unloads the provider meanwhile.
    let Ok(registry) = shared.try_borrow() else {
        return ptr::null_mut();
    };
    // Nothing is dereferenced that the handle names: its id is looked up. A
    // handle that outlived its provider (or one made by some other addon
    // that happens to carry our marker) finds nothing, or another live probe
    // of this process, and fires nothing or that.
    let Some(id) = id else { return ptr::null_mut() };
    let Ok(site) = registry.site(id) else {
        return ptr::null_mut();
    };
    // Values past the slots N-API filled are missing.
    let values = &argv[1..];
    // SAFETY: as above.
    match unsafe { fire_values(env, site, values) } {
        Ok(()) => {}
        // Nothing has fired: the JS layer converts the values and fires again.
        Err(Refusal::Object) => {
            let mut result = ptr::null_mut();
            // SAFETY: the live env.
            unsafe { sys::napi_get_boolean(env, false, &mut result) };
            return result;
        }
        // The JS exception is pending and propagates.
        Err(Refusal::Napi(e)) if e.status == Status::PendingException => {}
        Err(Refusal::Napi(e)) => {
            let message = std::ffi::CString::new(e.reason.replace('\0', " ")).unwrap_or_default();
            // SAFETY: throwing on the live env.
            unsafe { sys::napi_throw_error(env, ptr::null(), message.as_ptr()) };
        }
    }
    ptr::null_mut()
}

/// Why a fire did not happen.
enum Refusal {
    /// A value is an object: `fire` returns `false` for the JS layer to
    /// convert the values and fire again.
    Object,
    /// N-API failed, or a conversion threw (the exception is pending).
    Napi(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Napi(e)
    }
}

type Fired<T> = std::result::Result<T, Refusal>;

/// Converts the values and fires. The caller keeps the provider loaded.
#[inline(always)]
unsafe fn fire_values(
    env: sys::napi_env,
    site: &SiteCall,
    values: &[sys::napi_value],
) -> Fired<()> {
    let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    let mut strings = Strings {
        stack: &mut stack,
        heap: None,
        len: 0,
    };
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
const UNDEFINED: [u16; 9] = [
    b'u' as u16,
    b'n' as u16,
    b'd' as u16,
    b'e' as u16,
    b'f' as u16,
    b'i' as u16,
    b'n' as u16,
    b'e' as u16,
    b'd' as u16,
];

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
            unsafe { std::slice::from_raw_parts(self.stack.as_ptr().cast::<u8>(), self.len) }
                .to_vec()
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
        // ASCII, the common case, a byte a unit.
        let mut n = 0;
        for &unit in units {
            if unit >= 0x80 {
                break;
            }
            // SAFETY: `out` has room for 3 bytes a unit and a NUL.
            unsafe { *out.add(n) = unit as u8 };
            n += 1;
        }
        if n < units.len() {
            // SAFETY: as above, for the units left.
            n += unsafe { encode_utf16(&units[n..], out.add(n)) };
        }
        // SAFETY: as above.
        unsafe { *out.add(n) = 0 };
        self.len += n + 1;
    }

    fn base(&self) -> *const u8 {
        self.heap
            .as_ref()
            .map_or(self.stack.as_ptr().cast(), |h| h.as_ptr())
    }
}

/// The value's type, refusing objects: converting one would run user code
/// (toString, valueOf) while the provider is held. The JS layer converts
/// them when `fire` returns `false`.
unsafe fn primitive_kind(env: sys::napi_env, value: sys::napi_value) -> Fired<sys::napi_valuetype> {
    let mut kind = 0;
    check(
        unsafe { sys::napi_typeof(env, value, &mut kind) },
        "inspect value",
    )?;
    match kind {
        sys::ValueType::napi_object
        | sys::ValueType::napi_function
        | sys::ValueType::napi_external => Err(Refusal::Object),
        _ => Ok(kind),
    }
}

/// Writes UTF-16 as UTF-8 at `out`, a lone surrogate as U+FFFD (as V8 writes
/// it); returns the bytes written.
///
/// # Safety
/// `out` has room for 3 bytes a unit (a pair of units makes 4).
unsafe fn encode_utf16(units: &[u16], out: *mut u8) -> usize {
    let mut n = 0;
    for c in char::decode_utf16(units.iter().copied()) {
        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut bytes = [0u8; 4];
        let encoded = c.encode_utf8(&mut bytes);
        // SAFETY: the caller's.
        unsafe { ptr::copy_nonoverlapping(encoded.as_ptr(), out.add(n), encoded.len()) };
        n += encoded.len();
    }
    n
}

/// UTF-16 units read from a string in one N-API call: V8 copies them much
/// faster than it writes UTF-8, and short strings are the common case.
const SCRATCH_UNITS: usize = 512;

/// Appends ToString(value) as UTF-8 and a NUL. A tracer reads up to the first
/// NUL, which cuts strings that contain one, as the contract asks.
#[inline(always)]
unsafe fn append_string(
    env: sys::napi_env,
    value: sys::napi_value,
    out: &mut Strings,
) -> Fired<()> {
    let mut scratch = [std::mem::MaybeUninit::<u16>::uninit(); SCRATCH_UNITS];
    let mut copied = 0usize;
    // SAFETY: `scratch` has room for SCRATCH_UNITS units, the NUL included.
    let status = unsafe {
        sys::napi_get_value_string_utf16(
            env,
            value,
            scratch.as_mut_ptr().cast(),
            SCRATCH_UNITS,
            &mut copied,
        )
    };
    match status {
        // All of it, unless it filled the scratch space.
        sys::Status::napi_ok if copied < SCRATCH_UNITS - 1 => {
            // SAFETY: N-API wrote the first `copied` units.
            let units =
                unsafe { std::slice::from_raw_parts(scratch.as_ptr().cast::<u16>(), copied) };
            out.push_utf16(units);
            Ok(())
        }
        sys::Status::napi_ok | sys::Status::napi_string_expected => unsafe {
            append_string_exactly(env, value, out)
        },
        other => Ok(check(other, "read string")?),
    }
}

#[cold]
unsafe fn append_string_exactly(
    env: sys::napi_env,
    value: sys::napi_value,
    out: &mut Strings,
) -> Fired<()> {
    let mut string = value;
    // SAFETY: env and value are live for this call.
    if unsafe { primitive_kind(env, value)? } != sys::ValueType::napi_string {
        // A primitive: no user code runs (a Symbol throws a TypeError).
        check(
            unsafe { sys::napi_coerce_to_string(env, value, &mut string) },
            "convert value to string",
        )?;
    }
    let mut len = 0usize;
    check(
        unsafe { sys::napi_get_value_string_utf16(env, string, ptr::null_mut(), 0, &mut len) },
        "read string",
    )?;
    let mut units = vec![0u16; len + 1];
    let mut copied = 0usize;
    check(
        unsafe {
            sys::napi_get_value_string_utf16(
                env,
                string,
                units.as_mut_ptr(),
                units.len(),
                &mut copied,
            )
        },
        "read string",
    )?;
    out.push_utf16(&units[..copied]);
    Ok(())
}

/// The 64-bit register form of an integer argument: a number in one call,
/// anything else converted first.
#[inline(always)]
unsafe fn integer(env: sys::napi_env, value: sys::napi_value, unsigned: bool) -> Fired<u64> {
    let mut f = 0f64;
    // SAFETY: env and value are live for this call.
    match unsafe { sys::napi_get_value_double(env, value, &mut f) } {
        sys::Status::napi_ok => Ok(truncate(f, unsigned)),
        sys::Status::napi_number_expected => unsafe { converted_integer(env, value, unsigned) },
        other => Ok(check(other, "read number").map(|()| 0)?),
    }
}

/// Truncates toward zero; NaN becomes 0 and out-of-range values saturate.
#[inline(always)]
fn truncate(f: f64, unsigned: bool) -> u64 {
    // Nearly every value is well inside the range: one instruction.
    if f.abs() < 9007199254740992.0 {
        // SAFETY: finite (NaN fails the comparison) and within i64.
        return unsafe { f.to_int_unchecked::<i64>() } as u64;
    }
    if unsigned && f >= 0.0 {
        f as u64
    } else {
        f as i64 as u64
    }
}

#[cold]
unsafe fn converted_integer(
    env: sys::napi_env,
    value: sys::napi_value,
    unsigned: bool,
) -> Fired<u64> {
    // SAFETY: env and value are live for this call.
    let kind = unsafe { primitive_kind(env, value)? };
    if kind == sys::ValueType::napi_bigint {
        let mut lossless = false;
        // The low 64 bits, as a C cast would keep them.
        return Ok(if unsigned {
            let mut v = 0u64;
            check(
                unsafe { sys::napi_get_value_bigint_uint64(env, value, &mut v, &mut lossless) },
                "read BigInt",
            )?;
            v
        } else {
            let mut v = 0i64;
            check(
                unsafe { sys::napi_get_value_bigint_int64(env, value, &mut v, &mut lossless) },
                "read BigInt",
            )?;
            v as u64
        });
    }
    let mut number = value;
    check(
        unsafe { sys::napi_coerce_to_number(env, value, &mut number) },
        "convert value to number",
    )?;
    let mut f = 0f64;
    check(
        unsafe { sys::napi_get_value_double(env, number, &mut f) },
        "read number",
    )?;
    Ok(truncate(f, unsigned))
}

/// Defines `fire` on `exports`, a plain N-API function: the traced path is
/// the only hot native call, and napi-rs's per-call bookkeeping would cost
/// more than the kernel's uprobe itself. `shared` (the environment's
/// [`Shared`] state) is its data.
pub(crate) fn define(
    env: sys::napi_env,
    exports: &mut Object,
    shared: *mut std::ffi::c_void,
) -> Result<()> {
    let mut function = ptr::null_mut();
    // SAFETY: a static name and a callback with the N-API signature.
    unsafe {
        check(
            sys::napi_create_function(env, c"fire".as_ptr(), 4, Some(fire), shared, &mut function),
            "create fire",
        )?;
        exports.set_named_property("fire", Unknown::from_napi_value(env, function)?)
    }
}
