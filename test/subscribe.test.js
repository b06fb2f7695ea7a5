'use strict';
// test-needs: nothing
// test-tier: quick
// The in-process API: dynprobe.subscribe(pattern, onFiring, { count, bytes })
// and dynprobe.providers(), with real providers, real bunyan and restify.
// (That subscribers decode values exactly as a kernel tracer reads them is
// proved against bpftrace in consumer-tracers.test.js.)

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { Writable } = require('node:stream');
const { spawnSync } = require('node:child_process');
const h = require('./fixtures/helpers');
const dynprobe = require('..');

// Firings of `pattern` collected while `body()` runs, once delivered.
async function collect(pattern, body, options) {
  const got = [];
  const sub = dynprobe.subscribe(pattern, (f) => got.push(f), options);
  try {
    await body(sub);
    await h.tick();
    await h.tick();
  } finally {
    sub.close();
  }
  return { got, sub };
}

let n = 0;
function provider(...probes) {
  const p = dynprobe.createDTraceProvider(`subtest${++n}`);
  const out = probes.map(([name, ...types]) => p.addProbe(name, ...types));
  p.enable();
  return { p, probes: out, name: p[Object.getOwnPropertySymbols(p)[0]].name };
}

test('the exports: subscribe and providers beside the dtrace-provider API; bad arguments are TypeErrors and RangeErrors', () => {
  assert.deepEqual(Object.keys(dynprobe).sort(), ['DTraceProvider', 'createDTraceProvider', 'providers', 'subscribe']);
  assert.throws(() => dynprobe.subscribe(1, () => {}), TypeError);
  assert.throws(() => dynprobe.subscribe('x'), TypeError);
  assert.throws(() => dynprobe.subscribe('x', () => {}, null), TypeError);
  assert.throws(() => dynprobe.subscribe('x', () => {}, { count: 0 }), RangeError);
  assert.throws(() => dynprobe.subscribe('x', () => {}, { bytes: 1.5 }), RangeError);
  assert.throws(() => dynprobe.subscribe('x', () => {}, { count: 1e9 }), /options\.count must be an integer from 1 to 10000000/);
});

test('a subscription turns its probes on (the callback runs), decodes by declared type, and the last close turns them off: one read again', async () => {
  const { p, probes: [a, b], name } = provider(['a', 'int', 'char *', 'json'], ['b', 'uint8_t']);
  let ran = 0;
  const values = (i) => {
    ran++;
    return [i, `s${i}\0cut`, { i, list: [1, 'x'] }];
  };
  a.fire(values, 0);
  assert.equal(ran, 0, 'untraced and unsubscribed: the callback never runs');
  assert.equal(a._sema[0], 0);
  const { got, sub } = await collect(`${name}:a`, async (s) => {
    assert.notEqual(a._sema[0], 0, 'the subscriber byte is set');
    assert.equal(b._sema[0], 0, 'a probe the pattern does not match stays off');
    for (let i = 1; i <= 3; i++) assert.equal(a.fire(values, i), true);
    assert.equal(p.fire('a', values, 4), true);
    b.fire(() => [1]);
    assert.equal(s.dropped, 0);
  });
  assert.equal(ran, 4);
  assert.equal(sub.delivered, 4);
  assert.deepEqual(
    got.map((f) => [f.provider, f.module, f.probe, f.args, f.types, f.argNames]),
    [1, 2, 3, 4].map((i) => [name, name, 'a', [i, `s${i}`, { i, list: [1, 'x'] }], ['int', 'char *', 'json'], null]),
  );
  for (const f of got) {
    assert.equal(typeof f.time, 'bigint');
    const ms = Number(f.time / 1000000n);
    assert.ok(Math.abs(ms - Date.now()) < 60000, `time ${f.time} is now`);
  }
  assert.ok(got[0].time <= got[3].time);
  assert.equal(a._sema[0], 0, 'closed: the subscriber byte is cleared');
  a.fire(values, 5);
  assert.equal(ran, 4, 'closed: the callback never runs');
  p.disable();
});

