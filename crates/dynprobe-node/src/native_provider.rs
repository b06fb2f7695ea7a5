//! `NativeProvider`, written against N-API directly: a napi-rs class keeps
//! its native state until its finalizer runs, which Node defers until the
//! event loop turns, so a loop that never yields would pile it up. Here an
//! object holds only an [`Id`]; `unload()` removes its wrap (no finalizer
//! left to run) and releases the provider at once. A provider collected
//! without `unload()` is released by the wrap's finalizer.

use std::ffi::CStr;
use std::ptr;

use dynprobe::{DtraceRegistration, Image, Provider};
use napi::bindgen_prelude::*;
use napi::sys;

use crate::definition::{definition, ProbeSpec};
use crate::registry::{Id, Missing, MAX_PROBES};
use crate::shared::Shared;
use crate::status::check;

/// Marks the objects this constructor made, so that one whose wrap was
/// removed reads as unloaded, and any other object as not a provider.
const PROVIDER_TAG: sys::napi_type_tag = sys::napi_type_tag {
    lower: 0x7c2d_4b1e_9a05_63f1,
    upper: 0xd1a3_0e8f_2b64_97c5,
};

fn throw(env: sys::napi_env, type_error: bool, message: &str) -> sys::napi_value {
    let message = std::ffi::CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: throwing on the live env of this call.
    unsafe {
        if type_error {
            sys::napi_throw_type_error(env, ptr::null(), message.as_ptr());
        } else {
            sys::napi_throw_error(env, ptr::null(), message.as_ptr());
        }
    }
    ptr::null_mut()
}

/// Throws `error` unless a JS exception is already pending.
fn throw_napi(env: sys::napi_env, error: Error) -> sys::napi_value {
    if error.status == Status::PendingException {
        return ptr::null_mut();
    }
    let type_error = matches!(
        error.status,
        Status::InvalidArg
            | Status::StringExpected
            | Status::ObjectExpected
            | Status::ArrayExpected
            | Status::NumberExpected
    );
    throw(env, type_error, &error.reason)
}

/// The arguments, `this` and the registry of a call.
struct Call<const N: usize> {
    this: sys::napi_value,
    args: [sys::napi_value; N],
    argc: usize,
    shared: &'static Shared,
}

/// # Safety
/// A callback of a function this module created, with the registry as data.
unsafe fn call_info<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Option<Call<N>> {
    let mut args = [ptr::null_mut(); N];
    let mut argc = N;
    let mut this = ptr::null_mut();
    let mut data = ptr::null_mut();
    // SAFETY: room for N values.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            args.as_mut_ptr(),
            &mut this,
            &mut data,
        )
    };
    if status != sys::Status::napi_ok || data.is_null() {
        return None;
    }
    // SAFETY: the data of these functions is the environment's registry,
    // which outlives them.
    let shared = unsafe { &*(data as *const Shared) };
    Some(Call {
        this,
        args,
        argc,
        shared,
    })
}

/// Why `this` names no loaded provider.
enum NotLoaded {
    /// A provider object, unloaded.
    Unloaded,
    /// Any other value.
    NotAProvider,
}

/// The provider id of `this`.
fn provider_id(env: sys::napi_env, this: sys::napi_value) -> std::result::Result<Id, NotLoaded> {
    let mut data = ptr::null_mut();
    // SAFETY: `this` is a value of this call. An object that another addon
    // wrapped gives its own pointer, which `decode` refuses (no marker).
    if unsafe { sys::napi_unwrap(env, this, &mut data) } == sys::Status::napi_ok {
        if let Some(id) = Id::decode(data) {
            return Ok(id);
        }
    }
    let mut tagged = false;
    // SAFETY: as above; a non-object is refused with a status.
    let status = unsafe { sys::napi_check_object_type_tag(env, this, &PROVIDER_TAG, &mut tagged) };
    if status == sys::Status::napi_ok && tagged {
        Err(NotLoaded::Unloaded)
    } else {
        Err(NotLoaded::NotAProvider)
    }
}

