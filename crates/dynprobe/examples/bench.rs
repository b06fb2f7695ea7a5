//! Costs of dynprobe, each against a baseline measured in the same run.
//!
//!     cargo run --release -p dynprobe --example bench
//!
//! Prints one table of medians over several repetitions. The traced rows need
//! root and bpftrace (at /usr/bin/bpftrace, or $BPFTRACE); without them they
//! print a skip line. Loads go to a fresh directory, removed at the end, under
//! $DYNPROBE_BENCH_DIR or else the system's temp directory: creating files
//! costs what that file system makes it cost (the header names it).

use std::ffi::{c_char, CStr, CString};
use std::fmt::Write as _;
use std::fs;
use std::hint::black_box;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dynprobe::{build_image, native_target, Arg, ArgType, ProbeDef, Provider, ProviderDef};

/// Repetitions of each measurement; the table shows their median.
const REPS: usize = 7;
/// Fires per repetition of the untraced rows.
const FAST_OPS: u64 = 50_000_000;
/// Fires per repetition of the traced rows.
const TRACED_OPS: u64 = 200_000;
/// Loads per repetition.
const LOADS: u64 = 300;
const PROBES: usize = 10;

fn main() {
    let scratch = Scratch::new();
    // Before any load, while the process has one thread: the cache location
    // is read once, on the first load.
    std::env::set_var("DYNPROBE_DIR", scratch.0.join("cache"));

    let mut table = Table::default();
    table.note(&format!(
        "{} ({:?}), {} CPUs, cache on {} ({}), {REPS} repetitions each",
        kernel(),
        native_target().site(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fs_type(&scratch.0),
        scratch.0.display(),
    ));
    untraced(&mut table);
    match tracer_missing() {
        Some(why) => table.note(&format!("SKIP traced fire: {why}")),
        None => {
            if let Err(e) = traced(&mut table, &scratch.0) {
                table.note(&format!("FAILED traced fire: {e}"));
            }
        }
    }
    loads(&mut table);
    table.print();
}

// ------------------------------------------------------------ measurement

/// Median over [`REPS`] runs of `run`, each returning its mean ns per op.
fn median(mut run: impl FnMut() -> f64) -> f64 {
    let mut samples: Vec<f64> = (0..REPS).map(|_| run()).collect();
    samples.sort_by(f64::total_cmp);
    samples[REPS / 2]
}

/// Median ns per call of `op`, run `ops` times per repetition.
fn ns_per_op(ops: u64, mut op: impl FnMut(u64)) -> f64 {
    median(|| {
        let start = Instant::now();
        for i in 0..ops {
            op(i);
        }
        start.elapsed().as_nanos() as f64 / ops as f64
    })
}

#[derive(Default)]
struct Table {
    text: String,
}

impl Table {
    fn row(&mut self, case: &str, value: String, baseline: &str, ratio: Option<f64>, target: &str) {
        let ratio = ratio.map_or(String::new(), |r| format!("{r:.2}"));
        writeln!(
            self.text,
            "{case:<36} {value:>11}  {baseline:<30} {ratio:>6}  {target}"
        )
        .unwrap();
    }

    fn note(&mut self, line: &str) {
        writeln!(self.text, "  {line}").unwrap();
    }

    fn print(&self) {
        println!(
            "{:<36} {:>11}  {:<30} {:>6}  target\n{}",
            "case",
            "median",
            "baseline (same run)",
            "ratio",
            "-".repeat(100)
        );
        print!("{}", self.text);
    }
}

fn ns(v: f64) -> String {
    format!("{v:.2} ns")
}

fn us(v: f64) -> String {
    format!("{:.1} us", v / 1000.0)
}

// ---------------------------------------------------------- untraced rows

/// The baseline for a disabled probe: a call that cannot be inlined or
/// removed, and does nothing.
#[inline(never)]
fn empty_call(value: i64, text: &CStr) {
    let _ = (value, text);
    // SAFETY: an empty asm statement: no instructions, but the call counts
    // as having effects, so it stays.
    unsafe { std::arch::asm!("", options(nomem, nostack, preserves_flags)) };
}

fn untraced(table: &mut Table) {
    let def = provider_def("benchprov", "benchprov");
    let provider = Provider::load(&def).expect("load");
    let probe = provider.probe("p0").unwrap();

    let empty = ns_per_op(FAST_OPS, |i| empty_call(i as i64, c"hello"));
    let fire = ns_per_op(FAST_OPS, |i| {
        probe.fire(&[Arg::from(i as i64), Arg::from(c"hello")]);
    });
    table.row(
        "disabled fire(i, \"hello\")",
        ns(fire),
        &format!("empty call {}", ns(empty)),
        Some(fire / empty),
        "< 2 ns",
    );
    let mut enabled = 0u64;
    let check = ns_per_op(FAST_OPS, |_| enabled += u64::from(probe.is_enabled()));
    black_box(enabled);
    table.row(
        "is_enabled()",
        ns(check),
        &format!("empty call {}", ns(empty)),
        Some(check / empty),
        "one load",
    );
}

// ------------------------------------------------------------ traced rows

fn bpftrace_path() -> PathBuf {
    std::env::var_os("BPFTRACE").map_or_else(|| "/usr/bin/bpftrace".into(), PathBuf::from)
}

fn tracer_missing() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to attach bpftrace".into());
    }
    let path = bpftrace_path();
    (!path.exists()).then(|| format!("no bpftrace at {}", path.display()))
}

