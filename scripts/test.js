#!/usr/bin/env node
'use strict';
// `npm test`: does its own set-up (scripts/setup.js: as root, every
// scripts/provision-*.sh; `npm ci` when devDependencies are missing; the
// addon), builds what the tests need, then runs every test: the Rust crates'
// tests, then the JavaScript and tracer tests. Tests that need root, a
// tracer or a provisioned root are skipped loudly without them, and with
// CI=true they fail.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const setup = require('./setup');

const root = path.join(__dirname, '..');
const run = (cmd, args) => {
  process.stdout.write(`\n$ ${cmd} ${args.join(' ')}\n`);
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
};

try {
  setup.provision();
  setup.devDependencies();
  // The addon, and the Rust fire program that tracer cases run.
  setup.build();
  setup.prebuilt();
  run('cargo', ['build', '--release', '--quiet', '-p', 'dynprobe-test-drivers']);
  // The addon crate is a cdylib whose N-API symbols come from node: its
  // behaviour is tested through JavaScript.
  run('cargo', ['test', '--release', '-p', 'dynprobe-format', '-p', 'dynprobe']);
  // One file at a time: tracer tests attach to processes and must not race.
  const tests = fs.readdirSync(path.join(root, 'test')).filter((f) => f.endsWith('.test.js')).sort();
  run('node', ['--test', '--test-concurrency=1', ...tests.map((f) => path.join('test', f))]);
} catch (err) {
  if (err.status === undefined) process.stderr.write(`npm test: ${err.message}\n`);
  process.exitCode = err.status || 1;
}
