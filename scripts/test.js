#!/usr/bin/env node
'use strict';
// `npm test`: everything, from a fresh clone on a fresh machine.
//   1. devDependencies (npm ci when missing), then lint (scripts/lint.js):
//      a finding stops the run here, before the long part
//   2. set-up (scripts/setup.js): as root, provisioning (scripts/provision-*.sh)
//   3. builds: the addon; as root the prebuilt addons; the Rust fire
//      program that tracer cases run; the Rust tests
//   4. the tests: cargo test and every test/*.test.js, side by side where
//      they allow it (scripts/testing/plan.js: a file says whether it
//      attaches tracers or boots a VM; at most one of each runs at a time)
//   5. the time of every phase, then `N passed, N failed, N skipped`
//      counted across the Rust and JavaScript tests
//
// `npm run test:quick` (--quick): no provisioning and no root needed: lint,
// the addon, the Rust tests and the test files whose `test-tier` is quick.
//
// Options: --quick; --no-lint; --no-setup (no provisioning and no prebuilt
// addons: for a machine provisioned already); --jobs N (how many tests run
// at once; default: the number of CPUs plus one); --only REGEX (the jobs
// whose names match: `cargo test`, test/NAME.test.js); test files as
// arguments run only those (and not cargo test).
//
// Tests that need root, a tracer or a provisioned root skip loudly without
// them, and with CI=true they fail.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const setup = require('./setup');
const { lint } = require('./lint');
const { countCargo } = require('./testing/cargo');
const { testFiles, declared } = require('./testing/plan');
const { runJobs, stopAll } = require('./testing/jobs');
const targetCache = require('./lib/target-cache');

const ROOT = path.join(__dirname, '..');
const REPORTER = path.join(__dirname, 'testing', 'reporter.js');
const RUST_TESTS = ['--release', '-p', 'dynprobe-format', '-p', 'dynprobe'];
const HISTORY = path.join(ROOT, 'node_modules', '.cache', 'dynprobe', 'test-times.json');

function parseArgs(argv) {
  const opts = { quick: false, lint: true, setup: true, jobs: os.cpus().length + 1, only: null, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--no-lint') opts.lint = false;
    else if (a === '--no-setup') opts.setup = false;
    else if (a === '--only') opts.only = new RegExp(argv[++i]);
    else if (a === '--jobs') opts.jobs = Number(argv[++i]);
    else if (a.startsWith('--jobs=')) opts.jobs = Number(a.slice('--jobs='.length));
    else if (a.startsWith('-')) throw new Error(`unknown option ${a} (--quick, --no-lint, --no-setup, --jobs N, --only REGEX, test files)`);
    else opts.files.push(a);
  }
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1) throw new Error('--jobs takes a whole number above 0');
  return opts;
}

const times = [];
const say = (text) => process.stdout.write(`\nnpm test: ${text}\n`);
const sayIf = (text) => text && say(text);

// Runs a phase and records its time. setup.js records its own phases (one
// per provisioning step and build) in setup.timings where it does: those
// are taken instead of one line for the call.
function phase(name, fn) {
  const own = setup.timings || [];
  const before = own.length;
  const started = process.hrtime.bigint();
  let ok = false;
  try {
    fn();
    ok = true;
  } finally {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (own.length > before) times.push(...own.slice(before));
    else times.push({ phase: name, seconds, ok });
  }
}

function run(cmd, args) {
  process.stdout.write(`\n$ ${cmd} ${args.join(' ')}\n`);
  execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
}

// Durations of the last run, to start the longest jobs first.
function history() {
  try {
    return JSON.parse(fs.readFileSync(HISTORY, 'utf8'));
  } catch {
    return {};
  }
}

function saveHistory(results) {
  try {
    const all = { ...history(), ...Object.fromEntries(results.map((r) => [r.name, Math.round(r.seconds)])) };
    fs.mkdirSync(path.dirname(HISTORY), { recursive: true });
    fs.writeFileSync(HISTORY, `${JSON.stringify(all, null, 1)}\n`);
  } catch {
    // a read-only checkout: the next run starts jobs in file order
  }
}

