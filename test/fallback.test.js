'use strict';
// test-needs: nothing
// test-tier: quick
// Where there is no addon, dtrace-provider's contract: `require('dynprobe')`
// returns the no-op stub and the process gets ONE warning whose code says
// why (which file and why, when one did not load);
// NODE_DTRACE_PROVIDER_REQUIRE=hard throws instead. Platforms without an
// addon are faked in a child process (test/fixtures/fake-target.js); broken
// and missing addons are real files in a copy of the package.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./fixtures/helpers');
const { currentTarget, packageName } = require('../lib/native');

const PRELOAD = path.join(__dirname, 'fixtures', 'fake-target.js');
const HOST_TARGET = currentTarget();
const ADDON = path.join(h.ROOT, 'build', 'dynprobe.node');

// Loads the package at `dir` (twice, and a second copy at `other` if given),
// fires a probe, and reports what happened: the warnings the process got,
// whether a callback ran, the providers' libraries mapped, or the error
// `require` threw.
function loadIn(dir, { env = {}, other = null } = {}) {
  const code = `
    const warnings = [];
    process.on('warning', (w) => warnings.push({ code: w.code, message: w.message }));
    let d;
    try {
      d = require(${JSON.stringify(dir)});
      require(${JSON.stringify(dir)});
      ${other ? `require(${JSON.stringify(other)});` : ''}
    } catch (e) {
      report({ error: { message: e.message, code: e.code, cause: e.cause ? String(e.cause.message) : null } });
      return;
    }
    const dtp = d.createDTraceProvider('fallbacktest');
    const p = dtp.addProbe('p', 'int', 'char *');
    let ran = false;
    dtp.enable();
    p.fire(() => { ran = true; return [1, 'a']; });
    await new Promise((resolve) => setImmediate(resolve));
    report({ warnings, ran, libs: helpers.libraryPaths().map((f) => path.basename(f)), addons: require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/).slice(5).join(' ')).filter((f) => f.endsWith('.node')).filter((f, i, a) => a.indexOf(f) === i) });
    dtp.disable();
  `;
  const r = h.runChild(`const path = require('path');\n${code}`, { flags: ['-r', PRELOAD], env: { NODE_DTRACE_PROVIDER_REQUIRE: '', ...env } });
  assert.equal(r.status, 0, r.stderr);
  return { ...r.result, stderr: r.stderr };
}

// One warning with `code`, printed once on stderr.
function assertOneWarning(result, code, pattern) {
  assert.equal(result.error, undefined, `require threw: ${JSON.stringify(result.error)}`);
  assert.equal(result.warnings.length, 1, JSON.stringify(result.warnings));
  assert.equal(result.warnings[0].code, code);
  assert.match(result.warnings[0].message, pattern);
  assert.match(result.warnings[0].message, /NODE_DTRACE_PROVIDER_REQUIRE=hard/);
  assert.equal(result.stderr.split(`[${code}]`).length - 1, 1, `printed once:\n${result.stderr}`);
  assert.equal(result.ran, false, 'the stub never runs callbacks');
  assert.deepEqual(result.libs, [], 'the stub maps no provider library');
}

describe('a platform with no addon: the stub and one DYNPROBE_NO_ADDON warning', () => {
  const platforms = [
    ['darwin', 'arm64'],
    ['darwin', 'x64'],
    ['win32', 'x64'],
    ['freebsd', 'x64'],
    ['linux', 'ia32'],
    ['linux', 'riscv64'],
    ['linux', 's390x'],
  ];
  for (const [platform, arch] of platforms) {
    test(`${platform}/${arch}`, () => {
      const env = { FAKE_PLATFORM: platform, FAKE_ARCH: arch };
      const soft = loadIn(h.ROOT, { env });
      assertOneWarning(soft, 'DYNPROBE_NO_ADDON', new RegExp(`does not support ${platform}/${arch}`));
      assert.deepEqual(soft.addons, [], 'no addon is loaded');
      const hard = loadIn(h.ROOT, { env: { ...env, NODE_DTRACE_PROVIDER_REQUIRE: 'hard' } });
      assert.equal(hard.error.code, 'DYNPROBE_NO_ADDON');
      assert.match(hard.error.message, new RegExp(`does not support ${platform}/${arch}`));
    });
  }
});

