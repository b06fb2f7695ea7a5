'use strict';
// The arm64 machines (scripts/provision-arm64.sh):
//   - qemu-user: an arm64 process on this host in the arm64 root (entered
//     like a container, binaries run through binfmt_misc); no tracer can
//     attach to an emulated process;
//   - a virtual machine: qemu-system-aarch64 under TCG, Debian's arm64 kernel,
//     the arm64 root as its initramfs plus a payload (this package with the
//     arm64 addon, Rust test binaries, test/platform/vm-init.sh as PID 1).
//     Two vCPUs, and the guest runs its work in two lanes, one per vCPU:
//     faster than one lane, and than two machines of one lane each
//     (docs/testing.md, "Filling the idle core").
//     Tracers run inside it, for real: uprobes, BPF, USDT semaphores.
//     With `musl`, the payload also carries Bun's arm64 musl build
//     (scripts/provision-musl.sh) at its host path (its loader and rpath
//     are absolute) and a package with the arm64 musl addon: the same boot
//     traces both runtimes, and the root's cached archive stays as it is.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const cache = require('../../scripts/lib/paths');

const BASE = cache.DYNPROBE_ARM64;
const ARM64_ROOT = path.join(BASE, 'root');
const ARM64_NODE = path.join(ARM64_ROOT, 'usr', 'bin', 'node');
const IS_ROOT = process.getuid && process.getuid() === 0;
const MUSL_ARM64 = path.join(cache.DYNPROBE_MUSL, 'arm64');
const MUSL_BUN = path.join(MUSL_ARM64, 'bin', 'bun');
// How long a boot may take to print its banner (about 20 s when the machine
// is idle) before it counts as hung.
const UP_DEADLINE_MS = 5 * 60 * 1000;
// Where the musl package is in the machine (vm-cases.js runs its cases).
const VM_MUSL_PACKAGE = '/dynprobe/pkg-musl';

// Why arm64 processes cannot run here, or null.
function qemuUserUnavailable() {
  if (!IS_ROOT) return 'the arm64 checks need root (the arm64 addon builds in the sid root)';
  if (!fs.existsSync(path.join(ARM64_ROOT, '.dynprobe-ready'))) {
    return `the arm64 root is not provisioned in ${ARM64_ROOT} (run scripts/provision-arm64.sh as root)`;
  }
  if (!fs.existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64')) {
    return 'qemu-user is not registered for arm64 in binfmt_misc (run scripts/provision-arm64.sh as root)';
  }
  return null;
}

function vmUnavailable() {
  const why = qemuUserUnavailable();
  if (why) return why;
  for (const f of ['vmlinuz', 'root.cpio']) {
    if (!fs.existsSync(path.join(BASE, f))) return `${path.join(BASE, f)} is missing (run scripts/provision-arm64.sh as root)`;
  }
  const q = spawnSync('qemu-system-aarch64', ['--version'], { encoding: 'utf8' });
  if (q.status !== 0) return 'qemu-system-aarch64 is not installed (run scripts/provision-arm64.sh as root)';
  return null;
}

// Why Bun's arm64 musl build cannot be carried into the machine, or null.
function muslUnavailable() {
  if (!fs.existsSync(path.join(MUSL_ARM64, '.dynprobe-ready'))) {
    return `Bun for arm64 musl is not provisioned in ${MUSL_ARM64} (run scripts/provision-musl.sh as root)`;
  }
  return null;
}

// Builds the Rust crates' test binaries for aarch64
// (scripts/testing/rust-tests-aarch64.sh). Returns [{ name, file }].
function buildRustTests() {
  const r = spawnSync(path.join(ROOT, 'scripts', 'testing', 'rust-tests-aarch64.sh'), ['--message-format=json'], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: 20 * 60 * 1000,
  });
  const tests = [];
  const errors = [];
  for (const line of (r.stdout || '').split('\n')) {
    if (!line.startsWith('{')) continue;
    const m = JSON.parse(line);
    if (m.reason === 'compiler-artifact' && m.executable && m.profile.test) {
      tests.push({ name: `${m.package_id.includes('dynprobe-format') ? 'dynprobe-format' : 'dynprobe'}:${m.target.kind[0] === 'lib' ? 'lib' : m.target.name}`, file: m.executable });
    }
    if (m.reason === 'compiler-message' && m.message.level === 'error') errors.push(m.message.rendered);
  }
  if (r.status !== 0) throw new Error(`building the aarch64 test binaries failed (${r.status ?? r.signal}):\n${errors.join('\n')}\n${(r.stderr || '').slice(-3000)}`);
  return tests;
}

