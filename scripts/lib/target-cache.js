'use strict';
// The host's cargo target directory, carried from one checkout to the next
// (DYNPROBE_HOST_TARGET in paths.list): a fresh clone would otherwise compile
// every dependency again, three times (clippy, the addon, the Rust tests),
// about two minutes of both cores. restore() copies it into a checkout that
// has no target/ yet; save() copies the checkout's back once its builds are
// done. Cargo's fingerprints decide what is still fresh: the workspace's own
// crates are rebuilt (a clone's files are newer), their dependencies are
// not. A copy, not a shared directory, so that checkouts never build into
// each other's binaries.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { DYNPROBE_HOST_TARGET } = require('./paths');

// Cargo never deletes what a change left behind: past this size the cache is
// dropped, and the next run saves a fresh one.
const LIMIT_BYTES = 3 * 1024 ** 3;

function copy(from, to) {
  const r = spawnSync('cp', ['-a', '--reflink=auto', from, to], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp -a ${from} ${to} failed: ${(r.stderr || '').trim() || r.signal}`);
}

function sizeOf(dir) {
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.split(/\s/)[0]) : Infinity;
}

// Copies the cache into `root`/target when the checkout has none; returns
// what it did, or null.
function restore(root) {
  const target = path.join(root, 'target');
  if (fs.existsSync(target) || !fs.existsSync(path.join(DYNPROBE_HOST_TARGET, 'CACHEDIR.TAG'))) return null;
  const started = Date.now();
  const tmp = `${target}.restoring-${process.pid}`;
  try {
    copy(DYNPROBE_HOST_TARGET, tmp);
    fs.renameSync(tmp, target);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return `target/ copied from ${DYNPROBE_HOST_TARGET} in ${((Date.now() - started) / 1000).toFixed(1)} s`;
}

// Copies `root`/target to the cache (replacing it whole, so that a reader
// never sees half of one); returns what it did.
function save(root) {
  const target = path.join(root, 'target');
  if (!fs.existsSync(path.join(target, 'CACHEDIR.TAG'))) return null;
  const size = sizeOf(target);
  if (size > LIMIT_BYTES) {
    fs.rmSync(DYNPROBE_HOST_TARGET, { recursive: true, force: true });
    return `target/ is ${Math.round(size / 1024 ** 2)} MiB, over ${LIMIT_BYTES / 1024 ** 3} GiB: not kept (run \`cargo clean\` to start small)`;
  }
  const started = Date.now();
  fs.mkdirSync(path.dirname(DYNPROBE_HOST_TARGET), { recursive: true });
  const tmp = `${DYNPROBE_HOST_TARGET}.new-${process.pid}`;
  const old = `${DYNPROBE_HOST_TARGET}.old-${process.pid}`;
  try {
    copy(target, tmp);
    if (fs.existsSync(DYNPROBE_HOST_TARGET)) fs.renameSync(DYNPROBE_HOST_TARGET, old);
    fs.renameSync(tmp, DYNPROBE_HOST_TARGET);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(old, { recursive: true, force: true });
  }
  return `target/ kept in ${DYNPROBE_HOST_TARGET} (${Math.round(size / 1024 ** 2)} MiB, ${((Date.now() - started) / 1000).toFixed(1)} s)`;
}

module.exports = { restore, save };
