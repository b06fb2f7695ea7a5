'use strict';
// test-needs: tracer
// `npm run demo` end to end (the addon is built by `npm test` first): the
// service starts, `dynprobe list` finds it (its demoapp provider and Node's
// own, from -r dynprobe/node), bpftrace shows a latency histogram for every
// route, Node 18's one-liner sees every request, and nothing is left running
// afterwards. Needs root and bpftrace: skipped loudly without them, failing
// under CI=true.

const test = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { gate, bpftraceUnavailable } = require('./fixtures/helpers');
const { MIX } = require('../demo/load');

const ROUTES = ['/', '/api/users/:id', '/api/search', '/api/orders', '/api/report', '(none)'];
const demoGate = gate('demo test', bpftraceUnavailable());

// The histogram lines after `@latency_us[ROUTE]:` in the final snapshot.
function histogram(final, route) {
  const lines = final.split('\n');
  const at = lines.findIndex((l) => l.trimEnd() === `@latency_us[${route}]:`);
  if (at < 0) return [];
  const buckets = [];
  for (const line of lines.slice(at + 1)) {
    const m = /^\[[^\]]+[\])]\s+(\d+) \|@*\s*\|$/.exec(line);
    if (!m) break;
    buckets.push(Number(m[1]));
  }
  return buckets;
}

test('npm run demo: live latency histograms per route from a real tracer, under a minute, nothing left behind', { skip: demoGate.skip, timeout: 120000 }, () => {
  assert.ok(!demoGate.reason, demoGate.reason);
  const began = Date.now();
  const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'demo', 'run.js')], { encoding: 'utf8', timeout: 90000 });
  const seconds = (Date.now() - began) / 1000;
  const all = `status ${r.status} signal ${r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  assert.strictEqual(r.status, 0, all);
  assert.ok(seconds < 60, `the demo took ${seconds} s`);

  const pid = Number(/^ {4}demoapp listening on http:\/\/127\.0\.0\.1:\d+ \(pid (\d+)\)$/m.exec(r.stdout)[1]);
  // `dynprobe list` found the service.
  assert.match(r.stdout, new RegExp(`^ {4}PID ${pid} `, 'm'));
  assert.match(r.stdout, /request-done\(char \*, char \*, int, int, int\)/);

  // Live snapshots, then the final histograms: every route has a non-empty one.
  assert.match(r.stdout, /^--- 1 s: \d+ requests ---$/m);
  const final = r.stdout.slice(r.stdout.indexOf('--- final:'));
  assert.ok(final.length > 10, all);
  for (const route of ROUTES) {
    const buckets = histogram(final, route);
    assert.ok(buckets.length > 0 && buckets.some((n) => n > 0), `no histogram for ${route} in:\n${final}`);
  }
  const counted = /The load generator got (\d+) responses; bpftrace saw (\d+) request-done firings/.exec(r.stdout);
  assert.ok(counted && Number(counted[2]) > 100, all);
  assert.strictEqual(counted[2], counted[1], 'the tracer saw every request');

  // The slowest requests, over 100 ms, are the slow route's.
  const slow = r.stdout.slice(r.stdout.indexOf('The slowest requests')).split('\n').filter((l) => /^ {4}#\d+/.test(l));
  assert.ok(slow.length > 0, all);
  for (const line of slow) assert.match(line, /^ {4}#\d+\s+GET\s+\/api\/report\s+(200|500)\s+\d+\.\d ms$/);

  // Step 6: the service was started with -r dynprobe/node, so `dynprobe list`
  // shows Node's own provider too, and Node 18's one-liner, unchanged, sees
  // the load generator's requests: method and path as sent, every one.
  assert.match(r.stdout, /^ {6}provider node {2}\(module node, /m);
  for (const probe of ['http__server__request', 'http__server__response', 'net__server__connection', 'gc__start']) {
    assert.match(r.stdout, new RegExp(`^ {10}${probe}\\(`, 'm'), `dynprobe list shows node:${probe}`);
  }
  // With its arguments' names and declared types.
  assert.match(
    r.stdout,
    /^ {10}http__server__request\(uint64_t request_struct, uint64_t connection_struct, char \*remote, int32_t port, char \*method, char \*url, int32_t fd\)$/m,
  );
  const step6 = r.stdout.slice(r.stdout.indexOf("== 6. Node's own probes"));
  assert.ok(step6.length > 30, all);
  assert.ok(
    step6.includes(`bpftrace -p ${pid} -e 'usdt:*:node:http__server__request { printf("%s %s %s\\n", str(arg2), str(arg4), str(arg5)); }'`),
    `step 6 shows Node 18's one-liner:\n${step6}`,
  );
  const sentPairs = new Set(MIX.map(([p, method]) => `${method} ${p}`));
  const fired = step6.split('\n').filter((l) => /^ {4}127\.0\.0\.1 /.test(l));
  assert.ok(fired.length > 0, all);
  for (const line of fired) {
    const pair = line.slice('    127.0.0.1 '.length);
    assert.ok(sentPairs.has(pair), `${line}: not a request the load generator sends`);
  }
  const nodeCounted = /bpftrace saw (\d+) http__server__request firings for (\d+) requests/.exec(step6);
  assert.ok(nodeCounted && Number(nodeCounted[2]) > 100, all);
  assert.strictEqual(nodeCounted[1], nodeCounted[2], 'the node provider fired for every request');

  // `dynprobe trace` printed decoded firings.
  assert.match(r.stdout, /^ {4}\d\d:\d\d:\d\d\.\d{6} demoapp:request-done "(GET|POST)" "\S+" \d{3} \d+ \d+$/m);
  assert.match(r.stdout, /What to try next/);

  // Nothing left running: the service, bpftrace, the CLI.
  assert.ok(!fs.existsSync(`/proc/${pid}`), `the demo service ${pid} is still running`);
  const ps = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout;
  const left = ps.split('\n').filter((l) => new RegExp(`-p ${pid}\\b|demo/server\\.js`).test(l));
  assert.deepStrictEqual(left, [], 'processes left behind');
});
