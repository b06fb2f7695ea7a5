'use strict';
// Where a process's endpoint socket lives: `DIR/endpoints/PID.sock`, DIR
// being the per-user directory of dynprobe's library cache ($DYNPROBE_DIR,
// else $XDG_RUNTIME_DIR/dynprobe, else /tmp/dynprobe-<uid>), under the same
// rules (crates/dynprobe/src/cache.rs): every directory from `/` down is
// owned by root or this user and writable by no one else unless sticky; a
// symbolic link on the way is followed only if root or this user made it,
// and the path is kept with links resolved; DIR is this user's and writable
// by no one else. `endpoints` must be this user's alone: no one else may
// even enter it (mode 0700), so no other user can reach the socket, whatever
// its own mode says. A default DIR that breaks the rules is skipped (anyone
// can create /tmp/dynprobe-<uid> first); then the endpoint goes into a fresh
// private directory under the system's temporary directory, which clients
// find through /proc all the same. A DIR the user chose that breaks them is
// an error.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const MAX_LINKS = 40;
// sockaddr_un's sun_path holds 108 bytes with the NUL.
const MAX_SOCKET_PATH = 107;
const SUBDIR = 'endpoints';

class UnsafeDirectory extends Error {
  constructor(dir, reason) {
    super(`${dir}: ${reason}`);
    this.name = 'UnsafeDirectory';
  }
}

const modeText = (mode) => (mode & 0o7777).toString(8);

// Why a directory on the way lets someone other than root or `uid` change
// what is below it, or null.
function untrustedAncestor(st, uid) {
  if (st.uid !== 0 && st.uid !== uid) return `it is owned by uid ${st.uid}, neither root nor this user (uid ${uid})`;
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) return `others can write to it (mode ${modeText(st.mode)})`;
  return null;
}

// Why a directory of dynprobe's own is not this user's, or null.
function notOwn(st, uid) {
  if (st.isSymbolicLink()) return 'it is a symbolic link';
  if (!st.isDirectory()) return 'it is not a directory';
  if (st.uid !== uid) return `it is owned by uid ${st.uid}, not by this user (uid ${uid})`;
  if ((st.mode & 0o022) !== 0) return `others can write to it (mode ${modeText(st.mode)})`;
  return null;
}

// `dir` (absolute, existing) with links resolved, every directory on the way
// checked.
function trustedPath(dir, uid) {
  let pending = dir.split('/').filter((c) => c !== '' && c !== '.');
  let at = '/';
  const root = fs.lstatSync('/');
  const reason = untrustedAncestor(root, uid);
  if (reason !== null) throw new UnsafeDirectory('/', reason);
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift();
    if (name === '..') {
      at = path.dirname(at);
      continue;
    }
    const next = path.join(at, name);
    const st = fs.lstatSync(next);
    if (st.isSymbolicLink()) {
      if (st.uid !== 0 && st.uid !== uid) throw new UnsafeDirectory(next, `it is a symbolic link made by uid ${st.uid}`);
      if (++links > MAX_LINKS) throw new UnsafeDirectory(dir, 'too many symbolic links');
      const target = fs.readlinkSync(next);
      pending = [...target.split('/').filter((c) => c !== '' && c !== '.'), ...pending];
      if (target.startsWith('/')) at = '/';
      continue;
    }
    if (!st.isDirectory()) throw new UnsafeDirectory(next, 'it is not a directory');
    const why = untrustedAncestor(st, uid);
    if (why !== null) throw new UnsafeDirectory(next, why);
    at = next;
  }
  return at;
}

// The directory `name` in `parent` (checked), created if missing; it must be
// this user's; `exclusive`: no one else may enter it (made so if it is ours).
function ownDir(parent, name, uid, exclusive) {
  const dir = path.join(parent, name);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
  }
  let st = fs.lstatSync(dir);
  const why = notOwn(st, uid);
  if (why !== null) throw new UnsafeDirectory(dir, why);
  if (exclusive && (st.mode & 0o077) !== 0) {
    fs.chmodSync(dir, 0o700);
    st = fs.lstatSync(dir);
    if ((st.mode & 0o077) !== 0) throw new UnsafeDirectory(dir, `others can enter it (mode ${modeText(st.mode)})`);
  }
  return dir;
}

// The directories to try: [{ dir, chosen }].
function candidates(env = process.env) {
  if (env.DYNPROBE_DIR) return [{ dir: path.resolve(env.DYNPROBE_DIR), chosen: true }];
  const out = [];
  if (env.XDG_RUNTIME_DIR && path.isAbsolute(env.XDG_RUNTIME_DIR)) out.push({ dir: path.join(env.XDG_RUNTIME_DIR, 'dynprobe'), chosen: false });
  out.push({ dir: `/tmp/dynprobe-${process.geteuid()}`, chosen: false });
  return out;
}

function socketName(pid) {
  return `${pid}.sock`;
}

// The endpoints directory under a candidate DIR (created as needed).
function endpointsUnder(base, uid) {
  const parent = trustedPath(path.dirname(base), uid);
  const dir = ownDir(parent, path.basename(base), uid, false);
  return ownDir(dir, SUBDIR, uid, true);
}

function fitsSocket(dir, pid) {
  const file = path.join(dir, socketName(pid));
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH) {
    throw new UnsafeDirectory(dir, `the socket path ${file} is longer than the ${MAX_SOCKET_PATH} bytes a Unix socket address holds`);
  }
  return file;
}

// Where this process's socket goes: { file, dir, temporary, refused }, or
// throws UnsafeDirectory (or a file system error) saying why there is none.
// `temporary`: a private directory made for this process, to remove at exit.
function endpointPath(pid = process.pid, env = process.env) {
  const uid = process.geteuid();
  const refused = [];
  for (const { dir, chosen } of candidates(env)) {
    try {
      const endpoints = endpointsUnder(dir, uid);
      return { file: fitsSocket(endpoints, pid), dir: endpoints, temporary: false, refused };
    } catch (err) {
      if (chosen) throw err;
      refused.push(err.message);
    }
  }
  const tmp = trustedPath(os.tmpdir(), uid);
  const dir = fs.mkdtempSync(path.join(tmp, `dynprobe-${uid}-`));
  try {
    return { file: fitsSocket(dir, pid), dir, temporary: true, refused };
  } catch (err) {
    fs.rmdirSync(dir);
    throw err;
  }
}

// This user's private endpoints directory (created as needed), or throws.
function endpointDir(env = process.env) {
  return path.dirname(endpointPath(process.pid, env).file);
}

// The conventional socket of process `pid` for this user (where /proc
// cannot tell): every candidate's, as this process would have made it.
function conventionalPaths(pid, env = process.env) {
  return candidates(env).map(({ dir }) => path.join(dir, SUBDIR, socketName(pid)));
}

module.exports = { endpointPath, endpointDir, conventionalPaths, trustedPath, UnsafeDirectory, MAX_SOCKET_PATH, SUBDIR };
