#!/usr/bin/env node
'use strict';
// `npm test`: builds what the tests need, then runs every test: the Rust
// crates' tests, then the JavaScript and tracer tests. Tracer tests need root
// and the tracers (scripts/provision-tracers.sh); without them they are
// skipped loudly, and with CI=true they fail.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const run = (cmd, args) => {
  process.stdout.write(`\n$ ${cmd} ${args.join(' ')}\n`);
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
};

try {
  // The addon and the Rust fire program that tracer cases run.
  run('node', ['scripts/build-addon.js']);
  run('cargo', ['build', '--release', '--quiet', '-p', 'dynprobe', '--examples']);
  // The addon crate is a cdylib whose N-API symbols come from node: its
  // behaviour is tested through JavaScript.
  run('cargo', ['test', '--release', '-p', 'dynprobe-format', '-p', 'dynprobe']);
  // One file at a time: tracer tests attach to processes and must not race.
  const tests = fs.readdirSync(path.join(root, 'test')).filter((f) => f.endsWith('.test.js')).sort();
  run('node', ['--test', '--test-concurrency=1', ...tests.map((f) => path.join('test', f))]);
} catch (err) {
  process.exitCode = err.status || 1;
}
