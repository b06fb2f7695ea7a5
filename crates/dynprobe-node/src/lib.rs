//! The native half of the npm package: loads providers and fires probes.
//!
//! The JavaScript layer (`lib/`) owns the dtrace-provider API. It checks a
//! probe's semaphore itself, through a typed array over the library's
//! semaphore memory that `NativeProvider.semaphores()` hands out, and calls
//! in here only to fire a probe that a tracer is watching.
//!
//! Modules (none imports one that imports it back, nor anything of this
//! root; `test/module-cycles.test.js` checks):
//!
//! - `status`: N-API statuses as results;
//! - `registry`: loaded providers by id, and probe handles;
//! - `shared`: the state an environment's functions share (the registry);
//! - `definition`: provider definitions from JS, `checkProvider`,
//!   `checkProbe`, and `formatTable` (the argument types and limits);
//! - `fire`: `fire(handle, ...values)`, the traced path;
//! - `native_provider`: the class `NativeProvider`;
//! - `address`: `addressOf(view)`;
//! - `file_reader`: reading a hostile process's file in a child, bounded;
//! - `probe_notes`: `readProbes(path, limits)`, the notes of such a file.

mod address;
mod definition;
mod file_reader;
mod fire;
mod native_provider;
mod probe_notes;
mod registry;
mod shared;
mod status;

use napi::bindgen_prelude::*;
use napi_derive::napi;

// What `#[napi]` exports to JavaScript, named at the root: a test build
// registers nothing with Node, and would see them unused.
pub use address::address_of;
pub use definition::{check_probe, check_provider, format_table};
pub use probe_notes::read_probes;

/// Registers the raw N-API part of the addon: the class `NativeProvider`
/// and `fire`, which share this environment's state.
#[napi(module_exports)]
pub fn register_natives(mut exports: Object, env: Env) -> Result<()> {
    let shared = shared::create(env.raw())?;
    native_provider::define(env.raw(), &mut exports, shared)?;
    fire::define(env.raw(), &mut exports, shared)
}
