//! What every function of this addon in one environment shares: the
//! registry of loaded providers, kept as N-API's instance data and freed
//! after the environment's last finalizer has run.

use std::cell::RefCell;
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::registry::Registry;
use crate::status::check;

/// The state the functions of one environment share.
pub(crate) type Shared = RefCell<Registry>;

/// Creates this environment's shared state; the pointer is the data of the
/// functions that use it (`NativeProvider`'s methods, `fire`).
pub(crate) fn create(env: sys::napi_env) -> Result<*mut std::ffi::c_void> {
    let shared = Box::into_raw(Box::new(Shared::default()));
    // SAFETY: the registry lives until the environment's instance data is
    // finalized, after every function and wrap of this environment.
    let status = unsafe {
        sys::napi_set_instance_data(env, shared.cast(), Some(drop_registry), ptr::null_mut())
    };
    if status != sys::Status::napi_ok {
        // SAFETY: not handed to N-API.
        drop(unsafe { Box::from_raw(shared) });
        check(status, "set instance data")?;
    }
    Ok(shared.cast())
}

unsafe extern "C" fn drop_registry(
    _env: sys::napi_env,
    data: *mut std::ffi::c_void,
    _hint: *mut std::ffi::c_void,
) {
    // SAFETY: the Box leaked in `create`, released once when the
    // environment goes, after every wrap's finalizer. A provider still in it
    // is unloaded; its buffers went with the environment.
    let shared = unsafe { Box::from_raw(data as *mut Shared) };
    let mut registry = shared.into_inner();
    for loaded in registry.drain() {
        let _ = loaded.release(None);
    }
}
