'use strict';
// test-needs: tracer
// An app using bunyan, installed from the tarballs (test/fixtures/packaged.js)
// and bundled by the real esbuild (`--bundle --platform=node`) and webpack
// (`--target node`), with no bundler configuration:
//   - with node_modules beside the bundle it loads the platform package's
//     addon and bpftrace reads its bunyan record;
//   - deployed without node_modules it runs on the stub with one warning;
//   - the one setting for a bundle without node_modules: the addon file
//     beside the bundle as dynprobe.<target>.node, then it is traced again.
// Other bundler options never make it crash at start. Without npm or the
// bundlers (devDependencies) the tests are skipped loudly; with CI=true they
// fail.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./fixtures/helpers');
const p = require('./fixtures/packaged');
const { packageName } = require('../lib/native');

const BIN = path.join(h.ROOT, 'node_modules', '.bin');

function unavailable() {
  const r = spawnSync('npm', ['--version'], { encoding: 'utf8', timeout: 30000 });
  if (r.error || r.status !== 0) return `npm is not available: ${r.error || r.stderr}`;
  for (const tool of ['esbuild', 'webpack']) {
    if (!fs.existsSync(path.join(BIN, tool))) return `${tool} is not installed (a devDependency: npm ci)`;
  }
  if (!fs.existsSync(path.join(h.ROOT, 'build', 'dynprobe.node'))) return 'build/dynprobe.node is missing: run npm run build';
  return null;
}

const gate = h.gate('bundler tests', unavailable());
const tracerGate = h.gate('bundler tests under bpftrace', gate.reason || h.bpftraceUnavailable());
let tmp;
let app;

// Bundles `entry` (relative to the app) with `tool` and its arguments; the
// bundle's path. Fails on a bundler error, and on any bundler message about
// dynprobe (bunyan's own optional require of source-map-support is its own).
function bundle(tool, args, output) {
  const r = spawnSync(path.join(BIN, tool), args, { cwd: app, env: p.userEnv(), encoding: 'utf8', timeout: 120000 });
  const said = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, `${tool} ${args.join(' ')}:\n${said}`);
  assert.doesNotMatch(said, /node_modules\/dtrace-provider|@dynprobe\//, `${tool} warns about dynprobe:\n${said}`);
  const file = path.join(app, output);
  assert.ok(fs.existsSync(file), `${tool} wrote no ${output}`);
  return file;
}

const bundles = {};

