'use strict';
// `dynprobe list`, `trace`, `record` and `dump` through a process's endpoint
// (lib/endpoint): no root, no kernel tracer, for the process's own user (and
// root). The output is the kernel path's: the same lines, the same JSON.
// Everything the process sends is checked and shown escaped: it may be
// hostile (root reading another user's process).

const fs = require('node:fs');
const { connect, EndpointError } = require('../endpoint/client');
const { alive, commandLine } = require('./procs');
const { CliError } = require('./errors');
const { compile } = require('../pattern');
const { traceArg } = require('../values');
const { formatLine, formatJson } = require('./format');
const { DECLARED, parameter } = require('./types');
const { shown, safeText, safeJson, visible } = require('./names');
const shell = require('./shell');

// More probes than any application defines.
const MAX_PROBES = 20000;

function asCliError(err) {
  if (err instanceof EndpointError) return new CliError(err.message, { hint: err.hint });
  return err;
}

async function open(pid) {
  try {
    return await connect(pid);
  } catch (err) {
    throw asCliError(err);
  }
}

async function ask(conn, op, fields) {
  try {
    return await conn.request(op, fields);
  } catch (err) {
    throw asCliError(err);
  }
}

const isName = (v) => typeof v === 'string' && v.length > 0 && v.length <= 4096;

// A probe as the process described it, checked: { id, provider, module,
// probe, types, argNames } or null (left out).
function checkProbe(p, provider = null) {
  if (p === null || typeof p !== 'object') return null;
  const prov = provider ? provider.provider : p.provider;
  const mod = provider ? provider.module : p.module;
  const name = p.probe;
  if (!isName(prov) || !isName(mod) || !isName(name) || !Number.isSafeInteger(p.id)) return null;
  if (!Array.isArray(p.types) || p.types.length > 32 || !p.types.every((t) => typeof t === 'string' && t.length <= 64)) return null;
  const argNames = Array.isArray(p.argNames) && p.argNames.length === p.types.length && p.argNames.every((n) => typeof n === 'string' && n.length <= 64) ? p.argNames : null;
  const subscribers = Number.isSafeInteger(p.subscribers) ? p.subscribers : 0;
  return { id: p.id, provider: prov, module: mod, probe: name, types: p.types, argNames, subscribers };
}

// The providers a `list` reply holds, checked: [{ provider, module, probes }].
function checkListing(reply) {
  const providers = Array.isArray(reply.providers) ? reply.providers : [];
  const out = [];
  let count = 0;
  for (const entry of providers) {
    if (entry === null || typeof entry !== 'object' || !isName(entry.provider) || !isName(entry.module) || !Array.isArray(entry.probes)) continue;
    const probes = [];
    for (const p of entry.probes) {
      if (++count > MAX_PROBES) break;
      const probe = checkProbe(p, entry);
      if (probe !== null) probes.push(probe);
    }
    out.push({ provider: entry.provider, module: entry.module, probes });
  }
  return out;
}

// `log-info(char *msg)`: as `dynprobe list` shows a probe.
function signature(p) {
  const params = p.types.map((t, i) => parameter(DECLARED.has(t) ? t : `? (${t})`, p.argNames ? p.argNames[i] : null));
  return `${p.probe}(${params.join(', ')})`;
}

function noMatch(pattern, pid, providers) {
  const existing = providers.flatMap((e) => e.probes.map((p) => `  ${shown(e.provider)}:${shown(signature(p))}`));
  return new CliError(`no probe matches ${pattern} in process ${pid}; its probes are:\n${existing.join('\n')}`);
}

function matching(providers, pattern) {
  const m = compile(pattern);
  return providers.filter((e) => m.provider(e.provider)).flatMap((e) => e.probes.filter((p) => m.probe(p.probe)));
}

// --- list

async function describeProcess(pid) {
  const conn = await open(pid);
  try {
    const providers = checkListing(await ask(conn, 'list'));
    return { pid, command: commandLine(pid), via: 'process', endpoint: conn.where.shown, runtime: String(conn.hello.runtime || '').slice(0, 100), providers };
  } finally {
    conn.close();
  }
}

// The JSON `dynprobe list --json` prints for a process read through its
// endpoint: the kernel path's fields, with no library.
function listingJson(proc) {
  return {
    pid: proc.pid,
    command: proc.command,
    via: 'process',
    endpoint: proc.endpoint,
    runtime: proc.runtime,
    providers: proc.providers.map((e) => ({
      provider: e.provider,
      module: e.module,
      path: null,
      tracerPath: null,
      storage: 'process',
      probes: e.probes.map((p) => ({
        name: p.probe,
        args: p.types.map((t, i) => ({ name: p.argNames ? p.argNames[i] : null, type: t, declared: t })),
        declared: p.types,
        argNames: p.argNames,
        subscribers: p.subscribers,
      })),
    })),
    warnings: [],
  };
}

