'use strict';
// test-needs: tracer
// dynprobe/node: how it is loaded (-r dynprobe/node, NODE_OPTIONS, require),
// the probes' notes (Node 18's names, argument order and sizes), that it
// changes nothing while untraced (no subscriber, no wrapper, no timer keeping
// the process alive), that a tracer turns its sources on and off, that a
// request sent a second after a tracer attaches fires, and the old one-liner
// on every provisioned Node major. The tracer cases proper are in
// test/tracers/cases/node-provider.js.

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { ROOT, gate, bpftraceUnavailable, attachBpftrace, sleep, bpftraceCounts } = require('./fixtures/helpers');
const { start, stop, parseReady } = require('./tracers/harness');
const { load } = require('../lib/native');
const { PROBES } = require('../lib/node/probes');
const { coreProbeSpecs } = require('../lib/node/channels');

const NODE_JS = path.join(ROOT, 'node.js');
const MAJORS_DIR = require('../scripts/lib/paths').DYNPROBE_NODE_CACHE;
const MAJORS = [18, 20, 22, 24, 26];

// A directory where `dynprobe` resolves to this checkout, as in an
// application that installed it.
function appDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-node-app-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'dynprobe'), 'dir');
  return dir;
}

// What a process started this way reports about itself: the probes' notes
// of its `node` library, read by the addon (no tracer needed).
const REPORT = `
  const fs = require('node:fs');
  const lib = fs.readFileSync('/proc/self/maps', 'utf8').split('\\n')
    .map((l) => l.split(/\\s+/).slice(5).join(' ')).find((f) => /\\/[0-9a-f]{40}\\/node$/.test(f));
  const addon = require(${JSON.stringify(path.join(ROOT, 'lib', 'native'))}).load().addon;
  // readProbes returns the notes, or (newer addons) { probes, total }.
  const read = lib ? addon.readProbes(lib) : [];
  const notes = (Array.isArray(read) ? read : read.probes).filter((p) => p.provider === 'node');
  console.log(JSON.stringify(notes.map((p) => [p.name, p.args.map((a) => (a.signed ? '-' : '') + a.size)])));
`;

// Node 18's notes: pointers 8@, ints -4@; GC type and flags 4@, isolate 8@.
const NODE18 = {
  http__server__request: ['8', '8', '8', '-4', '8', '8', '-4'],
  http__client__request: ['8', '8', '8', '-4', '8', '8', '-4'],
  http__server__response: ['8', '8', '-4', '-4'],
  http__client__response: ['8', '8', '-4', '-4'],
  net__server__connection: ['8', '8', '-4', '-4'],
  net__stream__end: ['8', '8', '-4', '-4'],
  gc__start: ['4', '4', '8'],
  gc__done: ['4', '4', '8'],
};

function checkNotes(stdout) {
  const notes = new Map(JSON.parse(stdout.trim().split('\n').pop()));
  // Node 18's and newer probes, then those of Node's channels (docs/channels.md).
  assert.deepStrictEqual([...notes.keys()], [...PROBES, ...coreProbeSpecs()].map((p) => p.name));
  for (const [name, sizes] of Object.entries(NODE18)) {
    // Node 18's arguments first, in order; the GC probes carry two more.
    assert.deepStrictEqual(notes.get(name).slice(0, sizes.length), sizes, name);
  }
  assert.deepStrictEqual(notes.get('gc__start').slice(3), ['8', '8']);
}

const noAddon = load().addon === null ? 'the addon is not built (node scripts/build-addon.js)' : null;
const addonGate = gate('dynprobe/node tests', noAddon);

