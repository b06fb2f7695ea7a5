//! Loaded providers and firing their probes.

use std::ffi::CStr;
use std::path::Path;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dynprobe_format::{build_image, ArgType, Image, ProviderDef, Target, MAX_ARGS, MAX_MODULE_LEN};

use crate::dtrace_helper::Registration;
use crate::loader::{self, Loaded};
use crate::site_watch::{self, Site, Watch};
use crate::{native_target, Error};

/// A provider mapped into this process: its probes are visible to tracers
/// until it is unloaded or dropped.
pub struct Provider {
    name: String,
    module: String,
    build_id: [u8; 20],
    probes: Vec<ProbeSite>,
    /// The semaphore slots, one u32 per probe (see [`Provider::semaphores`]).
    semaphores: *const u32,
    /// The three below are declared before `loaded`, so that dropping the
    /// provider takes its sites out of the watcher and its registration out
    /// of DTrace before the library is unmapped ([`Provider::unload`] does
    /// the same in the same order).
    watch: Option<Watch>,
    registration: Option<Registration>,
    dtrace: DtraceRegistration,
    loaded: Loaded,
}

// SAFETY: probe sites are immutable code and counters the kernel updates
// atomically; firing from any thread is a plain function call.
unsafe impl Send for Provider {}
unsafe impl Sync for Provider {}

struct ProbeSite {
    name: String,
    args: Vec<ArgType>,
    stub: usize,
    /// The probe's semaphore slot: the kernel's u16, then the watcher's.
    slot: *const u32,
    /// The site's first byte while no uprobe is there.
    idle: u8,
}

/// What became of registering a provider with DTrace's helper device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtraceRegistration {
    /// No helper device here (no DTrace with its helper daemon), or
    /// `$DTRACE_DOF_INIT_DISABLE` is set: nothing was tried.
    NoHelper,
    /// Registered: DTrace's provider globs and `-Z` see the probes, and
    /// [`Probe::is_enabled`] turns on under DTrace's probes too.
    Registered,
    /// The helper is there but the registration failed, for this reason
    /// (the DOF refused, the device not DTrace's, ...). The stapsdt probes
    /// work as before.
    Failed(String),
}

