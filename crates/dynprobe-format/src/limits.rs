//! The note reader's limits: how much of a file it reads, whatever the
//! file claims (see [`crate::read`]). A leaf: it uses nothing else of this
//! crate.

use std::fmt;

/// The most stapsdt probes read from one file.
pub const MAX_PROBES: usize = 65_536;
/// The most notes visited in a file's `.note.stapsdt` and `.note.dynprobe`
/// sections, probes and records or not (other notes are skipped, but
/// skipping costs time too).
pub const MAX_NOTES: usize = 1 << 20;
/// The longest provider or probe name, in bytes as the note has them.
pub const MAX_NAME_LEN: usize = 4096;
/// The longest argument string of one probe, in bytes.
pub const MAX_ARG_SPEC_LEN: usize = 8192;
/// The most arguments (tokens of the argument string) of one probe.
pub const MAX_NOTE_ARGS: usize = 64;
/// The most `PT_LOAD` program headers: each probe's file offsets are looked
/// up among them, so probes times segments must stay small.
pub const MAX_LOAD_SEGMENTS: usize = 256;
/// The most declared-types records read from one file (one per probe is
/// all a file needs).
pub const MAX_RECORDS: usize = MAX_PROBES;
/// The most memory the returned probes may take, counted as the size of
/// every [`crate::read::StapsdtProbe`] and [`crate::read::NoteArg`] plus the lengths of their strings
/// (the heap they hold is at most about twice that, with spare capacity).
pub const MAX_DECODED_BYTES: usize = 32 << 20;

/// Which of the reader's limits an object exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`MAX_PROBES`]
    Probes,
    /// [`MAX_NOTES`]
    Notes,
    /// [`MAX_NAME_LEN`]
    NameLen,
    /// [`MAX_ARG_SPEC_LEN`]
    ArgSpecLen,
    /// [`MAX_NOTE_ARGS`]
    Args,
    /// [`MAX_LOAD_SEGMENTS`]
    LoadSegments,
    /// [`MAX_DECODED_BYTES`]
    DecodedBytes,
    /// [`MAX_RECORDS`]
    Records,
}

impl Limit {
    /// The limit's value.
    pub fn max(self) -> usize {
        match self {
            Limit::Probes => MAX_PROBES,
            Limit::Notes => MAX_NOTES,
            Limit::NameLen => MAX_NAME_LEN,
            Limit::ArgSpecLen => MAX_ARG_SPEC_LEN,
            Limit::Args => MAX_NOTE_ARGS,
            Limit::LoadSegments => MAX_LOAD_SEGMENTS,
            Limit::DecodedBytes => MAX_DECODED_BYTES,
            Limit::Records => MAX_RECORDS,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = self.max();
        match self {
            Limit::Probes => write!(f, "more than {max} stapsdt probes"),
            Limit::Notes => write!(
                f,
                "more than {max} notes in .note.stapsdt and .note.dynprobe"
            ),
            Limit::NameLen => write!(f, "a provider or probe name longer than {max} bytes"),
            Limit::ArgSpecLen => write!(f, "an argument string longer than {max} bytes"),
            Limit::Args => write!(f, "a probe with more than {max} arguments"),
            Limit::LoadSegments => write!(f, "more than {max} loadable segments"),
            Limit::DecodedBytes => write!(f, "probes that would take more than {max} bytes"),
            Limit::Records => write!(f, "more than {max} declared-types records"),
        }
    }
}
