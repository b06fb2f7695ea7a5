//! Pure generation of ELF shared objects that carry USDT (stapsdt) probes.
//!
//! Plain data in ([`ProviderDef`], [`Target`]), bytes out ([`Image`]). Nothing
//! here touches the file system or the running process, so every image can be
//! built and checked on any host, for any supported architecture.
//!
//! Modules, each using only those listed before it (no module imports one
//! that imports it back; `test/module-cycles.test.js` checks):
//!
//! - [`types`]: argument types and argument-name rules (a leaf);
//! - `stapsdt`: the stapsdt note format, written and read (a leaf);
//! - `limits`: the reader's limits (a leaf);
//! - `arch`: what differs between architectures;
//! - `definition`: providers and probes, and the rules for their names;
//! - [`declared`]: the `.note.dynprobe` records of declared types;
//! - `image`: the ELF writer;
//! - [`dof`]: DTrace's DOF for the same definition;
//! - [`read`]: the note reader, for any ELF object.

mod arch;
pub mod declared;
mod definition;
pub mod dof;
mod image;
mod limits;
pub mod read;
mod stapsdt;
pub mod types;

pub use arch::{Arch, SiteKind, Target};
pub use declared::{ArgNames, Declared};
pub use definition::{
    DefinitionError, NameKind, ProbeDef, ProviderDef, MAX_MODULE_LEN, MAX_PROBE_LEN,
    MAX_PROVIDER_LEN,
};
pub use image::{build_image, Image, ProbeLayout};
pub use limits::Limit;
pub use read::{parse_arg_spec, read_stapsdt, NoteArg, ReadError, StapsdtProbe};
pub use types::{ArgType, DeclaredType, MAX_ARGS, MAX_ARG_NAME_LEN};
