#!/usr/bin/env node
'use strict';
// What the project's own commands need before they run, done by themselves
// so that they work from a fresh clone on a fresh machine. Set-up is a set of
// steps (STEPS below), each a command that is idempotent and fast once done;
// a step runs when the steps it comes after are done, side by side with the
// others: downloads and root file systems beside the compiles, at most
// CPU_SLOTS compiles at a time.
//
//   prepare(extra)     all of it (what `npm test` needs), side by side; `extra`
//                      adds steps of the caller's, { name: { cmd: [argv],
//                      after: [names], cpu: true } }, that run among them
//                      (e.g. compiling the tests while the roots download)
//   provision()        as root, the provisioning steps (scripts/provision-*.sh:
//                      tracers, test roots, runtimes, the VMs' files)
//   devDependencies()  `npm ci` when a devDependency is missing from
//                      node_modules (bunyan, restify, the bundlers, the
//                      benchmark's dtrace-provider-stub)
//   build()            the addon (scripts/build-addon.js)
//   prebuilt()         as root, `npm run package`: the four prebuilt addons
//                      (scripts/build/*.sh, toolchains in scripts/toolchain/)
//                      and dist/ (the platform tests run them)
//   timings            [{ phase, seconds, ok }], one per step run, in the
//                      order they ended (printed by scripts/test.js)
// Each prints the time of each step. A step that fails names itself, its
// command, and the end of its log (the scripts print it); the steps already
// running are stopped, no new one starts, and the function throws.
// `node scripts/setup.js` (npm run bench) does devDependencies() and build().

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const say = (text) => process.stdout.write(`setup: ${text}\n`);
const IS_ROOT = process.getuid() === 0;
const timings = [];

// Compiles at once. Each uses both cores part of the time only (one crate
// waiting for another, linking): three keep the two busy.
const CPU_SLOTS = 3;

// name: { cmd, after: [names], cpu: a compile, root: needs root, low: not on
// the way to the builds, the longest chain (their unpacking and checks take
// CPU too: they run niced, so as not to slow it) }
const bash = (script, ...args) => ['bash', path.join('scripts', script), ...args];
const STEPS = {
  // mmdebstrap first and alone: the roots need nothing else to start.
  'host packages: mmdebstrap': { cmd: bash('provision-host.sh', 'roots'), root: true },
  'host packages': { cmd: bash('provision-host.sh'), after: ['host packages: mmdebstrap'], root: true, low: true },
  'sid root (tracers)': { cmd: bash('provision-tracers.sh'), after: ['host packages: mmdebstrap'], root: true, low: true },
  'arm64 root and kernel': { cmd: bash('provision-arm64.sh'), after: ['host packages'], root: true, low: true },
  'node majors': { cmd: bash('provision-node-majors.sh'), root: true, low: true },
  'Bun and Deno': { cmd: bash('provision-runtimes.sh'), root: true, low: true },
  // After the one apt run of the host packages (their lists are fresh then).
  'database servers': { cmd: bash('provision-servers.sh'), after: ['host packages'], root: true, low: true },
  'bullseye root': { cmd: bash('provision-bullseye.sh'), after: ['host packages: mmdebstrap', 'node majors'], root: true, low: true },
  'musl runtimes': { cmd: bash('provision-musl.sh'), after: ['host packages'], root: true, low: true },
  'DTrace VM': { cmd: bash('provision-dtrace-vm.sh'), after: ['host packages', 'sid root (tracers)'], root: true, low: true },
  'devDependencies': { cmd: [process.execPath, __filename, '--dev-dependencies'], low: true },
  'addon': { cmd: [process.execPath, path.join('scripts', 'build-addon.js')], cpu: true, preflight: checkCargo },
  'zig toolchain': { cmd: bash('toolchain/zig.sh'), root: true },
  'sid Rust toolchain': { cmd: bash('toolchain/sid-rust.sh'), after: ['host packages: mmdebstrap'], root: true },
  'prebuilt linux-x64-gnu': { cmd: bash('build/linux-x64-gnu.sh'), after: ['zig toolchain'], cpu: true, root: true },
  // Both musl targets in one cargo run: their std builds keep both cores
  // busy. The longest build: first when the Rust root is there.
  'prebuilt linux-x64-musl, linux-arm64-musl': {
    cmd: bash('build/linux-x64-musl.sh', 'linux-arm64-musl'), after: ['zig toolchain', 'sid Rust toolchain'], cpu: true, root: true,
  },
  'prebuilt linux-arm64-gnu': {
    cmd: bash('build/linux-arm64-gnu.sh'), after: ['zig toolchain', 'sid Rust toolchain'], cpu: true, root: true,
  },
  'package (dist/)': {
    cmd: [process.execPath, path.join('scripts', 'package.js'), '--no-build'],
    after: ['prebuilt linux-x64-gnu', 'prebuilt linux-arm64-gnu', 'prebuilt linux-x64-musl, linux-arm64-musl'],
    root: true,
  },
};
const PROVISION = Object.keys(STEPS).filter((name) => STEPS[name].cmd[1] && /^scripts\/provision-/.test(STEPS[name].cmd[1]));
const PREBUILT = ['zig toolchain', 'sid Rust toolchain', ...Object.keys(STEPS).filter((n) => n.startsWith('prebuilt ')), 'package (dist/)'];