// A test file's job: node --test with the spec reporter on stdout and the
// counting reporter into a file.
function fileJob(spec, tmp) {
  const counts = path.join(tmp, `${path.basename(spec.file)}.counts.json`);
  const env = { ...process.env };
  if (spec.needs.length === 0) {
    // Beside tracer files, this file's providers are libraries of its own:
    // a tracer attached by library path (or system-wide) elsewhere never
    // sets their semaphores, and never sees their fires.
    env.DYNPROBE_DIR = fs.mkdtempSync(path.join(tmp, 'dir-'));
  }
  return {
    name: spec.file,
    needs: spec.needs,
    cmd: process.execPath,
    args: ['--test', '--test-reporter=spec', '--test-reporter-destination=stdout', `--test-reporter=${REPORTER}`, `--test-reporter-destination=${counts}`, spec.file],
    cwd: ROOT,
    env,
    count: (r) => {
      let tally;
      try {
        tally = JSON.parse(fs.readFileSync(counts, 'utf8'));
      } catch {
        tally = { passed: 0, failed: 0, skipped: 0, todo: 0, failures: [] };
      }
      return finish(tally, r);
    },
  };
}

function cargoJob() {
  return {
    name: 'cargo test',
    // crates/dynprobe/tests/semaphore.rs attaches bpftrace.
    needs: ['tracer'],
    cmd: 'cargo',
    // Every test binary runs, whichever fails first.
    args: ['test', '--no-fail-fast', ...RUST_TESTS],
    cwd: ROOT,
    env: process.env,
    count: (r) => {
      const tally = countCargo(r.output);
      for (const note of tally.notes) r.output += `npm test: ${note}\n`;
      return finish(tally, r);
    },
  };
}

// The aarch64 test binaries that test/platform-arm64.test.js boots its VM
// with, built as the tests start, beside them: built by that test, they made
// the VM files' lane (the run's longest) longer by the build, up to four
// minutes on a fresh machine; built by set-up, they made its longest step
// longer. The test builds them again, finding them fresh (or waiting on
// cargo's lock while this build runs).
function aarch64BuildJob() {
  return {
    name: 'build: aarch64 rust tests',
    build: true,
    needs: [],
    cmd: path.join(ROOT, 'scripts', 'testing', 'rust-tests-aarch64.sh'),
    args: [],
    cwd: ROOT,
    env: process.env,
    count: (r) => finish({ passed: 0, failed: 0, skipped: 0, todo: 0, failures: [] }, r),
  };
}

// A job that failed without a failing test (a crash, a build error, a
// file that did not load) counts as one failure.
function finish(tally, r) {
  const ok = r.code === 0 && tally.failed === 0;
  if (!ok && tally.failed === 0) {
    tally.failed = 1;
    tally.failures = [`exited with ${r.signal || r.code}`];
  }
  return { ...tally, ok };
}

function summary(results, jobs, totalSeconds, { counts = true } = {}) {
  const rows = [
    ...times.map((t) => ({ name: t.phase, seconds: t.seconds, status: t.ok ? 'ok' : 'FAILED', extra: '' })),
    ...jobs.map((job, i) => {
      const r = results[i];
      const tally = `${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped${r.todo ? `, ${r.todo} todo` : ''}`;
      return { name: job.build ? job.name : `test: ${job.name}`, seconds: r.seconds, status: r.ok ? 'ok' : 'FAILED', extra: job.build ? '' : tally };
    }),
  ];
  const width = Math.max(...rows.map((r) => r.name.length));
  const out = ['', '══ npm test: time of each phase ══'];
  for (const r of rows) out.push(`  ${r.name.padEnd(width)}  ${r.seconds.toFixed(1).padStart(7)} s  ${r.status.padEnd(6)} ${r.extra}`.trimEnd());
  out.push(`  ${'total (wall clock)'.padEnd(width)}  ${totalSeconds.toFixed(1).padStart(7)} s`);
  const failures = jobs.flatMap((job, i) => results[i].failures.map((f) => `  ✖ ${job.name}: ${f}`));
  if (failures.length) out.push('', 'failed:', ...failures);
  const sum = (k) => results.reduce((n, r) => n + r[k], 0);
  if (!counts) {
    process.stdout.write(`${out.join('\n')}\n`);
    return false;
  }
  const todo = sum('todo');
  // todo tests neither pass nor fail a run: they are counted as skipped.
  if (todo) out.push(`(${todo} todo counted as skipped)`);
  out.push(`${sum('passed')} passed, ${sum('failed')} failed, ${sum('skipped') + todo} skipped`);
  process.stdout.write(`${out.join('\n')}\n`);
  return sum('failed') === 0;
}

