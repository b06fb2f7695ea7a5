'use strict';
// Providers where no native addon loads (macOS, Windows, FreeBSD, other
// architectures, a missing or broken addon): the addon's interface, as
// provider.js uses it, in plain JavaScript. No tracer can see these probes
// (there is no library and no probe site); each probe's semaphore slot is
// a plain typed array that only the subscriber byte ever sets, so the
// contract of dtrace-provider's stub holds while nobody subscribes
// (callbacks never run, a fire is one read), and in-process subscriptions,
// the endpoint (`dynprobe trace PID`) and the flight recorder work.

const SLOT_BYTES = 4;
const SUBSCRIBER_BYTE = 3;

class NativeProvider {
  constructor(name, module, probes) {
    this._buffer = new ArrayBuffer(SLOT_BYTES * probes.length);
    this._handles = probes.map((p, index) => Object.freeze({ index }));
  }

  semaphores() {
    return this._buffer;
  }

  handle(index) {
    return this._handles[index];
  }

  // Never registered with DTrace: there is nothing to register.
  dtraceRegistration() {
    return false;
  }

  unload() {}
}

module.exports = {
  plain: true,
  NativeProvider,
  // Every name the old stub took is taken: programs that ran on it keep
  // running (the names only reach the registry and the endpoint).
  checkProvider: () => null,
  checkProbe: () => null,
  slotSubscriberByte: () => SUBSCRIBER_BYTE,
  // Not reached (no tracer byte is ever set here); fires nothing.
  fire: () => undefined,
};
