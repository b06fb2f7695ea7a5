'use strict';
// Runs inside the arm64 virtual machine (test/platform/vm-init.sh): the
// basic tracer cases, traced by the machine's bpftrace, under each runtime
// the machine carries: its node (glibc) with the arm64 addon in this
// package, and, when test/platform/arm64-vm.js put it there, Bun's arm64
// musl build with the arm64 musl addon. One `@@CASE <json>` line per case
// for the host to check.

const fs = require('node:fs');
const { runCase } = require('../tracers/harness');
const { basicCases } = require('./prebuilt');
const { MUSL_BUN, VM_MUSL_PACKAGE } = require('./arm64-vm');

const RUNTIMES = [{ key: 'node', runtime: undefined }];
if (fs.existsSync(VM_MUSL_PACKAGE)) {
  RUNTIMES.push({ key: 'bun-musl', runtime: { name: 'bun-arm64-musl', node: MUSL_BUN, root: null, package: VM_MUSL_PACKAGE, env: {} } });
}

(async () => {
  for (const { key, runtime } of RUNTIMES) {
    for (const c of basicCases()) {
      const started = Date.now();
      let result;
      try {
        // 'bpftrace-0.17' is the harness's name for `bpftrace` on PATH with the
        // scripts both versions read; here it is the machine's bpftrace 0.27.
        const r = await runCase(c, 'bpftrace-0.17', runtime);
        result = { runtime: key, name: c.name, lines: r.lines, expected: r.expected, diagnostics: r.diagnostics };
      } catch (err) {
        result = { runtime: key, name: c.name, error: String(err && err.stack ? err.stack : err) };
      }
      result.seconds = Math.round((Date.now() - started) / 1000);
      process.stdout.write(`@@CASE ${JSON.stringify(result)}\n`);
    }
  }
})();
