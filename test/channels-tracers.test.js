'use strict';
// test-needs: tracer
// Channels as probes under real tracers (docs/channels.md): mysql2 against a
// real MariaDB, ioredis and node-redis against a real Redis (both started
// here, on Unix sockets, with private data directories), GraphQL, fastify,
// undici and fetch, HTTP/2, module loads, listen, spawn and SQLite in the
// program itself, channels named by DYNPROBE_CHANNELS and addChannels, and
// crafted messages. One program run per case performs every operation; one
// tracer session reads them all (test/tracers/channels/cases.js).
//
//   databases  host Node, under bpftrace 0.17, bpftrace 0.27 and DTrace
//   subscriptions  a tracer on one probe subscribes its operation's channels,
//              and only while it traces (bpftrace)
//   web        Node 26 (which publishes all of Node's channels probed here)
//              under the three tracers; the host's Node 20 and Nodes 22
//              and 24 under bpftrace 0.17, each expecting the channels its
//              version publishes
//
// Needs root, the tracers (scripts/provision-tracers.sh), the servers
// (scripts/provision-servers.sh) and the Node majors
// (scripts/provision-node-majors.sh); without them each test skips loudly,
// and with CI=true it fails.

const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { gate, bpftraceUnavailable, attachBpftrace } = require('./fixtures/helpers');
const runtimes = require('./fixtures/runtimes');
const { runCase, unavailable, start, stop, parseReady, ROOT } = require('./tracers/harness');
const { load } = require('../lib/native');
const servers = require('./fixtures/servers');
const C = require('./tracers/channels/cases');
const E = require('./tracers/channels/expect');

const TRACERS = ['bpftrace-0.17', 'bpftrace-0.27', 'dtrace'];
const HOST_MAJOR = Number(process.versions.node.split('.')[0]);
const noAddon = load().addon === null ? 'the addon is not built (node scripts/build-addon.js)' : null;
const tracerReason = Object.fromEntries(TRACERS.map((t) => [t, noAddon || unavailable(t)]));
const serversGate = gate('channel tests with real servers', noAddon || servers.serversUnavailable());

function caseOf(name, node, ops) {
  return { name, node, nodeArgs: ['-r', C.NODE_JS], bpftrace: C.bpftraceFor(ops), dtrace: C.dtraceFor(ops) };
}

function check(result, expected) {
  const diff = E.compare(result.lines, expected);
  assert.ok(diff === null, `${diff}\n${result.diagnostics}`);
}

test.describe('databases: mysql2 on MariaDB, ioredis and node-redis on Redis', () => {
  let mariadb = null;
  let redis = null;
  test.before(async () => {
    if (serversGate.reason) return;
    [mariadb, redis] = await Promise.all([servers.startMariaDB(), servers.startRedis()]);
    process.env.DYNPROBE_TEST_MARIADB = mariadb.socket;
    process.env.DYNPROBE_TEST_REDIS = redis.socket;
  });
  test.after(async () => {
    await Promise.all([mariadb && mariadb.stop(), redis && redis.stop()]);
  });

  // dynprobe list and dynprobe trace on an application querying MariaDB
  // (`npx dynprobe trace PID 'mysql2_:*'`).
  const cliGate = gate('channels: dynprobe list and trace', serversGate.reason || tracerReason['bpftrace-0.17']);
  test("dynprobe list shows mysql2's probes with argument names and types; dynprobe trace decodes them", { skip: cliGate.skip, timeout: 180000 }, async () => {
    assert.ok(!cliGate.reason, `required when CI=true: ${cliGate.reason}`);
    const app = start(
      [process.execPath, '-r', C.NODE_JS, '-e', `
        const c = require('mysql2').createConnection({ socketPath: process.env.DYNPROBE_TEST_MARIADB, user: 'root', database: 'dynprobe' });
        c.connect((err) => {
          if (err) throw err;
          console.log('READY ' + process.pid);
          let i = 0;
          setInterval(() => c.query('SELECT ' + (i++ % 1000) + ' AS n', () => {}), 20);
        });`],
      { env: process.env, cwd: ROOT },
    );
    const cli = (args) => spawnSync(process.execPath, [path.join(ROOT, 'bin', 'dynprobe.js'), ...args], { encoding: 'utf8', timeout: 120000 });
    try {
      const pid = parseReady(await app.waitFor(/^READY /, 30000, 'application')).pid;
      const listed = cli(['list', String(pid), '--json']);
      assert.equal(listed.status, 0, listed.stderr);
      const providers = JSON.parse(listed.stdout)[0].providers;
      const mysql2 = providers.find((p) => p.provider === 'mysql2_');
      const signature = (p) => `${p.name}(${p.args.map((a) => `${a.type} ${a.name}`).join(', ')})`;
      assert.deepEqual(
        mysql2.probes.map(signature).filter((s) => s.startsWith('query__')),
        [
          'query__start(uint64_t id, char * text)',
          'query__done(uint64_t id, uint64_t duration_ns, char * text)',
          'query__error(uint64_t id, uint64_t duration_ns, char * text, char * error_code, char * error_message)',
        ],
      );
      assert.deepEqual(mysql2.probes.map((p) => p.name), C.DATABASES_OPS.filter(([p]) => p === 'mysql2_').flatMap(([, op]) => ['start', 'done', 'error'].map((e) => `${op}__${e}`)));
      // The other libraries this checkout has, and Node's.
      assert.deepEqual(providers.map((p) => p.provider).sort(), ['fastify', 'graphql', 'ioredis', 'mysql2_', 'node', 'node_redis', 'undici']);

      const traced = cli(['trace', String(pid), 'mysql2_:*', '--count', '8', '--json', '--tracer', 'bpftrace']);
      assert.equal(traced.status, 0, traced.stderr);
      const firings = traced.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
      assert.equal(firings.length, 8, traced.stdout + traced.stderr);
      const starts = new Map();
      let done = 0;
      for (const f of firings) {
        assert.equal(f.provider, 'mysql2_');
        if (f.probe === 'query__start') {
          assert.deepEqual(f.types, ['uint', 'string']);
          assert.match(f.args[1], /^SELECT \d+ AS n$/);
          starts.set(f.args[0], f.args[1]);
        } else {
          assert.equal(f.probe, 'query__done');
          assert.deepEqual(f.types, ['uint', 'uint', 'string']);
          // The first firing may be a done whose start came before the tracer.
          if (starts.size === 0) continue;
          assert.equal(starts.get(f.args[0]), f.args[2], 'a done carries its start\'s id and text');
          assert.ok(f.args[1] > 0 && f.args[1] < 10e9, String(f.args[1]));
          done++;
        }
      }
      assert.ok(starts.size >= 3 && done >= 3, traced.stdout);
    } finally {
      await stop(app, 0);
    }
  });

  const c = caseOf('channels: databases', C.DATABASES, C.DATABASES_OPS);
  for (const tracer of TRACERS) {
    const g = gate(`channels: databases [${tracer}]`, serversGate.reason || tracerReason[tracer]);
    test(`every mysql2, ioredis and node-redis operation fires paired, timed probes [${tracer}]`, { skip: g.skip, timeout: 240000 }, async () => {
      assert.ok(!g.reason, `required when CI=true: ${g.reason}`);
      check(await runCase(c, tracer), E.databases({ mariadb: mariadb.socket, redis: redis.socket }));
    });
  }
});

