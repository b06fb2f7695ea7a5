//! The per-user directory of generated libraries, content-addressed.
//!
//! A library lives at `DIR/<build-id>/<module>`: the build-id is a hash of the
//! whole definition, so the same definition always maps the same file (same
//! inode) in every process and after restarts. A tracer attached by that path
//! therefore catches providers created later and in other processes. The base
//! name is the module, which is what DTrace shows as `probemod`.
//!
//! Root may load from here, so no other user must be able to put bytes in
//! front of `dlopen`. The rule: every directory from `/` to the library is
//! one that only root or this user can change, and stays so, because only its
//! owner can change its owner or mode:
//!
//! - each ancestor is owned by root or this user, and writable by no one
//!   else, unless it is sticky (`/tmp`: others may add entries there, but
//!   cannot rename or remove ours); a symbolic link on the way is followed
//!   only if root or this user made it, and the path is kept with links
//!   resolved, so that `dlopen` walks exactly the directories checked;
//! - `DIR` and `DIR/<build-id>` are directories (never links) owned by this
//!   user and writable by no one else;
//! - the library is opened once, checked and read through that descriptor
//!   (regular, ours, not writable by others, the exact bytes), and every
//!   change in the cache goes through directory descriptors (`*at` calls);
//!   a process remembers the versions (device, inode, size, ctime) it read
//!   and found right, so a later load of the same file costs two `lstat`s.
//!
//! Then the path `dlopen` opens names the inode just verified: only root or
//! this user could have replaced it since, and they write the same bytes.
//! Mapping the verified descriptor itself (`/proc/self/fd/N`) was tried and
//! rejected: the dynamic linker records that name, so `gdb -p PID` opens
//! `/proc/self/fd/N` in its own process (it hung reading a pipe), and glibc
//! hands back an already loaded library for a name it has seen before, which
//! a reused descriptor number would be.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use rustix::fs::{self as rfs, AtFlags, FileType, FlockOperation, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::Error;

/// Where generated libraries can be stored for this process.
pub(crate) enum Location {
    /// An exec-capable directory of this user's, checked as the module
    /// documentation says.
    Dir(CacheDir),
    /// No such directory: each library goes into a memfd instead. `why` says
    /// which directories were refused, and why.
    Memfd { why: String },
}

/// The cache directory.
pub(crate) struct CacheDir {
    /// Absolute, with no symbolic link, `.` or `..`: what tracers see.
    pub(crate) path: PathBuf,
    /// The user it was checked for.
    euid: u32,
}

/// The location, chosen once per process (the environment is read once, and
/// what was checked can only be changed by root or this user). A failure is
/// not remembered: the next load tries again.
pub(crate) fn location() -> Result<&'static Location, Error> {
    static LOCATION: OnceLock<Location> = OnceLock::new();
    if let Some(location) = LOCATION.get() {
        return Ok(location);
    }
    let chosen = choose_location()?;
    Ok(LOCATION.get_or_init(|| chosen))
}

/// The directories to try, and whether the user chose them: `$DYNPROBE_DIR`
/// (chosen), else `$XDG_RUNTIME_DIR/dynprobe` and `/tmp/dynprobe-<uid>`.
fn candidate_dirs() -> (Vec<PathBuf>, bool) {
    let set = |name| std::env::var_os(name).filter(|v: &OsString| !v.is_empty());
    if let Some(dir) = set("DYNPROBE_DIR") {
        // Tracers need absolute paths, and a later chdir must not move the cache.
        let dir = std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(dir));
        return (vec![dir], true);
    }
    let mut dirs = Vec::new();
    // The XDG spec says to ignore a relative runtime directory.
    if let Some(runtime) = set("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_absolute()) {
        dirs.push(Path::new(&runtime).join("dynprobe"));
    }
    dirs.push(PathBuf::from(format!("/tmp/dynprobe-{}", euid())));
    (dirs, false)
}

