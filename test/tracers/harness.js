'use strict';
// Runs tracer cases: a program (a Node fire script or a Rust fire script)
// creates providers and waits; a real tracer attaches; the program fires; the
// lines the tracer printed are compared with the case's expectation.
//
// A case is data:
//   name     what it proves
//   node     fire script for test/tracers/program.js      } one of the two
//   rust     script for test/drivers/src/bin/fire.rs     }
//   bpftrace script for bpftrace 0.17 and 0.27 (program text, no -p)
//   bpftrace027 script for bpftrace 0.27 only (it reads args 7..12)
//   dtrace   D program for Oracle DTrace (`$target` is the program's pid)
//   dtraceFlags extra flags, e.g. ['-Z']
//   expect   the lines every tracer must print, in order
//   expectBy optional per-tracer expectation, e.g. { dtrace: [...] }
//   byPath   attach by library path before the program starts (no -p);
//            `$LIB` in the script is the provider's library, found by a
//            first run of the same program
//   user     'nobody': the program runs as that user
//   env      extra environment for the tracer (BPFTRACE_STRLEN)
//   nodeArgs extra node flags for the program (--expose-gc)
//   list     instead of a script: per tracer, the arguments of a listing
//            command (`$PID` is the program's pid); `expectMatch` then holds,
//            per tracer, patterns that some printed line must match
//
// runCase(c, tracer, runtime) runs a Node case's program under `runtime`
// (test/fixtures/runtimes.js: which node, which root, which package; the
// host's by default). The tracers are the host's: bpftrace attaches from the
// host, DTrace runs in the program's root (it opens mapped files by path).

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const runtimes = require('../fixtures/runtimes');

// The bounds on waits below only catch hangs. DYNPROBE_TEST_PATIENCE, a
// factor (1 by default), stretches them where everything is slower: the
// emulated arm64 machine sets 5 (bpftrace 0.27 attaches there in about 15 s,
// more with its host loaded).
const PATIENCE = Math.max(1, Number(process.env.DYNPROBE_TEST_PATIENCE) || 1);

const ROOT = path.join(__dirname, '..', '..');
const FIRE_BIN = path.join(ROOT, 'target', 'release', 'fire');
const IS_ROOT = process.getuid && process.getuid() === 0;

const TRACERS = {
  'bpftrace-0.17': { family: 'bpftrace', command: ['bpftrace'], scriptKey: 'bpftrace' },
  'bpftrace-0.27': { family: 'bpftrace', command: [path.join(ROOT, 'scripts', 'bpftrace-sid')], scriptKey: 'bpftrace027' },
  dtrace: { family: 'dtrace', command: [path.join(ROOT, 'scripts', 'dtrace')], scriptKey: 'dtrace' },
  gdb: { family: 'gdb', command: ['gdb'], scriptKey: 'gdb' },
};

// Why a tracer cannot run here, or null when it can.
function unavailable(tracer) {
  if (!IS_ROOT) return 'tracers need root';
  const probe = {
    'bpftrace-0.17': ['bpftrace', '--version'],
    'bpftrace-0.27': [TRACERS['bpftrace-0.27'].command[0], '--version'],
    dtrace: [TRACERS.dtrace.command[0], '-V'],
    gdb: ['gdb', '--version'],
  }[tracer];
  const r = spawnSync(probe[0], probe.slice(1), { encoding: 'utf8', timeout: 30000 });
  if (r.error || r.status !== 0) return `${tracer} is not installed (run scripts/provision-tracers.sh): ${(r.stderr || String(r.error)).trim()}`;
  return null;
}

// The script a case gives for this tracer, or undefined when it does not run there.
function scriptFor(c, tracer) {
  if (c.list) return c.list[tracer];
  if (tracer === 'bpftrace-0.27' && c.bpftrace027 !== undefined) return c.bpftrace027;
  if (TRACERS[tracer].family === 'bpftrace') return c.bpftrace;
  if (TRACERS[tracer].family === 'dtrace') return c.dtrace;
  return undefined; // gdb only lists
}

function withSync(tracer, script, pathsOrNull) {
  if (TRACERS[tracer].family === 'dtrace') {
    return `BEGIN { printf("__READY__\\n"); }\n${script}\ndptest$target:::done { exit(0); }\n`;
  }
  const doneProbe = pathsOrNull ? `usdt:${pathsOrNull.sync}:dptest:done` : 'usdt:*:dptest:done';
  return `BEGIN { printf("__READY__\\n"); } ${script} ${doneProbe} { exit(); }`;
}