function listingText(proc) {
  const out = [`PID ${proc.pid}  ${visible(proc.command)}`];
  for (const e of proc.providers) {
    out.push(`  provider ${shown(e.provider)}  (module ${shown(e.module)}, read through the process's endpoint: ${visible(proc.runtime)})`);
    out.push('    probes');
    for (const p of e.probes) {
      const who = p.subscribers > 0 ? `  [${p.subscribers} subscriber${p.subscribers === 1 ? '' : 's'}]` : '';
      out.push(`      ${shown(signature(p))}${who}`);
    }
    out.push('    trace them (no root needed):');
    out.push(`      ${shell.command(['dynprobe', 'trace', proc.pid, `${e.provider}:*`])}`);
  }
  if (proc.providers.length === 0) out.push('  no provider enabled yet (dynprobe is loaded: its endpoint answers)');
  out.push('');
  return out.join('\n');
}

// --- trace

// Streams the firings of `pattern` until --count, --duration, a signal, or
// the process's end; resolves with the exit code. `why`: why the kernel
// path was not taken (said once), or null.
async function trace(pid, pattern, opts = {}, why = null) {
  const out = opts.out || process.stdout;
  const err = opts.err || process.stderr;
  const say = (line) => err.write(`dynprobe: ${safeText(line)}\n`);
  const text = pattern === undefined || pattern === '' ? '*' : pattern;
  const conn = await open(pid);
  let providers;
  try {
    providers = checkListing(await ask(conn, 'list'));
  } catch (e) {
    conn.close();
    throw e;
  }
  const selected = matching(providers, text);
  if (selected.length === 0) {
    conn.close();
    throw noMatch(text, pid, providers);
  }
  if (opts.dryRun) {
    conn.close();
    out.write(`# through the endpoint of process ${pid} (${safeText(conn.where.shown)}): subscribe ${safeJson(text)}; no tracer program\n`);
    return 0;
  }
  const taps = new Map();
  const offset = BigInt(conn.hello.clockOffsetNs);
  const count = opts.count === undefined ? Infinity : opts.count;
  let printed = 0;
  let dropped = 0;
  let reportedDrops = 0;
  return new Promise((resolve) => {
    let stopping = false;
    let timer = null;
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const finish = () => {
      clearTimeout(timer);
      clearInterval(dropTimer);
      for (const s of signals) process.off(s, stop);
      if (dropped > 0) say(`process ${pid} dropped ${dropped} firing${dropped === 1 ? '' : 's'}: its queue for this consumer was full (firings came faster than they were read)`);
      resolve(0);
    };
    const stop = () => {
      if (stopping) return;
      stopping = true;
      conn.close();
    };
    // Drops are said as they happen, at most once a second.
    const dropTimer = setInterval(() => {
      if (dropped > reportedDrops) {
        say(`process ${pid} has dropped ${dropped} firings so far (its queue for this consumer is full)`);
        reportedDrops = dropped;
      }
    }, 1000);
    dropTimer.unref();
    for (const s of signals) process.on(s, stop);
    if (out.on) out.on('error', stop); // a closed pipe (`| head`)
    conn.on('close', (closeErr) => {
      if (!stopping) {
        if (!alive(pid)) say(`process ${pid} exited`);
        else if (closeErr) say(closeErr.message);
        else say(`process ${pid} closed the connection`);
      }
      finish();
    });
    conn.on('probes', (m) => {
      // One subscription per connection: its reply may come in the same
      // read as its first probes, before the reply's promise settles.
      if (!Array.isArray(m.probes)) return;
      for (const p of m.probes.slice(0, MAX_PROBES)) {
        const probe = checkProbe(p);
        if (probe !== null) taps.set(probe.id, { ...probe, label: `${shown(probe.provider)}:${shown(probe.probe)}` });
      }
    });
    conn.on('firings', (m) => {
      if (!Array.isArray(m.firings)) return;
      if (Number.isSafeInteger(m.dropped) && m.dropped > dropped) dropped = m.dropped;
      // One write per batch: a line each would cost a system call each.
      const lines = [];
      for (const f of m.firings) {
        if (printed >= count || stopping) break;
        const firing = decode(f, taps, offset, pid);
        if (firing === null) continue;
        printed++;
        lines.push(opts.json ? formatJson(firing, pid) : formatLine(firing, { pretty: opts.pretty, pid }));
      }
      if (lines.length > 0) out.write(`${lines.join('\n')}\n`);
      if (printed >= count) stop();
    });
    ask(conn, 'subscribe', { pattern: text }).then(
      () => {
        if (why) say(`tracing through the process's endpoint, with no kernel tracer: ${why}`);
        say(`tracing ${selected.length} probe${selected.length === 1 ? '' : 's'} in process ${pid} (${commandLine(pid)}) through its endpoint; Ctrl-C to stop`);
        if (opts.duration !== undefined) timer = setTimeout(stop, opts.duration * 1000);
      },
      (e) => {
        say(e.message);
        stop();
      },
    );
  });
}