fn choose_location() -> Result<Location, Error> {
    let (dirs, chosen) = candidate_dirs();
    let mut refused = Vec::new();
    for dir in dirs {
        match CacheDir::open(&dir) {
            Ok(cache) if cache.is_noexec() => {
                refused.push(format!("{} is on a noexec mount", cache.path.display()))
            }
            Ok(cache) => return Ok(Location::Dir(cache)),
            // A directory the user chose that others could tamper with is an
            // error: falling back would hide an attack or a misconfiguration.
            Err(e @ Error::UnsafeDirectory { .. }) if chosen => return Err(e),
            // A default one is skipped: anyone can create /tmp/dynprobe-<uid>
            // first, and an inherited XDG_RUNTIME_DIR may be another user's.
            // Providers are enabled all the same, in memfds at worst.
            Err(e) => refused.push(e.to_string()),
        }
    }
    Ok(Location::Memfd {
        why: refused.join("; "),
    })
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn unsafe_dir(path: &Path, reason: String) -> Error {
    Error::UnsafeDirectory {
        path: path.to_path_buf(),
        reason,
    }
}

/// The fields of a `stat` this module reads, in one width on every target.
#[derive(Clone, Copy)]
struct Meta {
    kind: FileType,
    mode: u32,
    uid: u32,
    version: FileVersion,
    mtime: i64,
}

/// What identifies one version of a file: any write changes the ctime, which
/// no user can set, and a replacement changes the inode.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FileVersion {
    dev: u64,
    ino: u64,
    size: u64,
    ctime: (i64, i64),
}

#[allow(clippy::unnecessary_cast)] // the field types differ between targets
fn meta(st: &Stat) -> Meta {
    Meta {
        kind: FileType::from_raw_mode(st.st_mode as _),
        mode: st.st_mode as u32 & 0o7777,
        uid: st.st_uid as u32,
        version: FileVersion {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        },
        mtime: st.st_mtime as i64,
    }
}

fn fstat(fd: impl AsFd) -> io::Result<Meta> {
    Ok(meta(&rfs::fstat(fd)?))
}

/// Why a directory on the way to the cache lets someone other than root or
/// this user change what is below it, if it does.
fn untrusted_ancestor(meta: &Meta, euid: u32) -> Option<String> {
    if meta.uid != 0 && meta.uid != euid {
        return Some(format!(
            "it is owned by uid {}, neither root nor this user (uid {euid})",
            meta.uid
        ));
    }
    // Sticky: others may create entries, but not rename or remove ours.
    if meta.mode & 0o022 != 0 && meta.mode & 0o1000 == 0 {
        return Some(format!("others can write to it (mode {:o})", meta.mode));
    }
    None
}

/// Why a directory of the cache itself is not this user's alone, if it is not.
fn not_private(meta: &Meta, euid: u32) -> Option<String> {
    if meta.kind == FileType::Symlink {
        return Some("it is a symbolic link".into());
    }
    if meta.kind != FileType::Directory {
        return Some("it is not a directory".into());
    }
    if meta.uid != euid {
        return Some(format!(
            "it is owned by uid {}, not by this user (uid {euid})",
            meta.uid
        ));
    }
    if meta.mode & 0o022 != 0 {
        return Some(format!("others can write to it (mode {:o})", meta.mode));
    }
    None
}