// DTrace keeps a buffer per CPU and prints one CPU's records after another,
// so fires made on two CPUs (the program moved between them) may print out
// of order. Under DTrace the program runs on one CPU: the expected lines keep
// their order.
function programCommand(c, tracer, runtime = runtimes.HOST) {
  const pin = TRACERS[tracer].family === 'dtrace' ? ['taskset', '-c', String(firstAllowedCpu())] : [];
  if (c.rust !== undefined) {
    if (runtime !== runtimes.HOST) throw new Error(`${c.name}: a Rust case runs on the host only, not under ${runtime.name}`);
    let bin = FIRE_BIN;
    if (c.user) bin = copyForUser(FIRE_BIN);
    const cmd = [bin, c.rust];
    return [...pin, ...(c.user ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', ...cmd] : cmd)];
  }
  if (c.user && runtime !== runtimes.HOST) throw new Error(`${c.name}: a case run as another user runs on the host only`);
  const program = path.join(runtime.package || ROOT, 'test', 'tracers', 'program.js');
  return [...pin, ...runtimes.command(runtime, [...(c.nodeArgs || []), program])];
}

function firstAllowedCpu() {
  const allowed = /^Cpus_allowed_list:\s*(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return allowed ? Number(allowed[1]) : 0;
}

// A copy of the program that another user can run (the checkout may not be
// readable by them).
// Temporary directories, removed when the test process exits.
const tempDirs = [];
process.on('exit', () => tempDirs.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));
function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

function copyForUser(file) {
  const dir = tempDir('dynprobe-user-');
  fs.chmodSync(dir, 0o755);
  const copy = path.join(dir, path.basename(file));
  fs.copyFileSync(file, copy);
  fs.chmodSync(copy, 0o755);
  return copy;
}

function programEnv(c, runtime = runtimes.HOST) {
  const env = { ...runtimes.environment(runtime), DYNPROBE_CASE_SCRIPT: c.node || '' };
  if (runtime.package && runtime.package !== ROOT) env.DYNPROBE_PACKAGE = runtime.package;
  if (c.user) {
    delete env.DYNPROBE_DIR;
    delete env.XDG_RUNTIME_DIR;
    env.HOME = '/tmp';
  }
  return env;
}

// Spawns a process and collects its output line by line.
function start(cmd, options) {
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  const out = { lines: [], stderr: '', exited: null, child };
  let partial = '';
  const waiters = [];
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop();
    for (const line of parts) {
      out.lines.push(line);
      for (const w of waiters.slice()) w();
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => (out.stderr += chunk));
  out.exit = new Promise((resolve) =>
    child.on('close', (code, signal) => {
      if (partial) out.lines.push(partial);
      out.exited = { code, signal };
      for (const w of waiters.slice()) w();
      resolve(out.exited);
    }),
  );
  child.on('error', (err) => {
    out.stderr += String(err);
  });
  // Resolves with the first line matching `re`; rejects on exit or timeout.
  out.waitFor = (re, ms, what) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const line = out.lines.find((l) => re.test(l));
        if (line !== undefined) return done(() => resolve(line));
        if (out.exited) done(() => reject(new Error(`${what}: exited (${JSON.stringify(out.exited)}) before ${re}\nstdout:\n${out.lines.join('\n')}\nstderr:\n${out.stderr}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${what}: no ${re} within ${ms * PATIENCE} ms\nstdout:\n${out.lines.join('\n')}\nstderr:\n${out.stderr}`))), ms * PATIENCE);
      const done = (fn) => {
        clearTimeout(timer);
        const i = waiters.indexOf(check);
        if (i >= 0) waiters.splice(i, 1);
        fn();
      };
      waiters.push(check);
      check();
    });
  return out;
}

// Waits for `proc` to exit, at most `ms` (the timer does not outlive it).
async function exitWithin(proc, ms) {
  let timer;
  await Promise.race([proc.exit, new Promise((r) => (timer = setTimeout(r, ms * PATIENCE)))]);
  clearTimeout(timer);
}

// DTrace's last steps take longer than everything before them: once its
// loop has ended (every record printed and flushed; its output's last line,
// an empty one, stays in its buffer until it exits), it releases the
// processes it grabbed, removes its probes, then frees its type data (the
// kernel's BTF turned into CTF) with no system call for 4 s on an idle
// machine and 25 s at load 8, before it exits. Its BEGIN and END probes are
// the only uprobe events it creates in tracefs (group `dt_<its pid>_dtrace`;
// the probes in traced processes are perf events of the uprobe PMU, which
// are file descriptors), and it removes them after the processes' release.
// So once they are gone, DTrace has printed all it will, holds no process,
// and a SIGKILL leaves nothing behind: the kernel closes its perf events and
// BPF programs with its descriptors. (Killed before that, DTrace leaves
// those two events behind: scripts/clean-uprobes.sh.)
const UPROBE_EVENTS = ['/sys/kernel/tracing/uprobe_events', '/sys/kernel/debug/tracing/uprobe_events'].find((f) => {
  try {
    fs.accessSync(f, fs.constants.R_OK);
    return true;
  } catch {
    return false;
  }
});
const DTRACE_POLL_MS = 100;

