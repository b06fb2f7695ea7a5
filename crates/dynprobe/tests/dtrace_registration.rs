//! Registering providers with DTrace's helper device, where there is none or
//! where `$DTRACE_DOF_INIT_DEVNAME` names something that is not the helper:
//! real files, FIFOs and devices, whose real ioctl and open failures must
//! leave `Provider::load` working, the stapsdt probes unchanged and the
//! reason in `Provider::dtrace_registration`. (The registration that works
//! is tested against Oracle DTrace's dtprobed in the DTrace VM.)

mod common;

use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use dynprobe::{DtraceRegistration, Provider};

const DEVICE_VAR: &str = "DTRACE_DOF_INIT_DEVNAME";
const DISABLE_VAR: &str = "DTRACE_DOF_INIT_DISABLE";

/// Threads of this process named as the site watcher's.
fn watcher_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == "dynprobe-sites")
        })
        .count()
}

/// In a child whose environment the parent set: loads two providers, checks
/// they work as without DTrace, and reports what became of the registration
/// and how long loading took.
fn load_and_report() {
    let started = Instant::now();
    let provider = Provider::load(&simple_def("regprov", "regprov", 2)).unwrap();
    let other = Provider::load(&simple_def("regprov2", "regprov2", 1)).unwrap();
    report("load_ms", started.elapsed().as_millis());
    let registration = provider.dtrace_registration().clone();
    assert_eq!(other.dtrace_registration(), &registration);
    // The stapsdt probes are as they are without DTrace: loaded, untraced.
    for probe in provider.probes().chain(other.probes()) {
        assert!(!probe.is_enabled());
        assert!(!probe.fire(&[]));
        // SAFETY: the slot is mapped while the provider is loaded.
        assert_eq!(unsafe { probe.dtrace_flag().read_volatile() }, 0);
    }
    assert!(!mappings_of(provider.path()).is_empty());
    // Nothing registered, nothing watched: no thread either.
    report("watcher_threads", watcher_threads());
    report("watcher_started", Provider::site_watcher_started());
    match registration {
        DtraceRegistration::NoHelper => report("registration", "none"),
        DtraceRegistration::Registered => report("registration", "registered"),
        DtraceRegistration::Failed(reason) => {
            assert!(!reason.contains('\n'), "{reason:?}");
            report("registration", "failed");
            report("reason", reason);
        }
    }
    let path = provider.path().to_path_buf();
    provider.unload().unwrap();
    other.unload().unwrap();
    assert!(mappings_of(&path).is_empty(), "unloaded");
}

/// Runs [`load_and_report`] in a child of `test` with `env` set.
fn child_with(test: &str, env: &[(&str, &Path)]) -> Report {
    let dir = TempDir::new("dtrace-reg");
    let mut cmd = child_command(test, "load", &dir.join("cache"));
    cmd.env_remove(DEVICE_VAR).env_remove(DISABLE_VAR);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(cmd.output()));
    // A child that hangs (on a FIFO, say) fails the test instead of hanging it.
    let output = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child hung: loading must never wait for the helper")
        .expect("spawn child");
    finish_output(output)
}

fn assert_nothing_registered(r: &Report) {
    assert_eq!(r.get("registration"), "none");
    assert_eq!(r.get("watcher_threads"), "0");
    assert_eq!(r.get("watcher_started"), "false");
}

fn assert_refused(r: &Report, reason_has: &[&str]) {
    assert_eq!(r.get("registration"), "failed");
    let reason = r.get("reason");
    for part in reason_has {
        assert!(reason.contains(part), "reason {reason:?} lacks {part:?}");
    }
    assert_eq!(r.get("watcher_threads"), "0");
    assert_eq!(r.get("watcher_started"), "false");
}

#[test]
fn no_helper_device_is_no_registration_and_no_change() {
    const TEST: &str = "no_helper_device_is_no_registration_and_no_change";
    if role().is_some() {
        return load_and_report();
    }
    let missing = Path::new("/nonexistent-dynprobe-test/helper");
    assert_nothing_registered(&child_with(TEST, &[(DEVICE_VAR, missing)]));
    // A path through a regular file (ENOTDIR) names no device either.
    let dir = TempDir::new("dtrace-reg-notdir");
    std::fs::write(dir.join("file"), b"").unwrap();
    let through_file = dir.join("file").join("helper");
    assert_nothing_registered(&child_with(TEST, &[(DEVICE_VAR, &through_file)]));
    // The default path, where this machine has no DTrace helper.
    if Path::new(dynprobe::dtrace_helper::DEFAULT_DEVICE).exists() {
        skip(
            TEST,
            "this machine has DTrace's helper device: the default case is not 'none'",
        );
    } else {
        assert_nothing_registered(&child_with(TEST, &[]));
    }
}