test('integers wrap to their declared size and sign; BigInt beyond 2^53; strings cut at NUL; JSON parsed, unserialisable values as the native side makes them', async () => {
  const { p, probes: [ints, wide, strs], name } = provider(
    ['ints', 'int8_t', 'uint8_t', 'int16_t', 'uint16_t', 'int32_t', 'uint32_t'],
    ['wide', 'int', 'uint64_t', 'int64_t', 'uint64_t', 'int', 'uint64_t'],
    ['strs', 'char *', 'char *', 'json', 'json', 'char *', 'id'],
  );
  const { got } = await collect(`${name}:*`, () => {
    ints.fire(() => [300, -1, 70000, -70000, 2 ** 40 + 5, -1]);
    ints.fire(() => [-1.9, 255.9, '42', true, null, undefined]);
    ints.fire(() => [NaN, Infinity, -Infinity, 5n, -(2n ** 70n) + 3n, 2n ** 64n - 1n]);
    wide.fire(() => [2 ** 53 + 2, -1, -(2n ** 63n), 2n ** 64n + 7n, 1e20, -1e20]);
    wide.fire(() => [Infinity, -Infinity, 9007199254740991, 0.5, { valueOf: () => 7 }, '18446744073709551615']);
    strs.fire(() => ['a\0b', 'é ü 😀', { x: [1] }, undefined, '\ud800x', 12345]);
  });
  assert.deepEqual(
    got.map((f) => f.args),
    [
      [44, 255, 4464, 61072, 5, 4294967295],
      [-1, 255, 42, 1, 0, 0],
      // Beyond 2^53 a Number saturates to 64 bits (as a C cast of the double
      // would), then wraps to the declared size; a BigInt keeps its low bits.
      [0, 255, 0, 5, 3, 4294967295],
      [9007199254740994n, 18446744073709551615n, -9223372036854775808n, 7, 9223372036854775807n, 9223372036854775808n],
      [9223372036854775807n, 9223372036854775808n, 9007199254740991, 0, 7, 18446744073709551615n],
      ['a', 'é ü 😀', { x: [1] }, 'undefined', '\ufffdx', '12345'],
    ],
  );
  assert.deepEqual(got[5].types, ['char *', 'char *', 'json', 'json', 'char *', 'char *']);
  p.disable();
});

test('a pattern covers providers enabled later; two subscriptions on one probe both get every firing; closing one keeps the other', async () => {
  const tag = `later${process.pid}`;
  const first = [];
  const second = [];
  const s1 = dynprobe.subscribe(`${tag}*:p*`, (f) => first.push(f.args[0]));
  const s2 = dynprobe.subscribe(`${tag}b:*`, (f) => second.push(f.args[0]));
  const pa = dynprobe.createDTraceProvider(`${tag}a`);
  const a = pa.addProbe('p1', 'int');
  pa.enable();
  const pb = dynprobe.createDTraceProvider(`${tag}b`);
  const b = pb.addProbe('p2', 'int');
  const q = pb.addProbe('q', 'int');
  pb.enable();
  a.fire(() => [1]);
  b.fire(() => [2]);
  q.fire(() => [3]);
  await h.tick();
  assert.deepEqual(first, [1, 2]);
  assert.deepEqual(second, [2, 3]);
  s2.close();
  assert.notEqual(b._sema[0], 0, 'still covered by the first subscription');
  assert.equal(q._sema[0], 0, 'no longer covered');
  b.fire(() => [4]);
  await h.tick();
  assert.deepEqual(first, [1, 2, 4]);
  assert.deepEqual(second, [2, 3]);
  // disable() and enable() again: the subscription covers the new library.
  pb.disable();
  pb.enable();
  b.fire(() => [5]);
  await h.tick();
  assert.deepEqual(first, [1, 2, 4, 5]);
  s1.close();
  assert.equal(a._sema[0], 0);
  assert.equal(b._sema[0], 0);
  pa.disable();
  pb.disable();
});

