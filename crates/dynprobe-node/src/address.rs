//! `addressOf(view)`: the address of a typed array's first byte, for probe
//! arguments that point at memory the JS layer fills (the `node` provider's
//! structs, whose fields point at strings in the same buffer). The caller
//! keeps the buffer alive, and an ArrayBuffer's backing store never moves.

use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use crate::status::check;

/// The address of `view`'s first byte as a number (user-space addresses fit
/// in 53 bits); a TypeError unless `view` is a typed array.
#[napi]
pub fn address_of(env: Env, view: Unknown) -> Result<f64> {
    let env = env.raw();
    let value = view.raw();
    let mut is_typed_array = false;
    // SAFETY: a value of this call.
    check(
        unsafe { sys::napi_is_typedarray(env, value, &mut is_typed_array) },
        "inspect value",
    )?;
    if !is_typed_array {
        // SAFETY: throwing on the live env of this call; the pending
        // exception is what the caller sees.
        unsafe {
            sys::napi_throw_type_error(env, ptr::null(), c"addressOf takes a typed array".as_ptr())
        };
        return Err(Error::new(Status::PendingException, String::new()));
    }
    let mut data: *mut std::ffi::c_void = ptr::null_mut();
    // SAFETY: `value` is a typed array; the out pointers are valid or null.
    check(
        unsafe {
            sys::napi_get_typedarray_info(
                env,
                value,
                ptr::null_mut(),
                ptr::null_mut(),
                &mut data,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        },
        "read typed array",
    )?;
    Ok(data as usize as f64)
}
