'use strict';
// test-needs: nothing
// test-tier: quick
// dynprobe installed under the name dtrace-provider (an npm alias of the
// packed tarball, with its platform package) runs a program written for
// dtrace-provider with real probes: its provider's library is mapped, not
// the stub.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./fixtures/helpers');
const packaged = require('./fixtures/packaged');

const FIXTURE = path.join(__dirname, 'fixtures', 'uses-dtrace-provider');

// npm without the settings of an enclosing `npm test`, offline, quiet.
function npm(args, cwd) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  const r = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, env, encoding: 'utf8', timeout: 60000 });
  if (r.error || r.status !== 0) {
    throw new Error(`npm ${args.join(' ')} failed (${r.status}): ${r.error || ''}\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

function npmUnavailable() {
  const r = spawnSync('npm', ['--version'], { encoding: 'utf8', timeout: 30000 });
  return r.error || r.status !== 0 ? `npm is not available: ${r.error || r.stderr}` : null;
}

const gate = h.gate('alias tests (npm)', npmUnavailable());
let tmp;
let app;

before(() => {
  if (gate.skip) return;
  assert.ok(!gate.reason, `npm is required when CI=true: ${gate.reason}`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-alias-'));
  const cache = path.join(tmp, 'npm-cache');
  // The tarballs `npm run package` writes, for this machine's target.
  const { main, platform } = packaged.packInto(path.join(tmp, 'dist'));
  const files = spawnSync('tar', ['-tzf', main], { encoding: 'utf8' }).stdout.split('\n');
  for (const f of ['index.js', 'index.d.ts', 'lib/provider.js', 'lib/native.js', 'lib/stub.js']) {
    assert.ok(files.includes(`package/${f}`), `the package lacks ${f}: ${files.join(', ')}`);
  }
  app = path.join(tmp, 'app');
  fs.cpSync(FIXTURE, app, { recursive: true });
  npm(['install', '--offline', '--no-package-lock', '--cache', cache, `dtrace-provider@file:${main}`, `file:${platform}`], app);
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function runApp(env = {}) {
  const appEnv = { ...process.env, ...env };
  delete appEnv.NODE_TEST_CONTEXT; // see the fixture
  const r = spawnSync(process.execPath, [path.join(app, 'index.js')], { cwd: app, env: appEnv, encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('a dtrace-provider program gets real probes from the aliased package', { skip: gate.skip, timeout: 90000 }, () => {
  const out = runApp({ NODE_DTRACE_PROVIDER_REQUIRE: '' });
  assert.equal(out.package, `dynprobe@${require('../package.json').version}`);
  assert.equal(out.resolved, path.join(fs.realpathSync(app), 'node_modules', 'dtrace-provider', 'index.js'));
  assert.equal(out.libraries.length, 1, 'the provider library is mapped (the stub maps nothing)');
  assert.match(out.libraries[0], /\/[0-9a-f]{40}\/usesdtp$/);
  assert.equal(out.ran, false);
});

test('with NODE_DTRACE_PROVIDER_REQUIRE=hard too', { skip: gate.skip, timeout: 90000 }, () => {
  const out = runApp({ NODE_DTRACE_PROVIDER_REQUIRE: 'hard' });
  assert.equal(out.libraries.length, 1);
});
