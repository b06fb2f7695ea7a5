'use strict';
// The endpoint: a Unix socket on which the process serves its own user (and
// root) what `dynprobe list`, `trace`, `record` and `dump` ask, with no
// kernel tracer. It lives in a directory no one else can enter (dir.js),
// listens only while dynprobe is loaded, and is unref'd (it never keeps the
// process alive, nor do its connections). While nobody is connected it is a
// listening socket and nothing else: no timer, no thread.
//
// Each connection is a session (protocol.js): it may list the providers,
// hold subscriptions (their firings wait in a bounded queue and go out in
// batches off the application's path, only as fast as the client reads;
// what does not fit is dropped and counted), and start, stop and dump the
// flight recorder. A session's subscriptions end with its connection, so a
// client that dies (even by SIGKILL: the kernel closes its socket) turns its
// probes off as soon as the event loop runs. Everything a client sends is
// checked, its size bounded before it is read, and the number of sessions
// and of subscriptions per session is bounded.

const fs = require('node:fs');
const net = require('node:net');
const { registry } = require('../registry');
const { FiringQueue } = require('../queue');
const { compile } = require('../pattern');
const { wireValues } = require('../values');
const { wallNs } = require('../clock');
const recorder = require('../recorder');
const { MAGIC, PROTOCOL, MAX_REQUEST, ProtocolError, FrameReader, encode, parseRequest } = require('./protocol');
const { BatchWriter } = require('./batch');
const { endpointPath } = require('./dir');

const MAX_SESSIONS = 32;
const MAX_SUBSCRIPTIONS = 16;
// What every session's queues together may hold (their bytes bounds
// added up): a subscription that would pass it is refused.
const QUEUE_BUDGET = 128 * 1024 * 1024;
let reserved = 0;
// What a session lets the socket hold before it waits for the client.
const HIGH_WATER = 1024 * 1024;
// A batch of firings, at most.
const BATCH_FIRINGS = 4096;
const BATCH_BYTES = 256 * 1024;
// Rounds of batches a flush sends before the application runs again.
const FLUSH_ROUNDS = 4;
const WARNED = Symbol.for('dynprobe.endpointWarned');

function warnOnce(message) {
  if (globalThis[WARNED]) return;
  globalThis[WARNED] = true;
  process.emitWarning(message, { code: 'DYNPROBE_ENDPOINT_UNAVAILABLE' });
}

// The clock offset sent in the hello: a firing's `time` (performance.now(),
// ms) + this = wall-clock ns.
function clockOffsetNs() {
  return String(wallNs(0));
}

function describeTap(tap) {
  return { id: tap.id, provider: tap.provider, module: tap.module, probe: tap.name, types: tap.types, argNames: tap.argNames };
}

function listing() {
  return registry()
    .providers()
    .map((r) => ({
      provider: r.provider,
      module: r.module,
      probes: r.probes.map((tap) => ({ ...describeTap(tap), subscribers: tap.sinks.length })),
    }));
}

// One firing on the wire: [tap id, time (ms, performance.now()), ...values].
function wireFiring(tap, time, values) {
  const out = wireValues(values, tap.types, 2);
  out[0] = tap.id;
  out[1] = time;
  return out;
}

// A subscription of a session: its queue, filled on the fire path.
class SessionSubscription {
  constructor(session, id, pattern, limits) {
    this.session = session;
    this.id = id;
    this.pattern = pattern;
    this.queue = new FiringQueue(limits);
    this.announced = new Set();
    this.unannounced = [];
    this.sink = {
      push: (tap, time, values) => {
        if (this.queue.push(tap, time, values)) session.schedule();
      },
      attached: (tap) => {
        if (!this.announced.has(tap)) {
          this.announced.add(tap);
          this.unannounced.push(tap);
          session.schedule();
        }
      },
    };
    this.handle = null;
    this.reportedDrops = 0;
  }

  // Messages for what is waiting: new probes first (JSON), then firings, a
  // binary batch (batch.js) written by the session's `writer`.
  takeMessages(out, writer) {
    if (this.unannounced.length > 0) {
      out.push({ type: 'probes', sub: this.id, probes: this.unannounced.map(describeTap) });
      this.unannounced = [];
    }
    const q = this.queue;
    if (q.length === 0 && q.dropped === this.reportedDrops) return;
    const item = { tap: null, time: 0, values: null };
    writer.begin(this.id, q.dropped);
    while (writer.count < BATCH_FIRINGS && writer.bytes < BATCH_BYTES && q.shift(item)) writer.add(item.tap, item.time, item.values);
    this.reportedDrops = q.dropped;
    out.push(writer.finish());
  }

  close() {
    if (this.handle === null) return;
    this.handle.close();
    this.handle = null;
    reserved -= this.queue.maxBytes;
    while (this.queue.shift());
  }
}