/// How tracers find a provider's library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage<'a> {
    /// A file in the cache directory, shared by every process that defines
    /// the same provider.
    File(&'a Path),
    /// A memfd, for when no exec-capable directory exists; the path is its
    /// `/proc/PID/fd/N` form.
    Memfd(&'a Path),
}

impl Provider {
    /// Generates, stores and maps the library for `def`.
    ///
    /// If this process already has a provider with the same name and module,
    /// the module gets a suffix (`-2`, `-3`, ...) so that the two stay
    /// distinct for tracers; [`Provider::module`] tells which it got.
    pub fn load(def: &ProviderDef) -> Result<Provider, Error> {
        if !cfg!(all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64")
        )) {
            return Err(Error::Unsupported(
                "loading providers on this platform (Linux x86-64 and aarch64 only)",
            ));
        }
        def.validate()?;
        let target = native_target();
        let mut def = def.clone();
        let base_module = def.module.clone();
        for instance in 1u32.. {
            if instance > 1 {
                def.module = numbered_module(&base_module, instance);
            }
            let image = image_for(&def, target)?;
            let Some(claim) = loader::claim_module(&def.name, &def.module, &image.build_id_hex())?
            else {
                continue;
            };
            let loaded = loader::load(claim, &def.module, &image.bytes)?;
            let at = |addr: u64| loaded.base + addr as usize;
            let probes = def
                .probes
                .iter()
                .zip(&image.probes)
                .map(|(probe, layout)| ProbeSite {
                    name: probe.name.clone(),
                    args: probe.args.clone(),
                    stub: at(layout.stub),
                    slot: at(layout.semaphore) as *const u32,
                    idle: image.bytes[layout.stub as usize],
                })
                .collect();
            let mut provider = Provider {
                name: def.name.clone(),
                module: def.module.clone(),
                build_id: image.build_id,
                probes,
                semaphores: at(image.semaphores) as *const u32,
                watch: None,
                registration: None,
                dtrace: DtraceRegistration::NoHelper,
                loaded,
            };
            provider.register_with_dtrace(&def, &image);
            return Ok(provider);
        }
        unreachable!("instance numbers run out")
    }

    /// Takes the provider out of DTrace (when registered) and unmaps the
    /// library. Dropping does the same, ignoring errors.
    pub fn unload(self) -> Result<(), Error> {
        let Provider {
            watch,
            registration,
            loaded,
            ..
        } = self;
        // Before the library goes: the watcher must not read its sites, and
        // DTrace must not look for probes in it.
        drop(watch);
        if let Some(registration) = registration {
            // DTrace forgets the probes with the process anyway; a helper
            // that refuses now has nothing the caller can act on.
            let _ = registration.remove();
        }
        loaded.close()
    }

    /// Registers the provider with DTrace's helper device where there is one
    /// (Oracle DTrace's `dtprobed` on Linux), and watches its sites so that
    /// `is_enabled()` sees DTrace's probes. Nothing happens without the
    /// device; a failure is kept in `self.dtrace`, and the stapsdt probes
    /// work as before.
    fn register_with_dtrace(&mut self, def: &ProviderDef, image: &Image) {
        use dynprobe_format::dof::{build_image_dof, DofFlavor};
        let helper = match crate::dtrace_helper::Helper::open() {
            Ok(Some(helper)) => helper,
            Ok(None) => return,
            Err(e) => {
                self.dtrace = DtraceRegistration::Failed(e.to_string());
                return;
            }
        };
        let registered = build_image_dof(def, image, DofFlavor::OracleLinux)
            .map_err(|e| format!("its DOF cannot be made: {e}"))
            .and_then(|dof| {
                Registration::register_with(helper, &def.module, self.loaded.base as u64, &dof)
                    .map_err(|e| e.to_string())
            })
            .and_then(|registration| {
                // A registration whose probes is_enabled() cannot see would
                // fire nothing under DTrace: both, or neither.
                let watch = self.start_watching().map_err(|e| {
                    format!("cannot start the thread that watches its probe sites: {e}")
                })?;
                Ok((registration, watch))
            });
        match registered {
            Ok((registration, watch)) => {
                self.watch = Some(watch);
                self.registration = Some(registration);
                self.dtrace = DtraceRegistration::Registered;
            }
            Err(reason) => self.dtrace = DtraceRegistration::Failed(reason),
        }
    }

    fn start_watching(&self) -> std::io::Result<Watch> {
        let sites = self
            .probes
            .iter()
            .map(|p| Site {
                byte: p.stub as *const u8,
                idle: p.idle,
                // SAFETY: the slot is 4 bytes, so its second u16 is in it.
                flag: unsafe { (p.slot as *const u16).add(1) }.cast(),
            })
            .collect();
        // SAFETY: the sites and flags stay mapped until `self.watch` is
        // dropped, which happens before the library is unmapped.
        unsafe { site_watch::watch(sites) }
    }

    /// What became of registering this provider with DTrace.
    pub fn dtrace_registration(&self) -> &DtraceRegistration {
        &self.dtrace
    }

    /// For tests: watches the probe sites as a registration does, without
    /// one, so that a plain uprobe at a site turns `is_enabled()` on. A
    /// registered provider is watched already. Only with the `test-hooks`
    /// feature, which only this crate's tests enable.
    #[cfg(feature = "test-hooks")]
    pub fn watch_sites_for_tests(&mut self) -> Result<(), Error> {
        if self.watch.is_none() {
            let watch = self
                .start_watching()
                .map_err(|e| Error::io("start the site watcher for", &self.loaded.path, e))?;
            self.watch = Some(watch);
        }
        Ok(())
    }

    /// For tests: whether this process has started the site watcher's
    /// thread. Only with the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub fn site_watcher_started() -> bool {
        site_watch::thread_started()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The module: the library's file name, DTrace's `probemod`.
    pub fn module(&self) -> &str {
        &self.module
    }

    pub fn build_id(&self) -> [u8; 20] {
        self.build_id
    }

    pub fn storage(&self) -> Storage<'_> {
        if self.loaded.is_memfd() {
            Storage::Memfd(&self.loaded.path)
        } else {
            Storage::File(&self.loaded.path)
        }
    }

    /// The library's path as tracers see it (`usdt:PATH:provider:probe`).
    pub fn path(&self) -> &Path {
        &self.loaded.path
    }

    pub fn probe(&self, name: &str) -> Option<Probe<'_>> {
        self.probes
            .iter()
            .position(|p| p.name == name)
            .and_then(|index| self.probe_at(index))
    }

    /// The probe at `index` in definition order.
    #[inline]
    pub fn probe_at(&self, index: usize) -> Option<Probe<'_>> {
        let site = self.probes.get(index)?;
        Some(Probe {
            site,
            slot: site.slot,
            index,
        })
    }

    pub fn probes(&self) -> impl Iterator<Item = Probe<'_>> {
        (0..self.probes.len()).filter_map(move |index| self.probe_at(index))
    }

    /// The semaphore slots of all probes, in probe order, as one block: a
    /// caller (the Node binding) can read them without a call. Each slot is
    /// a 4-aligned `u32`: the kernel's u16 semaphore (the address in the
    /// probe's stapsdt note), then a u16 flag that the site watcher sets
    /// while a tracer that knows no semaphore (DTrace's own registration)
    /// has a uprobe at the site. A probe is enabled when its slot, read as
    /// one `u32`, is not 0. Valid until the provider is unloaded; nothing
    /// but the kernel and the watcher may write it.
    pub fn semaphores(&self) -> (*const u32, usize) {
        (self.semaphores, self.probes.len())
    }
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("module", &self.module)
            .field("path", &self.loaded.path)
            .field(
                "probes",
                &self.probes.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .field("dtrace", &self.dtrace)
            .finish()
    }
}

