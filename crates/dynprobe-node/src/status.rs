//! N-API statuses as napi-rs results. A leaf of the addon.

use napi::bindgen_prelude::*;
use napi::sys;

/// `Ok` for `napi_ok`; otherwise an error saying what could not be done.
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