test('node -r dynprobe/node gives the process a provider node with Node 18 probes', { skip: addonGate.skip }, () => {
  const cwd = appDir();
  try {
    const r = spawnSync(process.execPath, ['-r', 'dynprobe/node', '-e', REPORT], { cwd, encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stderr);
    checkNotes(r.stdout);
    const viaOptions = spawnSync(process.execPath, ['-e', REPORT], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '-r dynprobe/node' },
    });
    assert.strictEqual(viaOptions.status, 0, viaOptions.stderr);
    checkNotes(viaOptions.stdout);
    const viaRequire = spawnSync(process.execPath, ['-e', `require('dynprobe/node'); ${REPORT}`], { cwd, encoding: 'utf8' });
    assert.strictEqual(viaRequire.status, 0, viaRequire.stderr);
    checkNotes(viaRequire.stdout);
    assert.strictEqual(r.stderr + viaOptions.stderr + viaRequire.stderr, '', 'no warning of any kind');
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});

// What an untraced process looks like to itself: the channels' subscribers,
// the methods that stream-end and child-process probes wrap while traced.
const STATE = `
  const dc = require('node:diagnostics_channel');
  const CHANNELS = ['http.server.request.start', 'http.server.response.finish', 'http.client.request.start',
    'http.client.response.finish', 'net.server.socket', 'http.client.request.error', 'undici:request:create',
    'undici:request:headers', 'undici:request:error', 'worker_threads'];
  const net = require('node:net');
  const { ChildProcess } = require('node:child_process');
  const end = net.Socket.prototype.end;
  const spawn = ChildProcess.prototype.spawn;
  const state = () => ({
    subscribed: CHANNELS.filter((c) => dc.channel(c).hasSubscribers),
    endWrapped: net.Socket.prototype.end !== end,
    spawnWrapped: ChildProcess.prototype.spawn !== spawn,
  });
`;

test('untraced, dynprobe/node subscribes to nothing, wraps nothing, loads no module, and keeps no process alive', { skip: addonGate.skip }, () => {
  const r = spawnSync(
    process.execPath,
    ['-e', `${STATE}; const before = state(); const node = require(${JSON.stringify(NODE_JS)});
      node.refresh(); console.log(JSON.stringify([before, state()]));`],
    { encoding: 'utf8', timeout: 20000 },
  );
  assert.strictEqual(r.status, 0, r.stderr);
  const idle = { subscribed: [], endWrapped: false, spawnWrapped: false };
  assert.deepStrictEqual(JSON.parse(r.stdout), [idle, idle]);
  // Nor does it load the modules whose probes need them until traced.
  const modules = spawnSync(
    process.execPath,
    ['-e', `require(${JSON.stringify(NODE_JS)});
      console.log(JSON.stringify(process.moduleLoadList.filter((m) => /^NativeModule (net|child_process|perf_hooks|worker_threads)$/.test(m))));`],
    { encoding: 'utf8', timeout: 20000 },
  );
  assert.strictEqual(modules.status, 0, modules.stderr);
  assert.deepStrictEqual(JSON.parse(modules.stdout), []);
  // The semaphore timer is unref'd: an empty program exits at once.
  const t0 = Date.now();
  const quick = spawnSync(process.execPath, ['-r', NODE_JS, '-e', '0'], { encoding: 'utf8', timeout: 20000 });
  assert.strictEqual(quick.status, 0, quick.stderr);
  assert.ok(Date.now() - t0 < 5000, 'the process exited without waiting for a timer');
});

const bpf = gate('dynprobe/node bpftrace tests', noAddon || bpftraceUnavailable());