/// The image for a definition, built once per process: loading the same
/// provider again (after `disable(); enable()`, say) skips the ELF writer.
fn image_for(def: &ProviderDef, target: Target) -> Result<Arc<Image>, Error> {
    type Cache = HashMap<(Target, ProviderDef), Arc<Image>>;
    static IMAGES: Mutex<Option<Cache>> = Mutex::new(None);
    let key = (target, def.clone());
    if let Some(image) = IMAGES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|c| c.get(&key))
    {
        return Ok(image.clone());
    }
    let image = Arc::new(build_image(def, target)?);
    let mut images = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    let images = images.get_or_insert_with(HashMap::new);
    // Bounded: a process that defines many providers rebuilds some.
    if images.len() >= 64 {
        images.clear();
    }
    images.insert(key, image.clone());
    Ok(image)
}

/// `module-N`, shortening `module` (at a character boundary) so that the
/// result stays within the module name limit.
fn numbered_module(module: &str, instance: u32) -> String {
    let suffix = format!("-{instance}");
    let mut end = module.len().min(MAX_MODULE_LEN - suffix.len());
    while !module.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &module[..end])
}

/// One probe of a loaded provider.
#[derive(Clone, Copy)]
pub struct Probe<'a> {
    site: &'a ProbeSite,
    /// A copy of the site's, so that checking it is one load.
    slot: *const u32,
    index: usize,
}