// Every scripts/provision-*.sh is a step: one added without its step here is a mistake.
function checkSteps() {
  const listed = new Set(Object.values(STEPS).map((s) => s.cmd[1]));
  const missing = fs.readdirSync(path.join(ROOT, 'scripts')).filter((f) => /^provision-.*\.sh$/.test(f) && !listed.has(path.join('scripts', f)));
  if (missing.length > 0) throw new Error(`scripts/setup.js has no step for ${missing.join(', ')}: add it to STEPS`);
}

// npm and its children without the settings of an enclosing `npm run`.
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
}

function checkCargo() {
  const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
  if (cargo.error || cargo.status !== 0) {
    throw new Error("cargo is not installed: dynprobe's addon is built from Rust (rustup.rs, or apt-get install cargo)");
  }
}

// Runs `names` (and nothing else: a step they come after that is not among
// them counts as done) in a child process, so that the callers stay
// synchronous; its timings join ours.
function runSteps(names, extra = {}) {
  checkSteps();
  if (names.length === 0) return;
  for (const name of names) if (STEPS[name] && STEPS[name].preflight) STEPS[name].preflight();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-setup-'));
  const out = path.join(dir, 'timings.json');
  const extraFile = path.join(dir, 'extra.json');
  fs.writeFileSync(extraFile, JSON.stringify(extra));
  try {
    const r = spawnSync(process.execPath, [__filename, '--steps', out, extraFile, ...names], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    const result = fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : { timings: [], failed: [] };
    timings.push(...result.timings);
    if (r.error) throw r.error;
    if (r.status !== 0) {
      const { failed } = result;
      const err = new Error(`set-up failed${failed.length ? ` in: ${failed.join(', ')}` : ` (exit ${r.status ?? r.signal})`} (see above)`);
      err.status = r.status || 1;
      throw err;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// The scheduler, in the child: resolves with { timings, failed }: `ok` is
// false for a step that failed, and for those then stopped.
async function schedule(names) {
  const wanted = new Set(names);
  const done = new Set();
  const running = new Map(); // name -> child
  const results = [];
  const failures = [];
  let failed = false;
  const started = Date.now();
  const cpuBusy = () => [...running.keys()].filter((n) => STEPS[n].cpu).length;
  const canStart = (name) => {
    const s = STEPS[name];
    if ((s.after || []).some((a) => wanted.has(a) && !done.has(a))) return false;
    if (s.cpu && cpuBusy() >= CPU_SLOTS) return false;
    return true;
  };
  return new Promise((resolve) => {
    const pending = [...names];
    const pump = () => {
      if (!failed) {
        for (const name of [...pending]) {
          if (!canStart(name)) continue;
          pending.splice(pending.indexOf(name), 1);
          start(name);
        }
      }
      if (running.size === 0) {
        if (!failed && pending.length > 0) say(`steps that could not start: ${pending.join(', ')}`);
        say(`set-up took ${Math.round((Date.now() - started) / 1000)} s`);
        resolve({ timings: results, failed: failures });
      }
    };
    const start = (name) => {
      const s = STEPS[name];
      const t0 = Date.now();
      say(`start: ${name} ($ ${s.cmd.map((a) => (a === process.execPath ? 'node' : a)).join(' ')})`);
      // Its own process group, so that a failure elsewhere stops all of it.
      const argv = s.low ? ['nice', '-n', '10', ...s.cmd] : s.cmd;
      const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      running.set(name, child);
      // Whole lines only, so that the steps' lines do not interleave mid-line.
      for (const [stream, to] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
        let rest = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk) => {
          const lines = (rest + chunk).split('\n');
          rest = lines.pop();
          if (lines.length > 0) to.write(`${lines.join('\n')}\n`);
        });
        stream.on('end', () => rest && to.write(`${rest}\n`));
      }
      child.on('close', (code, signal) => {
        running.delete(name);
        const seconds = Math.round((Date.now() - t0) / 100) / 10;
        const ok = code === 0;
        results.push({ phase: name, seconds, ok });
        if (ok) {
          done.add(name);
          say(`done: ${name} in ${seconds} s`);
        } else if (!(failed && signal === 'SIGTERM')) {
          failures.push(name);
          say(`FAILED: ${name} (exit ${code ?? signal}) after ${seconds} s: $ ${s.cmd.join(' ')}`);
          if (!failed) {
            failed = true;
            for (const [other, c] of running) {
              say(`stopping ${other}`);
              try {
                process.kill(-c.pid, 'SIGTERM');
              } catch {
                // already gone
              }
            }
          }
        }
        pump();
      });
    };
    pump();
  });
}

function provision() {
  if (!IS_ROOT) {
    say(`not root: skipping the provisioning (${PROVISION.map((n) => STEPS[n].cmd[1]).join(', ')}); tests that need what it installs skip loudly, and fail with CI=true`);
    return;
  }
  runSteps(PROVISION);
}

function missingDevDependencies() {
  const { devDependencies = {} } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  return Object.keys(devDependencies).filter((name) => !fs.existsSync(path.join(ROOT, 'node_modules', name, 'package.json')));
}

// (In the step's own process: `node scripts/setup.js --dev-dependencies`.)
function installDevDependencies() {
  const missing = missingDevDependencies();
  if (missing.length === 0) return;
  say(`devDependencies missing from node_modules (${missing.join(', ')}): npm ci`);
  const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });
  if (npm.error || npm.status !== 0) throw new Error('npm is not installed (it comes with Node.js)');
  // npm retries its own fetches; a run that still fails is tried once more.
  for (let attempt = 1; ; attempt++) {
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], env: cleanEnv() });
    if (r.status === 0) break;
    if (attempt === 2) throw new Error(`npm ci failed (exit ${r.status ?? r.signal}) twice`);
    say(`npm ci failed (exit ${r.status ?? r.signal}): trying once more`);
  }
  const still = missingDevDependencies();
  if (still.length > 0) throw new Error(`npm ci did not install ${still.join(', ')}`);
}

