//! A client of DTrace's helper device: how a process registers its USDT
//! providers with DTrace itself, so that provider globs and system-wide
//! enablings (`dtrace -Z -n 'nodeapp*:::probe1'`) see them.
//!
//! On Linux the device is `/dev/dtrace/helper` (or `$DTRACE_DOF_INIT_DEVNAME`),
//! a CUSE device served by Oracle DTrace's `dtprobed`. A provider is
//! registered with `DTRACEHIOC_ADDDOF` and a DOF blob
//! ([`dynprobe_format::dof`]), which `dtprobed` reads out of this process and
//! accepts only from a file-backed mapping: [`DofMapping`] puts it in a
//! sealed memfd. `DTRACEHIOC_REMOVE` takes it out again. DTrace 2's own
//! programs use `DTRACEHIOC_HASUSDT` instead, which makes `dtprobed` read the
//! `.note.usdt` section of the object file that contains the address passed.
//!
//! illumos, FreeBSD and macOS use the same ioctl with the same DOF; this
//! client has only run against Oracle DTrace 2.0.7 on Linux.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use dynprobe_format::dof::DOF_MAX_MODULE_LEN;

/// Where the helper device is when `$DTRACE_DOF_INIT_DEVNAME` is not set.
pub const DEFAULT_DEVICE: &str = "/dev/dtrace/helper";
/// The variable DTrace's own runtime reads for the device's path.
pub const DEVICE_ENV: &str = "DTRACE_DOF_INIT_DEVNAME";

// _IOW(0xd8, N, T) on Linux: direction write (1 << 30), size << 16, magic << 8, N.
const fn iow(nr: u32, size: usize) -> libc::c_ulong {
    ((1u32 << 30) | ((size as u32) << 16) | (0xd8 << 8) | nr) as libc::c_ulong
}
const DTRACEHIOC_REMOVE: libc::c_ulong = iow(2, std::mem::size_of::<libc::c_int>());
const DTRACEHIOC_ADDDOF: libc::c_ulong = iow(3, std::mem::size_of::<DofHelper>());
const DTRACEHIOC_HASUSDT: libc::c_ulong = iow(4, std::mem::size_of::<u64>());

/// `dof_helper_t`: the module name DTrace shows, the object's load base (the
/// DOF's relocations add it), and where the DOF is in this process.
#[repr(C)]
struct DofHelper {
    module: [u8; DOF_MAX_MODULE_LEN + 1],
    base: u64,
    dof: u64,
}

/// The variable that turns registration off, as it does for DTrace's own
/// runtime: set (to anything), no provider is registered.
pub const DISABLE_ENV: &str = "DTRACE_DOF_INIT_DISABLE";

/// Whether `$DTRACE_DOF_INIT_DISABLE` turns registration off.
pub fn registration_disabled() -> bool {
    std::env::var_os(DISABLE_ENV).is_some()
}

/// The device's path: `$DTRACE_DOF_INIT_DEVNAME`, else [`DEFAULT_DEVICE`].
pub fn device_path() -> PathBuf {
    std::env::var_os(DEVICE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DEVICE))
}

/// What the helper returns for a registration; [`Helper::remove`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(pub i32);

/// An open helper device.
#[derive(Debug)]
pub struct Helper {
    fd: OwnedFd,
    path: PathBuf,
}

impl Helper {
    /// Opens the device at [`device_path`]; `Ok(None)` when there is none
    /// (no DTrace with a helper daemon here) or [`DISABLE_ENV`] is set,
    /// which is not an error.
    pub fn open() -> Result<Option<Helper>, HelperError> {
        if registration_disabled() {
            return Ok(None);
        }
        match Helper::open_path(&device_path()) {
            Ok(h) => Ok(Some(h)),
            Err(HelperError::Open { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ENXIO | libc::ENODEV)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the helper device at `path`. Anything but a character device
    /// is refused before it is opened, and the open does not wait (a FIFO
    /// put there cannot hang the caller).
    pub fn open_path(path: &Path) -> Result<Helper, HelperError> {
        let open_error = |source: io::Error| HelperError::Open {
            path: path.to_path_buf(),
            source,
        };
        let not_a_device = || HelperError::NotADevice {
            path: path.to_path_buf(),
        };
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| open_error(io::Error::from_raw_os_error(libc::EINVAL)))?;
        // rustix's stat makes the system call itself: glibc 2.33 and later
        // export a `stat` symbol that the published addon's glibc floor
        // (2.17) lacks.
        let is_char_device = |st: &rustix::fs::Stat| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice
        };
        let st = rustix::fs::stat(path).map_err(|e| open_error(e.into()))?;
        if !is_char_device(&st) {
            return Err(not_a_device());
        }
        // O_NONBLOCK: the open of a device (or of what replaced it since the
        // stat) must not wait; O_NOCTTY: a terminal is not taken over.
        // SAFETY: a valid C string; the result is checked.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY,
            )
        };
        if fd < 0 {
            return Err(open_error(io::Error::last_os_error()));
        }
        // SAFETY: a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // What was opened, not what the path named a moment before.
        let st = rustix::fs::fstat(&fd).map_err(|e| open_error(e.into()))?;
        if !is_char_device(&st) {
            return Err(not_a_device());
        }
        // The helper's requests then block as they do for DTrace's own
        // runtime, which opens the device without O_NONBLOCK.
        // SAFETY: plain fcntl on our descriptor.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
        Ok(Helper {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers the DOF at `dof` for the object loaded at `base`, under
    /// `module`. The helper reads the DOF during the call.
    pub fn add_dof(
        &self,
        module: &str,
        base: u64,
        dof: &DofMapping,
    ) -> Result<Generation, HelperError> {
        if module.len() > DOF_MAX_MODULE_LEN || module.is_empty() || module.contains('\0') {
            return Err(HelperError::BadModule(module.to_string()));
        }
        let mut helper = DofHelper {
            module: [0; DOF_MAX_MODULE_LEN + 1],
            base,
            dof: dof.addr(),
        };
        helper.module[..module.len()].copy_from_slice(module.as_bytes());
        // SAFETY: the struct lives across the call; the helper only reads it.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                DTRACEHIOC_ADDDOF as libc::Ioctl, // (an int on musl)
                &helper as *const DofHelper,
            )
        };
        self.result("DTRACEHIOC_ADDDOF", r).map(Generation)
    }

