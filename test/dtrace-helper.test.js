'use strict';
// test-needs: tracer
// enable() registers a provider with DTrace's helper device where there is
// one. Here there is none: $DTRACE_DOF_INIT_DEVNAME (DTrace's own variable
// for the device's path) points at real things that are not the helper, so
// that the registration fails for real (ENOTTY from /dev/null, a file, a
// FIFO). Without a device nothing changes and nothing is printed; with a
// refusal, one process warning says why, and the USDT probes still fire
// under bpftrace. (The registration that works is tested against Oracle
// DTrace's dtprobed in the DTrace VM.)

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./fixtures/helpers');

const CODE = 'DYNPROBE_DTRACE_REGISTRATION_FAILED';
const DEVICE = 'DTRACE_DOF_INIT_DEVNAME';

// In a child with `env`: enables three providers (one disabled and enabled
// again), fires each probe, and reports every warning the process emitted
// and what the addon said of each registration.
function enableThree(env) {
  const r = h.runChild(
    `
    const warnings = [];
    process.on('warning', (w) => warnings.push({ code: w.code, message: w.message }));
    const dynprobe = require('.');
    const providers = ['dtha', 'dthb', 'dthc'].map((name) => {
      const p = dynprobe.createDTraceProvider(name);
      p.addProbe('p', 'int', 'char *');
      return p;
    });
    const started = process.hrtime.bigint();
    for (const p of providers) p.enable();
    providers[0].disable();
    providers[0].enable();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const fired = providers.map((p) => p.fire('p', () => [1, 'x']));
    const untraced = providers.map((p) => p.p.fire(() => { throw new Error('ran untraced'); }) === undefined);
    const slots = providers.map((p) => [p.p._sema.constructor.name, p.p._sema[0]]);
    await helpers.tick();
    report({ warnings, ms, fired, untraced, slots });
  `,
    { env: { [DEVICE]: undefined, DTRACE_DOF_INIT_DISABLE: undefined, ...env } },
  );
  assert.equal(r.status, 0, `child failed:\n${r.stderr}`);
  assert.ok(r.result, r.stdout + r.stderr);
  // Nothing else reaches stderr: no native message, no second warning.
  const printed = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.includes('--trace-warnings'));
  return { ...r.result, printed };
}

function assertWorks(r) {
  assert.deepEqual(r.fired, [true, true, true]);
  assert.deepEqual(r.untraced, [true, true, true]);
  assert.deepEqual(r.slots, [['Uint32Array', 0], ['Uint32Array', 0], ['Uint32Array', 0]]);
}

test('no helper device: no warning, nothing printed, the probes as ever', () => {
  const missing = enableThree({ [DEVICE]: '/nonexistent-dynprobe-test/helper' });
  assert.deepEqual(missing.warnings, []);
  assert.deepEqual(missing.printed, []);
  assertWorks(missing);
  if (!fs.existsSync('/dev/dtrace/helper')) {
    const plain = enableThree({});
    assert.deepEqual(plain.warnings, []);
    assert.deepEqual(plain.printed, []);
  }
});

test('a device that is not the helper: one warning per process with the reason, the probes as ever', () => {
  const r = enableThree({ [DEVICE]: '/dev/null' });
  assert.equal(r.warnings.length, 1, JSON.stringify(r.warnings));
  const [w] = r.warnings;
  assert.equal(w.code, CODE);
  assert.match(w.message, /^provider dtha is not registered with DTrace: /);
  assert.match(w.message, /\/dev\/null/);
  assert.match(w.message, /refused DTRACEHIOC_ADDDOF: Inappropriate ioctl for device/);
  assert.match(w.message, /USDT probes work as before/);
  assert.equal(r.printed.length, 1, r.printed.join('\n')); // the warning itself
  assertWorks(r);
});

test('DTRACE_DOF_INIT_DISABLE: nothing is registered, nothing is said', () => {
  const r = enableThree({ [DEVICE]: '/dev/null', DTRACE_DOF_INIT_DISABLE: '1' });
  assert.deepEqual(r.warnings, []);
  assertWorks(r);
});

