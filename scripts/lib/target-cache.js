'use strict';
// What a checkout's builds leave for the next checkout, so that a fresh
// clone does not compile again what an earlier one compiled from the same
// files:
//
// - The host's cargo target directory (DYNPROBE_HOST_TARGET in paths.list):
//   restore() copies it into a checkout that has no target/ yet; save()
//   copies the checkout's back once the run is over. A copy, not a shared
//   directory, so that checkouts never build into each other's binaries.
//   (The prebuilt addons' target directories are shared caches already.)
// - The sources' times. Cargo takes a crate's sources for changed when one
//   is newer than what it built from them, and a clone's files are all new:
//   every build would compile the workspace's own crates again, about four
//   minutes of both cores. save() records each tracked file's blob id and
//   mtime; restore() gives a clone's file with the same blob id its recorded
//   mtime, older than the binaries built from that very content. A changed
//   file keeps its new time, and what uses it is rebuilt. The times are
//   restored only in a checkout at the same path (a test binary carries its
//   checkout's path) and when no build wrote to a target directory since the
//   save (a run that failed in its builds, a build by hand): such a binary
//   may be from other content.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { DYNPROBE_CACHE, DYNPROBE_HOST_TARGET, DYNPROBE_SID_TARGET_DIR } = require('./paths');

const SOURCES = `${DYNPROBE_HOST_TARGET}.sources.json`;

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

function git(root, args) {
  const r = spawnSync('git', args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${(r.stderr || '').trim() || r.signal}`);
  return r.stdout.split('\0').filter(Boolean);
}

// The tracked regular files whose content is the index's: { path: blob id }.
function trackedFiles(root) {
  const modified = new Set(git(root, ['ls-files', '-z', '--modified']));
  const files = {};
  for (const entry of git(root, ['ls-files', '-z', '--stage'])) {
    // "MODE BLOB STAGE\tPATH"; links (120000) and submodules (160000) have no time of their own here
    const [meta, file] = entry.split('\t');
    const [mode, blob] = meta.split(' ');
    if ((mode === '100644' || mode === '100755') && !modified.has(file)) files[file] = blob;
  }
  return files;
}

// The target directories cargo builds into on this machine: this cache and
// the prebuilt addons' (scripts/toolchain/, scripts/build/).
function targetDirs() {
  const dirs = new Set([DYNPROBE_HOST_TARGET, DYNPROBE_SID_TARGET_DIR, `${DYNPROBE_SID_TARGET_DIR}-musl`]);
  for (const name of fs.readdirSync(DYNPROBE_CACHE, { withFileTypes: true })) {
    if (name.isDirectory() && name.name.startsWith('target-')) dirs.add(path.join(DYNPROBE_CACHE, name.name));
  }
  return [...dirs].filter((d) => fs.existsSync(d));
}

// A fingerprint cargo wrote after `file` was, or null.
function builtSince(file) {
  const r = spawnSync('find', [...targetDirs(), '-path', '*/.fingerprint/*', '-newer', file, '-print', '-quit'], { encoding: 'utf8' });
  return (r.stdout || '').trim() || null;
}

// Gives the checkout's unchanged files their recorded times; says what it did.
function restoreTimes(root) {
  let recorded;
  try {
    recorded = JSON.parse(fs.readFileSync(SOURCES, 'utf8'));
  } catch {
    return 'no recorded source times: cargo rebuilds the workspace';
  }
  // Test binaries carry their checkout's path (CARGO_TARGET_TMPDIR, where
  // the Rust tests make their directories): one built elsewhere is rebuilt.
  if (recorded.root !== root) return `source times not restored: they were recorded in ${recorded.root}, not here (cargo rebuilds the workspace)`;
  const since = builtSince(SOURCES);
  if (since) return `source times not restored: ${since} was built after they were recorded (cargo rebuilds the workspace)`;
  const files = trackedFiles(root);
  let same = 0;
  for (const [file, blob] of Object.entries(files)) {
    const was = recorded.files[file];
    if (!was || was[0] !== blob) continue;
    const seconds = was[1] / 1000;
    fs.utimesSync(path.join(root, file), seconds, seconds);
    same++;
  }
  return `source times restored for ${same} of ${Object.keys(files).length} tracked files (the others changed since the last run)`;
}

// Copies the cache into `root`/target when the checkout has none, and
// restores the source times; returns what it did, or null.
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
  let times;
  try {
    times = restoreTimes(root);
  } catch (err) {
    times = `source times not restored: ${err.message}`;
  }
  return `target/ copied from ${DYNPROBE_HOST_TARGET} in ${((Date.now() - started) / 1000).toFixed(1)} s; ${times}`;
}

// Records the checkout's source times (after the copy: the file's own time
// is when they were recorded).
function saveTimes(root) {
  const files = {};
  for (const [file, blob] of Object.entries(trackedFiles(root))) files[file] = [blob, fs.statSync(path.join(root, file)).mtimeMs];
  const tmp = `${SOURCES}.new-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify({ root, files }));
  fs.renameSync(tmp, SOURCES);
}

// Copies `root`/target to the cache (replacing it whole, so that a reader
// never sees half of one); returns what it did.
function save(root) {
  const target = path.join(root, 'target');
  if (!fs.existsSync(path.join(target, 'CACHEDIR.TAG'))) return null;
  const size = sizeOf(target);
  if (size > LIMIT_BYTES) {
    fs.rmSync(DYNPROBE_HOST_TARGET, { recursive: true, force: true });
    fs.rmSync(SOURCES, { force: true });
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
  saveTimes(root);
  return `target/ kept in ${DYNPROBE_HOST_TARGET} (${Math.round(size / 1024 ** 2)} MiB, ${((Date.now() - started) / 1000).toFixed(1)} s)`;
}

module.exports = { restore, save };
