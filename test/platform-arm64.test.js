'use strict';
// test-needs: vm
// arm64: the linux-arm64-gnu addon (scripts/build/linux-arm64-gnu.sh) on
// arm64 machines made on this host (scripts/provision-arm64.sh):
//   - under qemu-user with the arm64 root's node: test/api.test.js passes
//     (its bpftrace suite skips: no tracer attaches to an emulated process);
//   - in an arm64 virtual machine (qemu-system-aarch64, TCG, Debian's arm64
//     kernel), traced for real by the machine's bpftrace 0.27: the basic
//     tracer cases pass, and so do the Rust crates' own tests, cross-compiled
//     for aarch64 (the semaphore test attaches bpftrace there);
//   - in the same boot, the linux-arm64-musl addon under Bun's arm64 musl
//     build (scripts/provision-musl.sh, carried in the machine's payload):
//     the basic tracer cases pass, traced by the same bpftrace.
// The addon's glibc floor is 2.17, like x64's.
//
// Needs root and the provisioned root, kernel and qemu; without them the
// tests are skipped loudly, and with CI=true they fail. The machine takes a
// few minutes (TCG): boot ~20 s, about 40 s per traced case (node or Bun).

const { describe, test, before } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./fixtures/helpers');
const runtimes = require('./fixtures/runtimes');
const { ensurePrebuilt, addonPath, neededVersions, basicCases } = require('./platform/prebuilt');
const arm64 = require('./platform/arm64-vm');

const TARGET = 'linux-arm64-gnu';
const MUSL_TARGET = 'linux-arm64-musl';
let reason = arm64.qemuUserUnavailable();
if (reason === null) reason = ensurePrebuilt(TARGET);
const gate = h.gate(`${TARGET} tests (qemu-user)`, reason);
const vmReason = reason || arm64.vmUnavailable();
const vmGate = h.gate(`${TARGET} tests (arm64 virtual machine)`, reason ? null : vmReason);
const pkg = reason === null ? runtimes.packageWith(addonPath(TARGET)) : null;
// The musl runtime rides in the same boot; without it only its tests fail.
let muslReason = vmReason ? null : arm64.muslUnavailable();
if (!vmReason && muslReason === null) muslReason = ensurePrebuilt(MUSL_TARGET);
const muslGate = h.gate(`${MUSL_TARGET} tests under Bun (arm64 virtual machine)`, vmReason ? null : muslReason);
const muslPkg = !vmReason && muslReason === null ? runtimes.packageWith(addonPath(MUSL_TARGET)) : null;

test(`${TARGET}: the addon is arm64 and needs no glibc symbol newer than 2.17`, { skip: gate.skip }, () => {
  assert.ok(!reason, `required when CI=true: ${reason}`);
  const header = spawnSync('readelf', ['-h', addonPath(TARGET)], { encoding: 'utf8' }).stdout;
  assert.match(header, /Machine:\s+AArch64/);
  const versions = neededVersions(addonPath(TARGET));
  assert.ok(versions.length > 0, 'versioned glibc imports');
  const tooNew = versions.filter((v) => Number(v.split('.')[1]) > 17 || Number(v.split('.')[0].slice(6)) > 2);
  assert.deepEqual(tooNew, []);
});