/// bpftrace counting the hits of one probe in this process.
struct Counter(Child);

impl Counter {
    /// Attaches and waits until the probe's semaphore says it is armed.
    fn attach(provider: &str, probe: &str, semaphore: *const u16) -> Result<Counter, String> {
        let child = Command::new(bpftrace_path())
            .args(["-p", &std::process::id().to_string(), "-e"])
            .arg(format!("usdt:*:{provider}:{probe} {{ @c = count(); }}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start bpftrace: {e}"))?;
        let mut counter = Counter(child);
        let start = Instant::now();
        // SAFETY: the semaphore stays mapped while its library is loaded.
        while unsafe { std::ptr::read_volatile(semaphore) } == 0 {
            if start.elapsed() > Duration::from_secs(30) {
                return Err("bpftrace did not attach within 30 s".into());
            }
            if let Ok(Some(status)) = counter.0.try_wait() {
                return Err(format!("bpftrace exited early ({status})"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // The semaphore rises as the uprobe is armed, a moment before the
        // tracer has attached its program; hits in between are not counted.
        std::thread::sleep(Duration::from_millis(200));
        Ok(counter)
    }

    /// Detaches (as Ctrl-C would) and returns the count bpftrace printed.
    fn stop(self) -> Result<u64, String> {
        // SAFETY: kill has no memory effects; the pid is our child's.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let out = self.0.wait_with_output().map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("@c: "))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| {
                format!(
                    "no count in bpftrace's output:\n{stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    }
}

/// Median ns per traced hit of `fire`, and a check that bpftrace counted
/// every one of them.
fn traced_ns(
    provider: &str,
    probe: &str,
    semaphore: *const u16,
    mut fire: impl FnMut(u64),
) -> Result<f64, String> {
    let counter = Counter::attach(provider, probe, semaphore)?;
    let per_hit = ns_per_op(TRACED_OPS, &mut fire);
    let counted = counter.stop()?;
    let fired = REPS as u64 * TRACED_OPS;
    if counted != fired {
        return Err(format!(
            "{provider}:{probe}: fired {fired}, bpftrace counted {counted}"
        ));
    }
    Ok(per_hit)
}

fn traced(table: &mut Table, scratch: &Path) -> Result<(), String> {
    let c_probe = CProbe::build(scratch)?;
    let c_ns = traced_ns("cbench", "hit", c_probe.semaphore, |i| {
        // SAFETY: the library stays loaded, and the string is static.
        unsafe { (c_probe.hit)(i as i64, c"hello".as_ptr()) }
    })?;

    let def = provider_def("tracedprov", "tracedprov");
    let provider = Provider::load(&def).map_err(|e| e.to_string())?;
    let probe = provider.probe("p0").unwrap();
    let ours = traced_ns("tracedprov", "p0", probe.semaphore(), |i| {
        assert!(probe.fire(&[Arg::from(i as i64), Arg::from(c"hello")]));
    })?;
    table.row(
        "traced fire, bpftrace @c = count()",
        ns(ours),
        &format!("C nop5 site {}", ns(c_ns)),
        Some(ours / c_ns),
        "ratio <= 1.1",
    );
    table.note(&format!(
        "bpftrace counted all {} hits of each ({} x {TRACED_OPS})",
        REPS as u64 * TRACED_OPS,
        REPS
    ));
    Ok(())
}

/// A probe compiled from C at run time, the way sys/sdt.h would emit it but
/// with a 5-byte NOP as the site (sys/sdt.h emits a 1-byte one), behind a
/// semaphore as dynprobe's fire is.
struct CProbe {
    _handle: *mut libc::c_void,
    hit: unsafe extern "C" fn(i64, *const c_char),
    semaphore: *const u16,
}

const C_SOURCE: &str = r#"
/* The semaphore goes in ".probes": bcc (bpftrace 0.17) finds it there. */
__attribute__((used, section(".probes")))
volatile unsigned short cbench_hit_semaphore;

void cbench_hit(long value, const char *text)
{
    if (__builtin_expect(cbench_hit_semaphore != 0, 0))
        __asm__ __volatile__(
            "990: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n"   /* nopl 0(%%rax,%%rax) */
            ".pushsection .note.stapsdt, \"?\", \"note\"\n"
            ".balign 4\n"
            ".4byte 992f-991f\n"                          /* owner size */
            ".4byte 994f-993f\n"                          /* descriptor size */
            ".4byte 3\n"                                  /* NT_STAPSDT */
            "991: .asciz \"stapsdt\"\n"
            "992: .balign 4\n"
            "993: .8byte 990b\n"                          /* site */
            ".8byte _.stapsdt.base\n"
            ".8byte cbench_hit_semaphore\n"
            ".asciz \"cbench\"\n"
            ".asciz \"hit\"\n"
            ".asciz \"-8@%0 8@%1\"\n"
            "994: .balign 4\n"
            ".popsection\n"
            ".ifndef _.stapsdt.base\n"
            ".pushsection .stapsdt.base, \"aG\", \"progbits\", .stapsdt.base, comdat\n"
            ".weak _.stapsdt.base\n"
            ".hidden _.stapsdt.base\n"
            "_.stapsdt.base: .space 1\n"
            ".size _.stapsdt.base, 1\n"
            ".popsection\n"
            ".endif\n"
            :: "r"(value), "r"(text));
}
"#;

impl CProbe {
    fn build(scratch: &Path) -> Result<CProbe, String> {
        let source = scratch.join("cbench.c");
        let library = scratch.join("libcbench.so");
        fs::write(&source, C_SOURCE).map_err(|e| e.to_string())?;
        // No red zone: the kernel's nop5 optimisation calls out of the site,
        // pushing onto the stack below the stack pointer.
        let out = Command::new("cc")
            .args(["-O2", "-shared", "-fPIC", "-mno-red-zone", "-o"])
            .args([&library, &source])
            .output()
            .map_err(|e| format!("cannot run cc: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cc failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let path = CString::new(library.as_os_str().as_bytes()).unwrap();
        // SAFETY: path is NUL-terminated; the library has no initialisers.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW) };
        if handle.is_null() {
            return Err(format!("cannot dlopen {}", library.display()));
        }
        let symbol = |name: &CStr| {
            // SAFETY: handle is live and name is NUL-terminated.
            let addr = unsafe { libc::dlsym(handle, name.as_ptr()) };
            (!addr.is_null())
                .then_some(addr)
                .ok_or(format!("no {name:?} in {}", library.display()))
        };
        let hit = symbol(c"cbench_hit")?;
        let semaphore = symbol(c"cbench_hit_semaphore")?;
        Ok(CProbe {
            _handle: handle,
            // SAFETY: cbench_hit has exactly this C signature.
            hit: unsafe {
                std::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn(i64, *const c_char)>(
                    hit,
                )
            },
            semaphore: semaphore as *const u16,
        })
    }
}

// -------------------------------------------------------------- load rows

fn provider_def(name: &str, module: &str) -> ProviderDef {
    let mut def = ProviderDef::new(name, module);
    for i in 0..PROBES {
        def.add_probe(ProbeDef::new(
            format!("p{i}"),
            vec![ArgType::I64, ArgType::Str],
        ))
        .unwrap();
    }
    def
}

/// Median ns per call of `op`, [`LOADS`] calls per repetition, timing only
/// `op`: `before` makes its input and `after` takes its result, untimed.
fn ns_per_load<A, B>(
    mut before: impl FnMut(u64) -> A,
    mut op: impl FnMut(A) -> B,
    mut after: impl FnMut(B),
) -> f64 {
    let mut next = 0u64;
    median(|| {
        let mut total = Duration::ZERO;
        for _ in 0..LOADS {
            let input = before(next);
            let start = Instant::now();
            let output = op(input);
            total += start.elapsed();
            after(output);
            next += 1;
        }
        total.as_nanos() as f64 / LOADS as f64
    })
}

fn loads(table: &mut Table) {
    let load = |def: &ProviderDef| Provider::load(def).expect("load");
    let unload = |p: Provider| p.unload().expect("unload");
    // A new provider name each time: a new build-id, so a new file.
    let first = ns_per_load(
        |i| i,
        |i| load(&provider_def(&format!("fresh{i}"), "fresh")),
        unload,
    );
    table.row(
        "create+load 10 probes, first time",
        us(first),
        "",
        None,
        "< 100 us",
    );

    let def = provider_def("cached", "cached");
    unload(load(&def));
    let cached = ns_per_load(|_| (), |()| load(&def), unload);
    table.row(
        "create+load 10 probes, cached file",
        us(cached),
        "",
        None,
        "< 30 us",
    );
    let unloading = ns_per_load(|_| load(&def), unload, |()| {});
    table.row("unload (dlclose)", us(unloading), "", None, "");
    breakdown(table, &def);
}

/// Where the time of a cached load goes: the steps a load takes, each timed
/// alone, and the split between user and kernel time.
fn breakdown(table: &mut Table, def: &ProviderDef) {
    let target = native_target();
    let image = build_image(def, target).unwrap();
    let provider = Provider::load(def).expect("load");
    let path = CString::new(provider.path().as_os_str().as_bytes()).unwrap();
    provider.unload().unwrap();

    let dlopen = || {
        // SAFETY: the path is NUL-terminated; the library has no initialisers.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!handle.is_null());
        let mut map: *mut libc::c_void = std::ptr::null_mut();
        // SAFETY: handle is live; RTLD_DI_LINKMAP writes one pointer.
        unsafe {
            libc::dlinfo(
                handle,
                libc::RTLD_DI_LINKMAP,
                (&mut map as *mut *mut libc::c_void).cast(),
            )
        };
        handle
    };
    // SAFETY: each handle comes from dlopen above and is closed once.
    let dlclose = |handle| assert_eq!(unsafe { libc::dlclose(handle) }, 0);
    let file = Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
    let steps = [
        (
            "validate the definition",
            ns_per_load(|_| (), |()| def.validate().unwrap(), |()| {}),
        ),
        (
            "build_image (hash, ELF)",
            ns_per_load(
                |_| (),
                |()| build_image(black_box(def), target).unwrap(),
                drop,
            ),
        ),
        (
            "verify the file (read, compare)",
            ns_per_load(
                |_| (),
                |()| assert!(fs::read(file).unwrap() == image.bytes),
                |()| {},
            ),
        ),
        (
            "dlopen + dlinfo",
            ns_per_load(|_| (), |()| dlopen(), dlclose),
        ),
        (
            "dlclose (part of unload)",
            ns_per_load(|_| dlopen(), dlclose, drop),
        ),
    ];
    table.note("cached load, step by step (each timed alone):");
    for (step, t) in steps {
        table.note(&format!("  {step:<36} {:>9}", us(t)));
    }

    let before = rusage();
    let cycles = 20_000;
    for _ in 0..cycles {
        Provider::load(def).expect("load").unload().expect("unload");
    }
    let after = rusage();
    let per_cycle = |a: libc::timeval, b: libc::timeval| {
        let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
        (us(b) - us(a)) / cycles as f64
    };
    table.note(&format!(
        "  load+unload, {cycles} cycles: {:.1} us user, {:.1} us kernel, {:.1} page faults each",
        per_cycle(before.ru_utime, after.ru_utime),
        per_cycle(before.ru_stime, after.ru_stime),
        (after.ru_minflt - before.ru_minflt) as f64 / cycles as f64
    ));
}

fn rusage() -> libc::rusage {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills in the struct.
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    }
}

// ---------------------------------------------------------------- helpers

fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown kernel".into(), |r| format!("Linux {}", r.trim()))
}

/// The kind of file system `path` is on, by its magic number.
fn fs_type(path: &Path) -> String {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the path is NUL-terminated and statfs fills in the struct.
    if unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return "unknown file system".into();
    }
    // SAFETY: statfs succeeded.
    match unsafe { stat.assume_init() }.f_type {
        0x0102_1994 => "tmpfs".into(),
        0xef53 => "ext4".into(),
        0x9123_683e => "btrfs".into(),
        0x5846_5342 => "xfs".into(),
        0x794c_7630 => "overlayfs".into(),
        other => format!("file system 0x{other:x}"),
    }
}

/// A directory for this run, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let base =
            std::env::var_os("DYNPROBE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let path = base.join(format!("dynprobe-bench-{}", std::process::id()));
        fs::create_dir_all(&path).expect("create scratch directory");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
