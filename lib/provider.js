'use strict';
// The dtrace-provider API over dynprobe's native providers.
//
// The hot path is a disabled probe: `probe.fire(cb)` reads the probe's
// semaphore through a Uint16Array over the library's own memory and returns,
// without calling into native code. Only a probe that a tracer is watching
// runs its callback and makes exactly one native call.

const MAX_ARGS = 32;
const EXACT_INTS = new Set(['int8_t', 'uint8_t', 'int16_t', 'uint16_t', 'int32_t', 'uint32_t', 'int64_t', 'uint64_t']);
// What a probe reads while its provider is not loaded: every index gives
// undefined, and `undefined > 0` is false.
const NOT_LOADED = new Uint16Array(0);

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

function createApi(addon) {
  class DTraceProbe {
    constructor(provider, name, types) {
      this.name = name;
      this.types = types;
      this._provider = provider;
      this._native = types.map(nativeType);
      this._json = this._native.some((t) => t === 'json') ? this._native.map((t) => t === 'json') : null;
      this._sema = NOT_LOADED;
      this._index = 0;
      this._warned = false;
    }

    fire(cb) {
      if (typeof cb !== 'function') {
        throw new TypeError('probe.fire: the first argument must be a function that returns the probe arguments');
      }
      if (!(this._sema[this._index] > 0)) return undefined;
      return fireTraced(this, cb, arguments, 1);
    }
  }

  function fireTraced(probe, cb, args, skip) {
    const extra = [];
    for (let i = skip; i < args.length; i++) extra.push(args[i]);
    let values;
    try {
      values = cb.apply(probe, extra);
      if (!Array.isArray(values)) return undefined;
      if (probe._json !== null) values = withJson(values, probe._json);
      const native = probe._provider._native;
      // The callback may have disabled the provider.
      if (native === null || probe._sema === NOT_LOADED) return undefined;
      native.fire(probe._index, values);
      return true;
    } catch (err) {
      // Tracing must never change what the program does.
      warnOnce(probe, err);
      return undefined;
    }
  }

  function withJson(values, isJson) {
    const out = new Array(isJson.length);
    for (let i = 0; i < isJson.length; i++) {
      if (!isJson[i]) {
        out[i] = values[i];
        continue;
      }
      const text = JSON.stringify(values[i]);
      out[i] = text === undefined ? 'undefined' : text;
    }
    return out;
  }

  function warnOnce(probe, err) {
    if (probe._warned) return;
    probe._warned = true;
    const reason = err && err.message ? err.message : String(err);
    process.emitWarning(`probe ${probe._provider._name}:${probe.name} did not fire: ${reason}`, {
      code: 'DYNPROBE_FIRE_FAILED',
    });
  }

  function checkProviderArgs(args) {
    if (args.length > 2) throw new Error('createDTraceProvider takes at most two arguments (name, module)');
    if (typeof args[0] !== 'string') throw new TypeError('provider name must be a string');
    if (args.length === 2 && typeof args[1] !== 'string') throw new TypeError('provider module must be a string');
  }

  class DTraceProvider {
    constructor(name, module) {
      checkProviderArgs(arguments);
      const mod = arguments.length === 2 ? module : name;
      const refused = addon.checkProvider(name, mod);
      if (refused !== null) throw new RangeError(refused);
      // Own, non-enumerable state: probes live as own properties by name.
      Object.defineProperties(this, {
        _name: { value: name, writable: true },
        _module: { value: mod, writable: true },
        _probes: { value: new Map() },
        _native: { value: null, writable: true },
        _buffer: { value: null, writable: true },
      });
    }

    addProbe(name, ...types) {
      if (typeof name !== 'string') throw new TypeError('probe name must be a string');
      if (types.length > MAX_ARGS) {
        throw new RangeError(`probe ${name} has ${types.length} arguments; at most ${MAX_ARGS} are allowed`);
      }
      const existing = this._probes.get(name);
      const probe = new DTraceProbe(this, name, types.map(String));
      if (existing !== undefined) {
        if (existing._native.join() === probe._native.join()) return existing;
        throw new Error(`probe ${name} already exists with types (${existing.types.join(', ')})`);
      }
      const refused = addon.checkProbe({ name, types: probe._native.map(cName) });
      if (refused !== null) throw new RangeError(refused);
      this._probes.set(name, probe);
      this[name] = probe;
      return probe;
    }

    removeProbe(probe) {
      if (!(probe instanceof DTraceProbe)) throw new TypeError('removeProbe takes a probe returned by addProbe');
      if (this._probes.get(probe.name) === probe) {
        this._probes.delete(probe.name);
        if (this[probe.name] === probe) delete this[probe.name];
      }
      return true;
    }

    enable() {
      if (this._native !== null) return undefined;
      if (this._probes.size === 0) throw new Error('no probes defined');
      const probes = [...this._probes.values()];
      let native;
      try {
        native = new addon.NativeProvider(
          this._name,
          this._module,
          probes.map((p) => ({ name: p.name, types: p._native.map(cName) })),
        );
      } catch (err) {
        if (process.env.NODE_DTRACE_PROVIDER_REQUIRE === 'hard') throw err;
        process.emitWarning(`provider ${this._name} was not enabled: ${err.message}`, { code: 'DYNPROBE_ENABLE_FAILED' });
        return undefined;
      }
      const buffer = native.semaphores();
      const view = new Uint16Array(buffer);
      this._native = native;
      this._buffer = buffer;
      probes.forEach((probe, index) => {
        probe._index = index;
        probe._sema = view;
      });
      return undefined;
    }

    disable() {
      const native = this._native;
      if (native === null) return undefined;
      for (const probe of this._probes.values()) probe._sema = NOT_LOADED;
      this._native = null;
      const buffer = this._buffer;
      this._buffer = null;
      // Detaches the buffer before unmapping: no view can read freed memory.
      native.unload(buffer);
      return undefined;
    }

    fire(name, cb) {
      if (typeof name !== 'string') throw new TypeError('provider.fire: the probe name must be a string');
      if (typeof cb !== 'function') {
        throw new TypeError('provider.fire: the second argument must be a function that returns the probe arguments');
      }
      const probe = this._probes.get(name);
      if (probe === undefined) return undefined;
      if (probe._sema[probe._index] > 0) fireTraced(probe, cb, arguments, 2);
      return true;
    }
  }

  // The native side knows strings and sized integers; JSON travels as a string.
  function cName(type) {
    return type === 'json' ? 'char *' : type;
  }

  function createDTraceProvider(name, module) {
    checkProviderArgs(arguments);
    return arguments.length === 2 ? new DTraceProvider(name, module) : new DTraceProvider(name);
  }

  return { DTraceProvider, DTraceProbe, createDTraceProvider };
}

module.exports = { createApi, nativeType };
