'use strict';
// The flight recorder: the process keeps its most recent firings of a
// pattern (bounded by a count and bytes; the oldest go first), to be
// printed by `dynprobe dump PID` or written to a file when the process dies.
// One per process, shared by every copy of dynprobe (registry state); a new
// recording replaces the last.
//
// Started by `dynprobe record PID PATTERN`, or from start-up by the
// environment:
//   DYNPROBE_RECORD=PATTERN        what to record (e.g. bunyan:log-debug)
//   DYNPROBE_RECORD_FILE=FILE      where to write it when the process dies
//                                  of an uncaught exception or a fatal
//                                  signal it can catch (`%p` is the pid;
//                                  default: dynprobe-record-PID.jsonl in
//                                  the endpoint's directory)
//   DYNPROBE_RECORD_COUNT=N, DYNPROBE_RECORD_BYTES=N   the bounds
// Writing the file never changes what the program does: an uncaught
// exception is watched (uncaughtExceptionMonitor), not handled; a signal
// that would have ended the process is raised again once the file is
// written, so it ends the same way, with the same status. A signal the
// program handles itself is left to it.

const fs = require('node:fs');
const path = require('node:path');
const { registry } = require('./registry');
const { FiringQueue } = require('./queue');
const { LIMITS } = require('./endpoint/protocol');
const { wallNs } = require('./clock');
const { wireValue, traceArg } = require('./values');

// Signals that end a process by default and that JavaScript can catch.
const FATAL_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'].filter((s) => process.platform !== 'win32' || s === 'SIGINT');

function state() {
  return registry().state;
}

// Starts (or replaces) the recording: { pattern, count, bytes }.
function record(pattern, { count = LIMITS.record.count[0], bytes = LIMITS.record.bytes[0] } = {}) {
  stop();
  const queue = new FiringQueue({ count, bytes, keepLatest: true });
  const sink = { push: (tap, time, values) => queue.push(tap, time, values) };
  const handle = registry().subscribe(pattern, sink);
  state().recorder = { pattern, count, bytes, queue, handle, since: Date.now() };
  return state().recorder;
}

function stop() {
  const r = state().recorder;
  if (!r) return false;
  r.handle.close();
  state().recorder = null;
  return true;
}

function current() {
  return state().recorder || null;
}

// A recorded firing in the shape `dynprobe trace` prints (lib/cli/format.js).
function traceFiring({ tap, time, values }) {
  return {
    probe: { label: `${tap.provider}:${tap.name}`, provider: tap.provider, module: tap.module, probe: tap.name, omitted: 0 },
    tid: process.pid,
    time: wallNs(time),
    args: values.map((v, i) => traceArg(wireValue(v, tap.types[i]), tap.types[i])),
  };
}

// Writes the record as JSON lines: a header, then one line per firing as
// `dynprobe trace --json` prints it. Synchronous: the process is dying.
function writeFile(file, reason) {
  const r = current();
  if (r === null) return false;
  const { formatJson } = require('./cli/format');
  const entries = r.queue.snapshot();
  const header = {
    dynprobeRecord: 1,
    pid: process.pid,
    reason,
    pattern: r.pattern,
    firings: entries.length,
    overwritten: r.queue.dropped,
    limits: { count: r.count, bytes: r.bytes },
    written: new Date().toISOString(),
  };
  const lines = [JSON.stringify(header), ...entries.map((e) => formatJson(traceFiring(e), process.pid))];
  fs.writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
  return true;
}

function positive(env, name, [fallback, min, max]) {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    process.emitWarning(`${name}=${text} is not an integer from ${min} to ${max}: using ${fallback}`, { code: 'DYNPROBE_RECORD_SETTING' });
    return fallback;
  }
  return n;
}

// DYNPROBE_RECORD from start-up.
function startFromEnvironment(env = process.env) {
  const pattern = env.DYNPROBE_RECORD;
  if (!pattern) return null;
  const count = positive(env, 'DYNPROBE_RECORD_COUNT', LIMITS.record.count);
  const bytes = positive(env, 'DYNPROBE_RECORD_BYTES', LIMITS.record.bytes);
  record(pattern, { count, bytes });
  const named = env.DYNPROBE_RECORD_FILE;
  // By default in this user's private directory (the endpoint's), found when
  // the file is written; the current directory if there is none.
  const where = () => {
    if (named) return path.resolve(named.replaceAll('%p', String(process.pid)));
    let dir;
    try {
      dir = require('./endpoint/dir').endpointDir(env);
    } catch {
      dir = process.cwd();
    }
    return path.join(dir, `dynprobe-record-${process.pid}.jsonl`);
  };
  let written = false;
  const write = (reason) => {
    if (written) return;
    written = true;
    let file = named;
    try {
      file = where();
      writeFile(file, reason);
    } catch (err) {
      process.emitWarning(`dynprobe could not write its flight record to ${file}: ${err.message}`, { code: 'DYNPROBE_RECORD_WRITE_FAILED' });
    }
  };
  process.on('uncaughtExceptionMonitor', (err, origin) => {
    // The program handles it and lives on: nothing has died.
    if (process.listenerCount('uncaughtException') > 0) return;
    let what;
    try {
      what = err && err.stack ? String(err.stack).split('\n')[0] : String(err);
    } catch {
      what = 'an exception that cannot be described';
    }
    write(`${origin || 'uncaughtException'}: ${what}`);
  });
  for (const signal of FATAL_SIGNALS) {
    const onSignal = () => {
      // Someone else handles it: the process may live on; not ours to end.
      if (process.listenerCount(signal) > 1) return;
      write(signal);
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
  return true;
}

module.exports = { record, stop, current, traceFiring, writeFile, startFromEnvironment, FATAL_SIGNALS };
