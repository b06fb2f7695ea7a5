'use strict';
// The prebuilt addons of the other platforms (scripts/build/<target>.sh):
// where each is, and making sure it is built from the current sources.

const { spawnSync } = require('node:child_process');
const path = require('node:path');
const runtimes = require('../fixtures/runtimes');

const ROOT = path.join(__dirname, '..', '..');
const IS_ROOT = process.getuid && process.getuid() === 0;

const addonPath = (target) => path.join(ROOT, 'build', 'prebuilt', target, 'dynprobe.node');

// Builds `target` when its addon is missing or older than the sources (the
// build recompiles only what changed). Returns null, or why there is none.
function ensurePrebuilt(target) {
  const addon = addonPath(target);
  if (runtimes.prebuiltUnavailable(addon) === null) return null;
  if (!IS_ROOT) return `${runtimes.prebuiltUnavailable(addon)}; building it needs root`;
  const script = path.join(ROOT, 'scripts', 'build', `${target}.sh`);
  const r = spawnSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20 * 60 * 1000 });
  if (r.status !== 0) return `${path.relative(ROOT, script)} failed (${r.status ?? r.signal}):\n${(r.stderr || '').slice(-3000)}`;
  return runtimes.prebuiltUnavailable(addon);
}

// The symbol versions an ELF file needs, e.g. ['GLIBC_2.17', ...].
function neededVersions(file) {
  const r = spawnSync('readelf', ['-V', '-W', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`readelf -V ${file}: ${r.stderr}`);
  return [...new Set(r.stdout.match(/GLIBC_[0-9.]+/g) || [])];
}

// The basic tracer cases every platform passes (int and string arguments,
// the semaphore on while traced, JSON, enable/disable).
const basicCases = () => require('../tracers/harness').basicCases();

module.exports = { addonPath, ensurePrebuilt, neededVersions, basicCases, IS_ROOT };