/// Opens a name for inspection only, never following a link at its end.
fn open_path<P: rustix::path::Arg>(dir: impl AsFd, name: P) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `path` (absolute) from `/`, one component at a time,
/// each checked with [`untrusted_ancestor`]. Returns it and its path with
/// links resolved.
fn open_trusted_dir(path: &Path, leads_to: &Path, euid: u32) -> Result<(OwnedFd, PathBuf), Error> {
    const MAX_LINKS: u32 = 40;
    let root = Path::new("/");
    let root_fd = rfs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open directory", root, e.into()))?;
    let root_meta = fstat(&root_fd).map_err(|e| Error::io("inspect directory", root, e))?;
    if let Some(reason) = untrusted_ancestor(&root_meta, euid) {
        return Err(unsafe_dir(root, reason));
    }
    // Open directories from the root down, so that `..` goes back up the
    // directories actually walked.
    let mut walked: Vec<(OwnedFd, PathBuf)> = vec![(root_fd, root.to_path_buf())];
    let mut pending: Vec<OsString> = Vec::new();
    let push_components = |pending: &mut Vec<OsString>, path: &Path| {
        let start = pending.len();
        for component in path.components() {
            match component {
                Component::Normal(name) => pending.push(name.to_os_string()),
                Component::ParentDir => pending.push("..".into()),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        pending[start..].reverse();
    };
    push_components(&mut pending, path);
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            if walked.len() > 1 {
                walked.pop();
            }
            continue;
        }
        let (dir, dir_path) = walked.last().expect("the root is never popped");
        let here = dir_path.join(&name);
        let fd =
            open_path(dir, name.as_os_str()).map_err(|e| Error::io("open directory", &here, e))?;
        let meta = fstat(&fd).map_err(|e| Error::io("inspect directory", &here, e))?;
        match meta.kind {
            FileType::Directory => {
                if let Some(reason) = untrusted_ancestor(&meta, euid) {
                    return Err(unsafe_dir(
                        &here,
                        format!("{reason}, and it leads to {}", leads_to.display()),
                    ));
                }
                walked.push((fd, here));
            }
            FileType::Symlink => {
                // The directory holding it was checked, so only a trusted user
                // could have put it there, except in a sticky directory: there,
                // as the kernel's protected_symlinks does, one made by someone
                // else is not followed.
                if meta.uid != 0 && meta.uid != euid {
                    return Err(unsafe_dir(
                        &here,
                        format!(
                            "it is a symbolic link owned by uid {}, neither root nor this user \
                             (uid {euid}), and it leads to {}",
                            meta.uid,
                            leads_to.display()
                        ),
                    ));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::io("resolve", path, Errno::LOOP.into()));
                }
                let target = rfs::readlinkat(&fd, "", Vec::new())
                    .map_err(|e| Error::io("read symbolic link", &here, e.into()))?;
                let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                if target.is_absolute() {
                    walked.truncate(1);
                }
                push_components(&mut pending, target);
            }
            _ => return Err(Error::io("open directory", &here, Errno::NOTDIR.into())),
        }
    }
    Ok(walked.pop().expect("the root is never popped"))
}

impl CacheDir {
    /// Opens `path` (absolute), creating it (0700) if needed, and checks it
    /// and the way to it.
    fn open(path: &Path) -> Result<CacheDir, Error> {
        let euid = euid();
        let invalid = || Error::io("use directory", path, io::ErrorKind::InvalidInput.into());
        let name = path.file_name().ok_or_else(invalid)?;
        let parent = path.parent().ok_or_else(invalid)?;
        let (parent_fd, parent_path) = open_trusted_dir(parent, path, euid)?;
        let path = parent_path.join(name);
        open_private_dir(&parent_fd, name, &path, euid)?;
        Ok(CacheDir { path, euid })
    }

    fn is_noexec(&self) -> bool {
        // Unknown counts as exec-capable: dlopen then says what is wrong.
        rfs::statvfs(&self.path).is_ok_and(|s| s.f_flag.contains(rfs::StatVfsMountFlags::NOEXEC))
    }

    /// Opens `DIR/<build-id>`, creating it (0700) if needed. The cache
    /// directory is not held open (a process keeps no descriptor between
    /// loads): its path is walked again, which is safe because only root or
    /// this user can change the directories on it, checked when it was chosen.
    fn build_dir(&self, build_id_hex: &str, euid: u32) -> Result<OwnedFd, Error> {
        let path = self.path.join(build_id_hex);
        match open_path(rfs::CWD, &path) {
            Ok(fd) => {
                let meta = fstat(&fd).map_err(|e| Error::io("inspect directory", &path, e))?;
                match not_private(&meta, euid) {
                    Some(reason) => Err(unsafe_dir(&path, reason)),
                    None => Ok(fd),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // New, or the cache directory itself was removed meanwhile.
                let cache = open_private_dir(rfs::CWD, &self.path, &self.path, euid)?;
                open_private_dir(&cache, build_id_hex, &path, euid)
            }
            Err(e) => Err(Error::io("open directory", &path, e)),
        }
    }
}

/// Opens the directory `name` in `dir` for `*at` calls, creating it (0700)
/// if it is missing; refused unless it is this user's alone.
fn open_private_dir(
    dir: impl AsFd,
    name: impl AsRef<Path>,
    path: &Path,
    euid: u32,
) -> Result<OwnedFd, Error> {
    let name = name.as_ref();
    let fd = match open_path(&dir, name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(Error::io("create directory", path, e.into())),
            }
            open_path(&dir, name)
        }
        other => other,
    }
    .map_err(|e| Error::io("open directory", path, e))?;
    let meta = fstat(&fd).map_err(|e| Error::io("inspect directory", path, e))?;
    match not_private(&meta, euid) {
        Some(reason) => Err(unsafe_dir(path, reason)),
        None => Ok(fd),
    }
}

