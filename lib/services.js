'use strict';
// What a process that loads dynprobe offers once, whatever copy loads first:
// the endpoint (lib/endpoint/server.js) and, with DYNPROBE_RECORD, the
// flight recorder from start-up (lib/recorder.js). Main thread only: a
// worker's providers are its own (its registry is its own globalThis's),
// reachable by its in-process subscriptions.

const { registry } = require('./registry');

function startProcessServices() {
  const state = registry().state;
  if (state.services) return;
  state.services = true;
  let isMainThread = true;
  try {
    isMainThread = require('node:worker_threads').isMainThread;
  } catch {
    // no workers here
  }
  if (!isMainThread) return;
  let server;
  try {
    server = require('./endpoint/server');
  } catch (err) {
    // Node's modules cannot be loaded here (an ES-module bundle has no
    // `require` for them): no endpoint, no recorder; subscriptions work.
    process.emitWarning(`dynprobe's endpoint and flight recorder are off: ${err && err.message} (an ES-module bundle?); dynprobe.subscribe() still works`, {
      code: 'DYNPROBE_ENDPOINT_UNAVAILABLE',
    });
    state.endpoint = null;
    return;
  }
  const endpoint = server.startEndpoint();
  state.endpoint = endpoint;
  require('./recorder').startFromEnvironment(endpoint === null ? null : endpoint.dir);
}

module.exports = { startProcessServices };
