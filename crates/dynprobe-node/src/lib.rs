//! The native half of the npm package: loads providers and fires probes.
//!
//! The JavaScript layer (`lib/`) owns the dtrace-provider API. It checks a
//! probe's semaphore itself, through a typed array over the library's
//! semaphore memory that [`NativeProvider::semaphores`] hands out, and calls
//! in here only to fire a probe that a tracer is watching.

mod fire;

use std::cell::RefCell;
use std::ptr;
use std::rc::Rc;

use dynprobe::{ArgType, ProbeDef, Provider, ProviderDef};
use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

/// One probe as the JS layer describes it: C type names, already mapped from
/// dtrace-provider's loose spellings.
#[napi(object)]
pub struct ProbeSpec {
    pub name: String,
    pub types: Vec<String>,
}

fn definition(
    name: &str,
    module: &str,
    probes: &[ProbeSpec],
) -> std::result::Result<ProviderDef, String> {
    let mut def = ProviderDef::new(name, module);
    for spec in probes {
        let args = spec
            .types
            .iter()
            .map(|t| ArgType::from_c_name(t))
            .collect::<std::result::Result<Vec<_>, _>>();
        let probe = ProbeDef::new(spec.name.as_str(), args.map_err(|e| e.to_string())?);
        def.add_probe(probe).map_err(|e| e.to_string())?;
    }
    Ok(def)
}

/// Checks a provider's names without loading anything; returns why they are
/// refused, or null. (Probes are checked one by one with [`check_probe`].)
#[napi]
pub fn check_provider(name: String, module: String) -> Option<String> {
    let mut def = definition(&name, &module, &[]).ok()?;
    def.probes.push(ProbeDef::new("p", Vec::new()));
    def.validate().err().map(|e| e.to_string())
}

/// Checks one probe's name and types; returns why it is refused, or null.
#[napi]
pub fn check_probe(probe: ProbeSpec) -> Option<String> {
    definition("p", "p", std::slice::from_ref(&probe)).err()
}

/// The provider behind a [`NativeProvider`] and the handles given to
/// [`fire::fire`]; `None` once unloaded. Not a lock: N-API calls this addon for an
/// environment on that environment's one JS thread only, and no JS runs while
/// `fire` holds the borrow (it converts primitives only).
pub(crate) type Shared = RefCell<Option<Provider>>;

fn unavailable() -> Error {
    Error::new(Status::GenericFailure, "provider is in use".to_string())
}

/// A loaded provider. Unloaded, or garbage collected together with its
/// handle, its library leaves the process.
#[napi]
pub struct NativeProvider {
    shared: Rc<Shared>,
}

#[napi]
impl NativeProvider {
    #[napi(constructor)]
    pub fn new(name: String, module: String, probes: Vec<ProbeSpec>) -> Result<Self> {
        let def =
            definition(&name, &module, &probes).map_err(|m| Error::new(Status::InvalidArg, m))?;
        let provider =
            Provider::load(&def).map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
        Ok(NativeProvider {
            shared: Rc::new(RefCell::new(Some(provider))),
        })
    }

    fn with_loaded<T>(&self, f: impl FnOnce(&Provider) -> T) -> Result<T> {
        let guard = self.shared.try_borrow().map_err(|_| unavailable())?;
        let provider = guard
            .as_ref()
            .ok_or_else(|| Error::new(Status::GenericFailure, "provider is unloaded"))?;
        Ok(f(provider))
    }

