//! `readProbes(path, limits)`: the USDT probes of an ELF file, read as
//! hostile input (what `dynprobe list` shows, with no tracer).

use dynprobe_format::read::MAX_NOTE_ARGS;
use dynprobe_format::{ArgNames, Declared};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::file_reader::{
    parse_device, read_file, ReadFailure, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_MS,
};

/// One argument of a probe as its stapsdt note describes it.
#[napi(object)]
pub struct NoteArgInfo {
    /// The `SIZE@LOCATION` token as written in the note.
    pub spec: String,
    /// Size in bytes, 0 when the note does not say.
    pub size: u32,
    pub signed: bool,
    pub float: bool,
    pub location: String,
    /// The C types it may have been declared with: one, or `char *` and
    /// `uint64_t` for an unsigned 8-byte argument (the note cannot tell).
    pub types: Vec<String>,
}

/// One stapsdt note of an object file.
#[napi(object)]
pub struct ProbeNote {
    pub provider: String,
    pub name: String,
    pub arg_spec: String,
    pub args: Vec<NoteArgInfo>,
    /// Probe site address and semaphore address (0: none), relative to the
    /// object's load base.
    pub address: i64,
    pub semaphore: i64,
    /// The same as file offsets (uprobes are keyed by these), or null.
    pub address_offset: Option<i64>,
    pub semaphore_offset: Option<i64>,
    /// Arguments the note lists beyond the first [`MAX_NOTE_ARGS`], which
    /// `args` leaves out (a crafted note may list millions).
    pub omitted_args: u32,
    /// The argument types as declared (`int`, `char *`, `json`, ...), one
    /// per argument, when the library records them for this probe and the
    /// record fits the note; null otherwise (plain sys/sdt.h objects).
    pub declared: Option<Vec<String>>,
    /// Why the library's record for this probe is not used, or null.
    pub declared_problem: Option<String>,
    /// The arguments' names (C identifiers), one per argument, when the
    /// record gives them and is used; null otherwise.
    pub arg_names: Option<Vec<String>>,
    /// Why the record's argument names are not used, or null.
    pub arg_names_problem: Option<String>,
}

/// What `read_probes` expects of the file it reads, and how long and how much
/// it may read. Every process is hostile: a path it maps may by now name a
/// FIFO, a device or another file (a bind mount in its own mount namespace),
/// and a file system it mounted (FUSE) may never answer.
#[napi(object)]
pub struct ReadLimits {
    /// The mapping's device as /proc/PID/maps writes it (`fd:01`) and its
    /// inode (decimal): the file opened must be that one. Null: no check
    /// (for /proc/PID/map_files/..., which is the mapped file by construction).
    pub device: Option<String>,
    pub inode: Option<String>,
    /// Follow a symbolic link in the last component (for the magic links of
    /// /proc/PID/map_files and /proc/PID/fd); otherwise one is refused.
    pub follow: Option<bool>,
    /// At most this many bytes (default 64 MiB): a larger file is refused.
    pub max_bytes: Option<f64>,
    /// Give up after this many milliseconds (default 5000).
    pub timeout_ms: Option<u32>,
    /// Return at most this many probes (default: all); `total` counts all.
    pub max_probes: Option<u32>,
}

/// The probes of a file, the first `max_probes` of `total`.
#[napi(object)]
pub struct ProbeNotes {
    pub probes: Vec<ProbeNote>,
    pub total: u32,
}

/// The USDT probes (stapsdt notes) of the ELF file at `path`, in note order:
/// what `dynprobe list` shows, and how many there are. Reads the file as [`ReadLimits`] say (a
/// regular file, the one expected, within the size and time limits); no
/// tracer involved. An error's code is `Cancelled` when the file is not
/// what it should be (skipped), else it could not be read or parsed.
#[napi]
pub fn read_probes(path: String, limits: Option<ReadLimits>) -> Result<ProbeNotes> {
    let limits = limits.unwrap_or(ReadLimits {
        device: None,
        inode: None,
        follow: None,
        max_bytes: None,
        timeout_ms: None,
        max_probes: None,
    });
    let expected = match (&limits.device, &limits.inode) {
        (Some(device), Some(inode)) => {
            let device = parse_device(device).ok_or_else(|| {
                Error::new(
                    Status::InvalidArg,
                    format!("not a device number: {device:?}"),
                )
            })?;
            let inode = inode.parse::<u64>().map_err(|_| {
                Error::new(
                    Status::InvalidArg,
                    format!("not an inode number: {inode:?}"),
                )
            })?;
            Some((device, inode))
        }
        (None, None) => None,
        _ => {
            return Err(Error::new(
                Status::InvalidArg,
                "device and inode go together".to_string(),
            ))
        }
    };
    let max_bytes = match limits.max_bytes {
        None => DEFAULT_MAX_BYTES,
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9007199254740991.0 => n as u64,
        Some(n) => {
            return Err(Error::new(
                Status::InvalidArg,
                format!("maxBytes must be a non-negative integer, not {n}"),
            ))
        }
    };
    let timeout_ms = limits.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let follow = limits.follow.unwrap_or(false);

    let fail = |status, message| Error::new(status, format!("{path}: {message}"));
    let bytes = read_file(&path, expected, follow, max_bytes, timeout_ms).map_err(
        |ReadFailure { refused, message }| {
            fail(
                if refused {
                    Status::Cancelled
                } else {
                    Status::GenericFailure
                },
                message,
            )
        },
    )?;
    let mut probes = dynprobe_format::read_stapsdt(&bytes)
        .map_err(|e| fail(Status::GenericFailure, e.to_string()))?;
    let total = u32::try_from(probes.len()).unwrap_or(u32::MAX);
    probes.truncate(limits.max_probes.map_or(usize::MAX, |n| n as usize));
    let as_js = |v: u64| v as i64;
    let probes = probes
        .into_iter()
        .map(|p| ProbeNote {
            declared: p
                .declared
                .types()
                .map(|types| types.iter().map(|t| t.name().to_string()).collect()),
            declared_problem: match &p.declared {
                Declared::Unusable(why) => Some(why.clone()),
                _ => None,
            },
            arg_names_problem: match &p.arg_names {
                ArgNames::Unusable(why) => Some(why.clone()),
                _ => None,
            },
            arg_names: p.arg_names.names().map(<[String]>::to_vec),
            omitted_args: u32::try_from(p.args.len().saturating_sub(MAX_NOTE_ARGS))
                .unwrap_or(u32::MAX),
            args: p
                .args
                .iter()
                .take(MAX_NOTE_ARGS)
                .map(|a| NoteArgInfo {
                    spec: a.spec.clone(),
                    size: u32::from(a.size),
                    signed: a.signed,
                    float: a.float,
                    location: a.location.clone(),
                    types: a.types().into_iter().map(String::from).collect(),
                })
                .collect(),
            provider: p.provider,
            name: p.name,
            arg_spec: p.arg_spec,
            address: as_js(p.address),
            semaphore: as_js(p.semaphore),
            address_offset: p.address_offset.map(as_js),
            semaphore_offset: p.semaphore_offset.map(as_js),
        })
        .collect();
    Ok(ProbeNotes { probes, total })
}
