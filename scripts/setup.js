#!/usr/bin/env node
'use strict';
// What the project's own commands need before they run, done by themselves
// so that they work from a fresh clone on a fresh machine:
//   provision()        as root, every scripts/provision-*.sh (idempotent, fast
//                      when done: tracers, toolchains, test roots)
//   devDependencies()  `npm ci` when a devDependency is missing from
//                      node_modules (bunyan, restify, the bundlers, the
//                      benchmark's dtrace-provider-stub)
//   build()            the addon (scripts/build-addon.js)
// `node scripts/setup.js` (npm run bench) does the last two.

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const say = (text) => process.stdout.write(`\nsetup: ${text}\n`);

// npm and its children without the settings of an enclosing `npm run`.
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
}

function run(cmd, args, env = process.env) {
  process.stdout.write(`\n$ ${cmd} ${args.join(' ')}\n`);
  execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], env });
}

function provision() {
  const dir = path.join(ROOT, 'scripts');
  const scripts = fs.readdirSync(dir).filter((f) => /^provision-.*\.sh$/.test(f)).sort();
  if (process.getuid() !== 0) {
    say(`not root: skipping ${scripts.join(', ')} (tests that need what they install skip loudly, and fail with CI=true)`);
    return;
  }
  for (const script of scripts) run('bash', [path.join('scripts', script)]);
}

function missingDevDependencies() {
  const { devDependencies = {} } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  return Object.keys(devDependencies).filter((name) => !fs.existsSync(path.join(ROOT, 'node_modules', name, 'package.json')));
}

function devDependencies() {
  const missing = missingDevDependencies();
  if (missing.length === 0) return;
  say(`devDependencies missing from node_modules (${missing.join(', ')}): installing them`);
  const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });
  if (npm.error || npm.status !== 0) throw new Error('npm is not installed (it comes with Node.js)');
  run('npm', ['ci', '--no-audit', '--no-fund'], cleanEnv());
  const still = missingDevDependencies();
  if (still.length > 0) throw new Error(`npm ci did not install ${still.join(', ')}`);
}

function build() {
  const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
  if (cargo.error || cargo.status !== 0) {
    throw new Error("cargo is not installed: dynprobe's addon is built from Rust (rustup.rs, or apt-get install cargo)");
  }
  run(process.execPath, [path.join('scripts', 'build-addon.js')]);
}

module.exports = { provision, devDependencies, build, missingDevDependencies };

if (require.main === module) {
  try {
    devDependencies();
    build();
  } catch (err) {
    process.stderr.write(`setup: ${err.message}\n`);
    process.exitCode = err.status || 1;
  }
}