// Whether DTrace `pid` still has uprobe events (or null when there is no
// tracefs to read here).
function dtraceHasEvents(pid) {
  if (!UPROBE_EVENTS) return null;
  const group = `:dt_${pid}_`;
  return fs.readFileSync(UPROBE_EVENTS, 'utf8').split('\n').some((l) => l.slice(1).startsWith(group));
}

// Waits, at most `ms`, for a tracer to have printed everything: its exit,
// or for DTrace, the end of its own probes (above), after which it is killed.
async function tracerFinished(proc, tracer, ms) {
  if (TRACERS[tracer].family !== 'dtrace' || dtraceHasEvents(proc.child.pid) === null) return exitWithin(proc, ms);
  const deadline = Date.now() + ms * PATIENCE;
  while (!proc.exited && Date.now() < deadline) {
    if (!dtraceHasEvents(proc.child.pid)) {
      proc.child.kill('SIGKILL');
      await proc.exit;
      return;
    }
    await new Promise((r) => setTimeout(r, DTRACE_POLL_MS));
  }
}

async function stop(proc, ms) {
  if (proc.exited) return;
  const timer = setTimeout(() => proc.child.kill('SIGINT'), ms);
  // SIGINT first: DTrace killed harder leaves uprobe events behind.
  const hard = setTimeout(() => proc.child.kill('SIGKILL'), ms + 15000);
  await proc.exit;
  clearTimeout(timer);
  clearTimeout(hard);
}

// What bpftrace 0.27 reads the kernel's types from: a file of the few that
// USDT tracing needs (test/platform/usdt-btf.js says why), made once per test
// process; it starts in about 1 s here, against 2 to 2.7 s with the whole
// kernel's. A BPFTRACE_BTF already set (the arm64 VM's) is kept, and should
// the file fail, bpftrace reads the whole BTF as it would by default.
let sidBtf;
function sidBtfEnv(env) {
  if (env.BPFTRACE_BTF) return env;
  if (sidBtf === undefined) {
    sidBtf = null;
    try {
      const file = path.join(tempDir('dynprobe-btf-'), 'usdt.btf');
      require('../platform/usdt-btf').usdtBtf('/sys/kernel/btf/vmlinux', file);
      // bpftrace-sid runs in the sid root, which sees the host's files under /host.
      sidBtf = `/host${file}`;
    } catch {
      // the whole BTF
    }
  }
  return sidBtf ? { ...env, BPFTRACE_BTF: sidBtf } : env;
}

// The environment `tracer` runs with for case `c`.
function tracerEnvFor(tracer, c) {
  const env = { ...process.env, ...(c.env || {}) };
  return tracer === 'bpftrace-0.27' ? sidBtfEnv(env) : env;
}

function tracerCommand(tracer, c, script, pid, runtime = runtimes.HOST) {
  const base = TRACERS[tracer].command;
  if (TRACERS[tracer].family === 'dtrace') {
    const file = path.join(tempDir('dynprobe-d-'), 'case.d');
    fs.writeFileSync(file, script);
    if (!runtime.root) return [...base, '-q', ...(c.dtraceFlags || []), '-s', file, '-p', String(pid)];
    // Under a root, DTrace runs in the program's root (runtimes.dtraceCommand).
    if (pid === null) throw new Error(`${c.name}: DTrace attaches by pid only under ${runtime.name}`);
    const inRoot = runtimes.dtraceCommand(runtime, pid);
    return [...inRoot, '-q', ...(c.dtraceFlags || []), '-s', path.join(runtime.hostAt, file), '-p', String(pid)];
  }
  return pid === null ? [...base, '-e', script] : [...base, '-p', String(pid), '-e', script];
}

const NOISE = [/^__READY__$/, /^Attaching \d+ probes?\.\.\.$/, /^$/];

function parseReady(line) {
  const [, pid, ...libs] = line.trim().split(/\s+/);
  return { pid: Number(pid), sync: libs[0], libs: libs.slice(1) };
}

