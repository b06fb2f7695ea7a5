//! USDT (stapsdt) providers created at run time.
//!
//! Define a provider with [`ProviderDef`], [`Provider::load`] it, and fire its
//! probes. The provider becomes a small shared object, generated in memory by
//! [`dynprobe_format`], stored in a per-user cache directory and `dlopen`ed,
//! so every tracer that reads stapsdt notes (bpftrace, DTrace, bcc, perf, gdb)
//! sees its probes exactly as it sees probes compiled into C.
//!
//! ```no_run
//! use dynprobe::{Arg, ArgType, ProbeDef, Provider, ProviderDef};
//!
//! let mut def = ProviderDef::new("nodeapp", "nodeapp");
//! def.add_probe(ProbeDef::new("probe1", vec![ArgType::I64, ArgType::Str]))?;
//! let provider = Provider::load(&def)?;
//! let probe = provider.probe("probe1").unwrap();
//! if probe.is_enabled() {
//!     probe.fire(&[Arg::from(42i64), Arg::from(c"forty-two")]);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cache;
pub mod dtrace_helper;
mod error;
mod loader;
mod provider;
mod site;
mod site_watch;

pub use dynprobe_format::{
    build_image, Arch, ArgType, DefinitionError, Image, ProbeDef, ProbeLayout, ProviderDef,
    SiteKind, Target, MAX_ARGS,
};
pub use error::Error;
pub use provider::{Arg, DtraceRegistration, Probe, Provider, SiteCall, Storage};
pub use site::native_target;
