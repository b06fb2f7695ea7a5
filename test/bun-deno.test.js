'use strict';
// test-needs: tracer
// dynprobe under Bun (glibc) and Deno 2, each installed as its users install
// it (from npm: scripts/provision-runtimes.sh). Each runs this checkout's
// API tests (test/api.test.js, test/subscribe.test.js) with its own test
// runner; and with dynprobe installed from its tarballs into a fresh
// project (npm, offline) and loaded the runtime's way (Bun:
// require('dynprobe'); Deno: `npm:dynprobe`), passes the API checks of
// test/fixtures/consumer/runtime-api.js and is traced by `dynprobe trace`
// through its endpoint, and by bpftrace where root has it. Without the
// runtimes the tests are skipped loudly; with CI=true they fail.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./fixtures/helpers');
const packaged = require('./fixtures/packaged');
const { startTarget, until, jsonLines } = require('./fixtures/consumer/run');
const { packageName } = require('../lib/native');

const CACHE = require('../scripts/lib/paths').DYNPROBE_RUNTIMES_CACHE;
const FIXTURES = path.join(__dirname, 'fixtures', 'consumer');

function runtime(name) {
  const bin = path.join(CACHE, name, 'bin', name);
  if (!fs.existsSync(path.join(CACHE, name, '.dynprobe-ready'))) return { bin, reason: `${name} is not provisioned in ${CACHE} (run scripts/provision-runtimes.sh as root)` };
  if (packaged.TARGET !== 'linux-x64-gnu') return { bin, reason: `the provisioned ${name} is an x86-64 glibc build, this is ${packaged.TARGET}` };
  return { bin, reason: null };
}

// How each runtime runs a program of the app, loading dynprobe its users' way.
// Each runtime's test runner, and the cases it leaves out, each for a
// reason of the runtime's own.
const RUNTIMES = {
  bun: {
    ...runtime('bun'),
    // Bun's node:http publishes no diagnostics_channel events (dynprobe/node
    // has nothing to fire), and restify's spdy does not load under Bun.
    tests: (bin) => [bin, 'test', '--timeout', '120000', '-t', '^(?!.*(restify, unchanged|dynprobe/node: a subscription)).*$', 'test/api.test.js', 'test/subscribe.test.js'],
    counts: (out) => ({ pass: count(out, /^\s*(\d+) pass$/m), fail: count(out, /^\s*(\d+) fail$/m) }),
    command: (bin, file) => [bin, file],
    api: (fixture) => `require(${JSON.stringify(fixture)}).run(require('dynprobe')).then((r) => console.log('API OK ' + JSON.stringify({ ...r, runtime: 'bun ' + Bun.version })), (e) => { console.error(e); process.exit(1); });\n`,
    target: (fixture) => `globalThis.dynprobeForTarget = require('dynprobe');\nrequire(${JSON.stringify(fixture)});\n`,
    ext: 'js',
  },
  deno: {
    ...runtime('deno'),
    // (api.test.js skips its "module loading" suite here: its children fake
    // the platform with `node -r`, a flag Deno's command line does not take.)
    tests: (bin) => [bin, 'test', '-A', '--no-check', '--unstable-detect-cjs', 'test/api.test.js', 'test/subscribe.test.js'],
    counts: (out) => {
      // (NO_COLOR=1: no escape sequences in its summary.)
      const m = /(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps\))? \| (\d+) failed/.exec(out);
      return m ? { pass: Number(m[1]) + Number(m[2] || 0), fail: Number(m[3]) } : { pass: 0, fail: -1 };
    },
    command: (bin, file) => [bin, 'run', '-A', file],
    api: (fixture) => `import dynprobe from 'npm:dynprobe';\nimport { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nrequire(${JSON.stringify(fixture)}).run(dynprobe).then((r) => console.log('API OK ' + JSON.stringify({ ...r, runtime: 'deno ' + Deno.version.deno })), (e) => { console.error(e); process.exit(1); });\n`,
    target: (fixture) => `import dynprobe from 'npm:dynprobe';\nimport { createRequire } from 'node:module';\nglobalThis.dynprobeForTarget = dynprobe;\ncreateRequire(import.meta.url)(${JSON.stringify(fixture)});\n`,
    ext: 'mjs',
  },
};

const count = (out, re) => Number((re.exec(out) || [])[1] || 0);

const npmGate = h.gate('Bun and Deno tests (npm)', spawnSync('npm', ['--version']).status === 0 ? null : 'npm is not available');
let tmp;
let app;

