'use strict';
// Channels as probes under real tracers (docs/channels.md): mysql2 against a
// real MariaDB, ioredis and node-redis against a real Redis (both started
// here, on Unix sockets, with private data directories), GraphQL, fastify,
// undici and fetch, HTTP/2, module loads, listen, spawn and SQLite in the
// program itself, channels named by DYNPROBE_CHANNELS and addChannels, and
// crafted messages. One program run per case performs every operation; one
// tracer session reads them all (test/tracers/channels/cases.js).
//
//   databases  host Node, under bpftrace 0.17, bpftrace 0.27 and DTrace
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
const { gate } = require('./fixtures/helpers');
const runtimes = require('./fixtures/runtimes');
const { runCase, unavailable } = require('./tracers/harness');
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
      const runtime = { name: `Node ${major}`, node: found.node, root: null, package: runtimes.HOST.package, env: { DYNPROBE_CHANNELS: C.WEB_CHANNELS } };
      check(await runCase(c, tracer, runtime), E.web(major));
    });
  }
});
