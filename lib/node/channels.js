'use strict';
// Channels as probes (docs/channels.md): the channels libraries.js knows,
// and any other the application or the operator names (DYNPROBE_CHANNELS,
// addChannels). Each becomes probes of the provider naming.js gives it; each
// is a source of lib/node/index.js, subscribed only while one of its probes
// is traced.
//
// A TracingChannel's operation (or a group of plain channels around one
// object: an undici request, an HTTP/2 stream) fires
//   OP__start(uint64_t id, text)
//   OP__done(uint64_t id, uint64_t duration_ns, text[, int32_t status])
//   OP__error(uint64_t id, uint64_t duration_ns, text, char *error_code, char *error_message)
// `id` is unique in the process while the operation runs; `duration_ns` runs
// from `start` to the end of the asynchronous part (`asyncEnd`), or to `end`
// when there is none; `error_message` is the message's first line (Node's
// MODULE_NOT_FOUND goes on with its require stack, which would break a
// tracer's one line per firing). An operation begun before its source was
// on fires nothing; one whose source goes off before it ends fires only
// __start.

const dc = require('node:diagnostics_channel');
const v = require('./values');
const { namesFor, parseChannelList } = require('./naming');
const { CORE, libraries, HTTP2_CODES } = require('./libraries');

const EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'];
// Ids: a counter per thread, above the thread's id (ids of different threads
// never meet, and each stays an exact double).
const THREAD_SPAN = 2 ** 40;

// The probes' arguments; `text` is `char *` for the channels dynprobe knows,
// `json` (the message's own primitive fields) for the others.
function tracingArgs(textType, status) {
  const start = [['id', 'uint64_t'], ['text', textType]];
  const done = [['id', 'uint64_t'], ['duration_ns', 'uint64_t'], ['text', textType], ...(status ? [['status', 'int32_t']] : [])];
  const error = [['id', 'uint64_t'], ['duration_ns', 'uint64_t'], ['text', textType], ['error_code', 'char *'], ['error_message', 'char *']];
  return [start, done, error];
}
const HEADERS_ARGS = [['id', 'uint64_t'], ['duration_ns', 'uint64_t'], ['text', 'char *'], ['status', 'int32_t']];
const PLAIN_ARGS = [['message', 'json']];
const named = (name, args) => ({ name, args: args.map(([argName, type]) => ({ name: argName, type })) });

// The probes (addProbe specs) of one channel spec, and its provider:
// { provider, probes: [{ name, args }] } or { error }.
function probesOf(spec) {
  if (spec.tracing !== undefined || spec.lifecycle !== undefined) {
    const n = namesFor(spec.tracing ?? spec.lifecycle, true);
    if (n.error) return n;
    const known = spec.text !== undefined;
    const args = tracingArgs(known ? 'char *' : 'json', spec.status !== undefined);
    const probes = n.probes.map((name, i) => named(name, args[i]));
    if (spec.status && spec.status.probe) {
      const h = namesFor(spec.status.channel, false);
      if (h.error) return h;
      probes.push(named(h.probes[0], HEADERS_ARGS));
    }
    return { provider: n.provider, probes };
  }
  const n = namesFor(spec.plain, false);
  if (n.error) return n;
  return { provider: n.provider, probes: [named(n.probes[0], spec.args || PLAIN_ARGS)] };
}

// The `node` provider's probes from Node's channels (names and arguments).
function coreProbeSpecs() {
  return CORE.channels.flatMap((spec) => probesOf(spec).probes);
}

// Runs a message handler; nothing it throws reaches the publisher (it would
// become an uncaughtException).
function guarded(fn) {
  return (msg) => {
    try {
      fn(msg);
    } catch {
      // never into the application
    }
  };
}

// What `fn` reads from a message, or `otherwise` if it throws.
function safely(fn, msg, otherwise) {
  try {
    return fn(msg);
  } catch {
    return otherwise;
  }
}

const isObject = (x) => (typeof x === 'object' && x !== null) || typeof x === 'function';
const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const identity = (x) => x;
const channelOf = (spec) => spec.tracing ?? spec.lifecycle ?? spec.plain;

