'use strict';
// test-needs: vm
// arm64: the linux-arm64-gnu addon (scripts/build/linux-arm64-gnu.sh) on
// an arm64 machine made on this host (scripts/provision-arm64.sh; the same
// addon under qemu-user is test/platform-arm64-user.test.js's):
//   - in an arm64 virtual machine (qemu-system-aarch64, TCG, Debian's arm64
//     kernel), traced for real by the machine's bpftrace 0.27: the basic
//     tracer cases pass, and so do the Rust crates' own tests, cross-compiled
//     for aarch64 (the semaphore test attaches bpftrace there);
//   - in the same boot, the linux-arm64-musl addon under Bun's arm64 musl
//     build (scripts/provision-musl.sh, carried in the machine's payload):
//     the basic tracer cases pass, traced by the same bpftrace.
//
// Needs root and the provisioned root, kernel and qemu; without them the
// tests are skipped loudly, and with CI=true they fail. The machine takes a
// few minutes (TCG): boot ~20 s, about 20 s per traced case (node or Bun).

const { describe, test, before } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const h = require('./fixtures/helpers');
const runtimes = require('./fixtures/runtimes');
const { ensurePrebuilt, addonPath, basicCases } = require('./platform/prebuilt');
const arm64 = require('./platform/arm64-vm');

const TARGET = 'linux-arm64-gnu';
const MUSL_TARGET = 'linux-arm64-musl';
let reason = arm64.qemuUserUnavailable();
if (reason === null) reason = ensurePrebuilt(TARGET);
const vmReason = reason || arm64.vmUnavailable();
const vmGate = h.gate(`${TARGET} tests (arm64 virtual machine)`, reason ? null : vmReason);
const pkg = reason === null ? runtimes.packageWith(addonPath(TARGET)) : null;
// The musl runtime rides in the same boot; without it only its tests fail.
let muslReason = vmReason ? null : arm64.muslUnavailable();
if (!vmReason && muslReason === null) muslReason = ensurePrebuilt(MUSL_TARGET);
const muslGate = h.gate(`${MUSL_TARGET} tests under Bun (arm64 virtual machine)`, vmReason ? null : muslReason);
const muslPkg = !vmReason && muslReason === null ? runtimes.packageWith(addonPath(MUSL_TARGET)) : null;

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