// Runs case `c` under `tracer`; resolves with the printed lines.
async function runCase(c, tracer, runtime = runtimes.HOST) {
  const script = scriptFor(c, tracer);
  const tracerEnv = tracerEnvFor(tracer, c);
  if (c.byPath) return runByPath(c, tracer, script, tracerEnv, runtime);
  if (c.list) return runList(c, tracer, script, tracerEnv, runtime);
  const program = start(programCommand(c, tracer, runtime), { env: programEnv(c, runtime) });
  let traced;
  try {
    const ready = parseReady(await program.waitFor(/^READY /, 30000, 'program'));
    traced = start(tracerCommand(tracer, c, withSync(tracer, script, null), ready.pid, runtime), { env: tracerEnv });
    await traced.waitFor(/^__READY__$/, 60000, tracer);
    program.child.stdin.end('go\n');
    await tracerFinished(traced, tracer, 60000);
  } finally {
    if (traced) await stop(traced, 0);
    program.child.stdin.end();
    await stop(program, 5000);
  }
  return finish(c, tracer, traced, program);
}

async function runByPath(c, tracer, script, tracerEnv, runtime) {
  // A first run finds the library paths: the same definition maps the same file.
  const first = start(programCommand(c, tracer, runtime), { env: programEnv(c, runtime) });
  const ready = parseReady(await first.waitFor(/^READY /, 30000, 'program (discovery run)'));
  first.child.kill('SIGKILL');
  await first.exit;
  // sid's bpftrace runs in a chroot that sees the host's files under /host.
  // The program printed paths in its own root.
  const host = tracer === 'bpftrace-0.27' ? (p) => `/host${runtimes.hostPath(runtime, p)}` : (p) => runtimes.hostPath(runtime, p);
  const paths = { sync: host(ready.sync) };
  // `$LIB:PROVIDER:` is the library of that provider (file name: its module,
  // which is the provider's name here): a process may map several.
  const libraryOf = (provider) => ready.libs.find((l) => path.basename(l) === provider) || ready.libs[0];
  const text = withSync(tracer, script.replace(/\$LIB:(\w+):/g, (_, p) => `${host(libraryOf(p))}:${p}:`), paths);
  const traced = start(tracerCommand(tracer, c, text, null, runtime), { env: tracerEnv });
  let program;
  try {
    await traced.waitFor(/^__READY__$/, 60000, tracer);
    program = start(programCommand(c, tracer, runtime), { env: programEnv(c, runtime) });
    await program.waitFor(/^READY /, 30000, 'program');
    program.child.stdin.end('go\n');
    await tracerFinished(traced, tracer, 60000);
  } finally {
    await stop(traced, 0);
    if (program) await stop(program, 5000);
  }
  return finish(c, tracer, traced, program);
}

async function runList(c, tracer, args, tracerEnv, runtime) {
  const program = start(programCommand(c, tracer, runtime), { env: programEnv(c, runtime) });
  let listing;
  try {
    const ready = parseReady(await program.waitFor(/^READY /, 30000, 'program'));
    const argv = args.map((a) => a.replaceAll('$PID', String(ready.pid)));
    listing = start([...TRACERS[tracer].command, ...argv], { env: tracerEnv });
    await exitWithin(listing, 60000);
  } finally {
    if (listing) await stop(listing, 0);
    program.child.stdin.end('go\n');
    await stop(program, 5000);
  }
  return { ...finish(c, tracer, listing, program), patterns: c.expectMatch[tracer] };
}

function finish(c, tracer, traced, program) {
  const lines = traced.lines.filter((l) => !NOISE.some((re) => re.test(l)));
  return {
    lines,
    expected: (c.expectBy && c.expectBy[tracer]) || c.expect,
    diagnostics: `tracer stderr:\n${traced.stderr}\nprogram stderr:\n${program ? program.stderr : ''}`,
  };
}

// The basic cases every runtime and platform must pass (int and string
// arguments, the semaphore on while traced, JSON, enable/disable).
const BASIC_CASES = [
  'api: int and string arguments',
  'api: the semaphore is off untraced, on while traced',
  'api: JSON arguments',
  'api: enable/disable cycles; a value fired while disabled never appears',
];

function basicCases() {
  const all = require('./cases/api');
  return BASIC_CASES.map((name) => {
    const c = all.find((x) => x.name === name);
    if (!c) throw new Error(`no tracer case named ${JSON.stringify(name)}`);
    return c;
  });
}

module.exports = { TRACERS, BASIC_CASES, basicCases, runCase, unavailable, scriptFor, start, stop, parseReady, programCommand, programEnv, ROOT };
