'use strict';
// Runs inside the arm64 virtual machine (test/platform/vm-init.sh): the
// basic tracer cases, the program under the machine's node and the arm64
// addon in this package, traced by the machine's bpftrace. One
// `@@CASE <json>` line per case for the host to check.

const { runCase } = require('../tracers/harness');
const { basicCases } = require('./prebuilt');

(async () => {
  for (const c of basicCases()) {
    const started = Date.now();
    let result;
    try {
      // 'bpftrace-0.17' is the harness's name for `bpftrace` on PATH with the
      // scripts both versions read; here it is the machine's bpftrace 0.27.
      const r = await runCase(c, 'bpftrace-0.17');
      result = { name: c.name, lines: r.lines, expected: r.expected, diagnostics: r.diagnostics };
    } catch (err) {
      result = { name: c.name, error: String(err && err.stack ? err.stack : err) };
    }
    result.seconds = Math.round((Date.now() - started) / 1000);
    process.stdout.write(`@@CASE ${JSON.stringify(result)}\n`);
  }
})();