// Firing callbacks, made once (see lib/provider.js: a callback made per call
// costs an allocation at every call site).
const startValues = (op) => [op.id, op.text];
const doneValues = (op) => [op.id, op.duration, op.text];
const doneStatusValues = (op) => [op.id, op.duration, op.text, op.status];
const errorValues = (op) => [op.id, op.duration, op.text, v.errorCode(op.error), v.firstLine(v.errorMessage(op.error))];
const plainValues = (msg) => [v.primitiveFields(msg)];

function createChannels({ createProvider, providers = new Map(), env = process.env, present = () => true }) {
  // Provider name -> { provider, enabled, probes: Map(name -> probe) }.
  const registry = new Map();
  for (const [name, provider] of providers) registry.set(name, { provider, enabled: false, probes: new Map() });

  let nextOp = 0;
  let idBase = -1;
  let performance = null;
  const ids = {
    nextId() {
      // The thread's id and the clock are looked up on the first operation
      // traced: untraced, neither worker_threads nor perf_hooks is loaded.
      if (idBase < 0) idBase = require('node:worker_threads').threadId * THREAD_SPAN;
      nextOp = nextOp + 1 === THREAD_SPAN ? 1 : nextOp + 1;
      return idBase + nextOp;
    },
  };
  function now() {
    if (performance === null) performance = require('node:perf_hooks').performance;
    return performance.now();
  }
  const elapsedNs = (t0) => Math.max(0, Math.round((now() - t0) * 1e6));

  function begin(spec, msg) {
    const text = spec.text === undefined ? v.primitiveFields(msg) : safely(spec.text, msg, '');
    return { id: ids.nextId(), t0: now(), text, duration: 0, status: 0, error: undefined };
  }

  // Sources for a TracingChannel.
  function tracingSource(spec, probes) {
    const [startProbe, doneProbe, errorProbe] = probes;
    const keyOf = spec.key || identity;
    let ops = new WeakMap();
    const withStatus = spec.status !== undefined;

    function open(msg) {
      const key = keyOf(msg);
      if (!isObject(key)) return;
      const op = begin(spec, msg);
      ops.set(key, op);
      startProbe.fire(startValues, op);
    }
    function finish(key, op, msg) {
      ops.delete(key);
      op.duration = elapsedNs(op.t0);
      if (op.error !== undefined) {
        errorProbe.fire(errorValues, op);
      } else if (withStatus) {
        op.status = safely(spec.status, msg, 0) | 0;
        doneProbe.fire(doneStatusValues, op);
      } else {
        doneProbe.fire(doneValues, op);
      }
    }
    const isSettled = spec.settled || ((ctx) => hasOwn(ctx, 'result') || hasOwn(ctx, 'error'));
    // (A context that cannot be asked is taken as settled: its operation
    // then ends at `end` rather than never.)
    const settled = (ctx) => {
      try {
        return isSettled(ctx);
      } catch {
        return true;
      }
    };
    const handlers = {
      start: spec.begin === 'asyncStart' ? null : open,
      asyncStart: spec.begin === 'asyncStart' ? open : null,
      error(msg) {
        const key = keyOf(msg);
        const op = isObject(key) ? ops.get(key) : undefined;
        if (op === undefined) return;
        // A truthy stand-in when something throws nothing (`throw undefined`).
        op.error = msg.error === undefined || msg.error === null ? {} : msg.error;
        if (spec.errorEnds) finish(key, op, msg);
      },
      end(msg) {
        const key = keyOf(msg);
        const op = isObject(key) ? ops.get(key) : undefined;
        if (op !== undefined && settled(msg)) finish(key, op, msg);
      },
      asyncEnd(msg) {
        const key = keyOf(msg);
        const op = isObject(key) ? ops.get(key) : undefined;
        if (op !== undefined) finish(key, op, msg);
      },
    };
    const subscriptions = EVENTS.filter((e) => handlers[e] !== null).map((e) => [dc.channel(`tracing:${spec.tracing}:${e}`), guarded(handlers[e])]);
    return source(probes, subscriptions, () => (ops = new WeakMap()));
  }

  // Sources for plain channels around one object's operation.
  function lifecycleSource(spec, probes) {
    const [startProbe, doneProbe, errorProbe, statusProbe] = probes;
    let ops = new WeakMap();
    const opOf = (msg) => {
      const key = spec.key(msg);
      return isObject(key) ? ops.get(key) : undefined;
    };
    function finish(msg, op) {
      ops.delete(spec.key(msg));
      op.duration = elapsedNs(op.t0);
      if (op.error !== undefined) errorProbe.fire(errorValues, op);
      else doneProbe.fire(spec.status === undefined ? doneValues : doneStatusValues, op);
    }
    const on = new Map();
    const handle = (channel, fn) => {
      if (channel === undefined) return;
      const previous = on.get(channel);
      on.set(channel, previous ? (msg) => (previous(msg), fn(msg)) : fn);
    };
    handle(spec.begin, (msg) => {
      const key = spec.key(msg);
      if (!isObject(key)) return;
      const op = begin(spec, msg);
      ops.set(key, op);
      startProbe.fire(startValues, op);
    });
    if (spec.status) {
      handle(spec.status.channel, (msg) => {
        const op = opOf(msg);
        if (op === undefined) return;
        op.status = safely(spec.status.read, msg, 0) | 0;
        if (statusProbe !== undefined) {
          op.duration = elapsedNs(op.t0);
          statusProbe.fire(doneStatusValues, op);
        }
      });
    }
    handle(spec.done, (msg) => {
      const op = opOf(msg);
      if (op !== undefined) finish(msg, op);
    });
    handle(spec.error, (msg) => {
      const op = opOf(msg);
      if (op === undefined) return;
      op.error = msg.error === undefined || msg.error === null ? {} : msg.error;
      finish(msg, op);
    });
    // A stream closed before it finished: cleanly, it is done; with a reset
    // code, it failed, and Node publishes the stream's error (with a better
    // message) just after the close: the code is the error only if no error
    // came by the next turn of the event loop.
    handle(spec.close, (msg) => {
      const op = opOf(msg);
      if (op === undefined) return;
      const rst = v.int32(msg.stream && msg.stream.rstCode, 0);
      if (rst === 0) {
        finish(msg, op);
        return;
      }
      setImmediate(() => {
        try {
          if (opOf(msg) !== op) return;
          op.error = { code: HTTP2_CODES[rst] || String(rst), message: `stream closed with code ${rst}` };
          finish(msg, op);
        } catch {
          // never into the application
        }
      });
    });
    const subscriptions = [...on].map(([name, fn]) => [dc.channel(name), guarded(fn)]);
    return source(probes, subscriptions, () => (ops = new WeakMap()));
  }

  function plainSource(spec, probes) {
    const [probe] = probes;
    // (null, which fires nothing, for a message its values cannot be read from)
    const values = spec.values ? (msg) => safely((m) => spec.values(m, ids), msg, null) : plainValues;
    const fire = (msg) => probe.fire(values, msg);
    return source(probes, [[dc.channel(spec.plain), guarded(fire)]]);
  }

  // A source of lib/node/index.js. The Channel objects stay referenced here:
  // before Node 18.7 a channel nobody references loses its subscribers.
  // Turned on, it forgets the operations of an earlier time on.
  function source(probes, subscriptions, reset = () => {}) {
    return {
      probes,
      on() {
        reset();
        subscriptions.forEach(([channel, fn]) => channel.subscribe(fn));
      },
      off: () => subscriptions.forEach(([channel, fn]) => channel.unsubscribe(fn)),
    };
  }

  function sourceOf(spec, probes) {
    if (spec.tracing !== undefined) return tracingSource(spec, probes);
    if (spec.lifecycle !== undefined) return lifecycleSource(spec, probes);
    return plainSource(spec, probes);
  }

  // Adds the channels `specs`: their probes to their providers (each
  // provider created, or rebuilt with the new probes, and enabled), then
  // their sources. A channel added before is skipped; one whose names cannot
  // be made, or whose probes another channel has, is left out (`refused`
  // says why). Returns { sources, probes: ['provider:probe'], refused }.
  function add(specs) {
    const refused = [];
    const planned = [];
    const changed = new Set();
    const taken = new Map(); // provider\0probe -> channel, in this call
    for (const spec of specs) {
      const channel = channelOf(spec);
      const made = probesOf(spec);
      if (made.error) {
        refused.push(made.error);
        continue;
      }
      const entry = registry.get(made.provider);
      const owner = (p) => (entry && entry.probes.has(p.name) ? entry.probes.get(p.name).channel : taken.get(`${made.provider}\0${p.name}`));
      if (made.probes.every((p) => owner(p) === channel)) continue; // added before
      const clash = made.probes.find((p) => owner(p) !== undefined);
      if (clash !== undefined) {
        refused.push(`channel ${JSON.stringify(channel)}: probe ${made.provider}:${clash.name} belongs to channel ${JSON.stringify(owner(clash))}`);
        continue;
      }
      made.probes.forEach((p) => taken.set(`${made.provider}\0${p.name}`, channel));
      planned.push({ spec, made });
      changed.add(made.provider);
    }
    for (const name of changed) {
      if (!registry.has(name)) registry.set(name, { provider: createProvider(name), enabled: false, probes: new Map() });
      const entry = registry.get(name);
      // A provider's probes are fixed while it is enabled: it is rebuilt
      // (the probe objects stay; a tracer attached to the old library loses them).
      if (entry.enabled) entry.provider.disable();
      entry.enabled = false;
    }
    const sources = [];
    const added = [];
    for (const { spec, made } of planned) {
      const entry = registry.get(made.provider);
      const probes = made.probes.map((p) => {
        const probe = entry.provider.addProbe(p);
        entry.probes.set(p.name, { probe, channel: channelOf(spec) });
        added.push(`${made.provider}:${p.name}`);
        return probe;
      });
      sources.push(sourceOf(spec, probes));
    }
    // Every provider this call touched, and those handed in unenabled.
    for (const entry of registry.values()) {
      if (entry.enabled) continue;
      entry.provider.enable();
      entry.enabled = true;
    }
    return { sources, probes: added, refused };
  }

  const groups = libraries({ redisArgs: env.DYNPROBE_REDIS_ARGS === '1' });
  // The specs for channels named in a list: a channel dynprobe knows brings
  // its whole group (its library's provider, with its texts); any other
  // gets a generic spec.
  function specsFor(named) {
    const specs = [];
    for (const n of named) {
      const group = [CORE, ...groups].find((g) => g.channels.some((c) => channelOf(c) === n.channel));
      if (group !== undefined) specs.push(...group.channels);
      else specs.push(n.tracing ? { tracing: n.channel } : { plain: n.channel });
    }
    return specs;
  }

  // What exists at start-up: Node's channels, the libraries present (one of
  // their packages resolves from the application), and the channels
  // DYNPROBE_CHANNELS names (which also makes a library present: an
  // application bundled without node_modules).
  function initial() {
    const named = env.DYNPROBE_CHANNELS ? parseChannelList(env.DYNPROBE_CHANNELS) : [];
    const specs = [...CORE.channels];
    for (const group of groups) {
      if (group.packages === null || group.packages.some(present)) specs.push(...group.channels);
    }
    return add([...specs, ...specsFor(named)]);
  }

  // addChannels(names): names as DYNPROBE_CHANNELS takes them (a string or
  // an array of strings). Returns what add() does.
  function addNamed(names) {
    const list = typeof names === 'string' ? [names] : names;
    if (!Array.isArray(list) || list.some((n) => typeof n !== 'string')) {
      throw new TypeError('addChannels takes channel names: a string, or an array of strings (`tracing:NAME` for a TracingChannel)');
    }
    return add(specsFor(parseChannelList(list.join(','))));
  }

  return { initial, addNamed, registry };
}

module.exports = { createChannels, coreProbeSpecs, probesOf, tracingArgs };
