//! Loading providers from the cache directory; no tracer needed.
//!
//! The cache location is chosen once per process, so each test runs its body
//! in a child process with a `DYNPROBE_DIR` of its own (see `common`).

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::*;
use dynprobe::{Arg, ArgType, Error, Provider, ProviderDef, Storage, MAX_ARGS};

fn nodeapp() -> ProviderDef {
    simple_def("nodeapp", "nodeapp", 3)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// The inode this process maps `path` from; every mapping of it must agree.
fn mapped_inode(path: &Path) -> u64 {
    let maps = mappings_of(path);
    assert!(!maps.is_empty(), "{} is not mapped", path.display());
    assert!(maps.iter().any(|m| m.perms.contains('x')), "{maps:?}");
    assert!(maps.iter().all(|m| m.inode == maps[0].inode), "{maps:?}");
    maps[0].inode
}

/// In a child: loads `def` and reports where it went.
fn load_and_report(def: &ProviderDef) -> Provider {
    let provider = Provider::load(def).unwrap();
    assert!(matches!(provider.storage(), Storage::File(_)));
    report("module", provider.module());
    report("build_id", hex(&provider.build_id()));
    report("inode", mapped_inode(provider.path()));
    report("path", provider.path().display());
    provider
}

/// Calls every probe's site with complete, missing and surplus arguments.
fn fire_all_unchecked(provider: &Provider) {
    for probe in provider.probes() {
        let values = ArgValues::new(probe.args());
        let args = values.args();
        probe.fire_unchecked(&args);
        probe.fire_unchecked(&[]);
        probe.fire_unchecked(&args[..args.len() / 2]);
        let surplus: Vec<Arg> = args.iter().copied().chain([Arg::Int(-1); 40]).collect();
        probe.fire_unchecked(&surplus);
        let site = probe.site_call();
        assert_eq!(site.args(), probe.args());
        // SAFETY: the provider is loaded; every string argument is a null
        // pointer, which a probe site never reads.
        unsafe { site.call(&[0; MAX_ARGS]) };
        unsafe { site.call(&[]) };
    }
}

#[test]
fn probes_are_present_disabled_and_callable() {
    const TEST: &str = "probes_are_present_disabled_and_callable";
    if role().is_none() {
        let dir = TempDir::new("fire");
        run_child(TEST, "child", &dir.join("cache"));
        return;
    }
    // No arguments; all in registers; the first on the stack; the most a
    // libbpf tracer reads; the most there can be.
    const ARITIES: [usize; 5] = [0, 6, 7, 12, 32];
    let def = arity_def("arity", &ARITIES);
    let provider = Provider::load(&def).unwrap();
    assert_eq!((provider.name(), provider.module()), ("arity", "arity"));
    assert!(provider.probe("missing").is_none());

    let (first, count) = provider.semaphores();
    assert_eq!(count, ARITIES.len());
    // SAFETY: the block stays mapped while the provider lives.
    let block = unsafe { std::slice::from_raw_parts(first, count) };
    assert_eq!(block, vec![0u32; count]);
    assert_eq!(first as usize % 4, 0, "semaphore slots are 4-aligned");

    for (i, (probe, probe_def)) in provider.probes().zip(&def.probes).enumerate() {
        assert_eq!(provider.probe(&probe_def.name).unwrap().index(), i);
        assert_eq!(
            (probe.name(), probe.args()),
            (&*probe_def.name, &*probe_def.args)
        );
        // The slot: the kernel's semaphore, the site watcher's byte, the
        // subscriber byte (which is no tracer).
        assert_eq!(probe.semaphore(), &block[i] as *const u32 as *const u16);
        assert_eq!(
            probe.dtrace_flag(),
            (probe.semaphore() as *const u8).wrapping_add(dynprobe::SLOT_WATCHER_BYTE)
        );
        assert!(!probe.is_enabled());
        let subscriber =
            (probe.semaphore() as *mut u8).wrapping_add(dynprobe::SLOT_SUBSCRIBER_BYTE);
        // SAFETY: the slot is in the provider's writable segment, mapped.
        unsafe { subscriber.write_volatile(1) };
        assert!(!probe.is_enabled(), "the subscriber byte is not a tracer");
        // SAFETY: as above.
        unsafe { subscriber.write_volatile(0) };
        let values = ArgValues::new(probe.args());
        assert!(
            !probe.fire(&values.args()),
            "fired {} untraced",
            probe.name()
        );
    }
    fire_all_unchecked(&provider);
    provider.unload().unwrap();
}

#[test]
fn library_file_is_shared_by_processes_and_never_rewritten() {
    const TEST: &str = "library_file_is_shared_by_processes_and_never_rewritten";
    if role().is_some() {
        let provider = load_and_report(&nodeapp());
        wait_for_parent();
        provider.unload().unwrap();
        return;
    }
    let dir = TempDir::new("shared");
    let cache = dir.join("cache");

    let mut first = LiveChild::spawn(child_command(TEST, "holder", &cache));
    let path = PathBuf::from(first.expect("path"));
    let build_id = first.report().get("build_id").to_string();
    assert_eq!(first.report().get("module"), "nodeapp");
    assert_eq!(path, cache.join(&build_id).join("nodeapp"));
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&cache.join(&build_id)), 0o700);
    assert_eq!(
        entries(&cache.join(&build_id)),
        ["nodeapp"],
        "temp files left"
    );
    let meta = fs::symlink_metadata(&path).unwrap();
    assert!(meta.is_file());
    assert_eq!(
        meta.mode() & 0o222,
        0,
        "library is writable: {:o}",
        meta.mode()
    );
    assert_eq!(first.report().parse::<u64>("inode"), meta.ino());

    // A second process, while the first still maps it.
    let mut second = LiveChild::spawn(child_command(TEST, "holder", &cache));
    assert_eq!(PathBuf::from(second.expect("path")), path);
    assert_eq!(second.report().parse::<u64>("inode"), meta.ino());
    for pid in [first.pid(), second.pid()] {
        let maps = mappings_of_pid(&pid.to_string());
        let ours: Vec<_> = maps.iter().filter(|m| Path::new(&m.path) == path).collect();
        assert!(
            !ours.is_empty() && ours.iter().all(|m| m.inode == meta.ino()),
            "{ours:?}"
        );
    }
    second.finish();
    first.finish();

    // A third, after both are gone.
    let third = run_child(TEST, "holder", &cache);
    assert_eq!(third.parse::<u64>("inode"), meta.ino());
    let after = fs::symlink_metadata(&path).unwrap();
    assert_eq!(
        (
            after.ino(),
            after.mtime(),
            after.mtime_nsec(),
            after.ctime_nsec()
        ),
        (
            meta.ino(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime_nsec()
        ),
        "the library was rewritten"
    );
}