fn not_loaded(env: sys::napi_env, why: NotLoaded) -> sys::napi_value {
    match why {
        NotLoaded::Unloaded => throw(env, false, "provider is unloaded"),
        NotLoaded::NotAProvider => throw(env, true, "not a NativeProvider"),
    }
}

fn missing(env: sys::napi_env, why: Missing, index: u32) -> sys::napi_value {
    match why {
        Missing::Unloaded => throw(env, false, "provider is unloaded"),
        Missing::NoProbe => throw(env, true, &format!("no probe at index {index}")),
    }
}

fn busy(env: sys::napi_env) -> sys::napi_value {
    throw(env, false, "provider is in use")
}

/// The wrap's finalizer: the provider object was collected without
/// `unload()`. Detaches its buffers and unmaps its library.
unsafe extern "C" fn release_collected(
    env: sys::napi_env,
    data: *mut std::ffi::c_void,
    hint: *mut std::ffi::c_void,
) {
    let Some(id) = Id::decode(data) else { return };
    // SAFETY: the hint is the registry, which outlives every wrap.
    let shared = unsafe { &*(hint as *const Shared) };
    let loaded = match shared.try_borrow_mut() {
        Ok(mut registry) => registry.remove(id),
        Err(_) => None,
    };
    if let Some(loaded) = loaded {
        let _ = loaded.release(Some(env));
    }
}

/// `new NativeProvider(name, module, [{ name, types }])`: builds and loads
/// the provider's library.
unsafe extern "C" fn construct(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: a callback of the class, whose data is the registry.
    let Some(call) = (unsafe { call_info::<3>(env, info) }) else {
        return throw(env, true, "NativeProvider: bad call");
    };
    let mut new_target = ptr::null_mut();
    // SAFETY: the live callback info.
    let status = unsafe { sys::napi_get_new_target(env, info, &mut new_target) };
    if status != sys::Status::napi_ok || new_target.is_null() {
        return throw(env, true, "NativeProvider must be called with new");
    }
    let arg = |i: usize| {
        if i < call.argc {
            call.args[i]
        } else {
            ptr::null_mut()
        }
    };
    // SAFETY: values of this call (a missing one is refused by the conversion).
    let parsed = (|| -> Result<(String, String, Vec<ProbeSpec>)> {
        let undefined = || Error::new(Status::InvalidArg, "NativeProvider(name, module, probes)");
        let [name, module, probes] = [arg(0), arg(1), arg(2)];
        if name.is_null() || module.is_null() || probes.is_null() {
            return Err(undefined());
        }
        unsafe {
            Ok((
                String::from_napi_value(env, name)?,
                String::from_napi_value(env, module)?,
                Vec::<ProbeSpec>::from_napi_value(env, probes)?,
            ))
        }
    })();
    let (name, module, probes) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return throw_napi(env, e),
    };
    let def = match definition(&name, &module, &probes) {
        Ok(def) => def,
        Err(message) => return throw(env, false, &message),
    };
    let provider = match Provider::load(&def) {
        Ok(provider) => provider,
        Err(e) => return throw(env, false, &e.to_string()),
    };
    let Ok(mut registry) = call.shared.try_borrow_mut() else {
        let _ = provider.unload();
        return busy(env);
    };
    let Some(id) = registry.insert(provider) else {
        return throw(env, false, "too many providers loaded");
    };
    drop(registry);
    // SAFETY: `this` is the fresh object of this construct call; the wrap
    // holds only the id, and its finalizer the registry as hint.
    let status = unsafe {
        let tagged = sys::napi_type_tag_object(env, call.this, &PROVIDER_TAG);
        if tagged == sys::Status::napi_ok {
            sys::napi_wrap(
                env,
                call.this,
                id.encode(),
                Some(release_collected),
                call.shared as *const Shared as *mut std::ffi::c_void,
                ptr::null_mut(),
            )
        } else {
            tagged
        }
    };
    if status != sys::Status::napi_ok {
        if let Some(loaded) = call.shared.borrow_mut().remove(id) {
            let _ = loaded.release(Some(env));
        }
        return throw(env, false, "cannot wrap the provider object");
    }
    call.this
}

