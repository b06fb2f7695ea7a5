//! Reading a file that a hostile process may have put in our way, in a
//! child process, within a time and size limit (see [`read_file`]).

pub(crate) const DEFAULT_MAX_BYTES: u64 = 64 << 20;
pub(crate) const DEFAULT_TIMEOUT_MS: u32 = 5000;

/// Why a file was not read: `refused` when it is not what it should be (not
/// a regular file, another file than the one mapped, too large, no answer in
/// time), else it could not be opened or read.
pub(crate) struct ReadFailure {
    pub refused: bool,
    pub message: String,
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
pub(crate) fn parse_device(text: &str) -> Option<(u32, u32)> {
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
pub(crate) fn read_file(
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
