//! The watcher that makes `is_enabled()` see tracers that set no semaphore.
//!
//! DTrace's probes from a helper registration are plain uprobes: the kernel
//! counts them in no semaphore, so a check of the semaphore alone never turns
//! on under `dtrace -Z -n 'nodeapp*:::probe1'`. What every uprobe does change
//! is the probe site's first instruction byte (the NOP's becomes int3 0xcc, a
//! call 0xe8 once Linux 6.18 optimises it, or BRK on aarch64), and back on
//! detach. One background thread reads the site byte of every probe of every
//! watched provider every [`PERIOD`] and stores whether it differs from the
//! idle byte into the probe's flag, the second u16 of its semaphore slot. The
//! disabled check reads the whole slot (semaphore and flag) as one u32: still
//! one load.
//!
//! The thread exists only once something is watched, sleeps on a condition
//! variable while nothing is, and never keeps a process alive (Node exits
//! with it running). A provider is taken out of the set under the lock
//! before its library is unmapped, so the thread never reads a page that is
//! gone.
//!
//! A child made by `fork` (without exec) has no copy of the thread: there
//! the watched set starts empty and the flags of the providers it inherited
//! are 0 (DTrace does not know the child either: it is not registered
//! again), and the lock is never left held by a thread the child lacks.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How often the sites are read: the longest a DTrace enabling waits before
/// `is_enabled()` sees it (fires before that are not made). Each wake-up
/// costs what any timer's does (here about 35 us of CPU in a virtual
/// machine, a few on bare metal); DTrace itself takes over half a second to
/// take up a new process.
pub const PERIOD: Duration = Duration::from_millis(50);

const THREAD_NAME: &str = "dynprobe-sites";

/// One probe's site and flag.
pub(crate) struct Site {
    /// The probe site's first byte, in the library's text.
    pub byte: *const u8,
    /// What that byte is while no uprobe is there (the image's own byte).
    pub idle: u8,
    /// The probe's flag: the second u16 of its semaphore slot.
    pub flag: *const AtomicU16,
}

// SAFETY: the pointers name memory of a loaded library, which stays mapped
// while the provider is in the watched set (see `Watch`).
unsafe impl Send for Site {}

struct Watched {
    id: u64,
    sites: Box<[Site]>,
}

struct State {
    watched: Vec<Watched>,
    next_id: u64,
    thread_started: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    watched: Vec::new(),
    next_id: 0,
    thread_started: false,
});
static WAKE: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A provider's sites in the watched set; dropping it takes them out, under
/// the lock, so that once the drop returns the thread does not read them.
pub(crate) struct Watch {
    id: u64,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("id", &self.id).finish()
    }
}

/// Adds `sites` to the watched set, starting the thread on first use. Their
/// flags are current before this returns.
///
/// # Safety
/// Every pointer in `sites` must stay valid until the returned [`Watch`] is
/// dropped.
pub(crate) unsafe fn watch(sites: Vec<Site>) -> std::io::Result<Watch> {
    let mut state = lock();
    if !state.thread_started {
        register_fork_handlers();
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .stack_size(64 * 1024)
            .spawn(run)?;
        state.thread_started = true;
    }
    let id = state.next_id;
    state.next_id += 1;
    let sites = sites.into_boxed_slice();
    update(&sites);
    state.watched.push(Watched { id, sites });
    drop(state);
    WAKE.notify_all();
    Ok(Watch { id })
}

impl Drop for Watch {
    fn drop(&mut self) {
        lock().watched.retain(|w| w.id != self.id);
    }
}

/// Whether the watcher's thread has been started in this process (for
/// tests, through `Provider::site_watcher_started`).
#[cfg(feature = "test-hooks")]
pub(crate) fn thread_started() -> bool {
    lock().thread_started
}

fn run() {
    block_signals();
    let mut state = lock();
    loop {
        while state.watched.is_empty() {
            state = WAKE.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        for watched in &state.watched {
            update(&watched.sites);
        }
        // Sleeps with the lock released: unloading never waits for a period.
        state = WAKE
            .wait_timeout(state, PERIOD)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Sets each flag from its site byte. Called with the lock held.
fn update(sites: &[Site]) {
    for site in sites {
        // SAFETY: the caller holds the lock and the site is in (or entering)
        // the watched set, so its library is mapped. The kernel replaces the
        // byte in one write.
        let traced = unsafe { std::ptr::read_volatile(site.byte) } != site.idle;
        // SAFETY: as above; the flag is a 2-aligned u16 of the writable
        // segment that only this module writes.
        let flag = unsafe { &*site.flag };
        // A 16-bit store of its own half only (the kernel's semaphore, the
        // other half of the slot, is never written here), and only on a
        // change: a reader's cache line stays valid otherwise.
        if (flag.load(Ordering::Relaxed) != 0) != traced {
            flag.store(u16::from(traced), Ordering::Relaxed);
        }
    }
}

/// Signals sent to the process go to the application's threads, not here.
fn block_signals() {
    // SAFETY: a local signal set, filled, applied to this thread only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

/// The lock, held across a `fork` by the forking thread: the watcher is then
/// between two updates in the child, which gets the state unlocked.
static mut HELD_ACROSS_FORK: Option<MutexGuard<'static, State>> = None;

fn register_fork_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: handlers with C linkage that live as long as this code.
        // (glibc drops them if the object that holds this code is unloaded.)
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            )
        };
    });
}

extern "C" fn before_fork() {
    let guard = lock();
    // SAFETY: only the forking thread runs the fork handlers, one after the
    // other; nothing else touches the static.
    unsafe { *std::ptr::addr_of_mut!(HELD_ACROSS_FORK) = Some(guard) };
}

extern "C" fn after_fork_in_parent() {
    // SAFETY: as in before_fork.
    drop(unsafe { (*std::ptr::addr_of_mut!(HELD_ACROSS_FORK)).take() });
}

extern "C" fn after_fork_in_child() {
    // SAFETY: as in before_fork; the child has only the forking thread.
    let Some(mut state) = (unsafe { (*std::ptr::addr_of_mut!(HELD_ACROSS_FORK)).take() }) else {
        return;
    };
    // No watcher here: nothing would keep these flags current.
    for watched in state.watched.drain(..) {
        for site in watched.sites.iter() {
            // SAFETY: the libraries are mapped in the child as in the parent.
            unsafe { &*site.flag }.store(0, Ordering::Relaxed);
        }
    }
    state.thread_started = false;
}
