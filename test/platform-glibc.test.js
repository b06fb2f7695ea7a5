'use strict';
// test-needs: tracer
// The linux-x64-gnu prebuilt addon's glibc floor: it imports nothing newer
// than glibc 2.17, and on the oldest glibc reachable here, Debian bullseye
// (2.31), with Node 18 and 20 from npm, it loads, passes test/api.test.js
// and the basic tracer cases, traced by the host's tracers. The root is
// entered like a container (test/fixtures/runtimes.js): bpftrace 0.17 and
// 0.27 attach from the host by pid; DTrace runs in the process's root.
//
// Needs the prebuilt (scripts/build/linux-x64-gnu.sh), and as root the
// bullseye root and the nodes (scripts/provision-bullseye.sh); without them
// the tests are skipped loudly, and with CI=true they fail.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const h = require('./fixtures/helpers');
const runtimes = require('./fixtures/runtimes');
const { basicCases, runCase, unavailable } = require('./tracers/harness');

const FLOOR = [2, 17];
const MAJORS = [18, 20];
const TRACERS = ['bpftrace-0.17', 'bpftrace-0.27', 'dtrace'];
// DTrace takes ~8 s a case: it runs one basic case (the others run under both bpftraces).
const DTRACE_CASE = 'api: the semaphore is off untraced, on while traced';
const CI = process.env.CI === 'true';

const prebuilt = h.gate('prebuilt linux-x64-gnu addon tests', runtimes.prebuiltUnavailable());
const readelf = spawnSync('readelf', ['--version'], { encoding: 'utf8' });
const readelfGate = h.gate('glibc symbol version test', readelf.status === 0 ? null : 'readelf (binutils) is not installed');

// The addon's dynamic symbols: { name, version (null when unversioned), weak, undefined }.
function dynamicSymbols(file) {
  const r = spawnSync('readelf', ['--dyn-syms', '--wide', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const symbols = [];
  for (const line of r.stdout.split('\n')) {
    // Num: Value Size Type Bind Vis Ndx Name[@VERSION (n)]
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !/^\d+:$/.test(f[0])) continue;
    const [name, version] = f[7].split(/@+/);
    symbols.push({ name, version: version || null, weak: f[4] === 'WEAK', undefined: f[6] === 'UND' });
  }
  return symbols;
}

const versionOf = (v) => v.slice('GLIBC_'.length).split('.').map(Number);
const newer = (a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] || 0) - (b[2] || 0);

test(`the prebuilt gnu addon needs no glibc symbol newer than ${FLOOR.join('.')}`, { skip: prebuilt.skip || readelfGate.skip }, (t) => {
  assert.ok(!prebuilt.reason, `required when CI=true: ${prebuilt.reason}`);
  assert.ok(!readelfGate.reason, `required when CI=true: ${readelfGate.reason}`);
  const imports = dynamicSymbols(runtimes.PREBUILT_GNU).filter((s) => s.undefined && s.name);
  const glibc = imports.filter((s) => s.version && s.version.startsWith('GLIBC_'));
  assert.ok(glibc.length > 10, `expected versioned glibc imports, found ${glibc.length}`);
  const tooNew = glibc.filter((s) => newer(versionOf(s.version), FLOOR) > 0).map((s) => `${s.name}@${s.version}`);
  assert.deepEqual(tooNew, [], 'symbols newer than the floor');
  // An unversioned import binds to whatever the running libc has: one that
  // older glibc lacks fails the load (the addon is linked BIND_NOW), unless
  // it is weak (then it is null, and the caller checks). Node-API's come from node.
  const unversioned = imports.filter((s) => !s.version && !s.weak && !s.name.startsWith('napi_')).map((s) => s.name);
  assert.deepEqual(unversioned, [], 'strong unversioned imports (older glibc may lack them)');
  const max = glibc.map((s) => versionOf(s.version)).sort(newer).at(-1);
  t.diagnostic(`max glibc symbol version: GLIBC_${max.join('.')}`);
});

