'use strict';
// Firing times: taken on the hot path as `performance.now()` (a double, no
// allocation), turned into wall-clock nanoseconds later. The offset is
// measured once, as `dynprobe trace` does for a kernel tracer's monotonic
// clock (lib/cli/records.js). `performance` is looked up at the first
// firing: in Node, the global loads perf_hooks, which a program that never
// subscribes need not pay for.

let perf = null;
const now = () => (perf === null ? (perf = globalThis.performance) : perf).now();

let offsetNs = null;
// Wall-clock ns (since the epoch) of a `now()` value, as a BigInt.
function wallNs(t) {
  if (offsetNs === null) offsetNs = BigInt(Date.now()) * 1000000n - BigInt(Math.round(now() * 1e6));
  return offsetNs + BigInt(Math.round(t * 1e6));
}

module.exports = { now, wallNs };
