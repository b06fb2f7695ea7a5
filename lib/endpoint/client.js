'use strict';
// Finding a process's endpoint and talking to it (the `dynprobe` CLI's side).
//
// On Linux the endpoint is found through /proc, for the process's own user
// and for root alike, wherever it lives and whatever namespaces the process
// is in: the process's open sockets (/proc/PID/fd) matched by inode against
// the Unix sockets of its network namespace that listen at a dynprobe
// endpoint's name (/proc/PID/net/unix), reached through /proc/PID/root when
// it has another mount namespace (a container). Without /proc, by its
// conventional path for this user (dir.js).
//
// The process may be hostile (root tracing another user's process): the
// path must not pass through a symbolic link, nothing is written until the
// other end has said it is a dynprobe endpoint, every message is bounded
// and checked, and every wait has a deadline.

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { EventEmitter } = require('node:events');
const { MAGIC, PROTOCOL, MAX_MESSAGE, FrameReader, encode, parseObject, isId } = require('./protocol');
const { isBatch, readBatch } = require('./batch');
const { conventionalPaths, MAX_SOCKET_PATH } = require('./dir');
const { alive, commandLine } = require('../cli/procs');

const ENDPOINT_NAME = /\/(?:endpoints|dynprobe-\d+-[^/]+)\/\d+\.sock$/;
const LISTENING = 0x10000; // __SO_ACCEPTCON in /proc/net/unix's Flags
const TIMEOUT_MS = 5000;

// Why a process's endpoint cannot be reached: `code` says which case.
class EndpointError extends Error {
  constructor(message, code, hint = null) {
    super(message);
    this.name = 'EndpointError';
    this.code = code;
    this.hint = hint;
  }
}

function userName(uid) {
  try {
    const line = fs
      .readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[2] === String(uid));
    if (line) return `${line.split(':')[0]} (uid ${uid})`;
  } catch {
    // no names here
  }
  return `uid ${uid}`;
}

function noSuchProcess(pid) {
  return new EndpointError(`no such process: ${pid}`, 'ESRCH');
}

function otherUser(pid, uid) {
  return new EndpointError(
    `process ${pid} (${commandLine(pid)}) belongs to ${userName(uid)}: without root, dynprobe reaches only your own processes`,
    'EPERM',
    "run as that user, or as root (sudo), to trace it",
  );
}

function noEndpoint(pid, detail = '') {
  return new EndpointError(
    `process ${pid} (${commandLine(pid)}) offers no dynprobe endpoint${detail}: it has not loaded dynprobe (or a version without one), ` +
      'or runs with DYNPROBE_ENDPOINT=off, or found no safe directory for it (it then warned DYNPROBE_ENDPOINT_UNAVAILABLE)',
    'ENOENT',
    'a process has an endpoint once it has loaded dynprobe (`require("dynprobe")`, or a package that loads it)',
  );
}

// The inodes of the sockets process `pid` has open.
function socketInodes(pid) {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

// Listening Unix sockets with a path in the process's network namespace:
// [{ inode, path }]; `cache` (a Map) keeps them per namespace for a scan.
function listeningSockets(pid, cache = null) {
  let key = null;
  if (cache !== null) {
    try {
      key = fs.readlinkSync(`/proc/${pid}/ns/net`);
    } catch {
      // no namespace link: read it
    }
    if (key !== null && cache.has(key)) return cache.get(key);
  }
  const out = [];
  const lines = fs.readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1);
  for (const line of lines) {
    // Num RefCount Protocol Flags Type St Inode Path
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    const flags = parseInt(fields[3], 16);
    if (!(flags & LISTENING)) continue;
    out.push({ inode: fields[6], path: fields.slice(7).join(' ') });
  }
  if (key !== null) cache.set(key, out);
  return out;
}

function sameMountNamespace(pid) {
  try {
    return fs.readlinkSync('/proc/self/ns/mnt') === fs.readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return false;
  }
}

// The pid the process knows itself by (its own pid namespace's).
function namespacePid(pid) {
  try {
    const m = /^NSpid:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (m) return Number(m[1].trim().split(/\s+/).pop());
  } catch {
    // an old kernel: the same pid
  }
  return pid;
}

