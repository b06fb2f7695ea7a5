//! The stapsdt note format (`sys/sdt.h`, version 3), as the image writer
//! writes it and the reader reads it. A leaf: it uses nothing else of this
//! crate.
//!
//! Each probe is one note in the `.note.stapsdt` section (not loaded):
//!
//! ```text
//! owner "stapsdt", type 3 (NT_STAPSDT)
//! descriptor: pc, base, semaphore    three addresses of the object's word size
//!             provider NUL name NUL arguments NUL
//! ```
//!
//! `pc` is the probe site, `semaphore` the 16-bit counter tracers increment
//! (0: none), and `base` the address of `.stapsdt.base` at link time: a
//! reader compares it with the section's address to see whether the object
//! was moved since (prelink). The arguments are `SIZE@LOCATION` tokens
//! separated by spaces, `SIZE` negative for a signed value (`-4@%edi`).

/// The note type of a probe descriptor.
pub const NT_STAPSDT: u32 = 3;
/// The notes' owner name.
pub const OWNER: &[u8] = b"stapsdt";
/// The section that holds the notes.
pub const SECTION: &[u8] = b".note.stapsdt";
/// The one-byte section whose address the notes' `base` records.
pub const BASE_SECTION: &[u8] = b".stapsdt.base";

/// The descriptor of one probe in a 64-bit little-endian object.
pub fn descriptor(
    pc: u64,
    base: u64,
    semaphore: u64,
    provider: &str,
    name: &str,
    args: &str,
) -> Vec<u8> {
    let mut desc = Vec::with_capacity(24 + provider.len() + name.len() + args.len() + 3);
    for addr in [pc, base, semaphore] {
        desc.extend_from_slice(&addr.to_le_bytes());
    }
    for s in [provider, name, args] {
        desc.extend_from_slice(s.as_bytes());
        desc.push(0);
    }
    desc
}
