'use strict';
// dynprobe: real USDT probes for Node.js, with the API of dtrace-provider.

const { load } = require('./lib/native');

function exportsFor() {
  const { addon, reason } = load();
  if (addon !== null) return require('./lib/provider').createApi(addon);
  if (process.env.NODE_DTRACE_PROVIDER_REQUIRE === 'hard') throw new Error(reason);
  return require('./lib/stub');
}

const api = exportsFor();
module.exports = {
  DTraceProvider: api.DTraceProvider,
  createDTraceProvider: api.createDTraceProvider,
};
