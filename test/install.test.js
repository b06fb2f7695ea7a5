'use strict';
// test-needs: tracer
// dynprobe installed like a user installs it: scripts/package.js packs the
// tarballs (this machine's target, from the local build), and a fresh
// project installs them offline with no cargo or rustc on PATH, with bunyan
// through `"dtrace-provider": "file:.../dynprobe-<v>.tgz"` and `overrides`.
// bpftrace then reads a bunyan record from the installed app. Without npm or
// bpftrace the tests are skipped loudly; with CI=true they fail.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./fixtures/helpers');
const p = require('./fixtures/packaged');
const { TARGETS, packageName } = require('../lib/native');

function npmUnavailable() {
  const r = spawnSync('npm', ['--version'], { encoding: 'utf8', timeout: 30000 });
  if (r.error || r.status !== 0) return `npm is not available: ${r.error || r.stderr}`;
  if (!fs.existsSync(path.join(h.ROOT, 'build', 'dynprobe.node'))) return 'build/dynprobe.node is missing: run npm run build';
  return null;
}

const gate = h.gate('install tests (npm)', npmUnavailable());
const tracerGate = h.gate('install tests under bpftrace', gate.reason || h.bpftraceUnavailable());
const PRELOAD = path.join(__dirname, 'fixtures', 'fake-target.js');
let tmp;
let tarballs;

