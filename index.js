'use strict';
// dynprobe: real USDT probes for Node.js, with the API of dtrace-provider.

const { load } = require('./lib/native');

// Where there is no addon, dtrace-provider's contract: the no-op stub, and
// here one process warning saying why (once per process, even when several
// copies of dynprobe are installed); NODE_DTRACE_PROVIDER_REQUIRE=hard throws.
const WARNED = Symbol.for('dynprobe.noAddonWarned');

function exportsFor() {
  const { addon, code, reason, cause } = load();
  if (addon !== null) return require('./lib/provider').createApi(addon);
  if (process.env.NODE_DTRACE_PROVIDER_REQUIRE === 'hard') {
    const err = new Error(reason, cause === undefined ? undefined : { cause });
    err.code = code;
    throw err;
  }
  if (!globalThis[WARNED]) {
    globalThis[WARNED] = true;
    process.emitWarning(reason, { code });
  }
  return require('./lib/stub');
}

const { DTraceProvider, createDTraceProvider } = exportsFor();
// In this literal form, Node's ES module loader (cjs-module-lexer) finds both
// names: `import { createDTraceProvider, DTraceProvider } from 'dynprobe'`.
module.exports = { DTraceProvider, createDTraceProvider };