    /// The handle that [`fire::fire`] takes for probe `index`: an External
    /// holding this provider and the probe's site call, so that a traced fire
    /// finds all it needs in one small struct.
    #[napi]
    pub fn handle(&self, env: Env, index: u32) -> Result<Unknown<'_>> {
        let site =
            self.with_loaded(|p| p.probe_at(index as usize).map(|probe| probe.site_call()))?;
        let site = site
            .ok_or_else(|| Error::new(Status::InvalidArg, format!("no probe at index {index}")))?;
        let value = fire::new_handle(env.raw(), &self.shared, site)?;
        // SAFETY: `value` is a live value of this env.
        unsafe { Unknown::from_napi_value(env.raw(), value) }
    }

    /// An ArrayBuffer over the semaphores (one u16 per probe). The JS layer
    /// must pass it to [`NativeProvider::unload`], which detaches it before
    /// the memory goes away, and must drop it with this object otherwise.
    #[napi]
    pub fn semaphores(&self, env: Env) -> Result<Unknown<'_>> {
        let (ptr, count) = self.with_loaded(|p| p.semaphores())?;
        let mut buffer = ptr::null_mut();
        // Raw N-API: napi-rs forbids two buffers over one address, which a
        // later library may legitimately reuse once this one is unloaded.
        // SAFETY: the memory stays mapped until unload(), which detaches the
        // buffer first; no finalizer is needed as the mapping owns the memory.
        let status = unsafe {
            sys::napi_create_external_arraybuffer(
                env.raw(),
                ptr as *mut std::ffi::c_void,
                count * 2,
                None,
                ptr::null_mut(),
                &mut buffer,
            )
        };
        check(status, "create semaphore buffer")?;
        // SAFETY: `buffer` is a live value of this env.
        unsafe { Unknown::from_napi_value(env.raw(), buffer) }
    }

    /// Detaches `semaphores` (so JS can no longer read the memory) and
    /// unmaps the library. Idempotent.
    #[napi]
    pub fn unload(&mut self, env: Env, semaphores: Option<Unknown>) -> Result<()> {
        if let Some(buffer) = semaphores {
            // SAFETY: a value of this env; detaching twice is refused harmlessly.
            let status = unsafe { sys::napi_detach_arraybuffer(env.raw(), buffer.raw()) };
            check(status, "detach semaphore buffer")?;
        }
        let provider = self
            .shared
            .try_borrow_mut()
            .map_err(|_| unavailable())?
            .take();
        if let Some(provider) = provider {
            provider
                .unload()
                .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
        }
        Ok(())
    }
}

/// Registers [`fire::fire`] as a plain N-API function: the traced path is the only
/// hot native call, and napi-rs's per-call bookkeeping would cost more than
/// the kernel's uprobe itself.
#[napi(module_exports)]
pub fn register_fire(mut exports: Object, env: Env) -> Result<()> {
    let mut function = ptr::null_mut();
    // SAFETY: a static name and a callback with the N-API signature.
    let status = unsafe {
        sys::napi_create_function(
            env.raw(),
            c"fire".as_ptr(),
            4,
            Some(fire::fire),
            ptr::null_mut(),
            &mut function,
        )
    };
    check(status, "create fire")?;
    // SAFETY: `function` is a live value of this env.
    exports.set_named_property("fire", unsafe {
        Unknown::from_napi_value(env.raw(), function)?
    })
}

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
}

/// More arguments than any tracer reads (sys/sdt.h writes at most 12,
/// dynprobe 32).
const MAX_NOTE_ARGS: usize = 64;

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

const DEFAULT_MAX_BYTES: u64 = 64 << 20;
const DEFAULT_TIMEOUT_MS: u32 = 5000;

/// Why a file was not read: `refused` when it is not what it should be (not
/// a regular file, another file than the one mapped, too large, no answer in
/// time), else it could not be opened or read.
struct ReadFailure {
    refused: bool,
    message: String,
}

fn refused(message: String) -> ReadFailure {
    ReadFailure {
        refused: true,
        message,
    }
}

fn failed(message: String) -> ReadFailure {
    ReadFailure {
        refused: false,
        message,
    }
}

