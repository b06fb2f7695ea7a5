'use strict';
// test-needs: nothing
// arm64, under qemu-user (scripts/provision-arm64.sh): the linux-arm64-gnu
// addon (scripts/build/linux-arm64-gnu.sh) needs no glibc symbol newer than
// 2.17, and test/api.test.js passes with the arm64 root's node, its binaries
// run through binfmt_misc (its bpftrace suite skips: no tracer attaches to an
// emulated process). The arm64 virtual machine, where tracers attach for
// real, is test/platform-arm64.test.js's.
//
// Needs root and the provisioned root; without them the tests are skipped
// loudly, and with CI=true they fail.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const h = require('./fixtures/helpers');
const runtimes = require('./fixtures/runtimes');
const { ensurePrebuilt, addonPath, neededVersions } = require('./platform/prebuilt');
const arm64 = require('./platform/arm64-vm');

const TARGET = 'linux-arm64-gnu';
let reason = arm64.qemuUserUnavailable();
if (reason === null) reason = ensurePrebuilt(TARGET);
const gate = h.gate(`${TARGET} tests (qemu-user)`, reason);
const pkg = reason === null ? runtimes.packageWith(addonPath(TARGET)) : null;

test(`${TARGET}: the addon is arm64 and needs no glibc symbol newer than 2.17`, { skip: gate.skip }, () => {
  assert.ok(!reason, `required when CI=true: ${reason}`);
  const header = spawnSync('readelf', ['-h', addonPath(TARGET)], { encoding: 'utf8' }).stdout;
  assert.match(header, /Machine:\s+AArch64/);
  const versions = neededVersions(addonPath(TARGET));
  assert.ok(versions.length > 0, 'versioned glibc imports');
  const tooNew = versions.filter((v) => Number(v.split('.')[1]) > 17 || Number(v.split('.')[0].slice(6)) > 2);
  assert.deepEqual(tooNew, []);
});

test(`${TARGET}: test/api.test.js passes under qemu-user (the arm64 root's node)`, { skip: gate.skip, timeout: 15 * 60 * 1000 }, () => {
  assert.ok(!reason, `required when CI=true: ${reason}`);
  // The program runs in the arm64 root as in a container (runtimes.js), its
  // binaries through binfmt_misc: one file system, as on a real machine
  // (qemu's QEMU_LD_PREFIX would send some opens into the root and others
  // not). No bpftrace on PATH (it cannot attach to an emulated process) and
  // not CI: the one suite that needs a tracer skips, saying so.
  const runtime = { name: 'arm64 qemu-user', node: arm64.ARM64_NODE, root: arm64.ARM64_ROOT, package: pkg, env: {} };
  const base = { ...process.env };
  delete base.CI;
  const argv = runtimes.command(runtime, ['--test', '--test-reporter=tap', path.join(pkg, 'test', 'api.test.js')]);
  // PATH without bpftrace for node only (entering the root needs the tools).
  argv.splice(argv.lastIndexOf(arm64.ARM64_NODE), 0, '/usr/bin/env', 'PATH=/dynprobe-no-tools');
  const r = spawnSync(argv[0], argv.slice(1), { env: runtimes.environment(runtime, base), encoding: 'utf8', timeout: 14 * 60 * 1000 });
  const out = `${r.stdout}\n${r.stderr}`;
  const count = (what) => Number((new RegExp(`^# ${what} (\\d+)$`, 'm').exec(r.stdout) || [])[1] || 0);
  assert.equal(r.status, 0, `node --test failed (${r.status ?? r.signal}):\n${out.slice(-6000)}`);
  assert.equal(count('fail'), 0, out.slice(-6000));
  assert.ok(count('pass') >= 25, `only ${count('pass')} passed:\n${out.slice(-6000)}`);
  const skips = r.stdout.split('\n').filter((l) => /^\s*ok \d+ .*# SKIP/.test(l));
  assert.ok(skips.every((l) => /bpftrace/.test(l)), `only the tracer suite may skip:\n${skips.join('\n')}`);
  process.stderr.write(`${TARGET} under qemu-user: ${count('pass')} pass; skipped: ${skips.map((l) => l.trim()).join('; ')}\n`);
});