test('a tracer turns the sources on while it traces and off when it leaves', { skip: bpf.skip, timeout: 120000 }, async () => {
  assert.ok(!bpf.reason, bpf.reason);
  const program = start(
    [process.execPath, '-e', `${STATE}
      const node = require(${JSON.stringify(NODE_JS)});
      const report = (tag) => console.log(tag + ' ' + JSON.stringify(state()));
      report('READY ' + process.pid);
      let last = '';
      setInterval(() => { const s = JSON.stringify(state()); if (s !== last) { last = s; report('STATE'); } }, 20);
      process.stdin.on('data', () => process.exit(0));`],
    { env: process.env },
  );
  let tracer;
  try {
    const ready = await program.waitFor(/^READY /, 30000, 'program');
    assert.match(ready, /"subscribed":\[\],"endWrapped":false,"spawnWrapped":false/);
    tracer = attachBpftrace(
      parseReady(ready).pid,
      'usdt:*:node:http__server__request, usdt:*:node:net__stream__end, usdt:*:node:gc__start { @n = count(); }',
    );
    const on = await program.waitFor(/^STATE .*"endWrapped":true/, 30000, 'sources on');
    assert.match(on, /"subscribed":\["http.server.request.start"\],"endWrapped":true,"spawnWrapped":false/);
    await tracer.stop();
    tracer = null;
    const off = await program.waitFor(/^STATE .*"endWrapped":false/, 30000, 'sources off');
    assert.match(off, /"subscribed":\[\],"endWrapped":false,"spawnWrapped":false/);
  } finally {
    if (tracer) await tracer.stop();
    program.child.stdin.end('x\n');
    await stop(program, 5000);
  }
});

// Sources are on only while traced (above), so a tracer's first events wait
// for the next semaphore check: at most 250 ms. A request sent this long after
// the tracer has attached must fire, though nothing in the program waits for
// the probe or pokes dynprobe/node.
const FIRST_REQUEST_AFTER_MS = 1000;
const ONE_REQUEST = `
  const http = require('node:http');
  require(${JSON.stringify(NODE_JS)});
  const server = http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1', () => {
    console.log('READY ' + process.pid);
    process.stdin.once('data', () => {
      http.get({ host: '127.0.0.1', port: server.address().port, path: '/first', agent: false }, (res) => {
        res.resume();
        res.on('end', () => { console.log('DONE'); server.close(); process.stdin.destroy(); });
      });
    });
  });
`;

test(`a probe fires for the first request sent ${FIRST_REQUEST_AFTER_MS} ms after a tracer attaches`, { skip: bpf.skip, timeout: 120000 }, async () => {
  assert.ok(!bpf.reason, bpf.reason);
  const program = start([process.execPath, '-e', ONE_REQUEST], { env: process.env });
  let tracer;
  try {
    const ready = await program.waitFor(/^READY /, 30000, 'program');
    tracer = attachBpftrace(
      parseReady(ready).pid,
      'usdt:*:node:http__server__request { printf("%s %s\\n", str(arg4), str(arg5)); }',
    );
    await tracer.attached();
    await sleep(FIRST_REQUEST_AFTER_MS);
    program.child.stdin.write('go\n');
    await program.waitFor(/^DONE$/, 30000, 'the request');
    await sleep(200);
    const out = await tracer.stop();
    tracer = null;
    assert.deepStrictEqual(out.split('\n').filter((l) => l.startsWith('GET ')), ['GET /first'], `${out}\n${program.stderr}`);
  } finally {
    if (tracer) await tracer.stop();
    await stop(program, 5000);
  }
});

// With net.Socket.prototype and ChildProcess.prototype frozen, the two
// probes that come from wrapping their methods cannot be turned on: they
// never fire, nothing is thrown, and the other probes fire as usual.
const FROZEN = `
  const http = require('node:http');
  const net = require('node:net');
  const { ChildProcess, spawn } = require('node:child_process');
  // Node makes the standard streams (pipes here) lazily, as sockets: before the freeze.
  void process.stdin, process.stdout, process.stderr;
  Object.freeze(net.Socket.prototype);
  Object.freeze(ChildProcess.prototype);
  require(${JSON.stringify(NODE_JS)});
  const server = http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1', () => {
    console.log('READY ' + process.pid);
    process.stdin.once('data', async () => {
      const port = server.address().port;
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => http.get({ host: '127.0.0.1', port, path: '/' + i, agent: false }, (res) => { res.resume(); res.on('end', resolve); }));
        await new Promise((resolve) => { const s = net.connect(port, '127.0.0.1', () => s.end()); s.on('close', resolve); });
        await new Promise((resolve) => spawn('true').on('close', resolve));
      }
      console.log('DONE');
      server.close();
      process.stdin.destroy();
    });
  });
`;