/// `fd:01` -> (0xfd, 0x01)
fn parse_device(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once(':')?;
    Some((
        u32::from_str_radix(major, 16).ok()?,
        u32::from_str_radix(minor, 16).ok()?,
    ))
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The file must be a regular file, the one expected, and small enough.
fn check_file(
    meta: &std::fs::Metadata,
    expected: Option<((u32, u32), u64)>,
    max_bytes: u64,
) -> std::result::Result<(), ReadFailure> {
    use std::os::unix::fs::MetadataExt;
    if !meta.file_type().is_file() {
        return Err(refused(format!(
            "is {}, not a regular file: skipped",
            kind_of(meta)
        )));
    }
    if let Some(((major, minor), inode)) = expected {
        let dev = meta.dev();
        let (got_major, got_minor) = (libc::major(dev), libc::minor(dev));
        if (got_major, got_minor, meta.ino()) != (major, minor, inode) {
            return Err(refused(format!(
                "is not the file the process maps (device {got_major:02x}:{got_minor:02x} inode {}, \
                 mapped: {major:02x}:{minor:02x} inode {inode}; replaced, or hidden by a mount): skipped",
                meta.ino()
            )));
        }
    }
    if meta.len() > max_bytes {
        return Err(refused(format!(
            "is {} bytes, more than the {max_bytes} a probe library may have: skipped",
            meta.len()
        )));
    }
    Ok(())
}

/// Opens `path` without reading anything (O_PATH: no FIFO blocks, no device
/// driver runs, no lease is broken), checks what it is, and only then opens
/// that same inode for reading, non-blocking, and reads at most `max_bytes`.
fn read_checked(
    path: &str,
    expected: Option<((u32, u32), u64)>,
    follow: bool,
    max_bytes: u64,
) -> std::result::Result<Vec<u8>, ReadFailure> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | nofollow)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // O_PATH|O_NOFOLLOW on a symbolic link gives the link: ELOOP is
            // what a plain O_NOFOLLOW open says.
            Some(libc::ELOOP) => refused("is a symbolic link: skipped".to_string()),
            _ => failed(format!("cannot open it: {e}")),
        })?;
    let meta = handle
        .metadata()
        .map_err(|e| failed(format!("cannot stat it: {e}")))?;
    check_file(&meta, expected, max_bytes)?;
    // The same inode again, now for reading: through our own descriptor,
    // so that no path is looked up twice.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()))
        .map_err(|e| failed(format!("cannot open it for reading: {e}")))?;
    let reopened = file
        .metadata()
        .map_err(|e| failed(format!("cannot stat it: {e}")))?;
    {
        use std::os::unix::fs::MetadataExt;
        if (reopened.dev(), reopened.ino()) != (meta.dev(), meta.ino()) {
            return Err(refused("changed while it was opened: skipped".to_string()));
        }
    }
    let mut bytes = Vec::with_capacity(meta.len().min(max_bytes) as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        return Err(refused(format!(
            "grew past {max_bytes} bytes while it was read: skipped"
        )));
    }
    Ok(bytes)
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

    // A file system may never answer an open, a stat or a read (FUSE, a hung
    // NFS server), and no system call here can be cancelled: the work runs
    // on a thread of its own, which is abandoned if it takes too long (it
    // holds at most `max_bytes`, and ends with the process).
    let (tx, rx) = std::sync::mpsc::channel();
    let thread_path = path.clone();
    std::thread::Builder::new()
        .name("dynprobe-read".to_string())
        .spawn(move || {
            let result =
                read_checked(&thread_path, expected, follow, max_bytes).and_then(|bytes| {
                    dynprobe_format::read_stapsdt(&bytes).map_err(|e| failed(e.to_string()))
                });
            let _ = tx.send(result);
        })
        .map_err(|e| Error::new(Status::GenericFailure, format!("cannot read {path}: {e}")))?;
    let mut probes = match rx.recv_timeout(std::time::Duration::from_millis(u64::from(timeout_ms))) {
        Ok(Ok(probes)) => probes,
        Ok(Err(ReadFailure { refused, message })) => {
            let status = if refused {
                Status::Cancelled
            } else {
                Status::GenericFailure
            };
            return Err(Error::new(status, format!("{path}: {message}")));
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            return Err(Error::new(
                Status::Cancelled,
                format!("{path}: no answer within {timeout_ms} ms (a file system that does not answer?): skipped"),
            ))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            return Err(Error::new(
                Status::GenericFailure,
                format!("{path}: reading it failed"),
            ))
        }
    };
    let total = u32::try_from(probes.len()).unwrap_or(u32::MAX);
    probes.truncate(limits.max_probes.map_or(usize::MAX, |n| n as usize));
    let as_js = |v: u64| v as i64;
    let probes = probes
        .into_iter()
        .map(|p| ProbeNote {
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
