'use strict';
// test-needs: tracer
// bunyan 2.x and restify 11, unchanged from npm, traced for real: their
// `require('dtrace-provider')` is this package (package.json overrides).
// Each case runs under bpftrace 0.17, bpftrace 0.27 and DTrace through the
// tracer harness. Without root or a tracer the tests are skipped loudly; with
// CI=true they fail.

const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { runCase, unavailable } = require('./tracers/harness');
const cases = require('./fixtures/users/cases');

const TRACERS = ['bpftrace-0.17', 'bpftrace-0.27', 'dtrace'];
const CI = process.env.CI === 'true';

const reasons = {};
for (const tracer of TRACERS) {
  reasons[tracer] = unavailable(tracer);
  if (reasons[tracer]) process.stderr.write(`\n*** users tests under ${tracer} ${CI ? 'FAIL' : 'SKIPPED'}: ${reasons[tracer]} ***\n`);
}

test('bunyan and restify resolve dtrace-provider to this package', () => {
  const root = path.join(__dirname, '..');
  for (const user of ['bunyan', 'restify']) {
    const from = path.dirname(require.resolve(user, { paths: [root] }));
    const resolved = require.resolve('dtrace-provider', { paths: [from] });
    assert.strictEqual(resolved, path.join(root, 'index.js'), `${user} loads ${resolved}`);
  }
});

// Runs `c` under every tracer; `check(lines, tracer)` asserts on the output.
function traced(c, check) {
  for (const tracer of TRACERS) {
    const reason = reasons[tracer];
    test(`${c.name} [${tracer}]`, { skip: reason && !CI ? reason : false, timeout: 180000 }, async () => {
      assert.ok(!reason, `${tracer} is required when CI=true: ${reason}`);
      const result = await runCase(c, tracer);
      check(result.lines, result.diagnostics);
    });
  }
}

// The JSON records printed after `prefix `.
function records(lines, prefix) {
  return lines.filter((l) => l.startsWith(`${prefix} `)).map((l) => JSON.parse(l.slice(prefix.length + 1)));
}

traced(cases.bunyan, (lines, diagnostics) => {
  const info = records(lines, 'info');
  const debug = records(lines, 'debug');
  assert.strictEqual(info.length, 1, `one log-info record in:\n${lines.join('\n')}\n${diagnostics}`);
  assert.strictEqual(debug.length, 1, `one log-debug record in:\n${lines.join('\n')}\n${diagnostics}`);
  const common = { name: 'usertest', hostname: 'usertest-host', v: 0 };
  assert.deepStrictEqual({ ...info[0], pid: 0, time: '' }, { ...common, pid: 0, level: 30, a: 1, msg: 'hi', time: '' });
  assert.deepStrictEqual({ ...debug[0], pid: 0, time: '' }, { ...common, pid: 0, level: 20, b: 2, msg: 'below the threshold', time: '' });
  for (const r of [...info, ...debug]) {
    assert.ok(Number.isInteger(r.pid) && r.pid > 0, `pid ${r.pid}`);
    assert.ok(!Number.isNaN(Date.parse(r.time)), `time ${r.time}`);
  }
  assert.strictEqual(info[0].pid, debug[0].pid);
});

// `route-start url /x` -> { 'route-start url': '/x' } for lines that occur once.
function fields(lines, probe) {
  const out = {};
  for (const line of lines.filter((l) => l.startsWith(`${probe} `))) {
    const [, key, value] = /^(\S+ \S+) (.*)$/.exec(line);
    out[key] = value;
  }
  return out;
}

traced(cases.restify, (lines, diagnostics) => {
  const all = `${lines.join('\n')}\n${diagnostics}`;
  const start = fields(lines, 'route-start');
  const m = /^usertest-api id (\d+)$/.exec(start['route-start server'] || '');
  assert.ok(m, `route-start server name and id in:\n${all}`);
  const id = Number(m[1]);
  assert.ok(id > 0);
  assert.strictEqual(start['route-start route'], 'greet', all);
  assert.strictEqual(start['route-start method'], 'GET', all);
  assert.strictEqual(start['route-start url'], '/hello/world?x=1', all);
  const headers = JSON.parse(start['route-start headers']);
  assert.strictEqual(headers['x-test'], 'yes');
  assert.match(headers.host, /^127\.0\.0\.1:\d+$/);

  // Each handler starts and finishes, in order, under the request's id.
  const handlers = lines.filter((l) => /^handler-(start|done) /.test(l));
  assert.deepStrictEqual(handlers, [
    `handler-start first ${id}`,
    `handler-done first ${id}`,
    `handler-start second ${id}`,
    `handler-done second ${id}`,
  ], all);
  const servers = lines.filter((l) => /^handler-(start|done)-server /.test(l));
  assert.strictEqual(servers.length, 4, all);
  for (const l of servers) assert.strictEqual(l.replace(/^\S+ /, ''), `${id} usertest-api`, all);

  assert.deepStrictEqual(lines.filter((l) => l.startsWith('route-done ')), [
    `route-done server usertest-api id ${id} status 200`,
    'route-done route greet',
  ], all);
});