function devDependencies() {
  if (missingDevDependencies().length > 0) runSteps(['devDependencies']);
}

function build() {
  runSteps(['addon']);
}

// As root, `npm run package`: every target's prebuilt addon and the
// tarballs in dist/. The platform tests run those addons. Without root the
// builds cannot run (they use the Debian sid root): those tests skip loudly,
// and with CI=true they fail.
function prebuilt() {
  if (!IS_ROOT) {
    say('not root: the prebuilt addons are not built (npm run package needs root); the platform tests that run them skip');
    return;
  }
  runSteps(PREBUILT);
}

// Everything, side by side: what `npm test` needs.
function prepare(extra = {}) {
  for (const [name, s] of Object.entries(extra)) {
    if (STEPS[name] || !Array.isArray(s.cmd)) throw new Error(`setup.prepare: step ${JSON.stringify(name)} needs a new name and a cmd array`);
  }
  const names = Object.keys(STEPS).filter((n) => IS_ROOT || !STEPS[n].root);
  if (!IS_ROOT) say('not root: no provisioning and no prebuilt addons (tests that need them skip loudly, and fail with CI=true)');
  if (missingDevDependencies().length === 0) names.splice(names.indexOf('devDependencies'), 1);
  runSteps([...names, ...Object.keys(extra)], extra);
}

module.exports = { prepare, provision, devDependencies, build, prebuilt, missingDevDependencies, timings, STEPS };

if (require.main === module) {
  const [flag, ...rest] = process.argv.slice(2);
  try {
    if (flag === '--steps') {
      // (run by runSteps: --steps TIMINGS-OUT EXTRA-STEPS-JSON NAME...)
      const [timingsOut, extraFile, ...names] = rest;
      Object.assign(STEPS, JSON.parse(fs.readFileSync(extraFile, 'utf8')));
      schedule(names).then((result) => {
        fs.writeFileSync(timingsOut, JSON.stringify(result));
        process.exitCode = result.timings.every((r) => r.ok) && result.timings.length === names.length ? 0 : 1;
      });
    } else if (flag === '--dev-dependencies') {
      installDevDependencies();
    } else if (flag === undefined) {
      devDependencies();
      build();
    } else {
      throw new Error(`unknown argument ${flag} (usage: node scripts/setup.js)`);
    }
  } catch (err) {
    process.stderr.write(`setup: ${err.message}\n`);
    process.exitCode = err.status || 1;
  }
}