/// `semaphores()`: an ArrayBuffer over the semaphore slots (one 4-byte slot
/// per probe: the kernel's u16 semaphore, then the site watcher's u16 DTrace
/// flag; a probe is traced when its slot read as one Uint32 is not 0),
/// detached by `unload()` (or when the provider is collected) before the
/// memory goes away.
unsafe extern "C" fn semaphores(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: a method of the class.
    let Some(call) = (unsafe { call_info::<0>(env, info) }) else {
        return throw(env, true, "semaphores: bad call");
    };
    let id = match provider_id(env, call.this) {
        Ok(id) => id,
        Err(why) => return not_loaded(env, why),
    };
    let Ok(mut registry) = call.shared.try_borrow_mut() else {
        return busy(env);
    };
    let (address, count) = match registry.provider(id) {
        Ok(provider) => provider.semaphores(),
        Err(why) => return missing(env, why, 0),
    };
    let mut buffer = ptr::null_mut();
    let mut reference = ptr::null_mut();
    // Raw N-API: napi-rs forbids two buffers over one address, which a later
    // library may legitimately reuse once this one is unloaded.
    // SAFETY: the memory stays mapped until the provider is released, which
    // detaches the buffer first (the registry keeps a reference to it); no
    // finalizer is needed as the mapping owns the memory.
    let status = unsafe {
        let created = sys::napi_create_external_arraybuffer(
            env,
            address as *mut std::ffi::c_void,
            count * Image::SEMAPHORE_SLOT as usize,
            None,
            ptr::null_mut(),
            &mut buffer,
        );
        if created == sys::Status::napi_ok {
            sys::napi_create_reference(env, buffer, 1, &mut reference)
        } else {
            created
        }
    };
    if status != sys::Status::napi_ok {
        if !buffer.is_null() {
            // SAFETY: a buffer made above that nobody will keep track of.
            unsafe { sys::napi_detach_arraybuffer(env, buffer) };
        }
        return throw(env, false, "cannot create the semaphore buffer");
    }
    if registry.keep_buffer(id, reference).is_err() {
        // Not reached: the provider was found above, and no JS ran since.
        // SAFETY: as above.
        unsafe {
            sys::napi_detach_arraybuffer(env, buffer);
            sys::napi_delete_reference(env, reference);
        }
        return missing(env, Missing::Unloaded, 0);
    }
    buffer
}

/// `dtraceRegistration()`: what became of registering the provider with
/// DTrace's helper device: `true` (registered), `false` (no helper device,
/// nothing tried) or a string, the reason it failed.
unsafe extern "C" fn dtrace_registration(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: a method of the class.
    let Some(call) = (unsafe { call_info::<0>(env, info) }) else {
        return throw(env, true, "dtraceRegistration: bad call");
    };
    let id = match provider_id(env, call.this) {
        Ok(id) => id,
        Err(why) => return not_loaded(env, why),
    };
    let Ok(registry) = call.shared.try_borrow() else {
        return busy(env);
    };
    let registration = match registry.provider(id) {
        Ok(provider) => provider.dtrace_registration().clone(),
        Err(why) => return missing(env, why, 0),
    };
    drop(registry);
    let mut value = ptr::null_mut();
    // SAFETY: the live env; the string is copied by N-API.
    let status = unsafe {
        match &registration {
            DtraceRegistration::NoHelper => sys::napi_get_boolean(env, false, &mut value),
            DtraceRegistration::Registered => sys::napi_get_boolean(env, true, &mut value),
            DtraceRegistration::Failed(reason) => sys::napi_create_string_utf8(
                env,
                reason.as_ptr().cast(),
                reason.len() as isize,
                &mut value,
            ),
        }
    };
    if status != sys::Status::napi_ok {
        return throw(env, false, "cannot report the DTrace registration");
    }
    value
}

