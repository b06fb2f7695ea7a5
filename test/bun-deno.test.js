'use strict';
// dynprobe under Bun (glibc) and Deno 2, each installed as its users install
// it (from npm: scripts/provision-runtimes.sh), dynprobe installed from its
// tarballs into a fresh project (npm, offline), loaded the runtime's way
// (Bun: require('dynprobe'); Deno: `npm:dynprobe`). Each passes the API
// checks (test/fixtures/consumer/runtime-api.js) and is traced by
// `dynprobe trace` through its endpoint, and by bpftrace where root has it.
// Without the runtimes the tests are skipped loudly; with CI=true they fail.

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

const CACHE = process.env.DYNPROBE_RUNTIMES_CACHE || '/var/lib/dynprobe/runtimes';
const FIXTURES = path.join(__dirname, 'fixtures', 'consumer');

function runtime(name) {
  const bin = path.join(CACHE, name, 'bin', name);
  if (!fs.existsSync(path.join(CACHE, name, '.dynprobe-ready'))) return { bin, reason: `${name} is not provisioned in ${CACHE} (run scripts/provision-runtimes.sh as root)` };
  if (packaged.TARGET !== 'linux-x64-gnu') return { bin, reason: `the provisioned ${name} is an x86-64 glibc build, this is ${packaged.TARGET}` };
  return { bin, reason: null };
}

// How each runtime runs a program of the app, loading dynprobe its users' way.
const RUNTIMES = {
  bun: {
    ...runtime('bun'),
    command: (bin, file) => [bin, file],
    api: (fixture) => `require(${JSON.stringify(fixture)}).run(require('dynprobe')).then((r) => console.log('API OK ' + JSON.stringify({ ...r, addon: require('dynprobe/lib/native').load().addon !== null, runtime: 'bun ' + Bun.version })), (e) => { console.error(e); process.exit(1); });\n`,
    target: (fixture) => `globalThis.dynprobeForTarget = require('dynprobe');\nrequire(${JSON.stringify(fixture)});\n`,
    ext: 'js',
  },
  deno: {
    ...runtime('deno'),
    command: (bin, file) => [bin, 'run', '-A', file],
    api: (fixture) => `import dynprobe from 'npm:dynprobe';\nimport { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nrequire(${JSON.stringify(fixture)}).run(dynprobe).then((r) => console.log('API OK ' + JSON.stringify({ ...r, addon: require('dynprobe/lib/native').load().addon !== null, runtime: 'deno ' + Deno.version.deno })), (e) => { console.error(e); process.exit(1); });\n`,
    target: (fixture) => `import dynprobe from 'npm:dynprobe';\nimport { createRequire } from 'node:module';\nglobalThis.dynprobeForTarget = dynprobe;\ncreateRequire(import.meta.url)(${JSON.stringify(fixture)});\n`,
    ext: 'mjs',
  },
};

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
    assert.equal(result.addon, true, `${name} loads the native addon`);
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