// One firing from the wire ([tap id, time, ...values]) in the shape
// format.js prints, or null when it makes no sense.
function decode(f, taps, offset, pid) {
  if (!Array.isArray(f) || f.length < 2) return null;
  const tap = taps.get(f[0]);
  if (tap === undefined || typeof f[1] !== 'number' || !Number.isFinite(f[1])) return null;
  return {
    probe: { label: tap.label, provider: tap.provider, module: tap.module, probe: tap.probe, omitted: 0 },
    tid: pid,
    time: offset + BigInt(Math.round(f[1] * 1e6)),
    args: tap.types.map((type, i) => traceArg(f[i + 2] === undefined ? '' : f[i + 2], type)),
  };
}

// --- record, dump

async function record(pid, pattern, opts = {}) {
  const err = opts.err || process.stderr;
  const say = (line) => err.write(`dynprobe: ${safeText(line)}\n`);
  const conn = await open(pid);
  try {
    if (opts.stop) {
      const reply = await ask(conn, 'stop-recording');
      say(reply.stopped ? `process ${pid} stopped recording (what it recorded is gone)` : `process ${pid} was not recording`);
      return 0;
    }
    const text = pattern === undefined || pattern === '' ? '*' : pattern;
    const providers = checkListing(await ask(conn, 'list'));
    if (matching(providers, text).length === 0) throw noMatch(text, pid, providers);
    const fields = { pattern: text };
    if (opts.count !== undefined) fields.count = opts.count;
    if (opts.bytes !== undefined) fields.bytes = opts.bytes;
    const reply = await ask(conn, 'record', fields);
    say(
      `process ${pid} now keeps its last ${Number(reply.count)} firings (at most ${Number(reply.bytes)} bytes) of ${text} ` +
        `(${Number(reply.covered)} probe${reply.covered === 1 ? '' : 's'} now, and matching ones enabled later); ` +
        `\`dynprobe dump ${pid}\` prints them`,
    );
    return 0;
  } finally {
    conn.close();
  }
}

async function dump(pid, opts = {}) {
  const out = opts.out || process.stdout;
  const err = opts.err || process.stderr;
  const say = (line) => err.write(`dynprobe: ${safeText(line)}\n`);
  const conn = await open(pid);
  try {
    const offset = BigInt(conn.hello.clockOffsetNs);
    const firings = [];
    let done;
    const finished = new Promise((resolve, reject) => {
      done = resolve;
      conn.on('close', (e) => reject(asCliError(e || new EndpointError(`process ${pid} closed the connection during the dump`, 'ECONNRESET'))));
    });
    let id = null;
    conn.on('dump', (m) => {
      if (id !== null && m.id !== id) return;
      if (Array.isArray(m.firings)) firings.push(...m.firings.slice(0, 100000));
      if (m.done === true) done();
    });
    // The reply's id is the first request's: known before it is sent.
    id = conn.nextId;
    const reply = await ask(conn, 'dump');
    await finished;
    const taps = new Map();
    for (const p of Array.isArray(reply.probes) ? reply.probes : []) {
      const probe = checkProbe(p);
      if (probe !== null) taps.set(probe.id, { ...probe, label: `${shown(probe.provider)}:${shown(probe.probe)}` });
    }
    let printed = 0;
    for (const f of firings) {
      const firing = decode(f, taps, offset, pid);
      if (firing === null) continue;
      printed++;
      out.write(`${opts.json ? formatJson(firing, pid) : formatLine(firing, { pretty: opts.pretty, pid })}\n`);
    }
    const over = Number.isSafeInteger(reply.overwritten) ? reply.overwritten : 0;
    say(`${printed} firing${printed === 1 ? '' : 's'} of ${String(reply.pattern)} recorded in process ${pid}${over > 0 ? ` (${over} older ones were overwritten)` : ''}`);
    return 0;
  } finally {
    conn.close();
  }
}

// The pids of processes this user may read that have an endpoint.
function processesWithEndpoints() {
  const { locate } = require('../endpoint/client');
  const found = [];
  const cache = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      locate(Number(name), cache);
      found.push(Number(name));
    } catch {
      // none, gone, or another user's
    }
  }
  return found.sort((a, b) => a - b);
}

module.exports = { describeProcess, listingJson, listingText, trace, record, dump, processesWithEndpoints, asCliError };