/// The path of the library with this build-id and module under `dir`.
pub(crate) fn library_path(dir: &Path, build_id_hex: &str, module: &str) -> PathBuf {
    dir.join(build_id_hex).join(module)
}

/// Makes sure `DIR/<build-id>/<module>` holds exactly `bytes`, creating it
/// if needed, and returns its path. A file in place is never rewritten: a
/// wrong one is replaced by an atomic rename, so that a process mapping the
/// old inode keeps its bytes.
pub(crate) fn ensure_library(
    cache: &CacheDir,
    build_id_hex: &str,
    module: &str,
    bytes: &[u8],
) -> Result<PathBuf, Error> {
    let euid = cache.euid;
    let path = library_path(&cache.path, build_id_hex, module);
    if verified_in_place(cache, build_id_hex, &path, bytes.len()) {
        return Ok(path);
    }
    let dir = cache.build_dir(build_id_hex, euid)?;
    clean_leftovers_once(&dir, build_id_hex, euid);
    match holds(&dir, module, build_id_hex, bytes, euid) {
        Ok(true) => return Ok(path),
        Ok(false) => {}
        Err(e) => return Err(Error::io("read", &path, e)),
    }
    create(&dir, module, build_id_hex, bytes, euid, &path)?;
    Ok(path)
}

/// Whether `path` is a file this process read and found right, unchanged
/// since, in a `<build-id>` directory that is this user's alone: a loaded
/// provider loads again for two `lstat`s. Both are by path, as `dlopen` is:
/// the path was checked up to the cache directory, so between the two and
/// `dlopen` only root or this user could change what it names.
fn verified_in_place(cache: &CacheDir, build_id_hex: &str, path: &Path, size: usize) -> bool {
    let lstat = |p: &Path| rfs::statat(rfs::CWD, p, AtFlags::SYMLINK_NOFOLLOW).map(|st| meta(&st));
    let Some(dir) = path.parent() else {
        return false;
    };
    let (Ok(dir), Ok(file)) = (lstat(dir), lstat(path)) else {
        return false;
    };
    not_private(&dir, cache.euid).is_none()
        && file.kind == FileType::RegularFile
        && file.uid == cache.euid
        && file.mode & 0o022 == 0
        && file.version.size == size as u64
        && verified_before(&file.version, build_id_hex)
}

/// Versions of files this process has read and found right, with the
/// build-id whose bytes they hold: loading the same provider again costs an
/// `fstat` of the open file, not a read.
static VERIFIED: Mutex<Option<HashMap<FileVersion, String>>> = Mutex::new(None);

fn verified_before(version: &FileVersion, build_id_hex: &str) -> bool {
    let memo = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    memo.as_ref()
        .and_then(|m| m.get(version))
        .map(String::as_str)
        == Some(build_id_hex)
}

fn remember_verified(version: FileVersion, build_id_hex: &str) {
    let mut memo = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    let memo = memo.get_or_insert_with(HashMap::new);
    // Bounded: a process that makes many providers forgets and re-reads.
    if memo.len() >= 1024 {
        memo.clear();
    }
    memo.insert(version, build_id_hex.to_string());
}