#[test]
fn a_device_that_is_not_the_helper_is_a_reason_and_loading_goes_on() {
    const TEST: &str = "a_device_that_is_not_the_helper_is_a_reason_and_loading_goes_on";
    if role().is_some() {
        return load_and_report();
    }
    // /dev/null opens, and refuses DTrace's ioctl as the kernel does any it
    // does not know.
    let r = child_with(TEST, &[(DEVICE_VAR, Path::new("/dev/null"))]);
    let enotty = std::io::Error::from_raw_os_error(libc::ENOTTY).to_string();
    assert_refused(&r, &["/dev/null", "refused DTRACEHIOC_ADDDOF", &enotty]);
}

#[test]
fn a_file_fifo_or_directory_as_the_helper_is_refused_without_waiting() {
    const TEST: &str = "a_file_fifo_or_directory_as_the_helper_is_refused_without_waiting";
    if role().is_some() {
        return load_and_report();
    }
    let dir = TempDir::new("dtrace-reg-nodev");
    let file = dir.join("file");
    std::fs::write(&file, b"\x7fDOF").unwrap();
    let fifo = dir.join("fifo");
    let c = CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    for path in [&file, &fifo, dir.path()] {
        let r = child_with(TEST, &[(DEVICE_VAR, path)]);
        assert_refused(&r, &[&path.display().to_string(), "not a character device"]);
        // A FIFO with no writer would block an open() without O_NONBLOCK
        // for good; with it, loading is as fast as ever.
        let ms: u64 = r.parse("load_ms");
        assert!(ms < 30_000, "{}: loading took {ms} ms", path.display());
    }
    // Nothing was written into the file.
    assert_eq!(std::fs::read(&file).unwrap(), b"\x7fDOF");
}

#[test]
fn dtrace_dof_init_disable_turns_registration_off() {
    const TEST: &str = "dtrace_dof_init_disable_turns_registration_off";
    if role().is_some() {
        return load_and_report();
    }
    // As for DTrace's own runtime: set, nothing is tried, not even on a
    // device that would refuse.
    let r = child_with(
        TEST,
        &[
            (DEVICE_VAR, Path::new("/dev/null")),
            (DISABLE_VAR, Path::new("1")),
        ],
    );
    assert_nothing_registered(&r);
}

/// The site watcher's thread: its task directory in /proc/self/task.
fn watcher_task() -> Option<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|t| t.unwrap().path())
        .find(|t| {
            std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "dynprobe-sites")
        })
}