// Refuses a path with a symbolic link in it below `trusted` (a process could
// otherwise point root at any socket of the system).
function checkNoLinks(trusted, rest) {
  let at = trusted;
  for (const part of rest.split('/').filter((p) => p !== '')) {
    at = path.join(at, part);
    let st;
    try {
      st = fs.lstatSync(at);
    } catch (err) {
      throw new EndpointError(`cannot reach ${at}: ${err.code || err.message}`, 'ENOENT');
    }
    if (st.isSymbolicLink()) throw new EndpointError(`refused ${at}: it is a symbolic link (an endpoint's path has none)`, 'EPERM');
  }
}

// Where to connect to process `pid`'s endpoint: { path, shown }, or throws
// EndpointError. `cache`: see listeningSockets.
function locate(pid, cache = null) {
  if (!fs.existsSync('/proc/self')) return locateByConvention(pid);
  let st;
  try {
    st = fs.statSync(`/proc/${pid}`);
  } catch {
    throw noSuchProcess(pid);
  }
  if (!alive(pid)) throw new EndpointError(`process ${pid} has exited`, 'ESRCH');
  const me = process.geteuid();
  if (me !== 0 && st.uid !== me) throw otherUser(pid, st.uid);
  let inodes;
  let sockets;
  try {
    inodes = socketInodes(pid);
    if (inodes.size === 0) throw noEndpoint(pid);
    sockets = listeningSockets(pid, cache);
  } catch (err) {
    if (err instanceof EndpointError) throw err;
    if (err.code === 'ENOENT' || err.code === 'ESRCH') throw noSuchProcess(pid);
    if (err.code === 'EACCES' || err.code === 'EPERM') throw otherUser(pid, st.uid);
    throw new EndpointError(`cannot inspect process ${pid}: ${err.message}`, 'EIO');
  }
  const found = sockets.filter((s) => inodes.has(s.inode) && ENDPOINT_NAME.test(s.path) && s.path.startsWith('/'));
  if (found.length === 0) throw noEndpoint(pid);
  const socketPath = found[0].path;
  if (sameMountNamespace(pid)) {
    checkNoLinks('/', socketPath);
    return { path: socketPath, shown: socketPath };
  }
  const root = `/proc/${pid}/root`;
  checkNoLinks(root, socketPath);
  return { path: `${root}${socketPath}`, shown: `${socketPath} in the mount namespace of process ${pid}` };
}

function locateByConvention(pid) {
  for (const file of conventionalPaths(pid)) {
    if (fs.existsSync(file)) return { path: file, shown: file };
  }
  throw noEndpoint(pid, ` at ${conventionalPaths(pid).join(' or ')}`);
}

// Opens a Unix socket, through the socket's directory when its path is
// longer than a socket address holds.
function openSocket(file) {
  if (Buffer.byteLength(file) <= MAX_SOCKET_PATH) return net.createConnection({ path: file });
  const cwd = process.cwd();
  process.chdir(path.dirname(file));
  try {
    return net.createConnection({ path: `./${path.basename(file)}` });
  } finally {
    process.chdir(cwd);
  }
}

// A connection to an endpoint: `request(op, fields)` resolves with the
// reply; 'probes', 'firings' and 'dump' events carry the rest; 'close' when
// it ends.
class Connection extends EventEmitter {
  constructor(socket, pid, where) {
    super();
    this.socket = socket;
    this.pid = pid;
    this.where = where;
    this.hello = null;
    this.pending = new Map();
    this.nextId = 1;
    this.closed = false;
    this.reader = new FrameReader(MAX_MESSAGE);
  }

