'use strict';
// The no-op API for platforms dynprobe does not support yet: the same shape
// as dtrace-provider's own stub, and callbacks never run.

class DTraceProbe {
  constructor(name, types) {
    this.name = name;
    this.types = types;
  }
  fire() {}
}

class DTraceProvider {
  constructor(name, module) {
    this._name = name;
    this._module = module;
  }
  addProbe(name, ...types) {
    // dynprobe's addProbe({ name, args: [{ name, type }] }) too.
    if (types.length === 0 && name !== null && typeof name === 'object') {
      const args = Array.isArray(name.args) ? name.args : [];
      types = args.map((a) => a && a.type);
      name = name.name;
    }
    const probe = new DTraceProbe(name, types);
    Object.defineProperty(this, name, { value: probe, writable: true, enumerable: true, configurable: true });
    return probe;
  }
  removeProbe() {
    return true;
  }
  enable() {}
  disable() {}
  fire() {}
}

function createDTraceProvider(name, module) {
  return new DTraceProvider(name, module);
}

module.exports = { DTraceProvider, DTraceProbe, createDTraceProvider };
