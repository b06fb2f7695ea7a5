'use strict';
// test-needs: nothing
// `dynprobe list`, `trace`, `record` and `dump` through a process's endpoint
// (no root, no kernel tracer), and the endpoint's promises: it is its user's
// alone, bounded and harmless to the process, and it survives a fuzzer.
// Real processes, the real CLI, real sockets; tests as a second user and in
// a container need root (setpriv, unshare) and are skipped loudly without
// it (they fail under CI=true).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./fixtures/helpers');
const { startTarget, cli, cliRunning, until, copyForNobody, jsonLines, ROOT } = require('./fixtures/consumer/run');
const { connect, locate } = require('../lib/endpoint/client');
const { FrameReader, parseRequest, ProtocolError, MAX_REQUEST } = require('../lib/endpoint/protocol');
const { BatchWriter, readBatch } = require('../lib/endpoint/batch');
const { campaign, rng, message } = require('./fixtures/consumer/fuzz');

const IS_ROOT = process.getuid() === 0;
const nobodyGate = h.gate('endpoint tests as a second user (nobody)', IS_ROOT ? null : 'they need root (setpriv)');
const containerGate = h.gate('endpoint tests in a container (unshare)', IS_ROOT ? null : 'they need root (unshare, nsenter)');

// One target for most tests: it fires every probe every 10 ms.
let target;
before(async () => {
  target = await startTarget();
  await target.ask('tick 10', 'ticking');
});
after(async () => {
  if (target) await target.finish();
});

const stats = () => target.ask('stats', 'stats');
const ctestOff = (s) => Object.entries(s.subscribers).every(([k, v]) => !k.startsWith('ctest:') || v === 0);

test('the endpoint: a socket (0600) in a directory only its user can enter (0700) below a checked one; gone when the process exits', async () => {
  const where = locate(target.pid);
  const dir = path.dirname(where.path);
  const dst = fs.lstatSync(dir);
  assert.ok(dst.isDirectory() && !dst.isSymbolicLink());
  assert.equal(dst.mode & 0o777, 0o700);
  assert.equal(dst.uid, process.geteuid());
  const sst = fs.lstatSync(where.path);
  assert.ok(sst.isSocket());
  assert.equal(sst.mode & 0o777, 0o600);
  assert.equal(path.basename(where.path), `${target.pid}.sock`);
  assert.equal(fs.lstatSync(path.dirname(dir)).mode & 0o022, 0, 'the cache directory above is writable by no one else');

  // A process that exits removes its socket.
  const brief = await startTarget();
  const file = locate(brief.pid).path;
  assert.ok(fs.existsSync(file));
  await brief.finish();
  assert.equal(fs.existsSync(file), false);

  // DYNPROBE_ENDPOINT=off: none, and the CLI says so.
  const off = await startTarget({ env: { DYNPROBE_ENDPOINT: 'off' } });
  try {
    const r = cli(['list', off.pid, '--via', 'process']);
    assert.equal(r.status, 1, r.all);
    assert.match(r.stderr, new RegExp(`^dynprobe: process ${off.pid} \\(.*target\\.js\\) offers no dynprobe endpoint: it has not loaded dynprobe`, 'm'));
  } finally {
    await off.finish();
  }
});

