//! Which image this machine runs: its architecture and, on x86-64, the NOP
//! form the running kernel can turn from a trap into a cheaper call.

use std::sync::OnceLock;

use dynprobe_format::{SiteKind, Target};

/// The target for this process, detected once.
pub fn native_target() -> Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    *TARGET.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Target {
    let site = match std::env::var("DYNPROBE_SITE").as_deref() {
        Ok("nop5") => SiteKind::Nop5,
        Ok("nop10") => SiteKind::Nop10,
        _ => x86_site_from_kernel(),
    };
    Target::x86_64(site)
}

/// `uprobe` (syscall 336) may only be made from the kernel's trampoline. Made
/// from anywhere else it fails, and how it fails names the optimised form:
/// ENXIO on kernels that optimise nop5, EPROTO on those that optimise nop10.
/// Older kernels (ENOSYS) optimise neither; nop5 traps like any NOP there.
#[cfg(target_arch = "x86_64")]
fn x86_site_from_kernel() -> SiteKind {
    const SYS_UPROBE: libc::c_long = 336;
    // SAFETY: outside the trampoline the kernel rejects the call before doing anything.
    let ret = unsafe { libc::syscall(SYS_UPROBE) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    match (ret, errno) {
        (-1, Some(libc::EPROTO)) => SiteKind::Nop10,
        _ => SiteKind::Nop5,
    }
}

#[cfg(target_arch = "aarch64")]
fn detect() -> Target {
    Target::aarch64()
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect() -> Target {
    // Loading refuses early on these; images still need a target to name.
    Target::x86_64(SiteKind::Nop5)
}