  // Resolves once the other end has said who it is (nothing is sent before).
  start() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new EndpointError(`process ${this.pid}'s endpoint (${this.where.shown}) did not answer within ${TIMEOUT_MS / 1000} s`, 'ETIMEDOUT')), TIMEOUT_MS);
      const fail = (err) => {
        clearTimeout(timer);
        this.close();
        reject(err);
      };
      this.socket.on('error', (err) => {
        if (this.hello === null) {
          const gone = err.code === 'ECONNREFUSED' || err.code === 'ENOENT';
          fail(gone ? noEndpoint(this.pid, ` (${this.where.shown}: ${err.code})`) : new EndpointError(`cannot connect to ${this.where.shown}: ${err.message}`, err.code || 'EIO'));
        } else {
          this.close(err);
        }
      });
      this.socket.on('close', () => {
        if (this.hello === null) fail(new EndpointError(`process ${this.pid}'s endpoint (${this.where.shown}) closed the connection at once`, 'ECONNRESET'));
        this.close();
      });
      this.socket.on('data', (chunk) => {
        let bodies;
        try {
          bodies = this.reader.push(chunk);
        } catch (err) {
          if (this.hello === null) fail(new EndpointError(`${this.where.shown} is not a dynprobe endpoint: ${err.message}`, 'EPROTO'));
          else this.close(new EndpointError(`process ${this.pid} sent ${err.message}`, 'EPROTO'));
          return;
        }
        for (const body of bodies) {
          let message;
          try {
            message = this.hello !== null && isBatch(body) ? { type: 'firings', ...readBatch(body) } : parseObject(body);
          } catch (err) {
            if (this.hello === null) return fail(new EndpointError(`${this.where.shown} is not a dynprobe endpoint: ${err.message}`, 'EPROTO'));
            this.close(new EndpointError(`process ${this.pid} sent a bad message: ${err.message}`, 'EPROTO'));
            return;
          }
          if (this.hello === null) {
            if (message.type !== 'hello' || message.magic !== MAGIC) {
              return fail(new EndpointError(`${this.where.shown} is not a dynprobe endpoint`, 'EPROTO'));
            }
            if (message.protocol !== PROTOCOL) {
              return fail(new EndpointError(`process ${this.pid} speaks endpoint protocol ${String(message.protocol).slice(0, 20)}, this dynprobe ${PROTOCOL}: use the dynprobe of the same version`, 'EPROTO'));
            }
            if (!/^-?\d{1,25}$/.test(String(message.clockOffsetNs))) return fail(new EndpointError(`process ${this.pid} sent a bad hello`, 'EPROTO'));
            this.hello = message;
            clearTimeout(timer);
            resolve(this);
            continue;
          }
          this.dispatch(message);
        }
        return undefined;
      });
    });
  }

  dispatch(message) {
    const { type } = message;
    if ((type === 'reply' || type === 'error') && isId(message.id) && this.pending.has(message.id)) {
      const { resolve, reject, timer } = this.pending.get(message.id);
      if (type === 'reply' || type === 'error') {
        this.pending.delete(message.id);
        clearTimeout(timer);
      }
      if (type === 'reply') resolve(message);
      else reject(new EndpointError(`process ${this.pid} refused: ${String(message.message).slice(0, 500)}`, 'EREFUSED'));
      return;
    }
    if (type === 'error') {
      this.close(new EndpointError(`process ${this.pid} ended the connection: ${String(message.message).slice(0, 500)}`, 'EREFUSED'));
      return;
    }
    if (type === 'probes' || type === 'dump' || (type === 'firings' && Array.isArray(message.firings))) this.emit(type, message);
  }

  request(op, fields = {}) {
    if (this.closed) return Promise.reject(new EndpointError(`the connection to process ${this.pid} is closed`, 'ECONNRESET'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new EndpointError(`process ${this.pid} did not answer ${op} within ${TIMEOUT_MS / 1000} s`, 'ETIMEDOUT'));
      }, TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(encode({ ...fields, id, op }));
    });
  }

  close(err = null) {
    if (this.closed) return;
    this.closed = true;
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(err || new EndpointError(`process ${this.pid} closed the connection`, 'ECONNRESET'));
    }
    this.pending.clear();
    this.socket.destroy();
    this.emit('close', err);
  }
}

// Connects to process `pid`'s endpoint; resolves with a started Connection.
async function connect(pid) {
  const where = locate(pid);
  const socket = openSocket(where.path);
  const connection = new Connection(socket, pid, where);
  await connection.start();
  const own = namespacePid(pid);
  if (Number(connection.hello.pid) !== own && fs.existsSync('/proc/self')) {
    connection.close();
    throw new EndpointError(`the endpoint at ${where.shown} answers for process ${String(connection.hello.pid).slice(0, 20)}, not ${pid}`, 'EPROTO');
  }
  return connection;
}

module.exports = { connect, locate, EndpointError };
