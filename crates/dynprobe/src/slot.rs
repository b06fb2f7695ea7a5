//! The layout of a probe's 4-byte semaphore slot: the kernel's u16
//! semaphore (bytes 0 and 1, the address in the stapsdt note), then a byte
//! for each of the two other parties that want a probe on: the DTrace site
//! watcher and in-process subscribers. The disabled check reads the whole
//! slot as one native-endian `u32`; each party writes only its own part.

/// Byte of a probe's 4-byte semaphore slot that the site watcher owns (the
/// kernel's u16 semaphore is bytes 0 and 1).
pub const SLOT_WATCHER_BYTE: usize = 2;

/// Byte of a probe's semaphore slot that in-process subscribers own: the
/// Node binding sets it while a subscription covers the probe, so that the
/// disabled check (one load of the slot) sees them too. Nothing in this
/// crate writes it.
pub const SLOT_SUBSCRIBER_BYTE: usize = 3;

/// The bits of a slot read as one native-endian `u32` that tracers set: the
/// kernel's semaphore and the watcher's byte.
pub const SLOT_TRACER_MASK: u32 = u32::from_ne_bytes([0xff, 0xff, 0xff, 0]);
