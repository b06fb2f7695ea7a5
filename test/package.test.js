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
  for (const f of ['package.json', 'index.js', 'index.d.ts', 'README.md']) fs.copyFileSync(path.join(h.ROOT, f), path.join(dir, f));
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