const started = Date.now();

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const specs = opts.files.length
    ? opts.files.map((f) => declared(path.resolve(f)))
    : testFiles(ROOT).filter((s) => !opts.quick || s.quick);
  for (const s of specs) {
    if (s.undeclared) say(`${s.file} has no \`// test-needs:\` line: it runs alone among tracer files (scripts/testing/plan.js)`);
  }

  const full = !opts.quick && opts.setup;
  // A fresh clone's target/ from the last run's (scripts/lib/target-cache.js).
  const keepTarget = full && process.getuid() === 0;
  if (keepTarget) phase('target/ from the cache', () => sayIf(targetCache.restore(ROOT)));
  phase('devDependencies', () => setup.devDependencies());
  if (opts.lint) {
    const results = lint();
    times.push(...results);
    if (!results.every((r) => r.ok)) {
      summary([], [], (Date.now() - started) / 1000, { counts: false });
      say('lint failed (above): no test ran. `npm run lint` runs it alone.');
      return 1;
    }
  }
  const withCargo = opts.files.length === 0;
  // The Rust programs the tests drive (test/drivers: the tracer cases' fire), and
  // the Rust tests, built before they run so that building is not testing.
  const builds = {};
  if (!opts.quick) builds['build: test drivers'] = ['cargo', 'build', '--release', '--quiet', '-p', 'dynprobe-test-drivers'];
  if (withCargo) builds['build: rust tests'] = ['cargo', 'test', '--no-run', '--quiet', ...RUST_TESTS];
  if (full && typeof setup.prepare === 'function') {
    // Set-up as steps side by side (provisioning, the addon, the prebuilt
    // addons), ours among them once the addon is built.
    const extra = Object.fromEntries(Object.entries(builds).map(([name, cmd]) => [name, { cmd, after: ['addon'], cpu: true }]));
    phase('set-up', () => setup.prepare(extra));
  } else {
    if (full) phase('provision', () => setup.provision());
    phase('build: addon', () => setup.build());
    if (full) phase('build: prebuilt addons', () => setup.prebuilt());
    for (const [name, cmd] of Object.entries(builds)) phase(name, () => run(cmd[0], cmd.slice(1)));
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-npm-test-'));
  process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
  const arm64 = full && process.getuid() === 0 && specs.some((s) => s.file === path.join('test', 'platform-arm64.test.js'));
  const jobs = [...(arm64 ? [aarch64BuildJob()] : []), ...(withCargo ? [cargoJob()] : []), ...specs.map((s) => fileJob(s, tmp))].filter((job) => !opts.only || opts.only.test(job.name));
  // The longest first (from the last run's times; new ones count as long).
  const last = history();
  // (A build first: a test waits for it.)
  const order = jobs.map((job, i) => ({ job, i, t: job.build ? Infinity : (last[job.name] ?? Infinity) })).sort((a, b) => b.t - a.t || a.i - b.i);
  const sorted = order.map((o) => o.job);
  say(`${sorted.length} test jobs, up to ${opts.jobs} at once, at most one needing a tracer and one a VM at a time`);
  const results = await runJobs(sorted, { slots: opts.jobs });
  saveHistory(sorted.map((job, i) => ({ name: job.name, seconds: results[i].seconds })));
  // Once every build of the run is done (some tests build too).
  // A cache: what fails here is said, and the run's result stays the tests'.
  if (keepTarget) {
    phase('target/ into the cache', () => {
      try {
        sayIf(targetCache.save(ROOT));
      } catch (err) {
        say(`target/ not kept: ${err.message}`);
      }
    });
  }
  // The summary lists the jobs in file order.
  const byName = new Map(sorted.map((job, i) => [job.name, results[i]]));
  return summary(
    jobs.map((job) => byName.get(job.name)),
    jobs,
    (Date.now() - started) / 1000,
  )
    ? 0
    : 1;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    stopAll();
    process.exitCode = 130;
    setTimeout(() => process.exit(130), 12000).unref();
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`\nnpm test: ${err.message}\n`);
    if (times.length) summary([], [], (Date.now() - started) / 1000, { counts: false });
    process.exitCode = err.status || 1;
  },
);