test('a directory others could change is never used: DYNPROBE_DIR refused with a warning; a default one skipped for the next', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-unsafe-'));
  try {
    const open = path.join(tmp, 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    const code = `
      const warnings = [];
      process.on('warning', (w) => warnings.push([w.code, w.message]));
      require(helpers.ROOT);
      await new Promise((r) => setTimeout(r, 20));
      const state = require(helpers.ROOT + '/lib/registry').registry().state;
      report({ warnings: warnings.filter(([c]) => c === 'DYNPROBE_ENDPOINT_UNAVAILABLE'), file: state.endpoint && state.endpoint.file });
    `;
    const chosen = h.runChild(code, { env: { DYNPROBE_DIR: path.join(open, 'dynprobe') } });
    assert.equal(chosen.status, 0, chosen.stderr);
    assert.equal(chosen.result.file, null);
    assert.equal(chosen.result.warnings.length, 1);
    assert.match(chosen.result.warnings[0][1], /endpoint is off: .*open: others can write to it \(mode 777\)/);

    const env = { XDG_RUNTIME_DIR: open };
    const fallback = h.runChild(code, { env: { ...env, DYNPROBE_DIR: '' } });
    assert.equal(fallback.status, 0, fallback.stderr);
    assert.deepEqual(fallback.result.warnings, []);
    assert.match(fallback.result.file, new RegExp(`^/tmp/dynprobe-${process.geteuid()}/endpoints/\\d+\\.sock$`));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('list and trace through the endpoint print what the kernel path prints (--json, --count, --pretty, --duration); Ctrl-C ends it and turns the probes off', async () => {
  const pid = target.pid;
  const text = cli(['list', pid, '--via', 'process']);
  assert.equal(text.status, 0, text.all);
  assert.match(text.stdout, new RegExp(`^PID ${pid}  ${process.execPath} .*target\\.js$`, 'm'));
  assert.match(text.stdout, /^ {2}provider ctest {2}\(module ctest, read through the process's endpoint: node v\d+/m);
  assert.match(text.stdout, /^ {6}tick\(int, char \*, json\)$/m);
  assert.match(text.stdout, /^ {6}edge\(int8_t, uint8_t, int32_t, uint32_t, int, uint64_t\)$/m);
  assert.ok(text.stdout.includes(`dynprobe trace ${pid} 'ctest:*'`), text.all);
  const json = JSON.parse(cli(['list', pid, '--via', 'process', '--json']).stdout);
  assert.equal(json[0].via, 'process');
  assert.deepEqual(json[0].providers[0].probes.map((p) => [p.name, p.declared]), [
    ['tick', ['int', 'char *', 'json']],
    ['edge', ['int8_t', 'uint8_t', 'int32_t', 'uint32_t', 'int', 'uint64_t']],
    ['text', ['char *', 'json']],
  ]);

  const r = cli(['trace', pid, 'ctest:*', '--via', 'process', '--count', 6, '--json']);
  assert.equal(r.status, 0, r.all);
  assert.match(r.stderr, new RegExp(`^dynprobe: tracing 3 probes in process ${pid} \\(.*\\) through its endpoint; Ctrl-C to stop$`, 'm'));
  const lines = jsonLines(r.stdout);
  assert.equal(lines.length, 6);
  for (const l of lines) {
    assert.deepEqual(Object.keys(l), ['time', 'timeNs', 'pid', 'tid', 'provider', 'module', 'probe', 'args', 'types', 'truncated', 'omitted']);
    assert.equal(l.pid, pid);
    assert.ok(Math.abs(Date.parse(l.time) - Date.now()) < 60000);
  }
  const tick = lines.find((l) => l.probe === 'tick');
  const n = tick.args[0];
  assert.deepEqual(tick.args, [n, `tick ${n}`, { n }]);
  assert.deepEqual(tick.types, ['int', 'string', 'json']);
  const edge = lines.find((l) => l.probe === 'edge');
  // -129 as int8_t, 256 + n as uint8_t, 2^31 + n as int32_t, -1 as uint32_t,
  // 2^53 + 2 as int, -1 as uint64_t: as a tracer reads them. (n is that
  // firing's count, past 255 after 2.5 s of ticking: the uint8_t wraps.)
  const m = edge.args[2] + 2 ** 31;
  assert.ok(m > 0 && m < 2 ** 20, String(edge.args[2]));
  assert.deepEqual(edge.args, [127, m % 256, -(2 ** 31) + m, 4294967295, '9007199254740994', '18446744073709551615']);
  assert.deepEqual(edge.types, ['int', 'uint', 'int', 'uint', 'int', 'uint']);
  assert.deepEqual(lines.find((l) => l.probe === 'text').args.slice(0, 1), ['a']);

  const pretty = cli(['trace', pid, 'ctest:text', '--via', 'process', '--count', 1, '--pretty']);
  assert.equal(pretty.status, 0, pretty.all);
  assert.match(pretty.stdout, /^\d\d:\d\d:\d\d\.\d{6} ctest:text "a"\n {4}\{\n {6}"deep": \[\n/);

  const started = Date.now();
  const timed = cli(['trace', pid, 'ctest:tick', '--via', 'process', '--duration', 0.5]);
  assert.equal(timed.status, 0, timed.all);
  assert.ok(Date.now() - started < 20000);
  assert.ok(timed.stdout.split('\n').filter((l) => / ctest:tick \d+ "tick \d+" \{"n":\d+\}$/.test(l)).length >= 2, timed.all);

  // Ctrl-C: the consumer ends cleanly, and the process turns the probes off.
  const running = cliRunning(['trace', pid, 'ctest:*', '--via', 'process']);
  await running.waitFor(/ctest:tick/, 20000, 'trace');
  assert.ok(!ctestOff(await stats()), 'subscribed while it runs');
  running.child.kill('SIGINT');
  const exit = await running.exit;
  assert.deepEqual(exit, { code: 0, signal: null });
  await until(async () => ctestOff(await stats()), 5000, 'the probes are off after Ctrl-C');
});

test('trace through the endpoint ends, status 0, when the traced process exits', async () => {
  const other = await startTarget();
  await other.ask('tick 10', 'ticking');
  const running = cliRunning(['trace', other.pid, 'ctest:tick', '--via', 'process']);
  try {
    await running.waitFor(/ctest:tick/, 20000, 'trace');
    await other.finish();
    const exit = await Promise.race([running.exit, new Promise((resolve) => setTimeout(() => resolve('still running'), 20000))]);
    assert.deepEqual(exit, { code: 0, signal: null }, running.stderr);
    assert.match(running.stderr, new RegExp(`^dynprobe: process ${other.pid} exited$`, 'm'));
  } finally {
    running.child.kill('SIGKILL');
    await other.finish();
  }
});

test('bad input: a pattern that matches nothing, a process without dynprobe, a dead process, not a pid: a clear message, a non-zero exit, no hang', async () => {
  const pid = target.pid;
  for (const cmd of [['trace', pid, 'nope:*', '--via', 'process'], ['record', pid, 'nope']]) {
    const r = cli(cmd);
    assert.equal(r.status, 1, r.all);
    assert.match(r.stderr, new RegExp(`^dynprobe: no probe matches nope(:\\*)? in process ${pid}; its probes are:$`, 'm'));
    assert.ok(r.stderr.includes('  ctest:tick(int, char *, json)'), r.all);
  }
  const sleeper = require('node:child_process').spawn('sleep', ['60']);
  try {
    for (const cmd of [['trace', sleeper.pid, '--via', 'process'], ['list', sleeper.pid, '--via', 'process'], ['dump', sleeper.pid], ['record', sleeper.pid, '*']]) {
      const r = cli(cmd);
      assert.equal(r.status, 1, r.all);
      assert.match(r.stderr, new RegExp(`^dynprobe: process ${sleeper.pid} \\(sleep 60\\) offers no dynprobe endpoint`, 'm'));
    }
  } finally {
    sleeper.kill('SIGKILL');
  }
  const gone = await startTarget();
  const dead = gone.pid;
  await gone.finish();
  for (const cmd of [['trace', dead, '--via', 'process'], ['list', dead, '--via', 'process'], ['dump', dead], ['record', dead, '*'], ['trace', dead]]) {
    const r = cli(cmd);
    assert.equal(r.status, 1, r.all);
    assert.match(r.stderr, new RegExp(`^dynprobe: no such process: ${dead}$`, 'm'));
  }
  const usage = cli(['trace', 'abc', '--via', 'process']);
  assert.equal(usage.status, 2, usage.all);
  const via = cli(['trace', pid, '--via', 'ebpf']);
  assert.equal(via.status, 2, via.all);
  assert.match(via.stderr, /--via takes kernel or process, not "ebpf"/);
  const both = cli(['trace', pid, '--via', 'process', '--tracer', 'bpftrace']);
  assert.equal(both.status, 2, both.all);
  const nothing = cli(['dump', pid]);
  assert.equal(nothing.status, 1, nothing.all);
  assert.match(nothing.stderr, /nothing is being recorded/);
});

test('record and dump: the most recent firings, oldest overwritten, in the trace formats; --stop', async () => {
  const other = await startTarget();
  try {
    const pid = other.pid;
    const r = cli(['record', pid, 'ctest:tick', '--count', 5]);
    assert.equal(r.status, 0, r.all);
    assert.match(r.stderr, new RegExp(`process ${pid} now keeps its last 5 firings \\(at most 4194304 bytes\\) of ctest:tick \\(1 probe now`));
    await other.ask('fire 20', 'fired');
    const dump = cli(['dump', pid, '--json']);
    assert.equal(dump.status, 0, dump.all);
    assert.deepEqual(jsonLines(dump.stdout).map((l) => [l.probe, l.args[0]]), [16, 17, 18, 19, 20].map((i) => ['tick', i]));
    assert.match(dump.stderr, /5 firings of ctest:tick recorded in process \d+ \(15 older ones were overwritten\)/);
    const lines = cli(['dump', pid]);
    assert.match(lines.stdout, /^\d\d:\d\d:\d\d\.\d{6} ctest:tick 20 "tick 20" \{"n":20\}$/m);
    // A byte bound: 2 KiB keeps few of these (each is counted as at least 48 bytes).
    assert.equal(cli(['record', pid, 'ctest:*', '--bytes', 2048, '--count', 1000]).status, 0);
    await other.ask('fire 50', 'fired');
    const bounded = jsonLines(cli(['dump', pid, '--json']).stdout);
    assert.ok(bounded.length > 0 && bounded.length <= 2048 / 48, `${bounded.length} firings in 2 KiB`);
    assert.equal(bounded[bounded.length - 1].probe, 'text');
    const stopped = cli(['record', pid, '--stop']);
    assert.equal(stopped.status, 0, stopped.all);
    assert.match(stopped.stderr, /stopped recording/);
    assert.equal((await other.ask('stats', 'stats')).recording, null);
    assert.ok(ctestOff(await other.ask('stats', 'stats')));
  } finally {
    await other.finish();
  }
});

test('a pattern covers providers enabled later; dynprobe/node traced through the endpoint switches its sources on', async () => {
  const other = await startTarget();
  try {
    await other.ask('tick 10', 'ticking');
    const first = cli(['trace', other.pid, 'clate:*', '--via', 'process']);
    assert.equal(first.status, 1, 'no match yet');
    assert.match(first.stderr, /no probe matches clate:\* in process/);
    const watching = cliRunning(['trace', other.pid, '*', '--via', 'process', '--json']);
    await watching.waitFor(/"probe":"tick"/, 20000, 'trace *');
    await other.ask('late', 'late');
    await watching.waitFor(/"provider":"clate","module":"clate","probe":"later"/, 20000, 'a provider enabled later');
    watching.child.kill('SIGINT');
    await watching.exit;
  } finally {
    await other.finish();
  }
  // dynprobe/node: its sources switch on as they do for a tracer.
  const script = path.join(os.tmpdir(), `dynprobe-node-target-${process.pid}.js`);
  fs.writeFileSync(script, `
    require(${JSON.stringify(path.join(ROOT, 'node.js'))});
    const http = require('node:http');
    const server = http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1', () => {
      console.log('READY ' + process.pid);
      setInterval(() => http.get({ host: '127.0.0.1', port: server.address().port, path: '/x?y=1' }, (r) => r.resume()), 20);
    });
    process.stdin.on('end', () => process.exit(0)).resume();
  `);
  const web = await startTarget({ script });
  try {
    const r = cli(['trace', web.pid, 'node:http__server__request', '--via', 'process', '--count', 1, '--json']);
    assert.equal(r.status, 0, r.all);
    const [line] = jsonLines(r.stdout);
    assert.deepEqual([line.provider, line.probe, line.args[4], line.args[5]], ['node', 'http__server__request', 'GET', '/x?y=1']);
  } finally {
    await web.finish();
    fs.rmSync(script, { force: true });
  }
});

test('harmless: a consumer killed with -9 turns its probes off at once; a stopped one never blocks the process nor grows it past the bound, and drops are counted and printed', async (t) => {
  const other = await startTarget();
  const ask = (c, w) => other.ask(c, w);
  try {
    await ask('tick 10', 'ticking');
    const killed = cliRunning(['trace', other.pid, 'ctest:*', '--via', 'process']);
    await killed.waitFor(/ctest:tick/, 20000, 'trace');
    killed.child.kill('SIGKILL');
    await killed.exit;
    const killedAt = Date.now();
    await until(async () => ctestOff(await ask('stats', 'stats')), 2000, 'the probes are off within 2 s of the SIGKILL');
    const offAfter = Date.now() - killedAt;
    const ran = (await ask('stats', 'stats')).ran;
    await ask('fire 10', 'fired');
    assert.equal((await ask('stats', 'stats')).ran, ran, 'no callback runs once the consumer is gone');

    // A stopped consumer, and a flood of 100 firings a millisecond.
    await ask('tick 0', 'ticking');
    const slow = cliRunning(['trace', other.pid, 'ctest:tick', '--via', 'process']);
    await until(async () => (await ask('stats', 'stats')).subscribers['ctest:tick'] === 1, 20000, 'subscribed');
    await ask('fire 1', 'fired');
    await slow.waitFor(/ctest:tick/, 20000, 'trace');
    slow.child.kill('SIGSTOP');
    const before = await ask('stats', 'stats');
    await ask('flood 100 1', 'flooding');
    // Once its queue is full, the process drops: from then on it must not grow.
    const full = await until(async () => {
      const st = await ask('stats', 'stats');
      return st.dropped > 0 ? st : null;
    }, 60000, 'the queue fills');
    const samples = [];
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      samples.push(await ask('stats', 'stats'));
    }
    await ask('tick 0', 'ticking');
    const mib = (b) => (b / 1048576).toFixed(1);
    const grew = [full, ...samples].map((st) => st.rss - before.rss);
    // The bound: the queue (65536 firings, 16 MiB estimated) and 1 MiB of
    // socket buffer, and V8's heap around them.
    assert.ok(Math.max(...grew) < 96 * 1048576, `RSS grew by ${grew.map(mib).join(', ')} MiB`);
    assert.ok(samples[4].rss - full.rss < 24 * 1048576, `RSS kept growing once the queue was full: ${grew.map(mib).join(', ')} MiB`);
    assert.ok(samples.every((st) => st.queued <= 65536), 'the queue holds at most its count');
    assert.ok(samples[4].dropped > full.dropped, 'the flood went on, dropped');
    assert.ok([full, ...samples].every((st) => st.lag < 1000), `the event loop was late by ${[full, ...samples].map((st) => st.lag).join(', ')} ms`);
    slow.child.kill('SIGCONT');
    await until(() => /dropped \d+ firings so far/.test(slow.stderr), 30000, 'the drop count');
    slow.child.kill('SIGINT');
    await slow.exit;
    assert.match(slow.stderr, new RegExp(`dynprobe: process ${other.pid} dropped \\d+ firings: its queue for this consumer was full`));
    const dropped = Number(/dropped (\d+) firings:/.exec(slow.stderr)[1]);
    const printed = slow.lines.filter((l) => / ctest:tick /.test(l)).length;
    assert.ok(dropped > 0 && printed > 1000, `printed ${printed}, dropped ${dropped}`);
    t.diagnostic(`probes off ${offAfter} ms after SIGKILL; RSS growth under a stopped consumer: ${grew.map(mib).join(', ')} MiB`);
  } finally {
    await other.finish();
  }
});

test('harmless: many consumers at once, and consumers coming and going in a loop, leave no thread, fd or memory behind; at most 32 at once', async () => {
  const other = await startTarget();
  const ask = (c, w) => other.ask(c, w);
  try {
    await ask('tick 2', 'ticking');
    const cycle = async () => {
      const c = await connect(other.pid);
      const seen = new Promise((resolve) => c.on('firings', resolve));
      await c.request('subscribe', { pattern: 'ctest:*' });
      await seen;
      c.close();
    };
    const round = async (k) => {
      for (let i = 0; i < k; i++) await Promise.all([cycle(), cycle(), cycle(), cycle()]);
    };
    await round(10); // warm up
    await until(async () => (await ask('stats', 'stats')).sessions === 0, 5000, 'sessions closed');
    const before = await ask('stats', 'stats');
    await round(60);
    // Consumers killed with -9 too.
    for (let i = 0; i < 3; i++) {
      const k = cliRunning(['trace', other.pid, 'ctest:*', '--via', 'process']);
      await k.waitFor(/ctest:/, 20000, 'trace');
      k.child.kill('SIGKILL');
      await k.exit;
    }
    // 40 at once: 32 get a session, the others a clear refusal.
    const sockets = await Promise.allSettled(Array.from({ length: 40 }, () => connect(other.pid)));
    const ok = sockets.filter((s) => s.status === 'fulfilled').map((s) => s.value);
    const refused = sockets.filter((s) => s.status === 'rejected');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const full = await ask('stats', 'stats');
    assert.equal(full.sessions, 32);
    assert.ok(ok.length >= 32 && refused.length + ok.length === 40, `${ok.length} connected, ${refused.length} refused`);
    for (const c of ok) c.close();
    await until(async () => {
      const s = await ask('stats', 'stats');
      return s.sessions === 0 && ctestOff(s) && s.fds === before.fds ? s : null;
    }, 10000, 'every session closed, its fd too');
    // Every session's queues together are bounded (128 MiB): the ninth of
    // 16 MiB is refused; closing gives the room back.
    const c = await connect(other.pid);
    for (let i = 0; i < 8; i++) await c.request('subscribe', { pattern: 'ctest:*', bytes: 16 * 1048576 });
    await assert.rejects(c.request('subscribe', { pattern: 'ctest:*', bytes: 16 * 1048576 }), /endpoint queues would pass 134217728 bytes \(134217728 reserved\)/);
    c.close();
    await until(async () => (await ask('stats', 'stats')).sessions === 0, 5000, 'closed');
    const again = await connect(other.pid);
    await again.request('subscribe', { pattern: 'ctest:*', bytes: 64 * 1048576 });
    await again.request('subscribe', { pattern: 'ctest:*', bytes: 64 * 1048576 });
    again.close();
    await until(async () => {
      const s = await ask('stats', 'stats');
      return s.sessions === 0 && ctestOff(s) && s.fds === before.fds;
    }, 10000, 'closed again');
    const afterStats = await ask('stats', 'stats');
    assert.equal(afterStats.threads, before.threads, 'no thread left');
    assert.equal(afterStats.fds, before.fds, 'no fd left');
    assert.ok(afterStats.rss - before.rss < 16 * 1048576, `RSS grew by ${((afterStats.rss - before.rss) / 1048576).toFixed(1)} MiB over 243 sessions`);
  } finally {
    await other.finish();
  }
});

test('fuzz: length-checked messages; random and crafted requests neither crash nor hang the process, nor grow it', async () => {
  // The parser alone, fast: only ProtocolErrors, every message bounded.
  const r = rng(20260101);
  for (let i = 0; i < 20000; i++) {
    const reader = new FrameReader(MAX_REQUEST);
    const bytes = Buffer.concat([message(r), message(r)]);
    try {
      for (let at = 0; at < bytes.length; at += 1 + r.int(64)) {
        for (const body of reader.push(bytes.subarray(at, at + 1 + r.int(64)))) {
          try {
            const req = parseRequest(body);
            assert.ok(Number.isSafeInteger(req.id) && typeof req.op === 'string');
          } catch (err) {
            if (!(err instanceof ProtocolError)) throw err;
          }
        }
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      assert.match(err.message, /longer than the 65536 allowed/);
    }
    assert.ok(reader.held <= MAX_REQUEST + 4 + 64);
  }
  // What a client reads from a process that may be hostile: binary batches
  // of firings, valid ones cut and mutated, and random bytes.
  const writer = new BatchWriter(64);
  const tap = { id: 3, types: Object.freeze(['int', 'char *', 'json', 'uint64_t', 'uint8_t']) };
  for (let i = 0; i < 5000; i++) {
    writer.begin(r.int(10), r.int(1000));
    for (let k = r.int(5); k > 0; k--) writer.add(tap, r.next() * 1e6, [r.int(2 ** 31) - 2 ** 30, 'x'.repeat(r.int(80)) + (r.next() < 0.3 ? 'é😀\0' : ''), '{"a":1}', -1, 300]);
    const good = writer.finish().subarray(4);
    const back = readBatch(good);
    assert.equal(back.firings.length, writer.count);
    const bad = Buffer.from(good);
    for (let k = r.int(4); k >= 0; k--) bad[r.int(bad.length)] = r.int(256);
    const cut = r.next() < 0.5 ? bad.subarray(0, r.int(bad.length + 1)) : bad;
    const random = Buffer.from(Array.from({ length: r.int(64) }, () => r.int(256)));
    for (const body of [cut, Buffer.concat([Buffer.from([1]), random])]) {
      try {
        const got = readBatch(body);
        for (const f of got.firings) assert.ok(Array.isArray(f) && f.length >= 2);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
      }
    }
  }
  // A live process: 400 sessions of the seeded driver.
  const other = await startTarget();
  try {
    await other.ask('tick 5', 'ticking');
    const before = await other.ask('stats', 'stats');
    const file = locate(other.pid).path;
    const result = await campaign(file, { seed: 7, sessions: 400 });
    assert.equal(result.sessions, 400);
    const after = await until(async () => {
      const s = await other.ask('stats', 'stats');
      return s.sessions === 0 ? s : null;
    }, 10000, 'sessions closed after the campaign');
    assert.equal(after.threads, before.threads);
    assert.ok(after.rss - before.rss < 64 * 1048576, `RSS grew by ${((after.rss - before.rss) / 1048576).toFixed(1)} MiB`);
    assert.ok(after.lag < 2000, `the event loop was late by ${after.lag} ms`);
    // Still serving.
    const r2 = cli(['trace', other.pid, 'ctest:tick', '--via', 'process', '--count', 1]);
    assert.equal(r2.status, 0, r2.all);
    assert.equal(other.exited, null, 'the process is alive');
  } finally {
    await other.finish();
  }
});

test('as another user (nobody): no connecting, listing, tracing, recording or dumping, nothing allocated; its own process it traces with no root and no kernel tracer', { skip: nobodyGate.skip, timeout: 120000 }, async () => {
  assert.ok(!nobodyGate.reason, nobodyGate.reason);
  const copy = copyForNobody();
  let mine;
  try {
    const pid = target.pid;
    const before = await stats();
    for (const cmd of [['list', pid, '--via', 'process'], ['trace', pid, '--via', 'process'], ['trace', pid], ['record', pid, '*'], ['dump', pid]]) {
      const r = cli(cmd, { nobody: true, prefix: [] });
      assert.equal(r.status, 1, r.all);
      assert.match(r.stderr, new RegExp(`process ${pid} \\(.*\\) belongs to root \\(uid 0\\): without root, dynprobe reaches only your own processes`));
    }
    // Straight at the socket: the directory keeps nobody out.
    const file = locate(pid).path;
    const probe = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', process.execPath, '-e', `
      const net = require('net'); const fs = require('fs');
      let stat; try { fs.statSync(${JSON.stringify(file)}); stat = 'ok'; } catch (e) { stat = e.code; }
      const s = net.createConnection(${JSON.stringify(file)});
      s.on('connect', () => { console.log(JSON.stringify({ stat, connect: 'ok' })); s.destroy(); });
      s.on('error', (e) => console.log(JSON.stringify({ stat, connect: e.code })));
    `], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.deepEqual(JSON.parse(probe.stdout), { stat: 'EACCES', connect: 'EACCES' });
    const after = await stats();
    assert.equal(after.sessions, 0, 'no session was ever opened');
    assert.ok(ctestOff(after));
    assert.ok(after.fds === before.fds, `fds ${before.fds} -> ${after.fds}`);

    // nobody's own process: traced by nobody (default path: no root, so
    // the endpoint), and by root.
    mine = await startTarget({ nobody: true, node: [process.execPath], script: path.join(copy, 'test', 'fixtures', 'consumer', 'target.js'), env: { DYNPROBE_PACKAGE: copy } });
    await mine.ask('tick 10', 'ticking');
    const own = cli(['trace', mine.pid, 'ctest:tick', '--count', 2, '--json'], { nobody: true, prefix: [] });
    assert.equal(own.status, 0, own.all);
    assert.match(own.stderr, /^dynprobe: tracing through the process's endpoint, with no kernel tracer: kernel tracers need root/m);
    assert.equal(jsonLines(own.stdout).length, 2);
    const list = cli(['list', mine.pid, '--via', 'process', '--json'], { nobody: true });
    assert.equal(list.status, 0, list.all);
    assert.match(JSON.parse(list.stdout)[0].endpoint, new RegExp(`^/tmp/dynprobe-${spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim()}/endpoints/${mine.pid}\\.sock$`));
    const byRoot = cli(['trace', mine.pid, 'ctest:tick', '--via', 'process', '--count', 1]);
    assert.equal(byRoot.status, 0, byRoot.all);
    const kernelOnly = cli(['trace', mine.pid, '--via', 'kernel'], { nobody: true });
    assert.equal(kernelOnly.status, 1, kernelOnly.all);
    assert.match(kernelOnly.stderr, /^dynprobe: tracing needs root/m);
  } finally {
    if (mine) await mine.finish();
    fs.rmSync(copy, { recursive: true, force: true });
  }
});

// The process's pid on the host, from the pid it has in its namespace.
function hostPid(innerPid, marker) {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = fs.readFileSync(`/proc/${name}/status`, 'utf8');
      const ns = /^NSpid:\s*(.*)$/m.exec(status)[1].trim().split(/\s+/);
      if (ns.length > 1 && Number(ns[ns.length - 1]) === innerPid && fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker)) return Number(name);
    } catch {
      // gone
    }
  }
  return null;
}

test('a container (its own pid and mount namespaces, a private /tmp): traced from inside by its user, from the host by root', { skip: containerGate.skip, timeout: 120000 }, async () => {
  assert.ok(!containerGate.reason, containerGate.reason);
  // Outside /tmp: the container gets a /tmp of its own.
  const copy = fs.mkdtempSync('/var/tmp/dynprobe-container-');
  for (const rel of ['index.js', 'node.js', 'package.json', 'lib', 'bin', path.join('build', 'dynprobe.node'), path.join('test', 'fixtures', 'consumer')]) {
    fs.cpSync(path.join(ROOT, rel), path.join(copy, rel), { recursive: true });
  }
  spawnSync('chmod', ['-R', 'a+rX', copy]);
  const script = path.join(copy, 'test', 'fixtures', 'consumer', 'target.js');
  const asNobody = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--'];
  const inner = ['sh', '-c', `mount -t tmpfs tmpfs /tmp && exec ${asNobody.join(' ')} "$@"`, 'sh'];
  let box;
  try {
    box = await startTarget({
      prefix: ['unshare', '--pid', '--mount', '--fork', '--mount-proc', ...inner],
      script,
      env: { DYNPROBE_PACKAGE: copy, HOME: '/tmp', DYNPROBE_DIR: '', XDG_RUNTIME_DIR: '' },
    });
    await box.ask('tick 10', 'ticking');
    const inside = box.pid;
    const outside = hostPid(inside, script);
    assert.ok(outside !== null && outside !== inside, `host pid of ${inside}: ${outside}`);
    // The socket is in the container's own /tmp, not the host's.
    assert.equal(fs.readdirSync('/tmp').some((d) => fs.existsSync(`/tmp/${d}/endpoints/${inside}.sock`) && d.startsWith('dynprobe-')), false);
    // From inside: the same user, in the same namespaces, no root.
    const enter = ['nsenter', '--target', String(outside), '--pid', '--mount', '--', ...asNobody];
    const cliIn = path.join(copy, 'bin', 'dynprobe.js');
    const run = (args) => spawnSync(enter[0], [...enter.slice(1), process.execPath, cliIn, ...args.map(String)], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/tmp' }, timeout: 60000 });
    const listIn = run(['list', inside, '--via', 'process', '--json']);
    assert.equal(listIn.status, 0, `${listIn.stdout}\n${listIn.stderr}`);
    const [procIn] = JSON.parse(listIn.stdout);
    assert.equal(procIn.pid, inside);
    assert.match(procIn.endpoint, new RegExp(`^/tmp/dynprobe-\\d+/endpoints/${inside}\\.sock$`));
    const traceIn = run(['trace', inside, 'ctest:tick', '--count', 2, '--json']);
    assert.equal(traceIn.status, 0, `${traceIn.stdout}\n${traceIn.stderr}`);
    assert.equal(jsonLines(traceIn.stdout).length, 2);
    assert.match(traceIn.stderr, /kernel tracers need root/);
    // From the host, as root: through /proc/PID/root.
    const traceOut = cli(['trace', outside, 'ctest:tick', '--via', 'process', '--count', 2, '--json']);
    assert.equal(traceOut.status, 0, traceOut.all);
    const lines = jsonLines(traceOut.stdout);
    assert.equal(lines.length, 2);
    assert.equal(lines[0].pid, outside);
    const listOut = JSON.parse(cli(['list', outside, '--via', 'process', '--json']).stdout);
    assert.match(listOut[0].endpoint, new RegExp(`in the mount namespace of process ${outside}$`));
  } finally {
    if (box) await box.finish();
    fs.rmSync(copy, { recursive: true, force: true });
  }
});

test('the endpoint costs nothing while idle: no timer keeps the process alive, nor does a connected consumer', () => {
  // A program that does nothing exits at once, endpoint or not, consumer or not.
  const r = h.runChild(`
    const d = require(helpers.ROOT);
    const p = d.createDTraceProvider('idle');
    p.addProbe('a', 'int');
    p.enable();
    const { connect } = require(helpers.ROOT + '/lib/endpoint/client');
    await helpers.tick(); // the endpoint starts a turn after require
    const started = Date.now();
    // Connect to ourselves, and subscribe: the connection is unref'd too.
    const c = await connect(process.pid);
    await c.request('subscribe', { pattern: '*' });
    c.socket.unref();
    process.on('exit', () => console.log('EXITED ' + (Date.now() - started)));
    report({ state: Object.keys(require(helpers.ROOT + '/lib/registry').registry().state).sort() });
  `, { timeout: 20000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^EXITED \d+$/m);
  assert.ok(Number(/EXITED (\d+)/.exec(r.stdout)[1]) < 5000);
});