    /// Takes a registration out: DTrace's probes for it disappear.
    pub fn remove(&self, generation: Generation) -> Result<(), HelperError> {
        // The generation goes by value, as DTrace's own runtime passes it.
        // SAFETY: no memory is passed.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                DTRACEHIOC_REMOVE as libc::Ioctl, // (an int on musl)
                generation.0 as libc::c_long,
            )
        };
        self.result("DTRACEHIOC_REMOVE", r).map(|_| ())
    }

    /// Asks the helper to read the `.note.usdt` notes of the object file
    /// mapped at `address_in_object` (DTrace 2's own form).
    pub fn has_usdt(&self, address_in_object: u64) -> Result<Generation, HelperError> {
        // SAFETY: the address goes by value; the helper reads the file.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                DTRACEHIOC_HASUSDT as libc::Ioctl, // (an int on musl)
                address_in_object as libc::c_ulong,
            )
        };
        self.result("DTRACEHIOC_HASUSDT", r).map(Generation)
    }

    fn result(&self, request: &'static str, r: libc::c_int) -> Result<i32, HelperError> {
        if r < 0 {
            return Err(HelperError::Refused {
                request,
                path: self.path.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(r)
    }
}

/// DOF in a read-only mapping of a sealed memfd: the helper refuses DOF that
/// is not in a file-backed mapping ("cannot look up mapping").
#[derive(Debug)]
pub struct DofMapping {
    addr: *mut libc::c_void,
    len: usize,
    _memfd: OwnedFd,
}

// SAFETY: the mapping is read-only and only unmapped on drop.
unsafe impl Send for DofMapping {}
unsafe impl Sync for DofMapping {}

impl DofMapping {
    pub fn new(dof: &[u8]) -> Result<DofMapping, HelperError> {
        if dof.is_empty() {
            return Err(HelperError::Map(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        let map_err = |_| HelperError::Map(io::Error::last_os_error());
        // rustix makes the system call itself: glibc before 2.27 has no
        // memfd_create to import (see the loader).
        let memfd = rustix::fs::memfd_create(
            "dynprobe-dof",
            rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| HelperError::Map(e.into()))?;
        let fd = memfd.as_raw_fd();
        let mut written = 0;
        while written < dof.len() {
            // SAFETY: the slice bounds are checked above.
            let n = unsafe { libc::write(fd, dof[written..].as_ptr().cast(), dof.len() - written) };
            if n <= 0 {
                return Err(map_err(()));
            }
            written += n as usize;
        }
        // Nobody can change the DOF under the helper: seal it.
        // SAFETY: plain fcntl on our descriptor.
        unsafe {
            libc::fcntl(
                fd,
                libc::F_ADD_SEALS,
                libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL,
            );
        }
        // SAFETY: a fresh read-only shared mapping of the whole file.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                dof.len(),
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(map_err(()));
        }
        Ok(DofMapping {
            addr,
            len: dof.len(),
            _memfd: memfd,
        })
    }

    pub fn addr(&self) -> u64 {
        self.addr as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for DofMapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe {
            libc::munmap(self.addr, self.len);
        }
    }
}

/// A provider registered with DTrace: removed when dropped (errors ignored;
/// [`Registration::remove`] reports them).
#[derive(Debug)]
pub struct Registration {
    helper: Helper,
    generation: Generation,
    _dof: DofMapping,
}

impl Registration {
    /// Registers `dof` for the object loaded at `base` under `module`, on
    /// the helper at [`device_path`]; `Ok(None)` when there is no helper.
    pub fn register(
        module: &str,
        base: u64,
        dof: &[u8],
    ) -> Result<Option<Registration>, HelperError> {
        let Some(helper) = Helper::open()? else {
            return Ok(None);
        };
        Registration::register_with(helper, module, base, dof).map(Some)
    }

    pub fn register_with(
        helper: Helper,
        module: &str,
        base: u64,
        dof: &[u8],
    ) -> Result<Registration, HelperError> {
        let mapping = DofMapping::new(dof)?;
        let generation = helper.add_dof(module, base, &mapping)?;
        Ok(Registration {
            helper,
            generation,
            _dof: mapping,
        })
    }

    pub fn generation(&self) -> Generation {
        self.generation
    }

    pub fn remove(self) -> Result<(), HelperError> {
        let this = std::mem::ManuallyDrop::new(self);
        let result = this.helper.remove(this.generation);
        // SAFETY: each field is read out once and never used again.
        unsafe {
            drop(std::ptr::read(&this.helper));
            drop(std::ptr::read(&this._dof));
        }
        result
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = self.helper.remove(self.generation);
    }
}

/// Why a registration did not happen.
#[derive(Debug)]
pub enum HelperError {
    Open {
        path: PathBuf,
        source: io::Error,
    },
    /// The path names something other than a character device (a file, a
    /// FIFO, a directory), which cannot be DTrace's helper.
    NotADevice {
        path: PathBuf,
    },
    /// The helper (its daemon) refused the request; on Linux `dtprobed`'s
    /// log says why.
    Refused {
        request: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// DTrace keeps module names within 63 bytes, without NUL bytes.
    BadModule(String),
    Map(io::Error),
}

impl fmt::Display for HelperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelperError::Open { path, source } => {
                write!(f, "cannot open DTrace's helper device {}: {source}", path.display())
            }
            HelperError::NotADevice { path } => write!(
                f,
                "{} is not DTrace's helper device: not a character device",
                path.display()
            ),
            HelperError::Refused { request, path, source } => write!(
                f,
                "DTrace's helper ({}) refused {request}: {source}{}",
                path.display(),
                if source.raw_os_error() == Some(libc::EINVAL) {
                    " (the helper daemon's log, e.g. dtprobed's, gives the reason)"
                } else {
                    ""
                }
            ),
            HelperError::BadModule(m) => write!(
                f,
                "module name {m:?} cannot be registered with DTrace: 1 to {DOF_MAX_MODULE_LEN} bytes, no NUL"
            ),
            HelperError::Map(e) => write!(f, "cannot map the DOF for DTrace's helper: {e}"),
        }
    }
}

impl std::error::Error for HelperError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HelperError::Open { source, .. } | HelperError::Refused { source, .. } => Some(source),
            HelperError::Map(e) => Some(e),
            HelperError::BadModule(_) | HelperError::NotADevice { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_dtraces() {
        assert_eq!(std::mem::size_of::<DofHelper>(), 80);
        assert_eq!(DTRACEHIOC_ADDDOF, 0x4050_d803);
        assert_eq!(DTRACEHIOC_REMOVE, 0x4004_d802);
        assert_eq!(DTRACEHIOC_HASUSDT, 0x4008_d804);
    }

    #[test]
    fn no_device_is_no_helper_and_no_error() {
        // A path that cannot exist: open() reports "no helper", not an error.
        let missing = Path::new("/nonexistent-dynprobe-test/helper");
        assert!(matches!(
            Helper::open_path(missing),
            Err(HelperError::Open { ref source, .. }) if source.raw_os_error() == Some(libc::ENOENT)
        ));
    }

    #[test]
    fn a_device_that_is_not_the_helper_refuses_with_a_reason() {
        // /dev/null opens but knows no DTrace ioctl: a Refused error, no crash.
        let helper = Helper::open_path(Path::new("/dev/null")).unwrap();
        let dof = DofMapping::new(&[0x7f, b'D', b'O', b'F']).unwrap();
        let err = helper.add_dof("m", 0, &dof).unwrap_err();
        assert!(
            matches!(
                err,
                HelperError::Refused {
                    request: "DTRACEHIOC_ADDDOF",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("refused DTRACEHIOC_ADDDOF"));
        assert!(matches!(
            helper.remove(Generation(0)),
            Err(HelperError::Refused { .. })
        ));
    }

    #[test]
    fn module_names_dtrace_cannot_hold_are_refused_before_any_ioctl() {
        let helper = Helper::open_path(Path::new("/dev/null")).unwrap();
        let dof = DofMapping::new(b"x").unwrap();
        for bad in ["", "a\0b", &"m".repeat(64)] {
            assert!(matches!(
                helper.add_dof(bad, 0, &dof),
                Err(HelperError::BadModule(_))
            ));
        }
    }

    #[test]
    fn the_dof_mapping_holds_the_bytes_read_only() {
        let bytes: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let m = DofMapping::new(&bytes).unwrap();
        // SAFETY: the mapping is live and `len` long.
        let seen = unsafe { std::slice::from_raw_parts(m.addr() as *const u8, m.len()) };
        assert_eq!(seen, &bytes[..]);
        assert!(DofMapping::new(&[]).is_err());
    }
}
