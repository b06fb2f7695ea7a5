'use strict';
// The dtrace-provider API over dynprobe's native providers.
//
// The hot path is a disabled probe: `probe.fire(cb)` reads the probe's
// semaphore slot through a Uint32Array over the library's own memory and
// returns, without calling into native code. The slot is the kernel's u16
// semaphore (set by tracers that attach through the stapsdt note) and a u16
// flag that the addon sets while a plain uprobe is at the site (DTrace's
// probes from its own registration, which set no semaphore): one load sees
// both. Only a probe that a tracer is watching runs its callback and makes
// one native call (two when a value is an object, which the addon refuses
// and this layer converts).

// The argument types and limits (one table for the JS layer, checked
// against the format crate's by test/arg-types.test.js).
const ARG_TYPES = require('./arg-types.json');
const MAX_ARGS = ARG_TYPES.limits.maxArgs;
// The exact C integer types (`int8_t` ... `uint64_t`): the ones that travel as themselves.
const EXACT_INTS = new Set(ARG_TYPES.types.filter((t) => t.travelsAs === t.name && t.kind !== 'str').map((t) => t.name));
// The semaphore slot a probe reads while it is not loaded: always 0.
const NOT_LOADED = new Uint32Array(1);
// Bytes per probe in the addon's semaphore buffer.
const SLOT_BYTES = 4;
// One warning per process for a provider DTrace's helper refused, even with
// several copies of dynprobe loaded (as index.js does for a missing addon).
const DTRACE_WARNED = Symbol.for('dynprobe.dtraceRegistrationWarned');
// A provider's own string-keyed properties are its probes (a probe may be
// named `_name` or `enable`); its state lives under a symbol.
const STATE = Symbol('dynprobe.provider');

// How each argument travels to native code.
const INT = 0;
const STR = 1;
const JSON_ARG = 2;

// dtrace-provider's type names, matched by prefix as it did; exact C integer
// types keep their size and sign, plain `int` is a signed 64-bit value, and
// anything unknown (restify passes 'id') is a string.
function nativeType(type) {
  const t = String(type);
  if (t.startsWith('json')) return 'json';
  if (t.startsWith('char *')) return 'char *';
  if (EXACT_INTS.has(t)) return t;
  if (t.startsWith('int')) return 'int64_t';
  return 'char *';
}

// The type as the API names it (`int`, `json`, `char *`, exact C types): the
// library records it, and `dynprobe list` shows it.
function declaredType(type) {
  const t = nativeType(type);
  return t === 'int64_t' && String(type) !== 'int64_t' ? 'int' : t;
}

// The native side knows strings and sized integers; JSON travels as a string.
function cName(type) {
  return type === 'json' ? 'char *' : type;
}

function kindOf(type) {
  if (type === 'json') return JSON_ARG;
  return type === 'char *' ? STR : INT;
}

// A value as the primitive its kind sends: user code (toString, valueOf,
// toJSON) runs here, never inside the addon, which holds the provider while
// it fires.
function primitive(v, kind) {
  if (kind === INT) return typeof v === 'number' || typeof v === 'bigint' ? v : +v;
  if (kind === STR) return typeof v === 'string' ? v : `${v}`;
  const text = JSON.stringify(v);
  return text === undefined ? 'undefined' : text;
}

// Probes by name for provider.fire. A plain object keeps its properties in
// fast mode, so a lookup by a constant name is an inline-cached load (a Map
// lookup costs several times more); its prototype has no properties, so no
// name finds anything inherited.
function ProbeTable() {}
ProbeTable.prototype = Object.create(null);

