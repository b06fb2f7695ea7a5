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