/// Whether `dir/name` is a regular file of ours, writable by no one else,
/// holding `bytes`; `false` too when it is missing or a symbolic link.
fn holds(
    dir: &OwnedFd,
    name: &str,
    build_id_hex: &str,
    bytes: &[u8],
    euid: u32,
) -> io::Result<bool> {
    // Non-blocking: a FIFO in its place must not hang the load.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rfs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::LOOP | Errno::ACCESS) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let meta = fstat(&fd)?;
    if meta.kind != FileType::RegularFile
        || meta.uid != euid
        || meta.mode & 0o022 != 0
        || meta.version.size != bytes.len() as u64
    {
        return Ok(false);
    }
    if verified_before(&meta.version, build_id_hex) {
        return Ok(true);
    }
    let mut content = Vec::with_capacity(bytes.len());
    std::fs::File::from(fd).read_to_end(&mut content)?;
    let right = content == bytes;
    if right {
        remember_verified(meta.version, build_id_hex);
    }
    Ok(right)
}

/// Named temporary files of this version start so; each is locked (`flock`)
/// by its writer for as long as it exists.
const TEMP_PREFIX: &str = ".dynprobe-tmp-";
/// Older versions wrote `.tmp-<pid>-<n>` without a lock.
const OLD_TEMP_PREFIX: &str = ".tmp-";
/// An unlocked leftover this old is one whose writer is gone: old versions
/// wrote a library in milliseconds.
const OLD_TEMP_AGE: Duration = Duration::from_secs(60);

/// Writes `bytes` as `dir/name`. The file appears complete or not at all:
/// it is written unnamed (`O_TMPFILE`) and then linked in, so a writer that is
/// killed leaves nothing behind; where the file system cannot do that, a
/// locked named file is used, which a later process cleans up.
fn create(
    dir: &OwnedFd,
    name: &str,
    build_id_hex: &str,
    bytes: &[u8],
    euid: u32,
    path: &Path,
) -> Result<(), Error> {
    let file = write_new(dir, bytes).map_err(|e| Error::io("write", path, e))?;
    let linked = match &file {
        NewFile::Unnamed(fd) => link_unnamed(fd, dir, name),
        NewFile::Named(_, temp) => {
            rfs::linkat(dir, temp.as_str(), dir, name, AtFlags::empty()).map_err(io::Error::from)
        }
    };
    // link fails rather than replace: of two processes racing to create the
    // same file, one wins and the other checks the winner's bytes.
    let result = match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            match holds(dir, name, build_id_hex, bytes, euid) {
                Ok(true) => Ok(()),
                // Wrong bytes in place (a truncated or tampered file): replace it.
                Ok(false) => replace(&file, dir, name).map_err(|e| Error::io("replace", path, e)),
                Err(e) => Err(Error::io("read", path, e)),
            }
        }
        Err(e) => Err(Error::io("create", path, e)),
    };
    if let NewFile::Named(_, temp) = &file {
        let _ = rfs::unlinkat(dir, temp.as_str(), AtFlags::empty());
    }
    if result.is_ok() {
        // Linking changed the ctime: remember the version now in place.
        if let Ok(meta) = fstat(file.fd()) {
            remember_verified(meta.version, build_id_hex);
        }
    }
    result
}

enum NewFile {
    Unnamed(OwnedFd),
    /// Its descriptor (holding the lock) and its name in the directory.
    Named(OwnedFd, String),
}

impl NewFile {
    fn fd(&self) -> &OwnedFd {
        match self {
            NewFile::Unnamed(fd) | NewFile::Named(fd, _) => fd,
        }
    }
}

fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A new file in `dir` holding `bytes`, read and execute only: nobody writes
/// a library once it is complete.
fn write_new(dir: &OwnedFd, bytes: &[u8]) -> io::Result<NewFile> {
    let mode = Mode::from_raw_mode(0o500);
    let unnamed = rfs::openat(
        dir,
        ".",
        OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
        mode,
    );
    let file = match unnamed {
        Ok(fd) => NewFile::Unnamed(fd),
        // The file system (or an old kernel) has no O_TMPFILE.
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => {
            let name = temp_name();
            let flags =
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rfs::openat(dir, name.as_str(), flags, mode)?;
            // Held until the descriptor closes: a cleaner sees a live writer.
            if let Err(e) = rfs::flock(&fd, FlockOperation::LockExclusive) {
                let _ = rfs::unlinkat(dir, name.as_str(), AtFlags::empty());
                return Err(e.into());
            }
            NewFile::Named(fd, name)
        }
        Err(e) => return Err(e.into()),
    };
    let mut writer = std::fs::File::from(file.fd().try_clone()?);
    if let Err(e) = writer.write_all(bytes) {
        if let NewFile::Named(_, name) = &file {
            let _ = rfs::unlinkat(dir, name.as_str(), AtFlags::empty());
        }
        return Err(e);
    }
    Ok(file)
}

/// Gives an `O_TMPFILE` file the name `name` in `dir`; fails if it exists.
fn link_unnamed(fd: &OwnedFd, dir: &OwnedFd, name: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // Through /proc: AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH.
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match rfs::linkat(
        rfs::CWD,
        proc_path.as_str(),
        dir,
        name,
        AtFlags::SYMLINK_FOLLOW,
    ) {
        Err(Errno::NOENT) => {
            // No /proc: AT_EMPTY_PATH works where the capability is held.
            Ok(rfs::linkat(fd, "", dir, name, AtFlags::EMPTY_PATH)?)
        }
        other => Ok(other?),
    }
}

/// Puts the new file in place of `dir/name` in one rename.
fn replace(file: &NewFile, dir: &OwnedFd, name: &str) -> io::Result<()> {
    match file {
        NewFile::Named(_, temp) => Ok(rfs::renameat(dir, temp.as_str(), dir, name)?),
        NewFile::Unnamed(fd) => {
            // An unnamed file cannot be renamed: name it first. The lock is
            // taken before the name exists, so no cleaner removes it.
            rfs::flock(fd, FlockOperation::LockExclusive)?;
            let temp = temp_name();
            link_unnamed(fd, dir, &temp)?;
            let renamed = rfs::renameat(dir, temp.as_str(), dir, name);
            if renamed.is_err() {
                let _ = rfs::unlinkat(dir, temp.as_str(), AtFlags::empty());
            }
            Ok(renamed?)
        }
    }
}

/// Removes temporary files that writers killed mid-write left in a build-id
/// directory, the first time this process uses that directory.
fn clean_leftovers_once(dir: &OwnedFd, build_id_hex: &str, euid: u32) {
    static CLEANED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    {
        let mut cleaned = CLEANED.lock().unwrap_or_else(|e| e.into_inner());
        let cleaned = cleaned.get_or_insert_with(HashSet::new);
        if cleaned.len() >= 1024 {
            cleaned.clear();
        }
        if cleaned.contains(build_id_hex) {
            return;
        }
        cleaned.insert(build_id_hex.to_string());
    }
    let _ = clean_leftovers(dir, euid);
}

/// A leftover is removed only when no live writer can hold it: this
/// version's temporary files are locked by their writer for as long as they
/// exist, so one whose lock can be taken is dead; older versions took no
/// lock, so theirs must also be unchanged for [`OLD_TEMP_AGE`].
fn clean_leftovers(dir: &OwnedFd, euid: u32) -> io::Result<()> {
    let listing = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for entry in rfs::Dir::read_from(&listing)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        let old = name.starts_with(OLD_TEMP_PREFIX.as_bytes());
        if !old && !name.starts_with(TEMP_PREFIX.as_bytes()) {
            continue;
        }
        let name = entry.file_name();
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let Ok(fd) = rfs::openat(dir, name, flags, Mode::empty()) else {
            continue;
        };
        let Ok(meta) = fstat(&fd) else { continue };
        if meta.kind != FileType::RegularFile
            || meta.uid != euid
            || (old && now.saturating_sub(meta.mtime) < OLD_TEMP_AGE.as_secs() as i64)
        {
            continue;
        }
        if rfs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
            let _ = rfs::unlinkat(dir, name, AtFlags::empty());
        }
    }
    Ok(())
}
