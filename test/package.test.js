'use strict';
// test-needs: nothing
// test-tier: quick
// `npm run package` (scripts/package.js) in a copy of the checkout whose
// scripts/build/<target>.sh are stand-ins: one writes a good addon, the
// others fail the ways a real build can (a missing toolchain piece, an addon
// for the wrong machine, one left unstripped, one too big). Every target is
// tried; each failure is named; the exit status is 1; the good target and
// dynprobe itself are packed.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./fixtures/helpers');

const ADDON = path.join(h.ROOT, 'build', 'dynprobe.node');
const reason = fs.existsSync(ADDON) ? null : 'build/dynprobe.node is missing: run npm run build';
const gate = h.gate('package tests', reason);
let tmp;

before(() => {
  if (gate.skip) return;
  assert.ok(!gate.reason, gate.reason);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-package-'));
});
after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

// A checkout with the given build scripts (target -> bash text).
function checkout(scripts) {
  const dir = fs.mkdtempSync(path.join(tmp, 'checkout-'));
  for (const f of ['package.json', 'index.js', 'index.d.ts', 'node.js', 'node.d.ts', 'README.md', 'LICENSE']) fs.copyFileSync(path.join(h.ROOT, f), path.join(dir, f));
  for (const d of ['lib', 'bin', 'npm', 'scripts']) fs.cpSync(path.join(h.ROOT, d), path.join(dir, d), { recursive: true });
  fs.rmSync(path.join(dir, 'scripts', 'build'), { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'scripts', 'build'));
  for (const [target, text] of Object.entries(scripts)) fs.writeFileSync(path.join(dir, 'scripts', 'build', `${target}.sh`), `set -euo pipefail\n${text}\n`);
  fs.mkdirSync(path.join(dir, 'build'));
  spawnSync('strip', ['--strip-unneeded', '-o', path.join(dir, 'build', 'stripped.node'), ADDON]);
  fs.copyFileSync(ADDON, path.join(dir, 'build', 'unstripped.node'));
  return dir;
}

const writes = (target, from, extra = '') => `mkdir -p build/prebuilt/${target} && cp build/${from} build/prebuilt/${target}/dynprobe.node${extra}`;

test('every target is tried, each failure named, exit 1; the good ones are packed', { skip: gate.skip, timeout: 60000 }, () => {
  const dir = checkout({
    'linux-x64-gnu': writes('linux-x64-gnu', 'stripped.node'),
    'linux-arm64-gnu': 'echo "linux-arm64-gnu: missing: aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 3',
    'linux-x64-musl': writes('linux-x64-musl', 'unstripped.node'),
    'linux-arm64-musl': writes('linux-arm64-musl', 'stripped.node'),
  });
  const r = spawnSync(process.execPath, ['scripts/package.js'], { cwd: dir, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /missing: aarch64-linux-gnu-gcc/, 'the build script\'s own message is shown');
  assert.match(r.stderr, /FAILED, 3 of 4 targets not packaged/);
  assert.match(r.stderr, /linux-arm64-gnu: bash scripts\/build\/linux-arm64-gnu\.sh failed \(exit 3\)/);
  assert.match(r.stderr, /linux-x64-musl: .*dynprobe\.node is not stripped \(it has [^)]*\.symtab/);
  assert.match(r.stderr, /linux-arm64-musl: .*dynprobe\.node is for ELF machine 62, not arm64 \(183\)/);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'dist')).sort(), ['dynprobe-0.1.0.tgz', 'dynprobe-linux-x64-gnu-0.1.0.tgz']);
});

