'use strict';
// What a process that loads dynprobe offers once, whatever copy loads first:
// the endpoint (lib/endpoint/server.js) and, with DYNPROBE_RECORD, the
// flight recorder from start-up (lib/recorder.js). Main thread only: a
// worker's providers are its own (its registry is its own globalThis's),
// reachable by its in-process subscriptions.

const { registry } = require('./registry');

function isMainThread() {
  try {
    return require('node:worker_threads').isMainThread;
  } catch {
    return true; // no workers here
  }
}

// The recorder starts at once (it records from start-up); the endpoint a
// turn of the event loop later, off the `require` path (its socket needs
// Node's net module, whose listen loads cluster and child_process too).
function startProcessServices() {
  const state = registry().state;
  if (state.services) return;
  state.services = true;
  state.endpoint = null;
  if (process.env.DYNPROBE_RECORD && isMainThread()) require('./recorder').startFromEnvironment();
  if (process.env.DYNPROBE_ENDPOINT === 'off') return;
  setImmediate(() => {
    if (!isMainThread()) return;
    let server;
    try {
      server = require('./endpoint/server');
    } catch (err) {
      // Node's modules cannot be loaded here (an ES-module bundle has no
      // `require` for them): no endpoint; subscriptions and the recorder work.
      process.emitWarning(`dynprobe's endpoint is off: ${err && err.message} (an ES-module bundle?); dynprobe.subscribe() still works`, {
        code: 'DYNPROBE_ENDPOINT_UNAVAILABLE',
      });
      return;
    }
    state.endpoint = server.startEndpoint();
  });
}

module.exports = { startProcessServices };