test(`${TARGET}: test/api.test.js passes under qemu-user (the arm64 root's node)`, { skip: gate.skip, timeout: 15 * 60 * 1000 }, () => {
  assert.ok(!reason, `required when CI=true: ${reason}`);
  // The program runs in the arm64 root as in a container (runtimes.js), its
  // binaries through binfmt_misc: one file system, as on a real machine
  // (qemu's QEMU_LD_PREFIX would send some opens into the root and others
  // not). No bpftrace on PATH (it cannot attach to an emulated process) and
  // not CI: the one suite that needs a tracer skips, saying so.
  const runtime = { name: 'arm64 qemu-user', node: arm64.ARM64_NODE, root: arm64.ARM64_ROOT, package: pkg, env: {} };
  const base = { ...process.env };
  delete base.CI;
  const argv = runtimes.command(runtime, ['--test', '--test-reporter=tap', path.join(pkg, 'test', 'api.test.js')]);
  // PATH without bpftrace for node only (entering the root needs the tools).
  argv.splice(argv.lastIndexOf(arm64.ARM64_NODE), 0, '/usr/bin/env', 'PATH=/dynprobe-no-tools');
  const r = spawnSync(argv[0], argv.slice(1), { env: runtimes.environment(runtime, base), encoding: 'utf8', timeout: 14 * 60 * 1000 });
  const out = `${r.stdout}\n${r.stderr}`;
  const count = (what) => Number((new RegExp(`^# ${what} (\\d+)$`, 'm').exec(r.stdout) || [])[1] || 0);
  assert.equal(r.status, 0, `node --test failed (${r.status ?? r.signal}):\n${out.slice(-6000)}`);
  assert.equal(count('fail'), 0, out.slice(-6000));
  assert.ok(count('pass') >= 25, `only ${count('pass')} passed:\n${out.slice(-6000)}`);
  const skips = r.stdout.split('\n').filter((l) => /^\s*ok \d+ .*# SKIP/.test(l));
  assert.ok(skips.every((l) => /bpftrace/.test(l)), `only the tracer suite may skip:\n${skips.join('\n')}`);
  process.stderr.write(`${TARGET} under qemu-user: ${count('pass')} pass; skipped: ${skips.map((l) => l.trim()).join('; ')}\n`);
});

describe(`${TARGET} in an arm64 virtual machine, traced by its bpftrace`, { skip: vmGate.skip }, () => {
  let vm = null;
  let rustTests = [];
  before(async () => {
    if (vmReason) return;
    rustTests = arm64.buildRustTests();
    // DYNPROBE_VM_LOG=FILE copies the machine's console there as it runs.
    const logFile = process.env.DYNPROBE_VM_LOG;
    const log = logFile ? (chunk) => fs.appendFileSync(logFile, chunk) : null;
    const run = await arm64.runVm({ pkg, muslPkg, tests: rustTests, log });
    vm = { ...run, ...arm64.parseVmOutput(run.output) };
    process.stderr.write(`arm64 VM: ${vm.up}; ${vm.seconds} s\n`);
    // Where the machine's time went, for whoever makes it shorter.
    const caseTimes = Object.values(vm.cases).flatMap((byName) => Object.values(byName).map((c) => `${c.runtime} ${c.name}: ${c.seconds} s`));
    const rustTimes = Object.entries(vm.rust).map(([name, r]) => `${name}: ${(/finished in ([\d.]+)s/.exec(r.text) || [])[1] ?? '?'} s`);
    process.stderr.write(`arm64 VM: cases: ${caseTimes.join('; ')}\narm64 VM: Rust tests: ${rustTimes.join('; ')}\n`);
  }, { timeout: 40 * 60 * 1000 });

  const machine = () => {
    assert.ok(!vmReason, `required when CI=true: ${vmReason}`);
    assert.ok(vm && vm.up, `the machine did not come up:\n${vm ? vm.output.slice(-4000) : ''}`);
    return vm;
  };

  const checkCase = (m, runtime, c) => {
    const result = (m.cases[runtime] || {})[c.name];
    assert.ok(result, `no result for this case:\n${m.output.slice(-4000)}`);
    assert.ok(!result.error, result.error);
    assert.deepEqual(result.lines, result.expected, result.diagnostics);
  };
  for (const c of basicCases()) {
    test(`${c.name} [bpftrace 0.27, arm64 VM]`, () => checkCase(machine(), 'node', c));
  }
  for (const c of basicCases()) {
    test(`${MUSL_TARGET} under Bun: ${c.name} [bpftrace 0.27, arm64 VM]`, { skip: muslGate.skip }, () => {
      assert.ok(!muslReason, `required when CI=true: ${muslReason}`);
      checkCase(machine(), 'bun-musl', c);
    });
  }

  test('the Rust crates\' tests pass on aarch64 (the semaphore test traced by bpftrace)', () => {
    const m = machine();
    assert.ok(rustTests.length >= 4, `test binaries: ${rustTests.map((t) => t.name).join(', ')}`);
    for (const t of rustTests) {
      const name = t.name.replace(/[^\w.-]/g, '_');
      const run = m.rust[name];
      assert.ok(run, `${t.name} did not run:\n${m.output.slice(-4000)}`);
      assert.equal(run.status, 0, `${t.name} failed:\n${run.text.slice(-6000)}`);
      assert.match(run.text, /test result: ok\. [1-9]\d* passed; 0 failed/, `${t.name}:\n${run.text.slice(-3000)}`);
      if (t.name === 'dynprobe:semaphore') assert.doesNotMatch(run.text, /SKIP/, `the semaphore tests must trace:\n${run.text}`);
    }
    assert.ok(m.done, 'the machine finished its script');
  });
});
