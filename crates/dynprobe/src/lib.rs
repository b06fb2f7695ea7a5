//! USDT (stapsdt) providers created at run time.
//!
//! Define a provider with [`ProviderDef`], [`Provider::load`] it, and fire its
//! probes. The provider becomes a small shared object, generated in memory by
//! [`dynprobe_format`], stored in a per-user cache directory and `dlopen`ed,
//! so every tracer that reads stapsdt notes (bpftrace, DTrace, bcc, perf, gdb)
//! sees its probes exactly as it sees probes compiled into C.
//!
//! Where DTrace's helper device exists (Oracle DTrace's `dtprobed` on Linux,
//! `/dev/dtrace/helper` or `$DTRACE_DOF_INIT_DEVNAME`), loading also
//! registers the provider with DTrace ([`dtrace_helper`]), so that provider
//! globs and `dtrace -Z` see it; [`Provider::dtrace_registration`] says what
//! became of that, and a failure never fails the load.
//! `$DTRACE_DOF_INIT_DISABLE` turns it off, as for DTrace's own programs.
//! DTrace's registered probes set no semaphore: while a provider is
//! registered, a background thread reads its probe sites every 50 ms and
//! sets a flag beside each semaphore, so that [`Probe::is_enabled`] (one
//! load of both) sees them too.
//!
//! Each probe's semaphore slot is 4 bytes: the kernel's u16 semaphore, the
//! watcher's byte ([`SLOT_WATCHER_BYTE`]) and a byte for in-process
//! subscribers ([`SLOT_SUBSCRIBER_BYTE`]), which the Node binding sets while
//! JavaScript code subscribes to the probe: one load of the slot tells
//! whether anyone wants the probe.
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
mod slot;

pub use dynprobe_format::{
    build_image, Arch, ArgType, DefinitionError, Image, ProbeDef, ProbeLayout, ProviderDef,
    SiteKind, Target, MAX_ARGS,
};
pub use error::Error;
pub use provider::{Arg, DtraceRegistration, Probe, Provider, SiteCall, Storage};
pub use site::native_target;
pub use slot::{SLOT_SUBSCRIBER_BYTE, SLOT_TRACER_MASK, SLOT_WATCHER_BYTE};