test('with net.Socket.prototype and ChildProcess.prototype frozen, net__stream__end and child__process__spawn never fire; the others do', { skip: bpf.skip, timeout: 120000 }, async () => {
  assert.ok(!bpf.reason, bpf.reason);
  const program = start([process.execPath, '-e', FROZEN], { env: process.env });
  let tracer;
  try {
    const ready = await program.waitFor(/^READY /, 30000, 'program');
    tracer = attachBpftrace(
      parseReady(ready).pid,
      'usdt:*:node:http__server__request, usdt:*:node:net__stream__end, usdt:*:node:child__process__spawn { @n[probe] = count(); }',
    );
    await tracer.attached();
    await sleep(FIRST_REQUEST_AFTER_MS);
    program.child.stdin.write('go\n');
    await program.waitFor(/^DONE$/, 30000, 'the requests, connections and children');
    await sleep(200);
    const out = await tracer.stop();
    tracer = null;
    const counts = bpftraceCounts(out, 'n');
    assert.strictEqual(counts.http__server__request, 5, `${out}\n${program.stderr}`);
    assert.strictEqual(counts.net__stream__end, undefined, out);
    assert.strictEqual(counts.child__process__spawn, undefined, out);
    assert.doesNotMatch(program.stderr, /Error|Warning/);
  } finally {
    if (tracer) await tracer.stop();
    await stop(program, 5000);
  }
});

// The old bpftrace one-liner against a real server driven by a real client,
// on each Node major the package supports.
const SERVE = `
  const http = require('node:http');
  const node = require(${JSON.stringify(NODE_JS)});
  const server = http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1', () => {
    console.log('READY ' + process.pid);
    const wait = () => { let t = false; node.probes.http__server__request.fire(() => { t = true; return null; });
      if (!t) return setTimeout(wait, 10);
      process.stdin.once('data', () => http.get({ host: '127.0.0.1', port: server.address().port, path: '/v' + process.versions.node.split('.')[0], agent: false },
        (res) => { res.resume(); res.on('end', () => { console.log('DONE'); server.close(); process.stdin.destroy(); }); }));
    };
    wait();
  });
`;

for (const major of MAJORS) {
  const bin = path.join(MAJORS_DIR, String(major), 'bin', 'node');
  const missing = fs.existsSync(bin) ? null : `Node ${major} is not provisioned at ${bin} (scripts/provision-node-majors.sh)`;
  const g = gate(`dynprobe/node on Node ${major}`, bpf.reason || missing);
  test(`Node ${major}: the old bpftrace one-liner sees a real server's requests`, { skip: g.skip, timeout: 120000 }, async () => {
    assert.ok(!g.reason, g.reason);
    const program = start([bin, '-e', SERVE], { env: process.env });
    let tracer;
    try {
      const ready = await program.waitFor(/^READY /, 30000, `node ${major}`);
      tracer = attachBpftrace(parseReady(ready).pid, 'usdt:*:node:http__server__request { printf("%s %s %s\\n", str(arg2), str(arg4), str(arg5)); }');
      await tracer.attached();
      await sleep(FIRST_REQUEST_AFTER_MS);
      program.child.stdin.write('go\n');
      await program.waitFor(/^DONE$/, 60000, `node ${major}`);
      await sleep(200);
      const out = await tracer.stop();
      tracer = null;
      assert.ok(out.split('\n').includes(`127.0.0.1 GET /v${major}`), `${out}\n${program.stderr}`);
      assert.strictEqual(program.stderr, '', 'no warning of any kind');
    } finally {
      if (tracer) await tracer.stop();
      await stop(program, 5000);
    }
  });
}
