'use strict';
// The in-process API: `subscribe(pattern, onFiring, { count, bytes })`.
// While a subscription covers a probe, the probe's callback runs as it does
// under a tracer; each firing waits in the subscription's bounded queue and
// is handed to `onFiring` off the application's path (setImmediate),
// decoded as `dynprobe trace --json` decodes it (values.js). A full queue
// drops firings and counts them (`subscription.dropped`).

const { registry } = require('./registry');
const { FiringQueue } = require('./queue');
const { subscriberValues } = require('./values');
const { wallNs } = require('./clock');

const DEFAULTS = { count: 10000, bytes: 8 * 1024 * 1024 };
const MAX = { count: 10000000, bytes: 1024 * 1024 * 1024 };
// Firings handed over per turn of the event loop, at most.
const BATCH = 4096;
const WARNED = Symbol.for('dynprobe.subscriberWarned');

// A limit from the options: a positive integer up to MAX, else RangeError.
function limit(options, name) {
  const v = options[name];
  if (v === undefined) return DEFAULTS[name];
  if (!Number.isSafeInteger(v) || v < 1 || v > MAX[name]) {
    throw new RangeError(`subscribe: options.${name} must be an integer from 1 to ${MAX[name]}, not ${String(v)}`);
  }
  return v;
}

// One firing as a subscriber gets it. Its time (wall-clock ns, a BigInt) is
// made when asked for.
class Firing {
  constructor(tap, time, values) {
    this.provider = tap.provider;
    this.module = tap.module;
    this.probe = tap.name;
    this.args = subscriberValues(values, tap.types);
    this.types = tap.types;
    this.argNames = tap.argNames;
    this._t = time;
  }

  get time() {
    return wallNs(this._t);
  }

  toJSON() {
    return { provider: this.provider, module: this.module, probe: this.probe, args: this.args, types: this.types, argNames: this.argNames, time: String(this.time) };
  }
}
Object.defineProperty(Firing.prototype, 'time', { enumerable: true });

function decodeFiring(tap, time, values) {
  return new Firing(tap, time, values);
}

class Subscription {
  constructor(pattern, onFiring, options) {
    this.pattern = pattern;
    this._onFiring = onFiring;
    this._queue = new FiringQueue({ count: limit(options, 'count'), bytes: limit(options, 'bytes') });
    this._delivered = 0;
    this._scheduled = false;
    this._closed = false;
    this._out = { tap: null, time: 0, values: null };
    this._drain = () => this.drain();
    // What the registry calls on the fire path: as little as possible.
    const queue = this._queue;
    this._sink = {
      push: (tap, time, values) => {
        if (queue.push(tap, time, values) && !this._scheduled) {
          this._scheduled = true;
          setImmediate(this._drain);
        }
      },
    };
    this._handle = registry().subscribe(pattern, this._sink);
  }

  // Firings dropped because the queue was full.
  get dropped() {
    return this._queue.dropped;
  }

  get delivered() {
    return this._delivered;
  }

  get closed() {
    return this._closed;
  }

  drain() {
    this._scheduled = false;
    const queue = this._queue;
    const out = this._out;
    for (let n = 0; n < BATCH && !this._closed && queue.shift(out); n++) {
      this._delivered++;
      try {
        this._onFiring(decodeFiring(out.tap, out.time, out.values));
      } catch (err) {
        warnOnce(err);
      }
    }
    // More than a batch: the application runs first, the rest next turn.
    if (!this._closed && queue.length > 0 && !this._scheduled) {
      this._scheduled = true;
      setImmediate(this._drain);
    }
  }

  // Ends the subscription: once no other covers them, its probes are off
  // again (the disabled fire is one read). Firings not yet handed over go.
  close() {
    if (this._closed) return;
    this._closed = true;
    this._handle.close();
    while (this._queue.shift());
  }
}

// A subscriber that throws is told once per process; the application is not.
function warnOnce(err) {
  if (globalThis[WARNED]) return;
  globalThis[WARNED] = true;
  let what;
  try {
    what = err && typeof err.message === 'string' ? err.message : String(err);
  } catch {
    what = 'a value that cannot be described';
  }
  process.emitWarning(`a dynprobe subscriber threw: ${what} (shown once per process; its other firings are still delivered)`, {
    code: 'DYNPROBE_SUBSCRIBER_FAILED',
  });
}

function subscribe(pattern, onFiring, options = {}) {
  if (typeof pattern !== 'string') throw new TypeError('subscribe: the pattern must be a string such as "bunyan:log-*"');
  if (typeof onFiring !== 'function') throw new TypeError('subscribe: onFiring must be a function');
  if (options === null || typeof options !== 'object') throw new TypeError('subscribe: options must be an object');
  return new Subscription(pattern, onFiring, options);
}

// The enabled providers of the process and their probes.
function providers() {
  return registry()
    .providers()
    .map((r) => ({
      provider: r.provider,
      module: r.module,
      probes: r.probes.map((tap) => ({ name: tap.name, types: [...tap.types], argNames: tap.argNames === null ? null : [...tap.argNames] })),
    }));
}

module.exports = { subscribe, providers, decodeFiring, DEFAULTS, MAX };