// Boots the machine with `pkg` (a package directory), `tests` (Rust test
// binaries) and, with `muslPkg` (a package with the arm64 musl addon), Bun's
// arm64 musl build in its initramfs; resolves with what its console printed.
function runVm({ pkg, muslPkg = null, tests = [], timeoutMs = 25 * 60 * 1000, log = null }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-vm-'));
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const tree = path.join(dir, 'tree');
    fs.mkdirSync(path.join(tree, 'dynprobe', 'tests'), { recursive: true });
    fs.copyFileSync(path.join(__dirname, 'vm-init.sh'), path.join(tree, 'init'));
    fs.chmodSync(path.join(tree, 'init'), 0o755);
    fs.cpSync(pkg, path.join(tree, 'dynprobe', 'pkg'), { recursive: true, dereference: true, filter: (src) => path.basename(src) !== 'node_modules' });
    if (muslPkg) {
      fs.cpSync(muslPkg, path.join(tree, VM_MUSL_PACKAGE), { recursive: true, dereference: true, filter: (src) => path.basename(src) !== 'node_modules' });
      fs.cpSync(MUSL_ARM64, path.join(tree, MUSL_ARM64), { recursive: true, verbatimSymlinks: true, filter: (src) => !/^\.(lock|musl\.|wheel\.|bun\.)/.test(path.basename(src)) });
    }
    for (const t of tests) fs.copyFileSync(t.file, path.join(tree, 'dynprobe', 'tests', t.name.replace(/[^\w.-]/g, '_')));
    // The cache paths, as here (Bun's musl build is at its host path).
    const env = Object.entries(cache.cachePaths()).map(([k, v]) => `export ${k}='${v}'\n`);
    fs.writeFileSync(path.join(tree, 'dynprobe', 'env'), env.join(''));
    // The root's archive, then the payload's: the kernel unpacks both.
    const initrd = path.join(dir, 'initrd.cpio');
    const pack = spawnSync('sh', ['-c', 'cat "$1" >"$3" && cd "$2" && find . -print0 | cpio --null -o -H newc --quiet >>"$3"', 'pack', path.join(BASE, 'root.cpio'), tree, initrd], { encoding: 'utf8' });
    if (pack.status !== 0) throw new Error(`packing the initramfs failed: ${pack.stderr}`);
    const args = [
      '-M', 'virt', '-cpu', 'max,pauth-impdef=on', '-smp', '2', '-m', '4096', '-accel', 'tcg,thread=multi',
      '-kernel', path.join(BASE, 'vmlinuz'), '-initrd', initrd,
      '-append', 'console=ttyAMA0 rdinit=/init panic=-1 quiet loglevel=3',
      '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
    ];
    // One boot; `up` once the machine printed its banner.
    const boot = () =>
      new Promise((resolve) => {
        const started = Date.now();
        const vm = spawn('qemu-system-aarch64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        let up = false;
        let why = null;
        vm.stdout.setEncoding('utf8').on('data', (c) => {
          output += c;
          up = up || /^@@VM-UP /m.test(output);
          if (log) log(c);
        });
        vm.stderr.setEncoding('utf8').on('data', (c) => (output += c));
        const timer = setTimeout(() => vm.kill('SIGKILL'), timeoutMs);
        const upTimer = setTimeout(() => {
          if (up) return;
          why = `no banner after ${UP_DEADLINE_MS / 1000} s`;
          vm.kill('SIGKILL');
        }, UP_DEADLINE_MS);
        vm.on('close', (code, signal) => {
          clearTimeout(timer);
          clearTimeout(upTimer);
          // (without terminal colour codes, should anything print them)
          const text = output.replace(/\r/g, '').replace(/\x1b\[[0-9;]*m/g, ''); // eslint-disable-line no-control-regex -- ESC starts a colour code
          resolve({ output: text, code, signal, up, why, seconds: Math.round((Date.now() - started) / 1000) });
        });
      });
    // A machine that never comes up (TCG has been seen to hang or oops at
    // boot once in a while) is booted once more, saying why.
    return (async () => {
      try {
        let run = await boot();
        if (!run.up) {
          process.stderr.write(`arm64 VM: the machine did not come up (${run.why || `qemu exit ${run.code ?? run.signal}`}); console tail:\n${run.output.slice(-2000)}\narm64 VM: booting once more\n`);
          run = await boot();
        }
        return run;
      } finally {
        cleanup();
      }
    })();
  } catch (err) {
    cleanup();
    throw err;
  }
}

// What the machine printed: its banner, the tracer cases, the Rust runs.
function parseVmOutput(output) {
  const up = (/^@@VM-UP (.*)$/m.exec(output) || [])[1] || null;
  const done = /^@@VM-DONE$/m.test(output);
  // cases[runtime][name]: 'node' (the root's, glibc) and 'bun-musl'.
  const cases = {};
  for (const m of output.matchAll(/^@@CASE (.*)$/gm)) {
    const c = JSON.parse(m[1]);
    (cases[c.runtime] ||= {})[c.name] = c;
  }
  const rust = {};
  for (const m of output.matchAll(/^@@RUST-BEGIN (\S+)\n([\s\S]*?)^@@RUST-END \1 (\d+)$/gm)) rust[m[1]] = { text: m[2], status: Number(m[3]) };
  return { up, done, cases, rust };
}

module.exports = { BASE, ARM64_ROOT, ARM64_NODE, MUSL_BUN, VM_MUSL_PACKAGE, qemuUserUnavailable, vmUnavailable, muslUnavailable, buildRustTests, runVm, parseVmOutput };
