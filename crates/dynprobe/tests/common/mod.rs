//! Helpers shared by the integration tests: tests re-executed as child
//! processes, scratch directories, readings from `/proc`, and skipping.
//!
//! The cache location is chosen once per process, so every test that loads a
//! provider runs its body in a child of its own, started with its own
//! `DYNPROBE_DIR`: the test binary re-executes itself with `--exact TEST` and
//! an environment variable naming the child's role. A child hands values back
//! on stdout as `@@ key=value` lines.
#![allow(dead_code)]

use std::ffi::{CStr, CString};
use std::fmt::Display;
use std::fs;
use std::io::{BufRead, BufReader, Lines, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use dynprobe::{Arg, ArgType, ProbeDef, ProviderDef};

const ROLE_VAR: &str = "DYNPROBE_TEST_ROLE";
const MARK: &str = "@@ ";

// ---------------------------------------------------------------- children

/// The role of this process if it is a re-executed child, else `None`.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// In a child: hands `key=value` to the parent.
pub fn report(key: &str, value: impl Display) {
    println!("{MARK}{key}={value}");
}

/// A command that re-runs only `test` of this binary as a child in `role`,
/// with `dir` as its cache directory.
pub fn child_command(test: &str, role: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary path"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env("DYNPROBE_DIR", dir)
        .stdin(Stdio::null());
    cmd
}

/// Values a child reported, in order.
#[derive(Debug, Default)]
pub struct Report(Vec<(String, String)>);

impl Report {
    /// Reads a report line; it may follow libtest's `test NAME ... ` on one line.
    fn parse_line(&mut self, line: &str) {
        let report = line.find(MARK).map(|at| &line[at + MARK.len()..]);
        if let Some((key, value)) = report.and_then(|r| r.split_once('=')) {
            self.0.push((key.to_string(), value.to_string()));
        }
    }

    /// The last value reported under `key`.
    pub fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("the child reported no {key:?}: {:?}", self.0))
    }

    pub fn parse<T: FromStr>(&self, key: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        self.get(key).parse().expect(key)
    }

    pub fn path(&self, key: &str) -> PathBuf {
        PathBuf::from(self.get(key))
    }
}

/// Runs `test` in `role` to completion; panics with its output unless its one
/// test passed.
pub fn run_child(test: &str, role: &str, dir: &Path) -> Report {
    finish_output(
        child_command(test, role, dir)
            .output()
            .expect("spawn child"),
    )
}

/// Checks the output of a child that ran to completion (see [`run_child`]).
pub fn finish_output(output: Output) -> Report {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    // The test harness captures this and shows it on failure or --nocapture.
    eprint!("{stderr}");
    let mut report = Report::default();
    stdout.lines().for_each(|l| report.parse_line(l));
    report
}

/// A child that stays alive until the parent is done with it: it reports as
/// it goes and, when told to wait, waits until its stdin closes.
pub struct LiveChild {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Report,
    transcript: String,
}

impl LiveChild {
    pub fn spawn(mut cmd: Command) -> LiveChild {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        LiveChild {
            child,
            lines,
            seen: Report::default(),
            transcript: String::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Blocks until the child reports `key` and returns the value.
    pub fn expect(&mut self, key: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("read child stdout");
            self.transcript.push_str(&line);
            self.transcript.push('\n');
            self.seen.parse_line(&line);
            if line.contains(&format!("{MARK}{key}=")) {
                return self.seen.get(key).to_string();
            }
        }
        let status = self.child.wait().expect("wait for child");
        panic!(
            "child exited ({status}) without reporting {key:?}:\n{}",
            self.transcript
        )
    }

    /// Sends the child one line on its stdin (read with [`await_line`]).
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("child stdin open");
        writeln!(stdin, "{line}").expect("write to child");
    }

    /// Everything reported so far.
    pub fn report(&self) -> &Report {
        &self.seen
    }

    /// Waits for the child to end (after it was killed, say), whatever its status.
    pub fn wait(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }

    /// Closes the child's stdin, lets it finish, and checks it passed.
    pub fn finish(mut self) -> Report {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        for line in self.lines.by_ref() {
            let line = line.expect("read child stdout");
            self.seen.parse_line(&line);
            rest.push_str(&line);
            rest.push('\n');
        }
        let status = self.child.wait().expect("wait for child");
        let stdout = self.transcript + &rest;
        assert!(
            status.success() && stdout.contains("1 passed"),
            "child failed ({status}):\n{stdout}"
        );
        self.seen
    }
}

/// In a live child: waits for the parent's next line (sent with
/// [`LiveChild::send`]).
pub fn await_line() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("read stdin");
    line.trim_end().to_string()
}

/// In a live child: waits until the parent closes our stdin.
pub fn wait_for_parent() {
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
        sink.clear();
    }
}

// ---------------------------------------------------------- scratch space