class Session {
  constructor(socket, sessions) {
    this.socket = socket;
    this.sessions = sessions;
    this.reader = new FrameReader(MAX_REQUEST);
    this.subscriptions = new Map();
    this.nextSub = 1;
    this.writer = new BatchWriter();
    this.scheduled = false;
    this.waitingForDrain = false;
    this.closed = false;
    this.flushBound = () => this.flush();
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('drain', () => {
      this.waitingForDrain = false;
      this.schedule();
    });
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    this.send({ type: 'hello', magic: MAGIC, protocol: PROTOCOL, pid: process.pid, clockOffsetNs: clockOffsetNs(), runtime: runtime(), addon: !isPlain() });
  }

  onData(chunk) {
    if (this.closed) return;
    let bodies;
    try {
      bodies = this.reader.push(chunk);
    } catch (err) {
      // A message too long to read: nothing after it can be framed.
      this.fail(null, err.message);
      return;
    }
    for (const body of bodies) {
      if (this.closed) return;
      let request;
      try {
        request = parseRequest(body);
      } catch (err) {
        this.send({ type: 'error', id: err.id === undefined ? null : err.id, message: err.message });
        continue;
      }
      try {
        this.handle(request);
      } catch (err) {
        this.send({ type: 'error', id: request.id, message: err instanceof ProtocolError ? err.message : `failed: ${err && err.message}` });
      }
    }
  }

  handle(request) {
    const { id, op } = request;
    switch (op) {
      case 'list':
        return this.send({ type: 'reply', id, providers: listing() });
      case 'subscribe': {
        if (this.subscriptions.size >= MAX_SUBSCRIPTIONS) throw new ProtocolError(`at most ${MAX_SUBSCRIPTIONS} subscriptions per connection`);
        if (reserved + request.bytes > QUEUE_BUDGET) {
          throw new ProtocolError(`the process's endpoint queues would pass ${QUEUE_BUDGET} bytes (${reserved} reserved): ask for fewer bytes`);
        }
        const sub = new SessionSubscription(this, this.nextSub++, request.pattern, { count: request.count, bytes: request.bytes });
        reserved += request.bytes;
        this.subscriptions.set(sub.id, sub);
        // The reply goes first, then the probes the subscription covers.
        this.send({ type: 'reply', id, sub: sub.id });
        sub.handle = registry().subscribe(request.pattern, sub.sink);
        return undefined;
      }
      case 'unsubscribe': {
        const sub = this.subscriptions.get(request.sub);
        if (sub === undefined) throw new ProtocolError(`no subscription ${request.sub}`);
        sub.close();
        this.subscriptions.delete(request.sub);
        return this.send({ type: 'reply', id });
      }
      case 'record': {
        const r = recorder.record(request.pattern, { count: request.count, bytes: request.bytes });
        const m = compile(r.pattern);
        const covered = listing().reduce((n, p) => n + (m.provider(p.provider) ? p.probes.filter((probe) => m.probe(probe.probe)).length : 0), 0);
        return this.send({ type: 'reply', id, pattern: r.pattern, count: r.count, bytes: r.bytes, covered });
      }
      case 'stop-recording':
        return this.send({ type: 'reply', id, stopped: recorder.stop() });
      case 'dump':
        return this.dump(id);
      default:
        throw new ProtocolError(`unknown op ${op}`);
    }
  }

  // The recorder's firings, in messages of a batch each, a batch per turn
  // of the event loop and only as fast as the client reads (a large record
  // must not stall the application); the last says so.
  dump(id) {
    const r = recorder.current();
    if (r === null) throw new ProtocolError('nothing is being recorded (start with `dynprobe record PID PATTERN`)');
    const entries = r.queue.snapshot();
    const taps = new Set(entries.map((e) => e.tap));
    this.send({ type: 'reply', id, pattern: r.pattern, count: r.count, bytes: r.bytes, overwritten: r.queue.dropped, firings: entries.length, probes: [...taps].map(describeTap) });
    let at = 0;
    const next = () => {
      if (this.closed) return;
      if (this.socket.writableLength > HIGH_WATER) {
        this.socket.once('drain', next);
        return;
      }
      const chunk = entries.slice(at, at + BATCH_FIRINGS).map((e) => wireFiring(e.tap, e.time, e.values));
      at += BATCH_FIRINGS;
      const done = at >= entries.length;
      this.send(done ? { type: 'dump', id, firings: chunk, done: true } : { type: 'dump', id, firings: chunk });
      if (!done) setImmediate(next);
    };
    next();
  }

  schedule() {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(this.flushBound);
  }

