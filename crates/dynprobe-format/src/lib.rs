//! Pure generation of ELF shared objects that carry USDT (stapsdt) probes.
//!
//! Plain data in ([`ProviderDef`], [`Target`]), bytes out ([`Image`]). Nothing
//! here touches the file system or the running process, so every image can be
//! built and checked on any host, for any supported architecture.

mod arch;
pub mod declared;
mod definition;
pub mod dof;
mod image;
pub mod read;

pub use arch::{Arch, SiteKind, Target};
pub use declared::{ArgNames, Declared, DeclaredType};
pub use definition::{
    ArgType, DefinitionError, NameKind, ProbeDef, ProviderDef, MAX_ARGS, MAX_MODULE_LEN,
    MAX_PROBE_LEN, MAX_PROVIDER_LEN,
};
pub use image::{build_image, Image, ProbeLayout};
pub use read::{parse_arg_spec, read_stapsdt, Limit, NoteArg, ReadError, StapsdtProbe};
