'use strict';
// test-needs: tracer
// One source of truth for what a firing's values are: bpftrace reading the
// probes of a process (`dynprobe trace --via kernel`, bpftrace 0.17), the
// process's endpoint (`dynprobe trace --via process`) and an in-process
// subscriber, all attached at once, read the same firings alike, every one
// of them (test/fixtures/consumer/values.js: every integer type at and
// beyond its bounds, odd Numbers, BigInts, NUL, UTF-8, JSON). And a
// subscription alone makes no native call: a plain uprobe at the probe's
// site (which sets no semaphore) counts none. Needs root and bpftrace; run
// under the team's tracer lock (flock /tmp/dynprobe-tracer.lock).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./fixtures/helpers');
const { startTarget, cli, cliRunning, until, jsonLines } = require('./fixtures/consumer/run');
const { VALUES } = require('./fixtures/consumer/values');

const gate = h.gate('consumer tests against bpftrace', h.bpftraceUnavailable());
const TOTAL = Object.values(VALUES).reduce((n, v) => n + v.rows.length, 0);

// A subscriber's value as `dynprobe trace --json` prints it.
function asTraceJson(v) {
  if (v !== null && typeof v === 'object' && typeof v.big === 'string') return v.big;
  return v;
}

test('bpftrace, the endpoint and an in-process subscriber, all attached at once, read every firing alike', { skip: gate.skip, timeout: 180000 }, async () => {
  assert.ok(!gate.reason, gate.reason);
  const target = await startTarget();
  let kernel;
  let viaProcess;
  try {
    await target.ask('subscribe ceq:*', 'subscribed');
    kernel = cliRunning(['trace', target.pid, 'ceq:*', '--via', 'kernel', '--tracer', 'bpftrace', '--json', '--count', TOTAL]);
    viaProcess = cliRunning(['trace', target.pid, 'ceq:*', '--via', 'process', '--json', '--count', TOTAL]);
    await until(() => /with bpftrace [\d.]+; Ctrl-C to stop/.test(kernel.stderr) || kernel.exited, 60000, `bpftrace attached:\n${kernel.stderr}`);
    await until(() => /through its endpoint; Ctrl-C to stop/.test(viaProcess.stderr) || viaProcess.exited, 30000, 'the endpoint subscription');
    assert.equal(kernel.exited, null, kernel.stderr);
    const { fired } = await target.ask('equal', 'equal');
    assert.equal(fired, TOTAL);
    await Promise.all([kernel.exit, viaProcess.exit]);
    assert.deepEqual(kernel.exited, { code: 0, signal: null }, kernel.stderr);
    assert.deepEqual(viaProcess.exited, { code: 0, signal: null }, viaProcess.stderr);
    const byKernel = jsonLines(kernel.lines.join('\n'));
    const byProcess = jsonLines(viaProcess.lines.join('\n'));
    const inProcess = await until(async () => {
      const got = await target.ask('collected', 'collected');
      return got.length === TOTAL ? got : null;
    }, 10000, 'the in-process subscriber got every firing');
    const shape = (l) => ({ probe: l.probe, args: l.args, types: l.types });
    assert.equal(byKernel.length, TOTAL);
    assert.equal(byProcess.length, TOTAL);
    assert.deepEqual(byProcess.map(shape), byKernel.map(shape));
    assert.deepEqual(
      inProcess.map((f) => f.args.map(asTraceJson)),
      byKernel.map((l) => l.args),
    );
    assert.deepEqual(inProcess.map((f) => `${f.provider}:${f.probe}`), byKernel.map((l) => `${l.provider}:${l.probe}`));
    // Times agree to within the two clocks' offsets (the same clock read
    // by bpftrace and by the process, each turned into wall time once).
    for (let i = 0; i < TOTAL; i++) {
      const d = Math.abs(Number(BigInt(byProcess[i].timeNs) - BigInt(byKernel[i].timeNs)));
      assert.ok(d < 50e6, `firing ${i}: times ${byProcess[i].timeNs} and ${byKernel[i].timeNs} differ by ${d} ns`);
    }
  } finally {
    for (const c of [kernel, viaProcess]) if (c && !c.exited) c.child.kill('SIGINT');
    await target.finish();
  }
});

test('a subscription alone makes no native call (no kernel trip): a plain uprobe at the site counts none, and each fire made with a tracer\'s bit set', { skip: gate.skip, timeout: 180000 }, async () => {
  assert.ok(!gate.reason, gate.reason);
  const target = await startTarget();
  let plain;
  try {
    const [listing] = JSON.parse(cli(['list', target.pid, '--via', 'kernel', '--json']).stdout);
    const entry = listing.providers.find((p) => p.provider === 'ctest');
    const tick = entry.probes.find((p) => p.name === 'tick');
    assert.ok(Number.isInteger(tick.addressOffset), JSON.stringify(tick));
    // A uprobe by address, as DTrace's registered probes are: no semaphore.
    const site = `uprobe:${entry.tracerPath}:${tick.addressOffset} { @calls = count(); }`;
    const count = (out, name) => {
      const m = new RegExp(`@${name}: (\\d+)`).exec(out);
      return m ? Number(m[1]) : 0;
    };
    plain = h.attachBpftrace(target.pid, site);
    await plain.attached();
    await target.ask('subscribe ctest:tick', 'subscribed');
    await target.ask('fire 100', 'fired');
    await until(async () => (await target.ask('collected', 'collected')).length === 100, 10000, 'the subscriber got 100 firings');
    // The positive control: a tracer's bit (the DTrace site watcher's byte,
    // set by hand) sends each fire to the site, which the uprobe counts. (A
    // USDT probe cannot be attached beside it: the kernel refuses a second
    // uprobe at one place with another semaphore.)
    await target.ask('watcher 1', 'watcher');
    await target.ask('fire 50', 'fired');
    await target.ask('watcher 0', 'watcher');
    await until(async () => (await target.ask('collected', 'collected')).length === 150, 10000, 'the subscriber got 150 firings');
    const out = await plain.stop();
    plain = null;
    assert.equal(count(out, 'calls'), 50, `only the 50 fires made with a tracer's bit set reached the site:\n${out}`);
  } finally {
    if (plain) await plain.stop();
    await target.finish();
  }
});