  // Sends what waits while the socket takes it (the rest when it drains), a
  // few batches per turn of the event loop.
  flush() {
    this.scheduled = false;
    if (this.closed || this.waitingForDrain) return;
    for (let round = 0; round < FLUSH_ROUNDS; round++) {
      const messages = [];
      for (const sub of this.subscriptions.values()) sub.takeMessages(messages, this.writer);
      if (messages.length === 0) return;
      for (const m of messages) this.send(m);
      if (this.closed) return;
      if (this.socket.writableLength > HIGH_WATER) {
        this.waitingForDrain = true;
        return;
      }
    }
    this.schedule();
  }

  // A message: an object (JSON), or a Buffer already framed.
  send(message) {
    if (this.closed) return;
    try {
      this.socket.write(Buffer.isBuffer(message) ? message : encode(message));
    } catch {
      this.close();
    }
  }

  fail(id, message) {
    this.send({ type: 'error', id, message });
    this.close();
    hangUp(this.socket);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    for (const sub of this.subscriptions.values()) sub.close();
    this.subscriptions.clear();
    this.sessions.delete(this);
  }
}

// Ends a connection, and destroys it soon even if the client never reads.
function hangUp(socket, last = undefined) {
  socket.end(last);
  setTimeout(() => socket.destroy(), 1000).unref();
}

function runtime() {
  if (typeof globalThis.Bun !== 'undefined') return `bun ${globalThis.Bun.version}`;
  if (typeof globalThis.Deno !== 'undefined') return `deno ${globalThis.Deno.version.deno}`;
  return `node ${process.version}`;
}

function isPlain() {
  const { load } = require('../native');
  return load().addon === null;
}

// Starts the endpoint, once per process; returns { file, close } or null
// (DYNPROBE_ENDPOINT=off, or no safe place: a warning says why).
function startEndpoint() {
  if (process.env.DYNPROBE_ENDPOINT === 'off') return null;
  if (process.platform === 'win32' || typeof process.geteuid !== 'function') return null;
  let where;
  try {
    where = endpointPath();
  } catch (err) {
    warnOnce(`dynprobe's endpoint is off: ${err.message}; \`dynprobe trace\` without root cannot reach this process (in-process subscriptions still work)`);
    return null;
  }
  const { file, dir, temporary } = where;
  const sessions = new Set();
  const server = net.createServer({ allowHalfOpen: false, pauseOnConnect: false }, (socket) => {
    socket.unref();
    if (sessions.size >= MAX_SESSIONS) {
      hangUp(socket, encode({ type: 'error', id: null, message: `at most ${MAX_SESSIONS} clients at once` }));
      return;
    }
    sessions.add(new Session(socket, sessions));
  });
  server.on('error', (err) => {
    warnOnce(`dynprobe's endpoint is off: cannot listen on ${file}: ${err.message}`);
    cleanup();
  });
  // A socket left by a process of the same pid that died without cleaning
  // up (the directory is this user's alone: nothing else is there).
  try {
    fs.unlinkSync(file);
  } catch {
    // none
  }
  let cleaned = false;
  function cleanup() {
    if (cleaned) return;
    cleaned = true;
    try {
      server.close();
    } catch {
      // not listening
    }
    try {
      fs.unlinkSync(file);
    } catch {
      // gone
    }
    if (temporary) {
      try {
        fs.rmdirSync(dir);
      } catch {
        // not empty (a record file): left for the user
      }
    }
  }
  const endpoint = { file, dir, sessions, close: cleanup, listening: false };
  server.listen(file, () => {
    try {
      fs.chmodSync(file, 0o600);
    } catch {
      // the directory already keeps others out
    }
    endpoint.listening = true;
  });
  server.unref();
  process.on('exit', cleanup);
  const later = setImmediate(() => pruneStale(dir, file));
  if (typeof later.unref === 'function') later.unref();
  return endpoint;
}

// Sockets left in the directory by processes that died by a signal (no
// 'exit' event ran): one is removed only when its process is gone from
// /proc (where there is one) and nothing listens on it any more (a process
// of another pid namespace sharing the directory still answers). A few per
// start, off the start-up path.
const PRUNE_MAX = 16;
function pruneStale(dir, own) {
  let names;
  try {
    names = fs.readdirSync(dir).filter((n) => /^\d+\.sock$/.test(n));
  } catch {
    return;
  }
  const haveProc = fs.existsSync('/proc/self');
  let tried = 0;
  for (const name of names) {
    const file = `${dir}/${name}`;
    if (file === own || (haveProc && fs.existsSync(`/proc/${name.slice(0, -5)}`))) continue;
    if (++tried > PRUNE_MAX) return;
    const probe = net.createConnection({ path: file });
    probe.unref();
    probe.on('connect', () => probe.destroy());
    probe.on('error', (err) => {
      if (err.code !== 'ECONNREFUSED') return;
      try {
        fs.unlinkSync(file);
      } catch {
        // gone already
      }
    });
  }
}

module.exports = { startEndpoint, MAX_SESSIONS, MAX_SUBSCRIPTIONS, HIGH_WATER };