before(() => {
  if (gate.skip) return;
  assert.ok(!gate.reason, `required when CI=true: ${gate.reason}`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-bundlers-'));
  const tarballs = p.packInto(path.join(tmp, 'dist'));
  app = p.installApp(path.join(tmp, 'app'), tarballs, {
    files: {
      'app.js': fs.readFileSync(p.APP),
      // For the ES module bundle: dynprobe itself, without bunyan.
      'plain.js': `
        const warnings = [];
        process.on('warning', (w) => warnings.push(w.code));
        const d = require('dtrace-provider');
        const dtp = d.createDTraceProvider('plain');
        dtp.addProbe('p', 'int').fire(() => [1]);
        dtp.enable();
        setImmediate(() => console.log(JSON.stringify({ warnings })));
      `,
    },
  });
  bundles.esbuild = bundle('esbuild', ['app.js', '--bundle', '--platform=node', '--log-level=warning', '--outfile=out/esbuild/app.js'], 'out/esbuild/app.js');
  bundles.webpack = bundle('webpack', ['--entry', './app.js', '--target', 'node', '--stats', 'errors-warnings', '--mode', 'production', '--output-path', 'out/webpack', '--output-filename', 'app.js'], 'out/webpack/app.js');
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const ADDON_IN_MODULES = () => path.join(fs.realpathSync(app), 'node_modules', packageName(p.TARGET), 'dynprobe.node');

// The bundle copied to a directory with no node_modules above it, with the
// given extra files.
function deployAlone(name, file, extra = {}) {
  const dir = path.join(tmp, `alone-${name}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(file, path.join(dir, 'app.js'));
  for (const [rel, from] of Object.entries(extra)) fs.copyFileSync(from, path.join(dir, rel));
  let up = dir;
  while (up !== path.dirname(up)) {
    assert.equal(fs.existsSync(path.join(up, 'node_modules')), false, `${up}/node_modules exists: the deployment would see it`);
    up = path.dirname(up);
  }
  return dir;
}

for (const tool of ['esbuild', 'webpack']) {
  describe(`${tool}, no configuration`, () => {
    test('node_modules beside the bundle: the platform package\'s addon, and bpftrace reads the bunyan record', { skip: tracerGate.skip, timeout: 180000 }, async () => {
      assert.ok(!tracerGate.reason, `required when CI=true: ${tracerGate.reason}`);
      const r = await p.runApp([bundles[tool]], { cwd: app, trace: true });
      assert.equal(r.ready.addon, ADDON_IN_MODULES());
      assert.deepEqual(r.ready.warnings, []);
      assert.equal(r.ready.libraries.length, 1);
      assert.deepEqual(r.traced, r.records);
    });

    test('deployed without node_modules: it runs on the stub, with one DYNPROBE_ADDON_MISSING warning', { skip: gate.skip, timeout: 60000 }, async () => {
      const dir = deployAlone(`${tool}-stub`, bundles[tool]);
      const r = await p.runApp(['app.js'], { cwd: dir, env: p.userEnv({ NODE_DTRACE_PROVIDER_REQUIRE: '' }) });
      assert.deepEqual([r.ready.addon, r.ready.libraries, r.ready.warnings], [null, [], ['DYNPROBE_ADDON_MISSING']]);
      assert.equal(r.records[0].msg, 'traced', 'bunyan logs');
      assert.match(r.stderr, new RegExp(`dynprobe\\.${p.TARGET}\\.node beside the bundle`), 'the warning says how to deploy the addon');
    });

    test(`deployed without node_modules, the addon beside the bundle as dynprobe.${p.TARGET}.node: traced`, { skip: tracerGate.skip, timeout: 180000 }, async () => {
      assert.ok(!tracerGate.reason, `required when CI=true: ${tracerGate.reason}`);
      const dir = deployAlone(`${tool}-addon`, bundles[tool], { [`dynprobe.${p.TARGET}.node`]: ADDON_IN_MODULES() });
      const r = await p.runApp(['app.js'], { cwd: dir, trace: true });
      assert.equal(r.ready.addon, path.join(fs.realpathSync(dir), `dynprobe.${p.TARGET}.node`));
      assert.deepEqual(r.ready.warnings, []);
      assert.deepEqual(r.traced, r.records);
    });
  });
}

describe('other bundler options never crash the app at start', () => {
  const variants = [
    ['esbuild --minify', 'esbuild', ['app.js', '--bundle', '--platform=node', '--minify', '--log-level=warning', '--outfile=out/v1/app.js'], 'out/v1/app.js'],
    ['esbuild --external:@dynprobe/*', 'esbuild', ['app.js', '--bundle', '--platform=node', '--external:@dynprobe/*', '--log-level=warning', '--outfile=out/v2/app.js'], 'out/v2/app.js'],
    ['esbuild --packages=external', 'esbuild', ['app.js', '--bundle', '--platform=node', '--packages=external', '--log-level=warning', '--outfile=out/v3/app.js'], 'out/v3/app.js'],
    ['webpack --mode none', 'webpack', ['--entry', './app.js', '--target', 'node', '--stats', 'errors-warnings', '--mode', 'none', '--output-path', 'out/v4', '--output-filename', 'app.js'], 'out/v4/app.js'],
  ];
  for (const [name, tool, args, output] of variants) {
    test(`${name}: the addon from node_modules`, { skip: gate.skip, timeout: 120000 }, async () => {
      const r = await p.runApp([bundle(tool, args, output)], { cwd: app });
      assert.equal(r.ready.addon, ADDON_IN_MODULES());
      assert.deepEqual(r.ready.warnings, []);
      assert.equal(r.ready.libraries.length, 1);
    });
  }

  test('esbuild --format=esm (no CommonJS require at run time): the stub and one DYNPROBE_ADDON_LOAD_FAILED warning', { skip: gate.skip, timeout: 60000 }, () => {
    const file = bundle('esbuild', ['plain.js', '--bundle', '--platform=node', '--format=esm', '--log-level=warning', '--outfile=out/esm/plain.mjs'], 'out/esm/plain.mjs');
    const r = spawnSync(process.execPath, [file], { cwd: app, env: p.userEnv({ NODE_DTRACE_PROVIDER_REQUIRE: '' }), encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { warnings: ['DYNPROBE_ADDON_LOAD_FAILED'] });
    assert.match(r.stderr, /no CommonJS require here/);
  });
});
