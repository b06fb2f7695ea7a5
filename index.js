'use strict';
// dynprobe: real USDT probes for Node.js, with the API of dtrace-provider,
// and a way to read them without a kernel tracer: in-process subscriptions,
// an endpoint for `dynprobe trace` run by the same user, and a flight
// recorder (docs/no-root-tracing.md).

const { load } = require('./lib/native');
const { createApi } = require('./lib/provider');
const { subscribe, providers } = require('./lib/subscribe');
const { startProcessServices } = require('./lib/services');

// Where there is no addon, the same API over plain JavaScript providers
// (lib/plain.js): no tracer sees them, subscribers and the endpoint do. One
// process warning says why (once per process, even when several copies of
// dynprobe are installed); NODE_DTRACE_PROVIDER_REQUIRE=hard throws.
const WARNED = Symbol.for('dynprobe.noAddonWarned');

function exportsFor() {
  const { addon, code, reason, cause } = load();
  if (addon !== null) return createApi(addon);
  if (process.env.NODE_DTRACE_PROVIDER_REQUIRE === 'hard') {
    const err = new Error(reason, cause === undefined ? undefined : { cause });
    err.code = code;
    throw err;
  }
  if (!globalThis[WARNED]) {
    globalThis[WARNED] = true;
    process.emitWarning(reason, { code });
  }
  return createApi(require('./lib/plain'));
}

const { DTraceProvider, createDTraceProvider } = exportsFor();
startProcessServices();
// In this literal form, Node's ES module loader (cjs-module-lexer) finds
// every name: `import { createDTraceProvider, subscribe } from 'dynprobe'`.
module.exports = { DTraceProvider, createDTraceProvider, subscribe, providers };