const bullseye = h.gate('bullseye (glibc 2.31) platform tests', runtimes.bullseyeUnavailable() || prebuilt.reason);
const tracerReasons = Object.fromEntries(TRACERS.map((t) => [t, unavailable(t)]));
for (const [t, reason] of Object.entries(tracerReasons)) if (reason) h.gate(`bullseye tracer cases under ${t}`, reason);

for (const major of MAJORS) {
  const found = runtimes.nodeOfMajor(major);
  const nodeGate = bullseye.reason ? bullseye : h.gate(`bullseye Node ${major} tests`, found.reason || null);
  const skip = nodeGate.skip;
  let runtime = null; // made by the first test that runs: copying the package costs
  const bullseyeRuntime = () => {
    assert.ok(!nodeGate.reason, `required when CI=true: ${nodeGate.reason}`);
    runtime ??= {
      name: `bullseye, Node ${major}`,
      node: found.node,
      root: runtimes.BULLSEYE_ROOT,
      package: runtimes.packageWith(runtimes.PREBUILT_GNU),
      // The host's root at /host, so that api.test.js's traced path runs the host's bpftrace.
      hostAt: '/host',
      env: { DYNPROBE_TEST_BPFTRACE: JSON.stringify(['chroot', '/host', 'bpftrace']) },
    };
    return runtime;
  };
  const run = (rt, args) => {
    const cmd = runtimes.command(rt, args);
    return spawnSync(cmd[0], cmd.slice(1), { env: runtimes.environment(rt), encoding: 'utf8', timeout: 120000 });
  };

  test(`bullseye, Node ${major}: glibc 2.31 loads the prebuilt addon and its generated library`, { skip }, () => {
    const rt = bullseyeRuntime();
    const script = `
      const d = require(${JSON.stringify(rt.package)});
      const p = d.createDTraceProvider('floor');
      p.addProbe('p', 'int');
      p.enable();
      p.fire('p', () => [1]);
      const maps = require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n');
      const mapped = (test) => maps.filter(test).map((l) => l.split(/\\s+/)[1]);
      console.log(JSON.stringify({
        node: process.version,
        glibc: process.report.getReport().header.glibcVersionRuntime,
        addon: mapped((l) => l.endsWith(${JSON.stringify(` ${rt.package}/build/dynprobe.node`)})).length > 0,
        library: mapped((l) => /\\/[0-9a-f]{40}\\/floor$/.test(l)),
      }));
      p.disable();`;
    const r = run(rt, ['-e', script]);
    // The old image (.dynamic in the read-only segment) died here, SIGSEGV in ld.so.
    assert.equal(r.signal, null, `killed by ${r.signal}\n${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout.trim().split('\n').at(-1));
    assert.match(got.node, new RegExp(`^v${major}\\.`));
    assert.equal(got.glibc, '2.31');
    assert.ok(got.addon, 'the prebuilt addon is the one loaded');
    assert.deepEqual(got.library, ['r-xp', 'rw-p'], 'the generated library: text and data, never W+X');
  });

  test(`bullseye, Node ${major}: test/api.test.js passes (traced path by the host's bpftrace)`, { skip, timeout: 180000 }, () => {
    const rt = bullseyeRuntime();
    const r = run(rt, ['--test', '--test-reporter=tap', path.join(rt.package, 'test', 'api.test.js')]);
    const summary = r.stdout.split('\n').filter((l) => /^# (tests|pass|fail|skipped)/.test(l));
    assert.equal(r.status, 0, `${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
    assert.ok(summary.includes('# fail 0'), summary.join('\n'));
    if (CI) assert.ok(summary.includes('# skipped 0'), `nothing skips when CI=true:\n${summary.join('\n')}`);
  });

  for (const c of basicCases()) {
    for (const tracer of TRACERS) {
      if (tracer === 'dtrace' && c.name !== DTRACE_CASE) continue;
      const reason = tracerReasons[tracer];
      test(`bullseye, Node ${major}: ${c.name} [${tracer} from the host]`, { skip: skip || (reason && !CI ? reason : false), timeout: 180000 }, async () => {
        assert.ok(!reason, `${tracer} is required when CI=true: ${reason}`);
        const result = await runCase(c, tracer, bullseyeRuntime());
        assert.deepEqual(result.lines, result.expected, result.diagnostics);
      });
    }
  }
}