/// How many times `task` has gone to sleep of its own accord so far.
fn voluntary_switches(task: &Path) -> u64 {
    let status = std::fs::read_to_string(task.join("status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_site_watcher_starts_once_and_sleeps_while_nothing_is_watched() {
    const TEST: &str = "the_site_watcher_starts_once_and_sleeps_while_nothing_is_watched";
    if role().is_some() {
        let mut provider = Provider::load(&simple_def("watchprov", "watchprov", 3)).unwrap();
        assert!(
            watcher_task().is_none(),
            "no thread before anything is watched"
        );
        provider.watch_sites_for_tests().unwrap();
        // (A thread names itself once it runs.)
        wait_until(Duration::from_secs(5), || watcher_task().is_some());
        let task = watcher_task().expect("the watcher's thread");
        // Watching: it wakes every period.
        let before = voluntary_switches(&task);
        std::thread::sleep(Duration::from_millis(500));
        report("switches_watching", voluntary_switches(&task) - before);
        // Untraced, the flags stay 0.
        assert!(provider.probes().all(|p| !p.is_enabled()));
        provider.unload().unwrap();
        // Nothing watched: it waits on its condition variable, and wakes for
        // nothing.
        std::thread::sleep(Duration::from_millis(100));
        let before = voluntary_switches(&task);
        std::thread::sleep(Duration::from_millis(500));
        report("switches_idle", voluntary_switches(&task) - before);
        // Watching again reuses it.
        let mut again = Provider::load(&simple_def("watchprov", "watchprov", 3)).unwrap();
        again.watch_sites_for_tests().unwrap();
        report("watcher_threads", watcher_threads());
        again.unload().unwrap();
        return;
    }
    let dir = TempDir::new("watch-idle");
    let r = run_child(TEST, "watch", &dir.join("cache"));
    let watching: u64 = r.parse("switches_watching");
    assert!(
        watching >= 2,
        "the watcher woke {watching} times in 500 ms of watching"
    );
    assert_eq!(
        r.get("switches_idle"),
        "0",
        "the watcher woke with nothing to watch"
    );
    assert_eq!(r.get("watcher_threads"), "1");
}

#[test]
fn watched_providers_unload_while_the_watcher_reads_their_sites() {
    const TEST: &str = "watched_providers_unload_while_the_watcher_reads_their_sites";
    const ROUNDS: usize = 300;
    if role().is_some() {
        // Each unload unmaps a library the watcher was reading: were it read
        // after the unmap, the process would die of SIGSEGV.
        let mut kept = Provider::load(&simple_def("keptprov", "keptprov", 64)).unwrap();
        kept.watch_sites_for_tests().unwrap();
        for round in 0..ROUNDS {
            let mut provider = Provider::load(&simple_def("churnprov", "churnprov", 64)).unwrap();
            provider.watch_sites_for_tests().unwrap();
            let path = provider.path().to_path_buf();
            std::thread::sleep(Duration::from_micros((round % 7) as u64 * 500));
            provider.unload().unwrap();
            assert!(mappings_of(&path).is_empty(), "round {round}: still mapped");
        }
        report("rounds", ROUNDS);
        assert!(kept.probes().all(|p| !p.is_enabled()));
        drop(kept); // dropping, not unload(): the same order
        report("watcher_threads", watcher_threads());
        return;
    }
    let dir = TempDir::new("watch-churn");
    let r = run_child(TEST, "churn", &dir.join("cache"));
    assert_eq!(r.parse::<usize>("rounds"), ROUNDS);
    assert_eq!(r.get("watcher_threads"), "1");
}

/// CPU time this process has used, user and system.
fn cpu_time() -> Duration {
    // SAFETY: a struct to fill; RUSAGE_SELF cannot fail.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A measurement, not a check (run it with `--ignored --nocapture`): the CPU
/// an idle process spends on watching its sites, over 10 s each for no
/// provider watched, one of 8 probes, and one of 1000 probes.
#[test]
#[ignore = "a 30 s measurement"]
fn measure_the_site_watchers_idle_cost() {
    const TEST: &str = "measure_the_site_watchers_idle_cost";
    const SPAN: Duration = Duration::from_secs(10);
    if role().is_some() {
        let idle = |label: &str| {
            let before = cpu_time();
            std::thread::sleep(SPAN);
            let used = cpu_time() - before;
            report(
                label,
                format!(
                    "{:.0} us CPU per second ({:.4} % of a core)",
                    used.as_secs_f64() * 1e6 / SPAN.as_secs_f64(),
                    used.as_secs_f64() * 100.0 / SPAN.as_secs_f64()
                ),
            );
        };
        idle("nothing_watched");
        let mut small = Provider::load(&simple_def("idleprov", "idleprov", 8)).unwrap();
        small.watch_sites_for_tests().unwrap();
        idle("watching_8_probes");
        small.unload().unwrap();
        let mut large = Provider::load(&simple_def("idlebig", "idlebig", 1000)).unwrap();
        large.watch_sites_for_tests().unwrap();
        idle("watching_1000_probes");
        return;
    }
    let dir = TempDir::new("watch-cost");
    // (The child runs this ignored test too.)
    let r = finish_output(
        child_command(TEST, "cost", &dir.join("cache"))
            .arg("--ignored")
            .output()
            .unwrap(),
    );
    for key in [
        "nothing_watched",
        "watching_8_probes",
        "watching_1000_probes",
    ] {
        eprintln!("site watcher, idle process, {key}: {}", r.get(key));
    }
}

#[test]
fn a_forked_child_inherits_no_watcher_and_can_watch_again() {
    const TEST: &str = "a_forked_child_inherits_no_watcher_and_can_watch_again";
    const FORKS: usize = 50;
    if role().is_some() {
        let mut provider = Provider::load(&simple_def("forkprov", "forkprov", 1000)).unwrap();
        provider.watch_sites_for_tests().unwrap();
        let flag = provider.probe_at(0).unwrap().dtrace_flag() as *mut u8;
        let mut children = Vec::new();
        for round in 0..FORKS {
            // A flag left on, as if a uprobe had been there: the child, with
            // no watcher to clear it, must not inherit it.
            // SAFETY: the flag is in the provider's writable segment.
            unsafe { flag.write_volatile(1) };
            // SAFETY: the child only uses this process's own state, then _exits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork");
            if pid == 0 {
                let inherited_on = provider.probe_at(0).unwrap().is_enabled();
                // Loading and watching work in the child (a new thread), and
                // unloading never waits for a lock the parent's thread held.
                let mut fresh = Provider::load(&simple_def("forkprov2", "forkprov2", 2)).unwrap();
                fresh.watch_sites_for_tests().unwrap();
                // (A thread names itself once it runs.)
                wait_until(Duration::from_secs(5), || watcher_threads() == 1);
                let threads = watcher_threads();
                fresh.unload().unwrap();
                drop(provider);
                // SAFETY: leaves the child at once, without the harness.
                unsafe {
                    libc::_exit(if inherited_on {
                        2
                    } else if threads != 1 {
                        3
                    } else {
                        0
                    })
                };
            }
            children.push(pid);
            std::thread::sleep(Duration::from_micros((round % 5) as u64 * 3000));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for pid in children {
            let mut status = 0;
            loop {
                // SAFETY: our own child; status is a plain int.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    break;
                }
                if Instant::now() > deadline {
                    // SAFETY: our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    panic!("forked child {pid} hung");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "forked child {pid}: status {status:#x} (exit 2: an inherited flag was on; 3: no watcher)"
            );
        }
        report("forks", FORKS);
        provider.unload().unwrap();
        return;
    }
    let dir = TempDir::new("watch-fork");
    let r = run_child(TEST, "fork", &dir.join("cache"));
    assert_eq!(r.parse::<usize>("forks"), FORKS);
}