/// Puts `bytes` at `path` as a new file (a new inode); returns its inode.
fn plant(path: &Path, bytes: &[u8]) -> u64 {
    let staging = path.with_extension("planted");
    fs::write(&staging, bytes).unwrap();
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o500)).unwrap();
    fs::rename(&staging, path).unwrap();
    fs::metadata(path).unwrap().ino()
}

#[test]
fn a_corrupted_library_is_replaced() {
    const TEST: &str = "a_corrupted_library_is_replaced";
    if role().is_some() {
        let provider = load_and_report(&nodeapp());
        fire_all_unchecked(&provider);
        return;
    }
    let dir = TempDir::new("corrupt");
    let cache = dir.join("cache");
    let path = run_child(TEST, "loader", &cache).path("path");
    let good = fs::read(&path).unwrap();

    type Corruption = fn(&mut Vec<u8>);
    let corruptions: [(&str, Corruption); 4] = [
        ("emptied", |b| b.clear()),
        ("truncated", |b| b.truncate(b.len() / 2)),
        ("stub byte flipped", |b| b[0x1000] ^= 0xff),
        ("last byte flipped", |b| *b.last_mut().unwrap() ^= 0xff),
    ];
    for (what, corrupt) in corruptions {
        let mut bad = good.clone();
        corrupt(&mut bad);
        let bad_inode = plant(&path, &bad);
        let report = run_child(TEST, "loader", &cache);
        assert_eq!(report.path("path"), path, "{what}");
        let meta = fs::metadata(&path).unwrap();
        assert_ne!(meta.ino(), bad_inode, "{what}: the bad file stayed");
        assert_eq!(report.parse::<u64>("inode"), meta.ino(), "{what}");
        assert!(fs::read(&path).unwrap() == good, "{what}: wrong bytes");
        assert_eq!(meta.mode() & 0o222, 0, "{what}");
        assert_eq!(entries(path.parent().unwrap()), ["nodeapp"], "{what}");
    }
}