before(() => {
  if (npmGate.skip || Object.values(RUNTIMES).every((r) => r.reason && process.env.CI !== 'true')) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-bun-deno-'));
  const tarballs = packaged.packInto(path.join(tmp, 'dist'));
  app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  const manifest = { name: 'runtime-app', version: '1.0.0', private: true, dependencies: { dynprobe: `file:${tarballs.main}`, [packageName(packaged.TARGET)]: `file:${tarballs.platform}` } };
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify(manifest, null, 2));
  // Deno resolves `npm:` specifiers in the project's node_modules.
  fs.writeFileSync(path.join(app, 'deno.json'), JSON.stringify({ nodeModulesDir: 'manual' }));
  packaged.npm(['install', '--offline'], app);
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

for (const [name, rt] of Object.entries(RUNTIMES)) {
  const gate = h.gate(`${name} tests`, npmGate.reason || rt.reason);

  test(`${name}: test/api.test.js and test/subscribe.test.js pass under its own test runner`, { skip: rt.reason && process.env.CI !== 'true' ? rt.reason : false, timeout: 600000 }, () => {
    assert.ok(!rt.reason, rt.reason);
    const [cmd, ...args] = rt.tests(rt.bin);
    const r = spawnSync(cmd, args, { cwd: h.ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 590000 });
    const out = `${r.stdout}\n${r.stderr}`;
    const { pass, fail } = rt.counts(out);
    assert.equal(r.status, 0, `${name} test failed (${r.status ?? r.signal}):\n${out.slice(-6000)}`);
    assert.equal(fail, 0, out.slice(-6000));
    assert.ok(pass >= 40, `only ${pass} tests passed:\n${out.slice(-6000)}`);
    process.stderr.write(`${name}: ${pass} API tests pass\n`);
  });

  test(`${name}: the API checks pass, with dynprobe loaded the ${name} way`, { skip: gate.skip, timeout: 120000 }, () => {
    assert.ok(!gate.reason, gate.reason);
    const file = path.join(app, `api-${name}.${rt.ext}`);
    fs.writeFileSync(file, rt.api(path.join(FIXTURES, 'runtime-api.js')));
    const [cmd, ...args] = rt.command(rt.bin, file);
    const r = spawnSync(cmd, args, { cwd: app, encoding: 'utf8', env: packaged.userEnv({ HOME: tmp }), timeout: 60000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const line = r.stdout.split('\n').find((l) => l.startsWith('API OK '));
    assert.ok(line, r.stdout);
    const result = JSON.parse(line.slice('API OK '.length));
    assert.deepEqual({ ran: result.ran, delivered: result.delivered }, { ran: 12, delivered: 5 });
    assert.match(result.runtime, new RegExp(`^${name} \\d`));
    assert.equal(result.mapped, true, `${name} loads the native addon: the provider's library is mapped`);
  });

  test(`${name}: dynprobe trace reads it through its endpoint (no root), and bpftrace through its probes`, { skip: gate.skip, timeout: 180000 }, async () => {
    assert.ok(!gate.reason, gate.reason);
    const file = path.join(app, `target-${name}.${rt.ext}`);
    fs.writeFileSync(file, rt.target(path.join(FIXTURES, 'target.js')));
    const target = await startTarget({ node: rt.command(rt.bin, file).slice(0, -1), script: file, env: { HOME: tmp } });
    const cliPath = path.join(app, 'node_modules', 'dynprobe', 'bin', 'dynprobe.js');
    const cli = (args) => {
      const r = spawnSync(process.execPath, [cliPath, ...args.map(String)], { encoding: 'utf8', env: packaged.userEnv(), timeout: 60000 });
      return { ...r, all: `status ${r.status}\n${r.stdout}\n${r.stderr}` };
    };
    try {
      await target.ask('tick 10', 'ticking');
      const r = cli(['trace', target.pid, 'ctest:*', '--via', 'process', '--count', 3, '--json']);
      assert.equal(r.status, 0, r.all);
      const lines = jsonLines(r.stdout);
      const tick = lines.find((l) => l.probe === 'tick');
      assert.deepEqual(tick.args, [tick.args[0], `tick ${tick.args[0]}`, { n: tick.args[0] }]);
      const listed = JSON.parse(cli(['list', target.pid, '--via', 'process', '--json']).stdout);
      assert.match(listed[0].runtime, new RegExp(`^${name} `));
      if (h.bpftraceUnavailable() === null) {
        const k = cli(['trace', target.pid, 'ctest:tick', '--via', 'kernel', '--tracer', 'bpftrace', '--count', 2, '--json']);
        assert.equal(k.status, 0, k.all);
        assert.equal(jsonLines(k.stdout).length, 2);
      }
      await until(async () => Object.values((await target.ask('stats', 'stats')).subscribers).every((n) => n === 0), 5000, 'probes off');
    } finally {
      await target.finish();
    }
  });
}