impl<'a> Probe<'a> {
    pub fn name(&self) -> &'a str {
        &self.site.name
    }

    pub fn args(&self) -> &'a [ArgType] {
        &self.site.args
    }

    /// Position among the provider's probes (and its semaphores).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether a tracer is attached: one load of the probe's semaphore
    /// slot, which is not 0 while the kernel's semaphore counts a tracer
    /// (a USDT probe made from the stapsdt note) or the site watcher's flag
    /// is set (a plain uprobe at the site, as DTrace's registered probes
    /// make, on a provider registered with DTrace).
    #[inline(always)]
    pub fn is_enabled(&self) -> bool {
        // SAFETY: the slot stays mapped while the provider lives, is
        // 4-aligned, and each of its halves is updated with single aligned
        // 16-bit writes.
        unsafe { std::ptr::read_volatile(self.slot) != 0 }
    }

    /// Address of the probe's 16-bit semaphore, the kernel's (the first
    /// half of its slot).
    pub fn semaphore(&self) -> *const u16 {
        self.site.slot as *const u16
    }

    /// Address of the probe site (its stub's first instruction) in this
    /// process: where a uprobe at the probe goes.
    pub fn site_address(&self) -> usize {
        self.site.stub
    }

    /// Address of the probe's 16-bit DTrace flag, the site watcher's (the
    /// second half of its slot): 1 while a uprobe is at the site of a
    /// watched provider.
    pub fn dtrace_flag(&self) -> *const u16 {
        // SAFETY: the slot is 4 bytes.
        unsafe { (self.site.slot as *const u16).add(1) }
    }

    /// Fires the probe if a tracer is attached; returns whether it fired.
    /// Missing arguments are 0 (a null pointer for strings); extra ones are
    /// ignored. Each value is passed as the C call would pass it: a tracer
    /// reads the size and sign the probe declares.
    #[inline]
    pub fn fire(&self, args: &[Arg<'_>]) -> bool {
        if !self.is_enabled() {
            return false;
        }
        self.fire_unchecked(args);
        true
    }

    /// Calls the probe site whether or not a tracer is attached.
    pub fn fire_unchecked(&self, args: &[Arg<'_>]) {
        let site = self.site;
        let mut values = [0u64; MAX_ARGS];
        for ((value, arg), ty) in values.iter_mut().zip(args).zip(&site.args) {
            *value = ty.normalize(arg.bits());
        }
        // SAFETY: the stub is a NOP and a return, mapped while `self` lives.
        unsafe { call_stub(site.stub, site.args.len(), &values[..site.args.len()]) }
    }

    /// What calling this probe's site takes, copied out of the provider.
    pub fn site_call(&self) -> SiteCall {
        let mut args = [ArgType::I64; MAX_ARGS];
        args[..self.site.args.len()].copy_from_slice(&self.site.args);
        SiteCall {
            stub: self.site.stub,
            arity: self.site.args.len() as u8,
            args,
        }
    }
}

/// What calling a probe's site takes (its stub and argument types, in one
/// place), copied out of a loaded provider: a binding keeps it beside its own
/// handle, so that a traced fire reads one small struct instead of following
/// the provider's pointers. It does not keep the provider loaded.
#[derive(Debug, Clone, Copy)]
pub struct SiteCall {
    stub: usize,
    arity: u8,
    args: [ArgType; MAX_ARGS],
}

impl SiteCall {
    #[inline]
    pub fn args(&self) -> &[ArgType] {
        &self.args[..usize::from(self.arity)]
    }

    /// Calls the site with `values` in their 64-bit register form (string
    /// pointers as addresses, integers as [`ArgType::normalize`] makes them);
    /// values missing from the slice are 0, extra ones are ignored.
    ///
    /// # Safety
    /// The provider this came from must still be loaded, and every string
    /// argument must point to NUL-terminated memory that stays valid for the
    /// call.
    #[inline(always)]
    pub unsafe fn call(&self, values: &[u64]) {
        // SAFETY: the caller vouches for the stub and the pointers.
        unsafe { call_stub(self.stub, usize::from(self.arity), values) }
    }
}

/// Registers the C calling convention passes arguments in.
#[cfg(target_arch = "aarch64")]
const REGISTER_ARGS: usize = 8;
#[cfg(not(target_arch = "aarch64"))]
const REGISTER_ARGS: usize = 6;

/// Calls a stub as C would, so that each argument is where the probe's note
/// says: in registers, and beyond those on the stack.
#[inline(always)]
unsafe fn call_stub(stub: usize, arity: usize, values: &[u64]) {
    type U = u64;
    let v = |i: usize| values.get(i).copied().unwrap_or(0);
    if arity <= REGISTER_ARGS {
        #[cfg(target_arch = "aarch64")]
        {
            let f: extern "C" fn(U, U, U, U, U, U, U, U) = unsafe { std::mem::transmute(stub) };
            f(v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7));
        }
        // The registers only, spelled out: through function pointers, LLVM
        // merged this call with the 32-argument one below and copied 26
        // values to the stack on every fire.
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the stub is a NOP and a return, and C's calling convention
        // is assumed of it: everything it may clobber is marked so.
        unsafe {
            std::arch::asm!(
                "call {stub}",
                stub = in(reg) stub,
                in("rdi") v(0), in("rsi") v(1), in("rdx") v(2), in("rcx") v(3), in("r8") v(4), in("r9") v(5),
                clobber_abi("C"),
            );
        }
        #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
        {
            let f: extern "C" fn(U, U, U, U, U, U) = unsafe { std::mem::transmute(stub) };
            f(v(0), v(1), v(2), v(3), v(4), v(5));
        }
    } else {
        #[rustfmt::skip]
        type AllArgs = extern "C" fn(U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
                                     U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U);
        let f: AllArgs = unsafe { std::mem::transmute(stub) };
        f(
            v(0),
            v(1),
            v(2),
            v(3),
            v(4),
            v(5),
            v(6),
            v(7),
            v(8),
            v(9),
            v(10),
            v(11),
            v(12),
            v(13),
            v(14),
            v(15),
            v(16),
            v(17),
            v(18),
            v(19),
            v(20),
            v(21),
            v(22),
            v(23),
            v(24),
            v(25),
            v(26),
            v(27),
            v(28),
            v(29),
            v(30),
            v(31),
        );
    }
}

/// One argument value for [`Probe::fire`].
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Int(i64),
    Uint(u64),
    Str(&'a CStr),
}

impl Arg<'_> {
    /// The 64-bit form the C calling convention would put in a register.
    #[inline(always)]
    pub fn bits(&self) -> u64 {
        match *self {
            Arg::Int(v) => v as u64,
            Arg::Uint(v) => v,
            Arg::Str(s) => s.as_ptr() as u64,
        }
    }
}

macro_rules! arg_from {
    ($variant:ident($wide:ty): $($t:ty),*) => {$(
        impl From<$t> for Arg<'_> {
            fn from(v: $t) -> Self {
                Arg::$variant(v as $wide)
            }
        }
    )*};
}
arg_from!(Int(i64): i8, i16, i32, i64, isize);
arg_from!(Uint(u64): u8, u16, u32, u64, usize);

impl<'a> From<&'a CStr> for Arg<'a> {
    fn from(s: &'a CStr) -> Self {
        Arg::Str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_modules_stay_within_the_limit() {
        assert_eq!(numbered_module("nodeapp", 2), "nodeapp-2");
        let long = "é".repeat(MAX_MODULE_LEN / 2);
        let numbered = numbered_module(&long, 12);
        assert!(numbered.len() <= MAX_MODULE_LEN && numbered.ends_with("-12"));
    }
}