#[test]
fn the_same_definition_twice_in_one_process_gets_two_modules() {
    const TEST: &str = "the_same_definition_twice_in_one_process_gets_two_modules";
    if role().is_none() {
        let dir = TempDir::new("twice");
        run_child(TEST, "child", &dir.join("cache"));
        return;
    }
    let def = nodeapp();
    let first = Provider::load(&def).unwrap();
    let second = Provider::load(&def).unwrap();
    assert_eq!((first.module(), second.module()), ("nodeapp", "nodeapp-2"));
    assert_eq!(second.name(), "nodeapp");
    assert_ne!(first.path(), second.path());
    assert_ne!(first.build_id(), second.build_id());
    assert_eq!(second.path().file_name().unwrap(), "nodeapp-2");
    assert_ne!(mapped_inode(first.path()), mapped_inode(second.path()));

    let first_path = first.path().to_path_buf();
    first.unload().unwrap();
    let third = Provider::load(&def).unwrap();
    assert_eq!(third.module(), "nodeapp");
    assert_eq!(third.path(), first_path);
    let fourth = Provider::load(&def).unwrap();
    assert_eq!(fourth.module(), "nodeapp-3");
    for provider in [&second, &third, &fourth] {
        fire_all_unchecked(provider);
    }
}

#[test]
fn unsafe_directories_are_refused() {
    const TEST: &str = "unsafe_directories_are_refused";
    if role().is_some() {
        let dir = PathBuf::from(std::env::var_os("DYNPROBE_DIR").unwrap());
        match Provider::load(&nodeapp()) {
            Err(Error::UnsafeDirectory { path, reason }) => {
                assert_eq!(path, dir);
                report("reason", reason);
            }
            other => panic!("{}: expected UnsafeDirectory, got {other:?}", dir.display()),
        }
        return;
    }
    let dir = TempDir::new("unsafe");
    let make_dir = |name: &str, mode: u32| {
        let path = dir.join(name);
        fs::create_dir(&path).unwrap();
        // set_permissions, unlike mkdir, is not subject to the umask.
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let private = make_dir("private", 0o700);
    let link = dir.join("link-to-private");
    std::os::unix::fs::symlink(&private, &link).unwrap();
    let file = dir.join("file");
    fs::write(&file, b"").unwrap();
    let mut cases = vec![
        make_dir("world-writable", 0o777),
        make_dir("group-writable", 0o770),
        link,
        file,
    ];
    if is_root() {
        let theirs = make_dir("theirs", 0o700);
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        cases.push(theirs);
    } else {
        skip(
            TEST,
            "the case of a directory owned by another user needs root (chown)",
        );
    }
    for case in &cases {
        let reason = run_child(TEST, "refused", case).get("reason").to_string();
        eprintln!("{}: refused: {reason}", case.display());
        if case.is_dir() {
            assert!(entries(case).is_empty(), "{}: written to", case.display());
        }
    }
    assert!(entries(&private).is_empty(), "written through the symlink");
}

/// A small tmpfs mounted `noexec`, unmounted when dropped.
struct NoexecMount(PathBuf);

impl NoexecMount {
    fn new(path: PathBuf) -> NoexecMount {
        fs::create_dir(&path).unwrap();
        let c = |s: &[u8]| CString::new(s).unwrap();
        let target = c(path.as_os_str().as_bytes());
        let (fstype, options) = (c(b"tmpfs"), c(b"size=1m,mode=0700"));
        let flags = libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV;
        // SAFETY: all strings are NUL-terminated and outlive the call.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                flags,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        NoexecMount(path)
    }
}

impl Drop for NoexecMount {
    fn drop(&mut self) {
        let target = CString::new(self.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: target is NUL-terminated.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn memfd_mappings(module: &str) -> Vec<Mapping> {
    let prefix = format!("/memfd:{module} ");
    mappings()
        .into_iter()
        .filter(|m| m.path.starts_with(&prefix))
        .collect()
}

#[test]
fn a_noexec_directory_falls_back_to_memfd() {
    const TEST: &str = "a_noexec_directory_falls_back_to_memfd";
    if role().is_some() {
        let before = Usage::now();
        let provider = Provider::load(&nodeapp()).unwrap();
        let Storage::Memfd(path) = provider.storage() else {
            panic!("expected a memfd, got {:?}", provider.storage());
        };
        let fd = path
            .strip_prefix(format!("/proc/{}/fd", std::process::id()))
            .unwrap_or_else(|_| panic!("{}", path.display()));
        assert!(
            fd.to_str().unwrap().parse::<u32>().is_ok(),
            "{}",
            path.display()
        );
        let target = fs::read_link(path).unwrap();
        assert!(
            target.as_os_str().as_bytes().starts_with(b"/memfd:nodeapp"),
            "{target:?}"
        );

        let maps = memfd_mappings("nodeapp");
        assert!(maps.iter().any(|m| m.perms.contains('x')), "{maps:?}");
        let inode = fs::metadata(path).unwrap().ino();
        assert!(maps.iter().all(|m| m.inode == inode), "{maps:?}");
        fire_all_unchecked(&provider);
        report("path", path.display());

        provider.unload().unwrap();
        assert!(memfd_mappings("nodeapp").is_empty());
        let after = Usage::now();
        assert_eq!((after.fds, after.maps), (before.fds, before.maps));
        return;
    }
    if !is_root() {
        return skip(TEST, "mounting a noexec tmpfs needs root");
    }
    let dir = TempDir::new("noexec");
    let mount = NoexecMount::new(dir.join("mnt"));
    let cache = mount.0.join("cache");
    let report = run_child(TEST, "memfd", &cache);
    eprintln!("memfd library seen as {}", report.get("path"));
    assert!(entries(&cache).is_empty(), "wrote {:?}", entries(&cache));
}

#[test]
fn invalid_definitions_write_nothing() {
    const TEST: &str = "invalid_definitions_write_nothing";
    if role().is_none() {
        let dir = TempDir::new("invalid");
        let cache = dir.join("cache");
        run_child(TEST, "child", &cache);
        assert!(!cache.exists(), "the cache directory was created");
        return;
    }
    let with = |change: fn(&mut ProviderDef)| {
        let mut def = nodeapp();
        change(&mut def);
        def
    };
    let cases = [
        ("no probes", with(|d| d.probes.clear())),
        ("empty provider", with(|d| d.name.clear())),
        ("space in provider", with(|d| d.name = "node app".into())),
        ("long provider", with(|d| d.name = "p".repeat(55))),
        ("slash in module", with(|d| d.module = "a/b".into())),
        ("module ..", with(|d| d.module = "..".into())),
        ("long module", with(|d| d.module = "m".repeat(129))),
        ("NUL in probe", with(|d| d.probes[0].name = "a\0b".into())),
        ("tab in probe", with(|d| d.probes[0].name = "a\tb".into())),
        ("long probe", with(|d| d.probes[0].name = "p".repeat(65))),
        (
            "duplicate probe",
            with(|d| d.probes.push(d.probes[0].clone())),
        ),
        (
            "33 arguments",
            with(|d| d.probes[1].args = vec![ArgType::I32; 33]),
        ),
    ];
    for (what, def) in cases {
        match Provider::load(&def) {
            Err(Error::Definition(e)) => eprintln!("{what}: {e}"),
            other => panic!("{what}: expected a definition error, got {other:?}"),
        }
    }
}

#[test]
fn unloading_releases_the_mapping_and_descriptors() {
    const TEST: &str = "unloading_releases_the_mapping_and_descriptors";
    if role().is_none() {
        let dir = TempDir::new("unload");
        run_child(TEST, "child", &dir.join("cache"));
        return;
    }
    let unload = |p: Provider| p.unload().unwrap();
    for (how, release) in [("unload", unload as fn(Provider)), ("drop", drop)] {
        let before = Usage::now();
        let provider = Provider::load(&nodeapp()).unwrap();
        let path = provider.path().to_path_buf();
        mapped_inode(&path);
        release(provider);
        assert!(mappings_of(&path).is_empty(), "{how}: still mapped");
        let after = Usage::now();
        assert_eq!((after.fds, after.maps), (before.fds, before.maps), "{how}");
    }
}

/// Load/unload cycles for the leak check (about 4 s in release builds, 11 s
/// in debug ones); `DYNPROBE_LEAK_CYCLES` overrides.
fn leak_cycles() -> u32 {
    std::env::var("DYNPROBE_LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

#[test]
fn load_unload_cycles_leak_nothing() {
    const TEST: &str = "load_unload_cycles_leak_nothing";
    if role().is_none() {
        let dir = TempDir::new("leak");
        run_child(TEST, "child", &dir.join("cache"));
        return;
    }
    let def = simple_def("leaky", "leaky", 10);
    let cycle = || {
        let provider = Provider::load(&def).unwrap();
        provider
            .probe("p9")
            .unwrap()
            .fire_unchecked(&[Arg::from(1i64)]);
        provider.unload().unwrap();
    };
    // Let the allocator and the dynamic linker reach their steady state.
    for _ in 0..1000 {
        cycle();
    }
    let cycles = leak_cycles();
    let before = Usage::now();
    let start = Instant::now();
    for _ in 0..cycles {
        cycle();
    }
    let elapsed = start.elapsed();
    let after = Usage::now();
    eprintln!(
        "{cycles} load/unload cycles in {:.2?} ({:.1} us each)\n  before: {before}\n  after:  {after}",
        elapsed,
        elapsed.as_secs_f64() * 1e6 / f64::from(cycles)
    );
    assert!(
        after.rss < before.rss + (2 << 20),
        "RSS grew by more than 2 MiB"
    );
    assert_eq!(after.fds, before.fds, "descriptors leaked");
    assert_eq!(after.maps, before.maps, "mappings leaked");
}