/// `handle(index)`: the handle that `fire` takes for probe `index`, an
/// External that holds only the probe's id (no finalizer, nothing to free).
unsafe extern "C" fn handle(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: a method of the class.
    let Some(call) = (unsafe { call_info::<1>(env, info) }) else {
        return throw(env, true, "handle: bad call");
    };
    let id = match provider_id(env, call.this) {
        Ok(id) => id,
        Err(why) => return not_loaded(env, why),
    };
    let mut index = 0u32;
    // SAFETY: a value of this call (undefined when missing, then refused).
    let status = unsafe { sys::napi_get_value_uint32(env, call.args[0], &mut index) };
    if call.argc < 1 || status != sys::Status::napi_ok {
        return throw(env, true, "handle(index): index must be a number");
    }
    let Ok(registry) = call.shared.try_borrow() else {
        return busy(env);
    };
    if (index as usize) >= MAX_PROBES {
        return missing(env, Missing::NoProbe, index);
    }
    let probe = id.with_probe(index);
    if let Err(why) = registry.site(probe) {
        return missing(env, why, index);
    }
    let mut value = ptr::null_mut();
    // SAFETY: the data is an id, not a pointer: nothing to finalize.
    let status = unsafe {
        sys::napi_create_external(env, probe.encode(), None, ptr::null_mut(), &mut value)
    };
    if status != sys::Status::napi_ok {
        return throw(env, false, "cannot create the probe handle");
    }
    value
}

/// `unload()`: detaches every semaphore buffer this provider handed out,
/// unmaps its library and frees all it held. Idempotent.
unsafe extern "C" fn unload(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: a method of the class.
    let Some(call) = (unsafe { call_info::<0>(env, info) }) else {
        return throw(env, true, "unload: bad call");
    };
    let id = match provider_id(env, call.this) {
        Ok(id) => id,
        // Already unloaded: nothing to do.
        Err(NotLoaded::Unloaded) => return undefined(env),
        Err(why) => return not_loaded(env, why),
    };
    let Ok(mut registry) = call.shared.try_borrow_mut() else {
        return busy(env);
    };
    let loaded = registry.remove(id);
    drop(registry);
    // The wrap goes now, with its reference: no finalizer is left waiting.
    let mut data = ptr::null_mut();
    // SAFETY: `this` is wrapped by this addon (provider_id said so).
    unsafe { sys::napi_remove_wrap(env, call.this, &mut data) };
    if let Some(loaded) = loaded {
        if let Err(e) = loaded.release(Some(env)) {
            return throw(env, false, &e.to_string());
        }
    }
    undefined(env)
}

fn undefined(env: sys::napi_env) -> sys::napi_value {
    let mut value = ptr::null_mut();
    // SAFETY: the live env.
    unsafe { sys::napi_get_undefined(env, &mut value) };
    value
}

/// Defines the class `NativeProvider` on `exports`; its methods get
/// `shared` (the environment's [`Shared`] state) as their data.
pub(crate) fn define(
    env: sys::napi_env,
    exports: &mut Object,
    shared: *mut std::ffi::c_void,
) -> Result<()> {
    let data = shared;
    let method = |name: &'static CStr, f: sys::napi_callback| sys::napi_property_descriptor {
        utf8name: name.as_ptr(),
        name: ptr::null_mut(),
        method: f,
        getter: None,
        setter: None,
        value: ptr::null_mut(),
        attributes: sys::PropertyAttributes::writable | sys::PropertyAttributes::configurable,
        data,
    };
    let methods = [
        method(c"semaphores", Some(semaphores)),
        method(c"handle", Some(handle)),
        method(c"dtraceRegistration", Some(dtrace_registration)),
        method(c"unload", Some(unload)),
    ];
    let mut class = ptr::null_mut();
    // SAFETY: static names, callbacks with the N-API signature, and the
    // shared state as their data.
    unsafe {
        check(
            sys::napi_define_class(
                env,
                c"NativeProvider".as_ptr(),
                14,
                Some(construct),
                data,
                methods.len(),
                methods.as_ptr(),
                &mut class,
            ),
            "define NativeProvider",
        )?;
        exports.set_named_property("NativeProvider", Unknown::from_napi_value(env, class)?)
    }
}