test('bounded: a flood that never yields keeps `count` firings and drops the rest, counted; bytes bound too', async () => {
  const { p, probes: [a], name } = provider(['a', 'int', 'char *']);
  const { got, sub } = await collect(`${name}:a`, () => {
    for (let i = 0; i < 100000; i++) a.fire((k) => [k, 'x'], i);
  }, { count: 100 });
  assert.equal(got.length, 100);
  assert.deepEqual(got.map((f) => f.args[0]), Array.from({ length: 100 }, (_, i) => i));
  assert.equal(sub.dropped, 100000 - 100);
  // 10 KiB strings in a 64 KiB queue: a handful fit.
  const big = 'y'.repeat(10240);
  const bytes = await collect(`${name}:a`, () => {
    for (let i = 0; i < 50; i++) a.fire(() => [i, big]);
  }, { bytes: 65536 });
  assert.ok(bytes.got.length >= 4 && bytes.got.length <= 6, `${bytes.got.length} firings of 10 KiB in 64 KiB`);
  assert.equal(bytes.got.length + bytes.sub.dropped, 50);
  p.disable();
});

test('a subscriber that throws: one DYNPROBE_SUBSCRIBER_FAILED warning, other firings still delivered, the application untouched', async () => {
  const r = h.runChild(`
    const d = require(helpers.ROOT);
    const warnings = [];
    process.on('warning', (w) => warnings.push(w.code));
    const p = d.createDTraceProvider('throwsub');
    const probe = p.addProbe('a', 'int');
    p.enable();
    let seen = 0;
    d.subscribe('throwsub:a', (f) => { seen++; throw new Error('subscriber bug ' + f.args[0]); });
    const results = [1, 2, 3].map((i) => probe.fire(() => [i]));
    await new Promise((r) => setTimeout(r, 50));
    report({ warnings, seen, results });
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.result, { warnings: ['DYNPROBE_SUBSCRIBER_FAILED'], seen: 3, results: [true, true, true] });
  assert.match(r.stderr, /a dynprobe subscriber threw: subscriber bug 1/);
});

test('bunyan (logger at info) and restify, unchanged: bunyan:log-*, restify, *:route-done', async () => {
  const bunyan = require('bunyan');
  const restify = require('restify');
  const log = bunyan.createLogger({ name: 'subtest', level: 'info', stream: new Writable({ write: (c, e, cb) => cb() }) });
  const logs = await collect('bunyan:log-*', () => {
    log.info({ a: 1 }, 'hello');
    log.debug({ b: 2 }, 'below the level');
    log.trace('below too');
  });
  assert.deepEqual(
    logs.got.map((f) => [f.probe, JSON.parse(f.args[0]).msg]),
    [['log-info', 'hello'], ['log-debug', 'below the level'], ['log-trace', 'below too']],
  );
  const server = restify.createServer({ name: 'subtest-api', dtrace: true, log });
  server.get({ name: 'greet', path: '/hi/:name' }, (req, res, next) => {
    res.send(200, { hi: req.params.name });
    next();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const request = () =>
    new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: server.address().port, path: '/hi/there', headers: { 'x-t': 'y' } }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
  try {
    const all = await collect('restify', request);
    const probes = all.got.map((f) => f.probe);
    assert.deepEqual(probes.filter((p) => p === 'route-start' || p === 'route-done'), ['route-start', 'route-done']);
    assert.ok(probes.includes('handler-start') && probes.includes('handler-done'), probes.join());
    const start = all.got.find((f) => f.probe === 'route-start');
    assert.equal(start.args[1], 'greet');
    assert.equal(start.args[3], 'GET');
    assert.equal(start.args[4], '/hi/there');
    assert.equal(start.args[5]['x-t'], 'y', 'the headers (json) arrive parsed');
    const done = await collect('*:route-done', request);
    assert.deepEqual(done.got.map((f) => [f.provider, f.probe, f.args[3]]), [['restify', 'route-done', 200]]);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('dynprobe/node: a subscription switches its sources on at once, as a tracer does', async () => {
  const node = require('../node');
  const server = http.createServer((req, res) => res.end('ok'));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { got } = await collect('node:http__server__request', async () => {
      await new Promise((resolve) => setImmediate(resolve)); // the sources switch on in a microtask
      await new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: server.address().port, path: '/x?y=1' }, (res) => res.resume().on('end', resolve)).on('error', reject);
      });
    });
    assert.equal(got.length, 1);
    assert.deepEqual([got[0].args[4], got[0].args[5]], ['GET', '/x?y=1']);
    assert.deepEqual(got[0].argNames, ['request_struct', 'connection_struct', 'remote', 'port', 'method', 'url', 'fd']);
    assert.ok(node.PROBES.length > 0);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('providers(): every enabled provider of the process, of every copy of dynprobe it loaded; a subscription covers both copies', async () => {
  // A second copy of the package, as bunyan's `dtrace-provider` alias may be.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-copy-'));
  try {
    for (const f of ['index.js', 'package.json']) fs.copyFileSync(path.join(h.ROOT, f), path.join(dir, f));
    fs.cpSync(path.join(h.ROOT, 'lib'), path.join(dir, 'lib'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'build'));
    fs.copyFileSync(path.join(h.ROOT, 'build', 'dynprobe.node'), path.join(dir, 'build', 'dynprobe.node'));
    const other = require(dir);
    assert.notEqual(other.createDTraceProvider, dynprobe.createDTraceProvider, 'a distinct copy');
    const mine = dynprobe.createDTraceProvider('copyone');
    const a = mine.addProbe({ name: 'a', args: [{ name: 'count', type: 'int' }] });
    mine.enable();
    const theirs = other.createDTraceProvider('copytwo');
    const b = theirs.addProbe('b', 'char *');
    theirs.enable();
    const listed = dynprobe.providers().filter((x) => x.provider.startsWith('copy'));
    assert.deepEqual(listed, [
      { provider: 'copyone', module: 'copyone', probes: [{ name: 'a', types: ['int'], argNames: ['count'] }] },
      { provider: 'copytwo', module: 'copytwo', probes: [{ name: 'b', types: ['char *'], argNames: null }] },
    ]);
    assert.deepEqual(other.providers(), dynprobe.providers());
    const { got } = await collect('copy*', () => {
      a.fire(() => [1]);
      b.fire(() => ['two']);
    });
    assert.deepEqual(got.map((f) => [f.provider, f.args[0]]), [['copyone', 1], ['copytwo', 'two']]);
    mine.disable();
    theirs.disable();
    assert.equal(dynprobe.providers().filter((x) => x.provider.startsWith('copy')).length, 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a provider collected without disable() leaves the registry; a subscription on it costs nothing after', () => {
  const r = h.runChild(`
    const d = require(helpers.ROOT);
    const got = [];
    const sub = d.subscribe('gone*', (f) => got.push(f.args[0]));
    let p = d.createDTraceProvider('gone1');
    p.addProbe('a', 'int').fire(() => [0]);
    p.enable();
    p.a.fire(() => [1]);
    await new Promise((r) => setTimeout(r, 10));
    const before = d.providers().map((x) => x.provider);
    p = null;
    await helpers.collect();
    const after = d.providers().map((x) => x.provider);
    sub.close();
    report({ got, before, after, libs: helpers.libraryPaths().length });
  `, { flags: ['--expose-gc'] });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.result, { got: [1], before: ['gone1'], after: [], libs: 0 });
});

// A leak would show as heap that a full collection cannot take back.
const CYCLES = `
  const d = require(${JSON.stringify(path.join(__dirname, '..'))});
  const p = d.createDTraceProvider('subcycles');
  const probe = p.addProbe('a', 'int', 'char *');
  p.enable();
  const cycle = async (k) => {
    for (let i = 0; i < k; i++) {
      const sub = d.subscribe('subcycles:a', () => {});
      probe.fire(() => [i, 'x'.repeat(100)]);
      sub.close();
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }
  };
  (async () => {
    await cycle(2000);
    global.gc();
    const before = process.memoryUsage().heapUsed;
    await cycle(20000);
    await new Promise((r) => setImmediate(r));
    global.gc();
    const after = process.memoryUsage().heapUsed;
    console.log(JSON.stringify({ grewKiB: Math.round((after - before) / 1024), flag: probe._sema[0], providers: d.providers().length }));
  })();
`;

test('20,000 subscribe/fire/close cycles leave nothing behind: the heap after a collection, the subscriber byte, the registry', () => {
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', CYCLES], { encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  assert.equal(got.flag, 0, 'no subscriber left on the probe');
  assert.equal(got.providers, 1);
  // Each cycle's subscription, tap and queue are a few hundred bytes: kept, 20,000 would be megabytes.
  assert.ok(got.grewKiB < 1024, `the heap grew ${got.grewKiB} KiB`);
});