test.describe('web and Node: GraphQL, fastify, undici, fetch, HTTP/2, modules, listen, spawn, SQLite, named channels', () => {
  const c = caseOf('channels: web', C.WEB, C.WEB_OPS);
  const runs = [
    ...TRACERS.map((tracer) => ({ major: 26, tracer })),
    ...[HOST_MAJOR, 22, 24].filter((m, i, all) => m !== 26 && all.indexOf(m) === i).map((major) => ({ major, tracer: 'bpftrace-0.17' })),
  ];
  for (const { major, tracer } of runs) {
    const found = major === HOST_MAJOR ? { node: process.execPath } : runtimes.nodeOfMajor(major);
    const g = gate(`channels: web on Node ${major} [${tracer}]`, found.reason || tracerReason[tracer]);
    test(`Node ${major}: each operation fires paired, timed probes [${tracer}]`, { skip: g.skip, timeout: 240000 }, async () => {
      assert.ok(!g.reason, `required when CI=true: ${g.reason}`);
      // No child processes under DTrace (the case says why): spawn's probes
      // are read by both bpftrace versions.
      const spawns = tracer !== 'dtrace';
      const env = { DYNPROBE_CHANNELS: C.WEB_CHANNELS, ...(spawns ? {} : { DYNPROBE_CASE_NO_SPAWN: '1' }) };
      const runtime = { name: `Node ${major}`, node: found.node, root: null, package: runtimes.HOST.package, env };
      check(await runCase(c, tracer, runtime), E.web(major, { spawn: spawns }));
    });
  }
});

const bpf = gate('channel subscription tests under bpftrace', noAddon || bpftraceUnavailable());

test("a tracer on one of mysql2's probes subscribes that operation's channels only, and only while it traces", { skip: bpf.skip, timeout: 120000 }, async () => {
  assert.ok(!bpf.reason, bpf.reason);
  const program = start(
    [process.execPath, '-e', `
      const dc = require('node:diagnostics_channel');
      const node = require(${JSON.stringify(C.NODE_JS)});
      const events = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'];
      const state = () => ['mysql2:query', 'mysql2:execute', 'mysql2:connect', 'ioredis:command']
        .filter((n) => events.some((e) => dc.channel('tracing:' + n + ':' + e).hasSubscribers));
      console.log('READY ' + process.pid + ' ' + JSON.stringify(state()));
      let last = '[]';
      setInterval(() => { const s = JSON.stringify(state()); if (s !== last) { last = s; console.log('STATE ' + s); } }, 20);
      process.stdin.on('data', () => process.exit(0));`],
    { env: process.env, cwd: ROOT },
  );
  let tracer;
  try {
    const ready = await program.waitFor(/^READY /, 30000, 'program');
    assert.match(ready, / \[\]$/);
    tracer = attachBpftrace(parseReady(ready).pid, 'usdt:*:mysql2_:query__done { @n = count(); }');
    // The semaphore poll (every 250 ms) turns the source on.
    const on = await program.waitFor(/^STATE /, 30000, 'subscribed');
    assert.equal(on, 'STATE ["mysql2:query"]');
    await tracer.stop();
    tracer = null;
    await program.waitFor(/^STATE \[\]$/, 30000, 'unsubscribed');
  } finally {
    if (tracer) await tracer.stop();
    program.child.stdin.end('x\n');
    await stop(program, 5000);
  }
});
