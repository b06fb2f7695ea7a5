//! The native half of the npm package: loads providers and fires probes.
//!
//! The JavaScript layer (`lib/`) owns the dtrace-provider API. It checks a
//! probe's semaphore itself, through a typed array over the library's
//! semaphore memory that `NativeProvider.semaphores()` hands out, and calls
//! in here only to fire a probe that a tracer is watching.

mod address;
mod fire;
mod native_provider;
mod registry;

use dynprobe::{ArgType, ProbeDef, ProviderDef};
use dynprobe_format::{ArgNames, Declared, DeclaredType};
use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

// Like the #[napi] functions defined here, public at the crate's root: in a
// `cargo test` build napi-derive registers nothing, and a function only
// reachable through a private module would be dead code there.
pub use address::address_of;

/// One probe as the JS layer describes it: C type names, already mapped from
/// dtrace-provider's loose spellings, and optionally the types as declared
/// (`int`, `json`, exact C names) and the arguments' names (C identifiers),
/// which the library records for listings.
#[napi(object)]
pub struct ProbeSpec {
    pub name: String,
    pub types: Vec<String>,
    pub declared: Option<Vec<String>>,
    pub arg_names: Option<Vec<String>>,
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
        let mut probe = ProbeDef::new(spec.name.as_str(), args.map_err(|e| e.to_string())?);
        if let Some(declared) = &spec.declared {
            let types = declared
                .iter()
                .map(|t| {
                    DeclaredType::from_name(t).ok_or_else(|| {
                        format!("unknown declared type {t:?} of probe {:?}", spec.name)
                    })
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            probe.declared = Some(types);
        }
        probe.arg_names = spec.arg_names.clone();
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

/// Registers the raw N-API part of the addon: the class `NativeProvider`
/// (see [`native_provider`]) and `fire`, a plain N-API function: the traced
/// path is the only hot native call, and napi-rs's per-call bookkeeping
/// would cost more than the kernel's uprobe itself.
#[napi(module_exports)]
pub fn register_natives(mut exports: Object, env: Env) -> Result<()> {
    native_provider::register(env.raw(), &mut exports)
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

/// Where a reading child stopped ([`ChildReport::stage`]).
mod stage {
    pub const OPEN: u32 = 1;
    pub const STAT: u32 = 2;
    pub const NOT_REGULAR: u32 = 3;
    pub const WRONG_FILE: u32 = 4;
    pub const TOO_BIG: u32 = 5;
    pub const REOPEN: u32 = 6;
    pub const CHANGED: u32 = 7;
    pub const READ: u32 = 8;
    pub const GREW: u32 = 9;
    pub const DONE: u32 = 10;
}

/// What a reading child tells its parent, at the start of the memory they
/// share; the file's bytes follow at [`DATA_OFFSET`].
#[repr(C)]
struct ChildReport {
    stage: u32,
    errno: i32,
    mode: u32,
    dev_major: u32,
    dev_minor: u32,
    ino: u64,
    size: u64,
    len: u64,
}

const DATA_OFFSET: usize = 64;

fn errno() -> i32 {
    // SAFETY: the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// The reading child: opens `path` without reading anything (O_PATH: no
/// FIFO blocks, no device driver runs, no lease is broken), checks what it
/// is, and only then opens that same inode again, for reading, through its
/// own descriptor (no path is looked up twice), non-blocking, and reads at
/// most `max_bytes` into `data`. Only system calls here: the child of a
/// multi-threaded process may not allocate or take a lock.
///
/// # Safety
/// In a child just forked; `report` and `data` (`max_bytes + 1` bytes) are
/// memory shared with the parent.
unsafe fn read_in_child(
    path: &std::ffi::CStr,
    follow: bool,
    expected: Option<((u32, u32), u64)>,
    max_bytes: u64,
    report: *mut ChildReport,
    data: *mut u8,
    keep: libc::c_int,
) -> ! {
    let r = &mut *report;
    let stop = |r: &mut ChildReport, stage: u32| -> ! {
        r.stage = stage;
        libc::_exit(0)
    };
    // No signal handler of the parent's runs here, and no descriptor of its
    // stays open (a child stuck in a file system must not hold the CLI's
    // output open).
    let mut all: libc::sigset_t = std::mem::zeroed();
    libc::sigfillset(&mut all);
    libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    for fd in 0..keep {
        libc::close(fd);
    }
    if libc::syscall(libc::SYS_close_range, keep + 1, libc::c_uint::MAX, 0) != 0 {
        for fd in keep + 1..65536 {
            libc::close(fd);
        }
    }
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let handle = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | nofollow);
    if handle < 0 {
        r.errno = errno();
        stop(r, stage::OPEN);
    }
    let mut st: libc::stat = std::mem::zeroed();
    if libc::fstat(handle, &mut st) != 0 {
        r.errno = errno();
        stop(r, stage::STAT);
    }
    r.mode = st.st_mode;
    r.dev_major = libc::major(st.st_dev);
    r.dev_minor = libc::minor(st.st_dev);
    r.ino = st.st_ino;
    r.size = st.st_size as u64;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        stop(r, stage::NOT_REGULAR);
    }
    if let Some(((major, minor), ino)) = expected {
        if (r.dev_major, r.dev_minor, r.ino) != (major, minor, ino) {
            stop(r, stage::WRONG_FILE);
        }
    }
    if r.size > max_bytes {
        stop(r, stage::TOO_BIG);
    }
    // "/proc/self/fd/<handle>", written without allocating.
    let mut link = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
    let mut digits = [0u8; 10];
    let (mut n, mut count) = (handle as u32, 0);
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..count {
        link[14 + i] = digits[count - 1 - i];
    }
    let file = libc::open(
        link.as_ptr().cast(),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
    );
    if file < 0 {
        r.errno = errno();
        stop(r, stage::REOPEN);
    }
    let mut again: libc::stat = std::mem::zeroed();
    if libc::fstat(file, &mut again) != 0 || (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino)
    {
        stop(r, stage::CHANGED);
    }
    let capacity = max_bytes as usize + 1;
    let mut len = 0usize;
    while len < capacity {
        let got = libc::read(file, data.add(len).cast(), capacity - len);
        if got < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            r.errno = errno();
            stop(r, stage::READ);
        }
        if got == 0 {
            break;
        }
        len += got as usize;
    }
    r.len = len as u64;
    stop(
        r,
        if len > max_bytes as usize {
            stage::GREW
        } else {
            stage::DONE
        },
    )
}

fn file_kind(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFIFO => "a FIFO",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symbolic link",
        _ => "not a regular file",
    }
}

/// Memory shared with a reading child, unmapped when dropped.
struct SharedMemory {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: mapped by `read_file`, unmapped once (a child keeps its own view).
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Closes a descriptor when dropped.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: a descriptor this code opened, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// Reads `path` in a child process, checked as [`read_in_child`] says,
/// within `timeout_ms`. A file system may never answer an open, a stat or a
/// read (FUSE, a hung NFS server), and a process waiting for its answer
/// cannot even be killed: a thread of ours stuck there would keep this
/// process from exiting. A child stuck there is left behind (killed, and
/// reaped by init once the file system answers or goes); it holds none of
/// our descriptors.
fn read_file(
    path: &str,
    expected: Option<((u32, u32), u64)>,
    follow: bool,
    max_bytes: u64,
    timeout_ms: u32,
) -> std::result::Result<Vec<u8>, ReadFailure> {
    let cpath = std::ffi::CString::new(path)
        .map_err(|_| failed("the path holds a NUL byte".to_string()))?;
    let capacity = usize::try_from(max_bytes)
        .ok()
        .and_then(|n| n.checked_add(DATA_OFFSET + 1))
        .ok_or_else(|| failed(format!("cannot hold {max_bytes} bytes")))?;
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            capacity,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(failed(format!(
            "cannot map memory to read it: {}",
            std::io::Error::last_os_error()
        )));
    }
    let shared = SharedMemory { ptr, len: capacity };
    let report = shared.ptr.cast::<ChildReport>();
    // SAFETY: inside the mapping, which starts zeroed and is at least DATA_OFFSET long.
    let data = unsafe { shared.ptr.cast::<u8>().add(DATA_OFFSET) };
    let mut pipe = [0; 2];
    // SAFETY: two ints for the two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(failed(format!(
            "cannot make a pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    let (done, child_end) = (Fd(pipe[0]), Fd(pipe[1]));
    // SAFETY: the child only makes system calls (read_in_child) and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child; the mapping is shared, the pipe's write end
        // is kept open until the child exits, which the parent waits for.
        unsafe {
            read_in_child(
                &cpath,
                follow,
                expected,
                max_bytes,
                report,
                data,
                child_end.0,
            )
        }
    }
    drop(child_end);
    if pid < 0 {
        return Err(failed(format!(
            "cannot start a reader: {}",
            std::io::Error::last_os_error()
        )));
    }
    // The pipe ends (POLLHUP) when the child exits.
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(u64::from(timeout_ms));
    let finished = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut poll = libc::pollfd {
            fd: done.0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        let ready =
            unsafe { libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if ready > 0 {
            break true;
        }
        if ready == 0 || errno() != libc::EINTR {
            break false;
        }
    };
    if !finished {
        // SAFETY: our child; it may not die at once (not while a file
        // system owes it an answer): not waited for, init reaps it.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
        }
        return Err(refused(format!(
            "no answer within {timeout_ms} ms (a file system that does not answer?): skipped"
        )));
    }
    let mut status = 0;
    // SAFETY: our child, which has exited (its end of the pipe closed).
    unsafe { libc::waitpid(pid, &mut status, 0) };
    // SAFETY: the child has exited: nothing writes the report any more.
    let r = unsafe { &*report };
    let os = |e: i32| std::io::Error::from_raw_os_error(e);
    match r.stage {
        stage::DONE => {
            // SAFETY: the child wrote `len` (at most max_bytes) bytes there.
            let bytes = unsafe { std::slice::from_raw_parts(data, r.len as usize) };
            Ok(bytes.to_vec())
        }
        stage::OPEN if r.errno == libc::ELOOP => {
            Err(refused("is a symbolic link: skipped".to_string()))
        }
        stage::OPEN => Err(failed(format!("cannot open it: {}", os(r.errno)))),
        stage::STAT => Err(failed(format!("cannot stat it: {}", os(r.errno)))),
        stage::NOT_REGULAR => Err(refused(format!(
            "is {}, not a regular file: skipped",
            file_kind(r.mode)
        ))),
        stage::WRONG_FILE => {
            let ((major, minor), ino) = expected.unwrap_or(((0, 0), 0));
            Err(refused(format!(
                "is not the file the process maps (device {:02x}:{:02x} inode {}, \
                 mapped: {major:02x}:{minor:02x} inode {ino}; replaced, or hidden by a mount): skipped",
                r.dev_major, r.dev_minor, r.ino
            )))
        }
        stage::TOO_BIG => Err(refused(format!(
            "is {} bytes, more than the {max_bytes} a probe library may have: skipped",
            r.size
        ))),
        stage::REOPEN => Err(failed(format!(
            "cannot open it for reading: {}",
            os(r.errno)
        ))),
        stage::CHANGED => Err(refused("changed while it was opened: skipped".to_string())),
        stage::READ => Err(failed(format!("cannot read it: {}", os(r.errno)))),
        stage::GREW => Err(refused(format!(
            "grew past {max_bytes} bytes while it was read: skipped"
        ))),
        _ => Err(failed(format!(
            "its reader failed (wait status {status:#x})"
        ))),
    }
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