before(() => {
  if (gate.skip) return;
  assert.ok(!gate.reason, `required when CI=true: ${gate.reason}`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-install-'));
  tarballs = p.packInto(path.join(tmp, 'dist'));
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// The manifest and file list inside a tarball.
function tarball(file) {
  const list = spawnSync('tar', ['-tzf', file], { encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  const manifest = spawnSync('tar', ['-xzOf', file, 'package/package.json'], { encoding: 'utf8' });
  assert.equal(manifest.status, 0, manifest.stderr);
  return { files: list.stdout.trim().split('\n').sort(), manifest: JSON.parse(manifest.stdout) };
}

test('the committed per-target packages: one per target, same version, os/cpu/libc of their name', () => {
  const { version } = require('../package.json');
  assert.deepEqual(fs.readdirSync(path.join(h.ROOT, 'npm')).sort(), [...TARGETS].sort());
  for (const target of TARGETS) {
    const [, arch, libc] = target.split('-');
    const m = require(`../npm/${target}/package.json`);
    assert.equal(m.name, packageName(target));
    assert.equal(m.version, version, `${target} has dynprobe's version`);
    assert.deepEqual([m.os, m.cpu, m.libc], [['linux'], [arch], [libc === 'gnu' ? 'glibc' : 'musl']], target);
    assert.equal(m.main, 'dynprobe.node');
    assert.deepEqual(m.files, ['dynprobe.node']);
    assert.equal(m.scripts, undefined, 'nothing runs at install');
  }
});

test('the tarballs: the platform package holds only its stripped addon, under 1 MB; dynprobe lists every target at its exact version', { skip: gate.skip }, () => {
  const { version } = require('../package.json');
  const platform = tarball(tarballs.platform);
  assert.deepEqual(platform.files, ['package/README.md', 'package/dynprobe.node', 'package/package.json']);
  assert.equal(platform.manifest.name, packageName(p.TARGET));
  assert.ok(fs.statSync(tarballs.platform).size < 1000 * 1000, `${fs.statSync(tarballs.platform).size} bytes`);
  const main = tarball(tarballs.main);
  assert.equal(main.manifest.version, version);
  assert.deepEqual(main.manifest.optionalDependencies, Object.fromEntries(TARGETS.map((t) => [packageName(t), version])));
  for (const key of ['os', 'cpu', 'scripts', 'devDependencies', 'overrides', 'private']) {
    assert.equal(main.manifest[key], undefined, `dynprobe's published manifest has no ${key}: it installs everywhere and runs nothing`);
  }
  assert.ok(!main.files.some((f) => f.endsWith('.node')), `no addon in the JavaScript package: ${main.files.join(', ')}`);
  for (const f of ['index.js', 'index.d.ts', 'lib/native.js', 'lib/provider.js', 'lib/stub.js', 'bin/dynprobe.js']) {
    assert.ok(main.files.includes(`package/${f}`), `dynprobe lacks ${f}`);
  }
});

let app;
function installedApp() {
  if (app === undefined) {
    const env = p.userEnv();
    for (const tool of ['cargo', 'rustc']) {
      const r = spawnSync(tool, ['--version'], { env });
      assert.equal(r.error && r.error.code, 'ENOENT', `${tool} must not be on the install's PATH (${env.PATH})`);
    }
    app = p.installApp(path.join(tmp, 'app'), tarballs, { files: { 'app.js': fs.readFileSync(p.APP) } });
  }
  return app;
}

test('installed offline with bunyan, no Rust on PATH: dtrace-provider is dynprobe, with only this target\'s addon package', { skip: gate.skip, timeout: 120000 }, () => {
  const dir = installedApp();
  const modules = path.join(dir, 'node_modules');
  assert.equal(require(path.join(modules, 'dtrace-provider', 'package.json')).name, 'dynprobe');
  assert.deepEqual(fs.readdirSync(path.join(modules, '@dynprobe')), [p.TARGET]);
  assert.equal(fs.existsSync(path.join(modules, 'dtrace-provider', 'build')), false, 'no build in an install');
  const bunyanDtp = spawnSync(process.execPath, ['-p', "require.resolve('dtrace-provider', { paths: [require('path').dirname(require.resolve('bunyan'))] })"], { cwd: dir, env: p.userEnv(), encoding: 'utf8' });
  assert.equal(bunyanDtp.stdout.trim(), path.join(fs.realpathSync(modules), 'dtrace-provider', 'index.js'), bunyanDtp.stderr);
});

test('installed: bpftrace reads the bunyan record from the platform package\'s addon', { skip: tracerGate.skip, timeout: 180000 }, async () => {
  assert.ok(!tracerGate.reason, `required when CI=true: ${tracerGate.reason}`);
  const dir = installedApp();
  const r = await p.runApp(['app.js'], { cwd: dir, trace: true });
  assert.equal(r.ready.addon, path.join(fs.realpathSync(dir), 'node_modules', packageName(p.TARGET), 'dynprobe.node'));
  assert.equal(r.ready.libraries.length, 1, 'bunyan\'s provider library is mapped');
  assert.deepEqual(r.ready.warnings, []);
  assert.equal(r.records[0].msg, 'traced');
  assert.deepEqual(r.traced, r.records, 'bpftrace read the record bunyan wrote');
});

test('dynprobe alone, its platform package not installable (offline): the stub and one DYNPROBE_ADDON_MISSING warning; hard throws', { skip: gate.skip, timeout: 120000 }, async () => {
  const dir = p.installApp(path.join(tmp, 'app-no-platform'), tarballs, { withPlatform: false, files: { 'app.js': fs.readFileSync(p.APP) } });
  assert.equal(fs.existsSync(path.join(dir, 'node_modules', '@dynprobe')), false);
  const r = await p.runApp(['app.js'], { cwd: dir, env: p.userEnv({ NODE_DTRACE_PROVIDER_REQUIRE: '' }) });
  assert.deepEqual([r.ready.addon, r.ready.libraries, r.ready.warnings], [null, [], ['DYNPROBE_ADDON_MISSING']]);
  assert.equal(r.records[0].msg, 'traced', 'bunyan logs on the stub');
  assert.match(r.stderr, new RegExp(`\\[DYNPROBE_ADDON_MISSING\\].*${packageName(p.TARGET)} is not installed`));
  const hard = spawnSync(process.execPath, ['-e', "require('dtrace-provider')"], { cwd: dir, env: p.userEnv({ NODE_DTRACE_PROVIDER_REQUIRE: 'hard' }), encoding: 'utf8' });
  assert.notEqual(hard.status, 0);
  assert.match(hard.stderr, /is not installed/);
});

test('installed for macOS (npm --os=darwin --cpu=arm64) with bunyan and restify: no addon package; there both run on the stub', { skip: gate.skip, timeout: 180000 }, () => {
  const program = `
    const warnings = [];
    process.on('warning', (w) => /^DYNPROBE_/.test(w.code) && warnings.push(w.code));
    const bunyan = require('bunyan');
    const restify = require('restify');
    const http = require('http');
    const records = [];
    const log = bunyan.createLogger({ name: 'mac', level: 'info', stream: { write: (s) => records.push(JSON.parse(s).msg) } });
    const server = restify.createServer({ name: 'mac-api', dtrace: true, log });
    server.get('/hi', (req, res, next) => { log.info('served'); res.send(200, 'ok'); next(); });
    server.listen(0, '127.0.0.1', () => {
      http.get({ host: '127.0.0.1', port: server.address().port, path: '/hi' }, (res) => {
        res.resume();
        res.on('end', () => server.close(() => {
          setImmediate(() => console.log(JSON.stringify({ status: res.statusCode, records, warnings })));
        }));
      });
    });
  `;
  const dir = p.installApp(path.join(tmp, 'app-darwin'), tarballs, {
    registryDeps: ['bunyan', 'restify'],
    withPlatform: false,
    npmFlags: ['--os=darwin', '--cpu=arm64'],
    files: { 'server.js': program },
  });
  assert.equal(fs.existsSync(path.join(dir, 'node_modules', '@dynprobe')), false, 'npm installs no Linux addon for macOS');
  const r = spawnSync(process.execPath, ['-r', PRELOAD, 'server.js'], {
    cwd: dir,
    env: p.userEnv({ FAKE_PLATFORM: 'darwin', FAKE_ARCH: 'arm64', NODE_DTRACE_PROVIDER_REQUIRE: '' }),
    encoding: 'utf8',
    timeout: 60000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { status: 200, records: ['served'], warnings: ['DYNPROBE_NO_ADDON'] });
});
