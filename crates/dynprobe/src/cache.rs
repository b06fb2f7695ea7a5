//! The per-user directory of generated libraries, content-addressed.
//!
//! A library lives at `DIR/<build-id>/<module>`: the build-id is a hash of the
//! whole definition, so the same definition always maps the same file (same
//! inode) in every process and after restarts. A tracer attached by that path
//! therefore catches providers created later and in other processes. The base
//! name is the module, which is what DTrace shows as `probemod`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::Error;

/// Where generated libraries can be stored for this process.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    /// An exec-capable directory owned by this user.
    Dir(PathBuf),
    /// No such directory: each library goes into a memfd instead. `why` says
    /// which directories were rejected.
    Memfd { why: String },
}

/// The location, chosen once per process (the environment is read once). A
/// failure is not remembered: the next load tries again.
pub(crate) fn location() -> Result<&'static Location, Error> {
    static LOCATION: OnceLock<Location> = OnceLock::new();
    if let Some(location) = LOCATION.get() {
        return Ok(location);
    }
    let chosen = choose_location()?;
    Ok(LOCATION.get_or_init(|| chosen))
}

/// `$DYNPROBE_DIR`, else `$XDG_RUNTIME_DIR/dynprobe`, else `/tmp/dynprobe-<uid>`.
pub(crate) fn candidate_dirs() -> Vec<PathBuf> {
    let set = |name| std::env::var_os(name).filter(|v: &OsString| !v.is_empty());
    if let Some(dir) = set("DYNPROBE_DIR") {
        // Tracers need absolute paths, and a later chdir must not move the cache.
        return vec![std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(dir))];
    }
    let mut dirs = Vec::new();
    // The XDG spec says to ignore a relative runtime directory.
    if let Some(runtime) = set("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_absolute()) {
        dirs.push(Path::new(&runtime).join("dynprobe"));
    }
    // SAFETY: geteuid cannot fail.
    dirs.push(PathBuf::from(format!("/tmp/dynprobe-{}", unsafe {
        libc::geteuid()
    })));
    dirs
}

fn choose_location() -> Result<Location, Error> {
    let mut rejected = Vec::new();
    for dir in candidate_dirs() {
        match prepare_dir(&dir) {
            Ok(true) => return Ok(Location::Dir(dir)),
            Ok(false) => rejected.push(format!("{} is on a noexec mount", dir.display())),
            // A directory someone else could write to is a hard error: falling
            // back would hide an attack or a misconfiguration.
            Err(e @ Error::UnsafeDirectory { .. }) => return Err(e),
            Err(e) => rejected.push(e.to_string()),
        }
    }
    Ok(Location::Memfd {
        why: rejected.join("; "),
    })
}

/// Creates `dir` (0700) if needed and checks it is safe. Returns whether code
/// can be mapped from it.
fn prepare_dir(dir: &Path) -> Result<bool, Error> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create directory", dir, e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| Error::io("inspect directory", dir, e))?;
    check_private_dir(dir, &meta)?;
    Ok(!is_noexec(dir)?)
}

fn check_private_dir(dir: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    let unsafe_dir = |reason: String| {
        Err(Error::UnsafeDirectory {
            path: dir.to_path_buf(),
            reason,
        })
    };
    if !meta.file_type().is_dir() {
        return unsafe_dir("it is not a directory (or is a symbolic link)".into());
    }
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return unsafe_dir(format!(
            "it is owned by uid {}, not by this user (uid {euid})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return unsafe_dir(format!(
            "others can write to it (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

fn is_noexec(dir: &Path) -> Result<bool, Error> {
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::io("inspect directory", dir, io::ErrorKind::InvalidInput.into()))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: the path is NUL-terminated and `stat` is large enough.
    if unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(Error::io(
            "inspect file system of",
            dir,
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: statvfs succeeded and filled it in.
    Ok(unsafe { stat.assume_init() }.f_flag & libc::ST_NOEXEC != 0)
}

/// The path of the library with this build-id and module under `dir`.
pub(crate) fn library_path(dir: &Path, build_id_hex: &str, module: &str) -> PathBuf {
    dir.join(build_id_hex).join(module)
}

/// Makes sure `path` holds exactly `bytes`, creating it if needed. A file in
/// place is never rewritten: a wrong one is replaced by an atomic rename, so a
/// process that maps the old inode keeps its bytes.
pub(crate) fn ensure_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if verified_before(path) {
        return Ok(());
    }
    match holds(path, bytes) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read", path, e)),
    }
    let parent = path.parent().expect("library paths have a parent");
    match fs::DirBuilder::new().mode(0o700).create(parent) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create directory", parent, e)),
    }
    let temp = write_temp(parent, bytes)?;
    // link() fails rather than replace: of two processes racing to create the
    // same file, one wins and the other checks the winner's bytes.
    let result = match fs::hard_link(&temp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match holds(path, bytes) {
            Ok(true) => Ok(()),
            // Wrong bytes in place (a truncated or tampered file): replace it.
            Ok(false) => fs::rename(&temp, path).map_err(|e| Error::io("replace", path, e)),
            Err(e) => Err(Error::io("read", path, e)),
        },
        Err(e) => Err(Error::io("create", path, e)),
    };
    let _ = fs::remove_file(&temp);
    result
}

/// What identifies one version of a file: any write changes the ctime, which
/// no user can set, and a replacement changes the inode.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    dev: u64,
    ino: u64,
    size: u64,
    ctime: (i64, i64),
}

impl FileVersion {
    fn of(meta: &fs::Metadata) -> FileVersion {
        FileVersion {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Files this process has read and found right, so that loading the same
/// provider again costs a `stat`, not a read.
static VERIFIED: Mutex<Option<HashMap<PathBuf, FileVersion>>> = Mutex::new(None);

fn verified_before(path: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    let memo = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    memo.as_ref().and_then(|m| m.get(path)) == Some(&FileVersion::of(&meta))
}

fn remember_verified(path: &Path, meta: &fs::Metadata) {
    let mut memo = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    let memo = memo.get_or_insert_with(HashMap::new);
    // Bounded: a process that makes many providers forgets and re-reads.
    if memo.len() >= 1024 {
        memo.clear();
    }
    memo.insert(path.to_path_buf(), FileVersion::of(meta));
}

/// Whether the file at `path` is a regular file of ours holding `bytes`.
fn holds(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    // SAFETY: geteuid cannot fail.
    if !meta.is_file()
        || meta.len() != bytes.len() as u64
        || meta.uid() != unsafe { libc::geteuid() }
    {
        return Ok(false);
    }
    let mut content = Vec::with_capacity(bytes.len());
    file.read_to_end(&mut content)?;
    let right = content == bytes;
    if right {
        remember_verified(path, &meta);
    }
    Ok(right)
}

fn write_temp(dir: &Path, bytes: &[u8]) -> Result<PathBuf, Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let temp = dir.join(name);
    // Read and execute only: nobody writes a library once it is complete.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o500)
        .open(&temp)
        .map_err(|e| Error::io("create", &temp, e))?;
    if let Err(e) = file.write_all(bytes) {
        let _ = fs::remove_file(&temp);
        return Err(Error::io("write", &temp, e));
    }
    Ok(temp)
}