test('a missing build script is named; a platform tarball of 1 MB or more fails loudly', { skip: gate.skip, timeout: 60000 }, () => {
  // Incompressible bytes after the ELF image keep it valid and make the tarball big.
  const big = `${writes('linux-x64-gnu', 'stripped.node')} && head -c 1200000 /dev/urandom >> build/prebuilt/linux-x64-gnu/dynprobe.node`;
  const dir = checkout({ 'linux-x64-gnu': big });
  fs.mkdirSync(path.join(dir, 'dist'));
  fs.writeFileSync(path.join(dir, 'dist', 'dynprobe-linux-arm64-gnu-0.1.0.tgz'), 'from an earlier run');
  const r = spawnSync(process.execPath, ['scripts/package.js'], { cwd: dir, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /linux-x64-gnu: dynprobe-linux-x64-gnu-0\.1\.0\.tgz is \d+ bytes: a platform tarball must stay under 1000000/);
  for (const t of ['linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl']) {
    assert.match(r.stderr, new RegExp(`${t}: scripts/build/${t}\\.sh does not exist`));
  }
  assert.deepEqual(fs.readdirSync(path.join(dir, 'dist')).filter((f) => !f.startsWith('dynprobe-0.1.0')), [], 'no stale or oversized platform tarball is left');
});

// What each published package holds, exactly: npm adds package.json,
// README.md and LICENSE to what its `files` lists.
const PLATFORM_FILES = ['LICENSE', 'README.md', 'dynprobe.node', 'package.json'];
function mainFiles() {
  const r = spawnSync('git', ['ls-files', '-z', 'lib', 'bin'], { cwd: h.ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, `git ls-files: ${r.stderr || r.error}`);
  const tracked = r.stdout.split('\0').filter(Boolean);
  return ['LICENSE', 'README.md', 'package.json', 'index.js', 'index.d.ts', 'node.js', 'node.d.ts', ...tracked].sort();
}

// `npm publish --dry-run` of a tarball or directory: its exit status and the files it would publish.
function publishDryRun(what, cwd) {
  const r = spawnSync('npm', ['publish', '--dry-run', '--offline', '--json', '--loglevel=error', what], { cwd, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `npm publish --dry-run ${what}:\n${r.stdout}\n${r.stderr}`);
  const [info] = Object.values(JSON.parse(r.stdout));
  return { name: info.name, files: info.files.map((f) => f.path).sort() };
}

test('the packages npm run package writes pass npm publish --dry-run with exactly their files, a README and the LICENSE', { skip: gate.skip, timeout: 180000 }, () => {
  const out = fs.mkdtempSync(path.join(tmp, 'dist-'));
  const r = spawnSync(process.execPath, [path.join(h.ROOT, 'scripts', 'package.js'), '--host-build', '--out', out], { cwd: h.ROOT, encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, r.stderr);
  const { currentTarget } = require('../lib/native');
  const version = require('../package.json').version;
  const main = publishDryRun(`./dynprobe-${version}.tgz`, out);
  assert.equal(main.name, 'dynprobe');
  assert.deepEqual(main.files, mainFiles());
  const platform = publishDryRun(`./dynprobe-${currentTarget()}-${version}.tgz`, out);
  assert.equal(platform.name, `@dynprobe/${currentTarget()}`);
  assert.deepEqual(platform.files, PLATFORM_FILES);
  // The LICENSE is the repository's, the licence the manifests name.
  const license = fs.readFileSync(path.join(h.ROOT, 'LICENSE'), 'utf8');
  assert.match(license, /^MIT License/);
  for (const tarball of [`dynprobe-${version}.tgz`, `dynprobe-${currentTarget()}-${version}.tgz`]) {
    const packed = spawnSync('tar', ['-xzOf', path.join(out, tarball), 'package/LICENSE', 'package/package.json'], { encoding: 'utf8' });
    assert.equal(packed.status, 0, packed.stderr);
    assert.ok(packed.stdout.startsWith(license), `${tarball}: LICENSE`);
    assert.match(packed.stdout, /"license": "MIT"/, `${tarball}: package.json names MIT`);
  }
});

test('every platform manifest publishes exactly its addon, a README and the LICENSE (checked without building them)', { timeout: 120000 }, () => {
  const { TARGETS } = require('../lib/native');
  const root = require('../package.json');
  const stageRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-manifests-'));
  try {
    for (const target of TARGETS) {
      const dir = path.join(h.ROOT, 'npm', target);
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
      assert.deepEqual(manifest.files, ['dynprobe.node'], target);
      assert.equal(manifest.main, 'dynprobe.node', target);
      assert.equal(manifest.license, root.license, target);
      assert.match(fs.readFileSync(path.join(dir, 'README.md'), 'utf8'), new RegExp(`@dynprobe/${target}`), target);
      // Staged as scripts/package.js stages it, with a stand-in addon.
      const stage = path.join(stageRoot, target);
      fs.mkdirSync(stage);
      fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify({ ...manifest, version: root.version }));
      fs.copyFileSync(path.join(dir, 'README.md'), path.join(stage, 'README.md'));
      fs.copyFileSync(path.join(h.ROOT, 'LICENSE'), path.join(stage, 'LICENSE'));
      fs.writeFileSync(path.join(stage, 'dynprobe.node'), 'stand-in');
      fs.writeFileSync(path.join(stage, 'stray.txt'), 'not published');
      const published = publishDryRun('./', stage);
      assert.equal(published.name, `@dynprobe/${target}`);
      assert.deepEqual(published.files, PLATFORM_FILES, target);
    }
  } finally {
    fs.rmSync(stageRoot, { recursive: true, force: true });
  }
});
