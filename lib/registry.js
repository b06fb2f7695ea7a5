'use strict';
// The process's registry of enabled providers and of the subscriptions that
// read them without a kernel tracer (in-process subscribers, consumers
// connected to the endpoint, the flight recorder). Every copy of dynprobe a
// process loads (an application's own, and the one bunyan loads through the
// `dtrace-provider` alias) shares it: it lives on globalThis under a
// Symbol.for key that names its shape, so copies of one shape share one
// registry, and a copy of a later shape (another key) never misreads it.
//
// Shape 1. The registry's functions are those of the copy that made it; a
// copy hands it plain data and objects with the methods below.
//   version                      1
//   addProvider(record, owner)   an enabled provider. A native provider
//                                collected without disable() has its
//                                semaphore buffer detached (its flags have
//                                length 0): its record goes at the next
//                                prune. Plain providers (no addon) pass
//                                `owner`, the provider object, whose
//                                collection removes the record (a
//                                FinalizationRegistry: it costs memory
//                                until the next turn of the event loop,
//                                which a native provider need not pay)
//   removeProvider(record)       at disable()
//   subscribe(pattern, sink)     -> { close() }; covers the matching probes
//                                of every provider, enabled now or later
//   providers()                  the records of enabled providers
//   onChange(listener)           -> remove(); called when a probe's
//                                subscriber byte is set or cleared
//   state                        an object where the copy that made the
//                                registry keeps process-wide things (the
//                                endpoint, the recorder)
// record: { provider, module, probes: [tap] }
// tap:    { provider, module, name, types: [declared type, as `dynprobe
//           list` names it], argNames: [names] | null, flag: the probe's
//           subscriber byte (a one-byte typed array over its semaphore
//           slot), sinks: [sink] (replaced, never changed in place: the
//           fire path reads it), id: set here }
// sink:   { push(tap, time, values), attached?(tap) }: `time` is
//         performance.now() at the firing, `values` the probe's values as
//         primitives (numbers or BigInts for integers, strings for strings,
//         JSON text for JSON; see provider.js), never changed afterwards.

const { compile } = require('./pattern');

const VERSION = 1;
const KEY = Symbol.for(`dynprobe.registry.v${VERSION}`);

function create() {
  const records = new Set();
  const subscriptions = new Set();
  const listeners = new Set();
  let nextTapId = 1;
  let addedSincePrune = 0;
  const finalizer = typeof FinalizationRegistry === 'function' ? new FinalizationRegistry((record) => removeProvider(record)) : null;
  const loaded = (record) => record.probes.every((tap) => tap.flag.length > 0);

  // Forgets the records of providers collected without disable().
  function prune() {
    addedSincePrune = 0;
    for (const record of records) if (!loaded(record)) removeProvider(record);
  }

  function changed() {
    for (const listener of listeners) {
      try {
        listener();
      } catch {
        // a listener's failure is its own
      }
    }
  }

  function attach(sub, tap) {
    if (sub.taps.has(tap)) return;
    sub.taps.add(tap);
    const was = tap.sinks;
    tap.sinks = [...was, sub.sink];
    if (typeof sub.sink.attached === 'function') sub.sink.attached(tap);
    if (was.length === 0) {
      tap.flag[0] = 1;
      changed();
    }
  }

  function detach(sub, tap) {
    if (!sub.taps.delete(tap)) return;
    tap.sinks = tap.sinks.filter((s) => s !== sub.sink);
    if (tap.sinks.length === 0) {
      tap.flag[0] = 0;
      changed();
    }
  }

  function cover(sub, record) {
    if (!sub.matcher.provider(record.provider)) return;
    for (const tap of record.probes) if (sub.matcher.probe(tap.name)) attach(sub, tap);
  }

  function addProvider(record, owner) {
    if (records.has(record)) return;
    for (const tap of record.probes) {
      tap.id = nextTapId++;
      tap.sinks = [];
      tap.flag[0] = 0;
    }
    records.add(record);
    if (finalizer !== null && owner !== undefined) finalizer.register(owner, record, record);
    // Amortised: a prune walks every record.
    if (++addedSincePrune >= 64 && addedSincePrune >= records.size / 2) prune();
    for (const sub of subscriptions) cover(sub, record);
  }

  function removeProvider(record) {
    if (!records.delete(record)) return;
    if (finalizer !== null) finalizer.unregister(record);
    let wasCovered = false;
    for (const tap of record.probes) {
      for (const sub of subscriptions) sub.taps.delete(tap);
      if (tap.sinks.length > 0) wasCovered = true;
      tap.sinks = [];
      if (tap.flag.length > 0) tap.flag[0] = 0;
    }
    if (wasCovered) changed();
  }

  // Records of providers still loaded.
  function providers() {
    prune();
    return [...records];
  }

  function subscribe(pattern, sink) {
    prune();
    const sub = { matcher: compile(pattern), sink, taps: new Set() };
    subscriptions.add(sub);
    for (const record of records) cover(sub, record);
    return {
      close() {
        if (!subscriptions.delete(sub)) return;
        for (const tap of [...sub.taps]) detach(sub, tap);
      },
    };
  }

  function onChange(listener) {
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  return { version: VERSION, addProvider, removeProvider, subscribe, providers, onChange, state: {} };
}

// The process's registry (made by the first copy that asks).
function registry() {
  let r = globalThis[KEY];
  if (r === undefined || r === null || r.version !== VERSION) {
    r = create();
    Object.defineProperty(globalThis, KEY, { value: r, configurable: true });
  }
  return r;
}

module.exports = { registry, VERSION };
