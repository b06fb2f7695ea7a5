//! Mapping a generated library into the process, and taking it out again.
//!
//! Libraries go through `dlopen` rather than a bare `mmap`: DTrace's `-Z`
//! watches the dynamic linker to see providers appear.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use crate::cache::{self, Location};
use crate::Error;

// musl has dlinfo (RTLD_DI_LINKMAP only) but the libc crate declares neither
// for it: this module stands in for the crate, adding the two.
#[cfg(target_env = "musl")]
mod libc {
    pub use ::libc::*;
    pub const RTLD_DI_LINKMAP: c_int = 2;
    extern "C" {
        pub fn dlinfo(handle: *mut c_void, request: c_int, info: *mut c_void) -> c_int;
    }
}

/// A library mapped into this process.
pub(crate) struct Loaded {
    handle: *mut libc::c_void,
    /// Load base: image addresses are relative to it.
    pub(crate) base: usize,
    /// The path tracers see in `/proc/PID/maps` (for a memfd, its
    /// `/proc/PID/fd/N` form, which works for every tracer while it is open).
    pub(crate) path: PathBuf,
    /// Keeps a memfd-backed library findable; closed after `dlclose`.
    memfd: Option<OwnedFd>,
    claim: String,
}

// SAFETY: the handle is only passed to dlclose, which is thread-safe.
unsafe impl Send for Loaded {}
unsafe impl Sync for Loaded {}

/// The (provider, module) pairs loaded in this process. A pair names one
/// provider for tracers (DTrace's `provider$pid:module:`), so it must not be
/// used twice at once; that also keeps two providers from sharing a file,
/// which glibc would hand back as the same handle.
static IN_USE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn claim(key: &str) -> bool {
    IN_USE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(key.to_string())
}

fn release(key: &str) {
    if let Some(set) = IN_USE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        set.remove(key);
    }
}

/// The (provider, module) pair is free in this process: its claim, and the
/// build-id of its library. Free the claim with [`load`] or by dropping its
/// result.
pub(crate) struct Claim {
    key: String,
    build_id_hex: String,
    path: Option<PathBuf>,
}

/// Claims (provider, module) for the library with this build-id; `None` when
/// this process already uses the pair.
pub(crate) fn claim_module(
    provider: &str,
    module: &str,
    build_id_hex: &str,
) -> Result<Option<Claim>, Error> {
    let path = match cache::location()? {
        Location::Dir(dir) => Some(cache::library_path(&dir.path, build_id_hex, module)),
        Location::Memfd { .. } => None,
    };
    let key = format!("{provider}\0{module}");
    Ok(claim(&key).then(|| Claim {
        key,
        build_id_hex: build_id_hex.to_string(),
        path,
    }))
}

/// Maps `bytes` under a claim from [`claim_module`].
pub(crate) fn load(claim: Claim, module: &str, bytes: &[u8]) -> Result<Loaded, Error> {
    let result = match cache::location()? {
        // By path, not through the verified descriptor: the cache module
        // says why that path can only name the verified bytes.
        Location::Dir(dir) => cache::ensure_library(dir, &claim.build_id_hex, module, bytes)
            .and_then(|path| {
                debug_assert_eq!(Some(&path), claim.path.as_ref());
                open(&path, None, claim.key.clone())
            }),
        Location::Memfd { why } => {
            warn_memfd_once(why);
            load_memfd(module, bytes, claim.key.clone())
        }
    };
    if result.is_err() {
        release(&claim.key);
    }
    result
}

fn load_memfd(module: &str, bytes: &[u8], key: String) -> Result<Loaded, Error> {
    // rustix makes the system call itself: no import of glibc's memfd_create,
    // which glibc before 2.27 lacks.
    let fd = rustix::fs::memfd_create(module, rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| Error::io("create memfd for", module, e.into()))?;
    let mut file = std::fs::File::from(
        fd.try_clone()
            .map_err(|e| Error::io("duplicate memfd for", module, e))?,
    );
    std::io::Write::write_all(&mut file, bytes)
        .map_err(|e| Error::io("write memfd for", module, e))?;
    drop(file);
    let path = PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        fd.as_raw_fd()
    ));
    open(
        &PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        Some(fd),
        key,
    )
    .map(|mut l| {
        l.path = path;
        l
    })
}

fn warn_memfd_once(why: &str) {
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "dynprobe: no exec-capable directory for generated libraries ({why}); \
             using memfds, which bpftrace 0.25+ and perf cannot see. \
             Set DYNPROBE_DIR to an exec-capable directory owned by this user, on a path \
             that only root and this user can change."
        )
    });
}

fn open(path: &Path, memfd: Option<OwnedFd>, claim: String) -> Result<Loaded, Error> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::io("load", path, std::io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: c_path is NUL-terminated; the library has no initialisers.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(Error::Dlopen {
            path: path.to_path_buf(),
            message: dlerror(),
        });
    }
    let mut map: *mut libc::c_void = std::ptr::null_mut();
    // SAFETY: handle is live; RTLD_DI_LINKMAP writes a link_map pointer.
    let rc = unsafe {
        libc::dlinfo(
            handle,
            libc::RTLD_DI_LINKMAP,
            &mut map as *mut _ as *mut libc::c_void,
        )
    };
    if rc != 0 || map.is_null() {
        let message = dlerror();
        // SAFETY: handle is live and unused.
        unsafe { libc::dlclose(handle) };
        return Err(Error::Dlopen {
            path: path.to_path_buf(),
            message,
        });
    }
    // SAFETY: a link_map starts with l_addr, the load base.
    let base = unsafe { *(map as *const usize) };
    Ok(Loaded {
        handle,
        base,
        path: path.to_path_buf(),
        memfd,
        claim,
    })
}

fn dlerror() -> String {
    // SAFETY: dlerror returns a NUL-terminated message or null.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "unknown dynamic linker error".to_string()
    } else {
        // SAFETY: checked non-null above.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Loaded {
    pub(crate) fn is_memfd(&self) -> bool {
        self.memfd.is_some()
    }

    /// Unmaps the library; the memfd (if any) closes after it.
    pub(crate) fn close(mut self) -> Result<(), Error> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<(), Error> {
        if self.handle.is_null() {
            return Ok(());
        }
        // SAFETY: the handle came from dlopen and is closed once.
        let rc = unsafe { libc::dlclose(self.handle) };
        self.handle = std::ptr::null_mut();
        self.memfd = None;
        release(&self.claim);
        if rc != 0 {
            return Err(Error::Dlopen {
                path: self.path.clone(),
                message: dlerror(),
            });
        }
        Ok(())
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}