/// A directory removed with everything in it when dropped. It lives under
/// Cargo's scratch directory for integration tests, which is on the same
/// (exec-capable) file system as the build.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(base).expect("create CARGO_TARGET_TMPDIR");
        let template = CString::new(base.join(format!("{tag}-XXXXXX")).as_os_str().as_bytes())
            .unwrap()
            .into_raw();
        // SAFETY: template is a writable NUL-terminated string ending in XXXXXX.
        let made = unsafe { libc::mkdtemp(template) };
        // SAFETY: reclaims the string leaked by into_raw above.
        let template = unsafe { CString::from_raw(template) };
        assert!(
            !made.is_null(),
            "mkdtemp: {}",
            std::io::Error::last_os_error()
        );
        TempDir(PathBuf::from(std::ffi::OsStr::from_bytes(
            template.as_bytes(),
        )))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Names in `dir` (empty if it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// ------------------------------------------------------------------ /proc

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub perms: String,
    pub inode: u64,
    pub path: String,
}

pub fn mappings_of_pid(pid: &str) -> Vec<Mapping> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    maps.lines()
        .map(|line| {
            let fields: Vec<&str> = line.splitn(6, ' ').collect();
            Mapping {
                perms: fields[1].to_string(),
                inode: fields[4].parse().unwrap(),
                path: fields.get(5).map_or("", |p| p.trim_start()).to_string(),
            }
        })
        .collect()
}

pub fn mappings() -> Vec<Mapping> {
    mappings_of_pid("self")
}

/// This process's mappings of the file at `path`.
pub fn mappings_of(path: &Path) -> Vec<Mapping> {
    let path = path.to_str().unwrap();
    mappings().into_iter().filter(|m| m.path == path).collect()
}

pub fn rss_bytes() -> u64 {
    let statm = fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split(' ').nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

pub fn fd_count() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Resources a leak would grow.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub rss: u64,
    pub fds: usize,
    pub maps: usize,
}

impl Usage {
    pub fn now() -> Usage {
        Usage {
            rss: rss_bytes(),
            fds: fd_count(),
            maps: mappings().len(),
        }
    }
}

impl Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rss {} KiB, {} fds, {} mappings",
            self.rss / 1024,
            self.fds,
            self.maps
        )
    }
}

// ----------------------------------------------------- machine and skipping

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn on_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Reports loudly that a test cannot run here, and returns so that the caller
/// can give up; on CI (`CI=true`) a test that cannot run fails instead.
/// `test` is the test function's name: scripts/test.js counts a test that
/// printed `*** SKIP <its name>` and passed as skipped.
pub fn skip(test: &str, reason: &str) {
    assert!(!on_ci(), "{test}: cannot run on CI: {reason}");
    // Straight to stderr: the test harness captures eprintln!.
    let _ = writeln!(std::io::stderr(), "\n*** SKIP {test}: {reason} ***\n");
}

/// Polls `cond` every millisecond until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

// ------------------------------------------------------------ definitions

/// A provider whose probes `p0`, `p1`, ... each take an integer and a string.
pub fn simple_def(name: &str, module: &str, probes: usize) -> ProviderDef {
    let mut def = ProviderDef::new(name, module);
    def.add_probes(
        (0..probes).map(|i| ProbeDef::new(format!("p{i}"), vec![ArgType::I64, ArgType::Str])),
    )
    .unwrap();
    def
}

/// A provider with one probe `argsN` for each arity N, of [`mixed_types`].
pub fn arity_def(name: &str, arities: &[usize]) -> ProviderDef {
    let mut def = ProviderDef::new(name, name);
    for &n in arities {
        def.add_probe(ProbeDef::new(format!("args{n}"), mixed_types(n)))
            .unwrap();
    }
    def
}

/// Argument types for a probe of `arity`, cycling through every type.
pub fn mixed_types(arity: usize) -> Vec<ArgType> {
    use ArgType::*;
    const CYCLE: [ArgType; 9] = [I64, Str, U8, I32, U64, Str, I16, U16, U32];
    (0..arity).map(|i| CYCLE[i % CYCLE.len()]).collect()
}

/// Distinct values matching `types`: argument `i` is `i + 1` (negated for
/// signed types, to exercise sign extension), or the string `"s<i+1>"`.
pub struct ArgValues {
    strings: Vec<CString>,
    types: Vec<ArgType>,
}

impl ArgValues {
    pub fn new(types: &[ArgType]) -> ArgValues {
        ArgValues {
            strings: (0..types.len())
                .map(|i| CString::new(format!("s{}", i + 1)).unwrap())
                .collect(),
            types: types.to_vec(),
        }
    }

    pub fn args(&self) -> Vec<Arg<'_>> {
        self.types
            .iter()
            .enumerate()
            .map(|(i, ty)| match ty {
                ArgType::Str => Arg::from(self.strings[i].as_c_str()),
                t if t.is_signed() => Arg::Int(-(i as i64 + 1)),
                _ => Arg::Uint(i as u64 + 1),
            })
            .collect()
    }

    /// What a tracer printing each argument (`%d`, or `%s` of `str()`) shows.
    pub fn expected_text(&self) -> Vec<String> {
        self.args()
            .iter()
            .map(|a| match a {
                Arg::Str(s) => CStr::to_string_lossy(s).into_owned(),
                Arg::Int(v) => v.to_string(),
                Arg::Uint(v) => v.to_string(),
            })
            .collect()
    }
}