test('a file or a FIFO as the helper: a warning, and enable() does not wait', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-helper-'));
  try {
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, '');
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    for (const device of [file, fifo]) {
      const r = enableThree({ [DEVICE]: device });
      assert.equal(r.warnings.length, 1, JSON.stringify(r.warnings));
      assert.equal(r.warnings[0].code, CODE);
      assert.ok(r.warnings[0].message.includes(`${device} is not DTrace's helper device: not a character device`), r.warnings[0].message);
      assertWorks(r);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the raw addon reports the registration: false without a device, the reason when refused', () => {
  const code = (device) => `
    process.env.${DEVICE} = ${JSON.stringify(device)};
    const addon = require('./build/dynprobe.node');
    const p = new addon.NativeProvider('dthraw', 'dthraw', [{ name: 'p', types: [] }, { name: 'q', types: [] }]);
    const registration = p.dtraceRegistration();
    const bytes = p.semaphores().byteLength;
    p.unload();
    let after;
    try { p.dtraceRegistration(); } catch (err) { after = err.message; }
    report({ registration, bytes, after });
  `;
  const none = h.runChild(code('/nonexistent-dynprobe-test/helper'));
  assert.deepEqual(none.result, { registration: false, bytes: 8, after: 'provider is unloaded' }, none.stderr);
  const refused = h.runChild(code('/dev/null'));
  assert.equal(typeof refused.result.registration, 'string', refused.stderr);
  assert.match(refused.result.registration, /refused DTRACEHIOC_ADDDOF/);
});

const tracer = h.gate('dtrace-helper traced test (bpftrace)', h.bpftraceUnavailable());

test('with the registration refused, bpftrace still traces the USDT probes', { skip: tracer.skip, timeout: 120000 }, async () => {
  assert.ok(!tracer.reason, `bpftrace is required when CI=true: ${tracer.reason}`);
  const script = `
    const warnings = [];
    process.on('warning', (w) => warnings.push(w.code));
    const helpers = require('./test/fixtures/helpers');
    const p = require('.').createDTraceProvider('dthtraced');
    const probe = p.addProbe('p', 'int');
    p.enable();
    console.log('READY ' + process.pid);
    // Fires once the parent says bpftrace has attached everything.
    process.stdin.setEncoding('utf8').once('data', async () => {
      await helpers.untilTraced(probe, 60000);
      let fired = 0;
      for (let i = 0; i < 200; i++) if (probe.fire(() => [i]) === true) fired++;
      console.log('FIRED ' + fired + ' ' + JSON.stringify(warnings));
      process.stdin.on('end', () => process.exit(0)); // once the parent is done
    });
  `;
  const child = spawn(process.execPath, ['-e', script], {
    cwd: h.ROOT,
    env: { ...process.env, [DEVICE]: '/dev/null' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  child.stdout.setEncoding('utf8').on('data', (c) => {
    out += c;
    wake();
  });
  child.stderr.setEncoding('utf8').on('data', (c) => (err += c));
  child.on('exit', wake);
  // The rest of the first line of the child's output that starts with `prefix`.
  const line = async (prefix) => {
    for (;;) {
      const found = out.split('\n').find((l) => l.startsWith(prefix));
      if (found !== undefined) return found.slice(prefix.length);
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`child exited:\n${out}\n${err}`);
      await new Promise((resolve) => waiters.push(resolve));
    }
  };
  let bt;
  try {
    const pid = Number(await line('READY '));
    bt = h.attachBpftrace(pid, 'usdt:*:dthtraced:p { @fired[probe] = count(); }');
    await bt.attached();
    child.stdin.write('go\n');
    const [fired, warnings] = (await line('FIRED ')).split(' ');
    const printed = await bt.stop();
    bt = null;
    assert.equal(Number(fired), 200);
    assert.deepEqual(JSON.parse(warnings), [CODE]);
    assert.deepEqual(h.bpftraceCounts(printed, 'fired'), { p: 200 }, printed);
  } finally {
    if (bt) await bt.stop();
    child.stdin.end();
    if (child.exitCode === null) await new Promise((resolve) => child.on('exit', resolve));
  }
});