function createApi(addon) {
  class DTraceProbe {
    constructor(provider, name, types, argNames = null) {
      this.name = name;
      this.types = types;
      this._provider = provider;
      this._argNames = argNames; // dynprobe's extension: see addNamedProbe
      this._ctypes = types.map(nativeType);
      this._kinds = this._ctypes.map(kindOf);
      this._json = this._kinds.includes(JSON_ARG); // JSON values are always converted here
      // A view of this probe's own semaphore slot in the loaded library:
      // checking it is one typed-array load at a constant index.
      this._sema = NOT_LOADED;
      this._handle = null; // its handle for addon.fire
      this._warned = false;
    }

    // The arguments' names when the probe was added with them, or null. A
    // getter that copies: the names the library records cannot change.
    get argNames() {
      return this._argNames === null ? null : [...this._argNames];
    }

    // The extra arguments are named (up to four) rather than read from
    // `arguments`: see fireTraced.
    fire(cb, a, b, c, d) {
      if (typeof cb !== 'function') throw notAFunction('probe.fire: the first');
      if (this._sema[0] !== 0) {
        const n = arguments.length - 1;
        return n <= 4 ? fireTraced(this, cb, n, a, b, c, d) : fireTracedMany(this, cb, arguments, 1);
      }
      return undefined;
    }
  }

  function notAFunction(which) {
    return new TypeError(`${which} argument must be a function that returns the probe arguments`);
  }

  // A tracer has the probe enabled. `cb` is a function (the callers
  // checked); `n` (0 to 4) extra arguments `a` ... `d` go to it. A traced
  // fire pays for a kernel trip, after which cold code costs twice what it
  // costs warm: this path does as little as it can.
  //
  // Once this path has run, V8 compiles it into every caller that it inlines
  // a fire method into (before, it was an exit to the interpreter), for the
  // rest of the process. Whatever it passes on must then exist even when
  // nothing traces: an `arguments` object would be allocated on every
  // disabled fire, at every call site, which is why the fire methods name
  // their extra arguments (more than four take fireTracedMany, compiled only
  // where that happens). A callback closure made at the call site is passed
  // on too: it is allocated on every call from then on, and no JavaScript
  // can avoid that (a fresh copy of the method would make every call site
  // that saw the old one megamorphic, which is slower still). A callback
  // made once (a module-level function taking the values as extra
  // arguments) costs nothing: see the README.
  function fireTraced(probe, cb, n, a, b, c, d) {
    const handle = probe._handle;
    if (handle === null) return undefined;
    try {
      let values;
      switch (n) {
        case 0: values = cb.call(probe); break;
        case 1: values = cb.call(probe, a); break;
        case 2: values = cb.call(probe, a, b); break;
        case 3: values = cb.call(probe, a, b, c); break;
        default: values = cb.call(probe, a, b, c, d);
      }
      return sendValues(probe, handle, values);
    } catch (err) {
      // Tracing must never change what the program does.
      warnOnce(probe, err);
      return undefined;
    }
  }

  // The same with more than four extra arguments: `args` is the caller's
  // `arguments`, the extra ones after the first `skip`.
  function fireTracedMany(probe, cb, args, skip) {
    const handle = probe._handle;
    if (handle === null) return undefined;
    try {
      const extra = [];
      for (let i = skip; i < args.length; i++) extra.push(args[i]);
      return sendValues(probe, handle, cb.apply(probe, extra));
    } catch (err) {
      warnOnce(probe, err);
      return undefined;
    }
  }

  // Fires the callback's values (anything but an array fires nothing)
  // through `handle`, the probe's handle when the fire began.
  function sendValues(probe, handle, values) {
    if (!Array.isArray(values)) return undefined;
    // The callback (user code) may have disabled the provider (and even
    // enabled it again: this fire, begun before, is dropped).
    if (probe._handle !== handle) return undefined;
    const kinds = probe._kinds;
    const n = kinds.length;
    // The addon fires primitives and refuses objects (returning false,
    // having fired nothing); JSON is always converted. Converting here,
    // value by value, runs the user code (toString, valueOf, toJSON) before
    // the native call, and only when needed: V8 need not even allocate the
    // callback's array otherwise.
    if (probe._json || send(handle, values, n) === false) {
      const converted = new Array(n);
      for (let i = 0; i < n; i++) converted[i] = primitive(values[i], kinds[i]);
      // A conversion may have disabled the provider.
      if (probe._handle !== handle) return undefined;
      send(handle, converted, n);
    }
    return true;
  }

  // One native call, with the values as positional arguments (cheaper for
  // the addon to read than array elements).
  function send(handle, v, n) {
    switch (n) {
      case 0: return addon.fire(handle);
      case 1: return addon.fire(handle, v[0]);
      case 2: return addon.fire(handle, v[0], v[1]);
      case 3: return addon.fire(handle, v[0], v[1], v[2]);
      case 4: return addon.fire(handle, v[0], v[1], v[2], v[3]);
      case 5: return addon.fire(handle, v[0], v[1], v[2], v[3], v[4]);
      case 6: return addon.fire(handle, v[0], v[1], v[2], v[3], v[4], v[5]);
      default: return addon.fire(handle, ...v.slice(0, n));
    }
  }

  function warnOnce(probe, err) {
    if (probe._warned) return;
    probe._warned = true;
    process.emitWarning(`probe ${probe._provider[STATE].name}:${probe.name} did not fire: ${describe(err)}`, {
      code: 'DYNPROBE_FIRE_FAILED',
    });
  }

  // What was thrown, in words, whatever it is (describing it must not throw:
  // a null-prototype object has no toString, a getter may throw).
  function describe(err) {
    try {
      return err && typeof err.message === 'string' ? err.message : String(err);
    } catch {
      return 'a value that cannot be described';
    }
  }

  // Names the addon has accepted: applications create the same providers and
  // probes again and again, and asking costs a native call each time. Only
  // names are checked there (types are ours by now, and counted above).
  const accepted = new Set();
  function refusal(key, ask) {
    if (accepted.has(key)) return null;
    const refused = ask();
    if (refused === null && accepted.size < 4096) accepted.add(key);
    return refused;
  }

  function checkProviderArgs(args) {
    if (args.length > 2) throw new Error('createDTraceProvider takes at most two arguments (name, module)');
    if (typeof args[0] !== 'string') throw new TypeError('provider name must be a string');
    if (args.length === 2 && typeof args[1] !== 'string') throw new TypeError('provider module must be a string');
  }

  // A probe with its names checked by the addon (the names and the probe's
  // argument names; its types are ours by now), stored unless it exists.
  function addChecked(provider, probe) {
    const state = provider[STATE];
    const { name } = probe;
    const existing = state.probes.get(name);
    if (existing !== undefined) {
      const same = existing._ctypes.join() === probe._ctypes.join() && sameNames(existing._argNames, probe._argNames);
      if (same) return existing;
      const named = existing._argNames === null ? '' : ` and argument names (${existing._argNames.join(', ')})`;
      throw new Error(`probe ${name} already exists with types (${existing.types.join(', ')})${named}`);
    }
    const refused =
      probe._argNames === null
        ? refusal(`probe\0${name}`, () => addon.checkProbe({ name, types: [] }))
        : refusal(`probe\0${name}\0${probe._argNames.join('\0')}`, () =>
            addon.checkProbe({ name, types: probe._ctypes.map(cName), argNames: probe._argNames }),
          );
    if (refused !== null) throw new RangeError(refused);
    state.probes.set(name, probe);
    state.byName[name] = probe;
    // An own property even for names like `__proto__`, as the original's.
    Object.defineProperty(provider, name, { value: probe, writable: true, enumerable: true, configurable: true });
    return probe;
  }

  function sameNames(a, b) {
    return a === b || (a !== null && b !== null && a.join('\0') === b.join('\0'));
  }

  // addProbe({ name, args: [{ name, type }, ...] }): each argument's name
  // (a C identifier of 1 to 64 bytes, each once) is recorded in the library
  // with its type, and `dynprobe list` shows it. Types are spelled as for
  // addProbe(name, ...types). Read once, into copies: a getter runs once.
  function addNamedProbe(provider, spec) {
    const name = spec.name;
    if (typeof name !== 'string') throw new TypeError('addProbe: the probe name (spec.name) must be a string');
    const args = spec.args;
    if (!Array.isArray(args)) throw new TypeError(`addProbe: probe ${name}: spec.args must be an array of { name, type }`);
    if (args.length > MAX_ARGS) {
      throw new RangeError(`probe ${name} has ${args.length} arguments; at most ${MAX_ARGS} are allowed`);
    }
    const names = [];
    const types = [];
    for (let i = 0; i < args.length; i++) {
      const arg = args[i];
      if (arg === null || typeof arg !== 'object') {
        throw new TypeError(`addProbe: probe ${name}: argument ${i} must be an object { name, type }`);
      }
      const argName = arg.name;
      const type = arg.type;
      if (typeof argName !== 'string') throw new TypeError(`addProbe: probe ${name}: the name of argument ${i} must be a string`);
      if (typeof type !== 'string') throw new TypeError(`addProbe: probe ${name}: the type of argument ${i} must be a string`);
      names.push(argName);
      types.push(type);
    }
    return addChecked(provider, new DTraceProbe(provider, name, types, names));
  }

  class DTraceProvider {
    constructor(name, module) {
      checkProviderArgs(arguments);
      const mod = arguments.length === 2 ? module : name;
      const refused = refusal(`provider\0${name}\0${mod}`, () => addon.checkProvider(name, mod));
      if (refused !== null) throw new RangeError(refused);
      Object.defineProperty(this, STATE, {
        value: { name, module: mod, probes: new Map(), byName: new ProbeTable(), native: null, loaded: [] },
      });
    }

    // dtrace-provider's addProbe(name, ...types), and dynprobe's extension
    // addProbe({ name, args: [{ name, type }, ...] }), which names the
    // arguments (dtrace-provider throws for anything but a string name, so
    // no dtrace-provider program calls it that way).
    addProbe(name, ...types) {
      if (types.length === 0 && name !== null && typeof name === 'object') return addNamedProbe(this, name);
      if (typeof name !== 'string') throw new TypeError('probe name must be a string');
      if (types.length > MAX_ARGS) {
        throw new RangeError(`probe ${name} has ${types.length} arguments; at most ${MAX_ARGS} are allowed`);
      }
      return addChecked(this, new DTraceProbe(this, name, types.map(String)));
    }

    removeProbe(probe) {
      if (!(probe instanceof DTraceProbe)) throw new TypeError('removeProbe takes a probe returned by addProbe');
      const probes = this[STATE].probes;
      if (probes.get(probe.name) === probe) {
        probes.delete(probe.name);
        // Not `delete`: that would turn the table into a slow dictionary.
        this[STATE].byName[probe.name] = undefined;
        if (Object.prototype.hasOwnProperty.call(this, probe.name) && this[probe.name] === probe) {
          delete this[probe.name];
        }
      }
      return true;
    }

    enable() {
      const state = this[STATE];
      if (state.native !== null) return undefined;
      if (state.probes.size === 0) throw new Error('no probes defined');
      const probes = [...state.probes.values()];
      let native;
      try {
        native = new addon.NativeProvider(
          state.name,
          state.module,
          probes.map((p) => ({
            name: p.name,
            types: p._ctypes.map(cName),
            declared: p.types.map(declaredType),
            argNames: p._argNames === null ? undefined : p._argNames,
          })),
        );
      } catch (err) {
        if (process.env.NODE_DTRACE_PROVIDER_REQUIRE === 'hard') throw err;
        process.emitWarning(`provider ${state.name} was not enabled: ${err.message}`, { code: 'DYNPROBE_ENABLE_FAILED' });
        return undefined;
      }
      const buffer = native.semaphores();
      state.native = native;
      state.loaded = probes;
      probes.forEach((probe, index) => {
        probe._sema = new Uint32Array(buffer, SLOT_BYTES * index, 1);
        probe._handle = native.handle(index);
      });
      warnIfNotRegistered(state.name, native);
      return undefined;
    }

    disable() {
      const state = this[STATE];
      const native = state.native;
      if (native === null) return undefined;
      // Every probe that was loaded, including any removed since.
      for (const probe of state.loaded) {
        probe._sema = NOT_LOADED;
        probe._handle = null;
      }
      state.native = null;
      state.loaded = [];
      // Detaches the semaphore buffer before unmapping (no view can read
      // freed memory) and releases all the provider holds natively, at once.
      native.unload();
      return undefined;
    }

    fire(name, cb, a, b, c, d) {
      if (typeof name !== 'string') throw new TypeError('provider.fire: the probe name must be a string');
      if (typeof cb !== 'function') {
        throw new TypeError('provider.fire: the second argument must be a function that returns the probe arguments');
      }
      const probe = this[STATE].byName[name];
      if (probe === undefined) return undefined;
      if (probe._sema[0] !== 0) {
        const n = arguments.length - 2;
        if (n <= 4) fireTraced(probe, cb, n, a, b, c, d);
        else fireTracedMany(probe, cb, arguments, 2);
      }
      return true;
    }
  }

  // Where DTrace's helper device exists, enable() also registered the
  // provider with DTrace; a refusal leaves the USDT probes working and is
  // said once per process.
  function warnIfNotRegistered(name, native) {
    const registration = native.dtraceRegistration();
    if (typeof registration !== 'string' || globalThis[DTRACE_WARNED]) return;
    globalThis[DTRACE_WARNED] = true;
    process.emitWarning(
      `provider ${name} is not registered with DTrace: ${registration}. Its USDT probes work as before ` +
        '(DTrace sees them through the process id, e.g. nodeapp$target; bpftrace as usdt probes); ' +
        'this warning is shown once per process',
      { code: 'DYNPROBE_DTRACE_REGISTRATION_FAILED' },
    );
  }

  function createDTraceProvider(name, module) {
    checkProviderArgs(arguments);
    return arguments.length === 2 ? new DTraceProvider(name, module) : new DTraceProvider(name);
  }

  return { DTraceProvider, DTraceProbe, createDTraceProvider };
}

module.exports = { createApi, nativeType };