describe('the addon a Linux process loads', () => {
  let tmp;
  before(() => {
    assert.ok(fs.existsSync(ADDON), `${ADDON} is missing: run npm run build`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-fallback-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // A copy of the installed package (no addon); `files` maps paths in it to
  // contents (a Buffer, or a file to copy).
  let n = 0;
  function copy(files = {}) {
    const dir = path.join(tmp, `pkg-${++n}`);
    fs.mkdirSync(dir);
    for (const f of ['index.js', 'package.json']) fs.copyFileSync(path.join(h.ROOT, f), path.join(dir, f));
    fs.cpSync(path.join(h.ROOT, 'lib'), path.join(dir, 'lib'), { recursive: true });
    for (const [rel, content] of Object.entries(files)) {
      const dest = path.join(dir, rel);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      if (Buffer.isBuffer(content)) fs.writeFileSync(dest, content);
      else fs.copyFileSync(content, dest);
    }
    return dir;
  }
  const platformPackage = (target, addon) => ({
    [`node_modules/${packageName(target)}/package.json`]: Buffer.from(JSON.stringify({ name: packageName(target), version: '0.0.0', main: 'dynprobe.node' })),
    [`node_modules/${packageName(target)}/dynprobe.node`]: addon,
  });
  const NOT_ELF = Buffer.from('this is not an ELF file\n'.repeat(10));

  test('no local build, no platform package: DYNPROBE_ADDON_MISSING names the package', () => {
    const dir = copy();
    const soft = loadIn(dir);
    assertOneWarning(soft, 'DYNPROBE_ADDON_MISSING', new RegExp(`${packageName(HOST_TARGET)} is not installed`));
    const hard = loadIn(dir, { env: { NODE_DTRACE_PROVIDER_REQUIRE: 'hard' } });
    assert.equal(hard.error.code, 'DYNPROBE_ADDON_MISSING');
    assert.match(hard.error.message, /is not installed/);
  });

  test('the platform package by name, when there is no local build: real probes', () => {
    const dir = copy(platformPackage(HOST_TARGET, ADDON));
    const r = loadIn(dir, { env: { NODE_DTRACE_PROVIDER_REQUIRE: 'hard' } });
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.libs, ['fallbacktest']);
    assert.deepEqual(r.addons, [path.join(fs.realpathSync(dir), 'node_modules', packageName(HOST_TARGET), 'dynprobe.node')]);
  });

  test('in a checkout the local build wins over the platform package', () => {
    const dir = copy({ 'build/dynprobe.node': ADDON, ...platformPackage(HOST_TARGET, NOT_ELF) });
    const r = loadIn(dir);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.addons, [path.join(fs.realpathSync(dir), 'build', 'dynprobe.node')]);
    assert.deepEqual(r.libs, ['fallbacktest']);
  });

  for (const [what, files, rel] of [
    ['a corrupt local build', { 'build/dynprobe.node': NOT_ELF }, 'build/dynprobe.node'],
    ['a corrupt platform package', platformPackage(HOST_TARGET, NOT_ELF), `node_modules/${packageName(HOST_TARGET)}/dynprobe.node`],
    ['an empty addon file', { 'build/dynprobe.node': Buffer.alloc(0) }, 'build/dynprobe.node'],
  ]) {
    test(`${what}: DYNPROBE_ADDON_LOAD_FAILED says which file and why`, () => {
      const dir = copy(files);
      const file = path.join(fs.realpathSync(dir), rel);
      const soft = loadIn(dir);
      const escaped = file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      assertOneWarning(soft, 'DYNPROBE_ADDON_LOAD_FAILED', new RegExp(`cannot load its native addon ${escaped} \\(${HOST_TARGET}\\): .*(invalid ELF header|file too short)`));
      const hard = loadIn(dir, { env: { NODE_DTRACE_PROVIDER_REQUIRE: 'hard' } });
      assert.equal(hard.error.code, 'DYNPROBE_ADDON_LOAD_FAILED');
      assert.match(hard.error.message, new RegExp(escaped));
      assert.match(hard.error.cause, /invalid ELF header|file too short/);
    });
  }

  test('two copies of dynprobe in one process: still one warning', () => {
    const a = copy();
    const b = copy();
    const r = loadIn(a, { other: b });
    assertOneWarning(r, 'DYNPROBE_ADDON_MISSING', /is not installed/);
  });

  test('on musl (no glibc version in the report) the musl package is the one wanted', () => {
    // Only the glibc package is installed: a musl process must not load it.
    const dir = copy(platformPackage(HOST_TARGET.replace(/-musl$/, '-gnu'), ADDON));
    const r = loadIn(dir, { env: { FAKE_REPORT: 'musl' } });
    const musl = HOST_TARGET.replace(/-gnu$/, '-musl');
    assertOneWarning(r, 'DYNPROBE_ADDON_MISSING', new RegExp(`no native addon for ${musl}: the package ${packageName(musl).replace('/', '\\/')} is not installed`));
  });

  test('without a usable report the loaded dynamic loader tells glibc from musl', () => {
    const code = `const n = require(${JSON.stringify(path.join(h.ROOT, 'lib', 'native.js'))}); report({ target: n.currentTarget(), loader: n.loaderFamily() });`;
    const r = h.runChild(code, { flags: ['-r', PRELOAD], env: { FAKE_REPORT: 'throw' } });
    assert.equal(r.status, 0, r.stderr);
    const maps = fs.readFileSync('/proc/self/maps', 'utf8');
    const family = /\/ld-musl-/.test(maps) ? 'musl' : 'gnu';
    assert.match(maps, family === 'gnu' ? /\/ld-linux[^/\s]*\.so/ : /\/ld-musl-/);
    assert.deepEqual(r.result, { target: `linux-${process.arch}-${family}`, loader: family });
  });
});

describe('bunyan and restify, unchanged, on a platform with no addon', () => {
  // Their `require('dtrace-provider')` is this package (package.json
  // overrides), here faked onto macOS: they log and serve on the stub.
  test('bunyan logs and restify serves a request under darwin/arm64, with one warning', () => {
    const code = `
      const warnings = [];
      // restify's own deprecation warnings (DEP0111) are not ours.
      process.on('warning', (w) => /^DYNPROBE_/.test(w.code) && warnings.push(w.code));
      const bunyan = require('bunyan');
      const restify = require('restify');
      const http = require('http');
      const records = [];
      const { Writable } = require('stream');
      const sink = new Writable({ write(chunk, enc, cb) { records.push(JSON.parse(chunk)); cb(); } });
      const log = bunyan.createLogger({ name: 'stubbed', stream: sink, level: 'info' });
      log.info({ a: 1 }, 'hello');
      const server = restify.createServer({ name: 'stubbed-api', dtrace: true, log });
      server.get('/hi/:name', (req, res, next) => { res.send(200, { hi: req.params.name }); next(); });
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
      const body = await new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: server.address().port, path: '/hi/there' }, (res) => {
          let text = '';
          res.on('data', (c) => (text += c)).on('end', () => resolve(text));
        }).on('error', reject);
      });
      await new Promise((resolve) => server.close(resolve));
      report({ warnings, records: records.map((r) => [r.name, r.msg, r.a]), body: JSON.parse(body), libs: helpers.libraryPaths() });
    `;
    const r = h.runChild(code, { flags: ['-r', PRELOAD], env: { FAKE_PLATFORM: 'darwin', FAKE_ARCH: 'arm64', NODE_DTRACE_PROVIDER_REQUIRE: '' } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.result, { warnings: ['DYNPROBE_NO_ADDON'], records: [['stubbed', 'hello', 1]], body: { hi: 'there' }, libs: [] });
  });
});
