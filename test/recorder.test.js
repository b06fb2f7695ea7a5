'use strict';
// test-needs: nothing
// The flight recorder from start-up (DYNPROBE_RECORD): bunyan fires
// log-debug for every debug call even at level info, so the last debug
// records are in the file when the service dies, of an uncaught exception
// or a signal, and it dies exactly as it would have without the recorder
// (same status, same signal, same output). `record`/`dump` through the
// endpoint are in endpoint.test.js.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const CRASH = path.join(__dirname, 'fixtures', 'consumer', 'crash.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-recorder-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function env(extra) {
  const out = { ...process.env, ...extra };
  delete out.NODE_TEST_CONTEXT;
  return out;
}

function run(mode, extra = {}) {
  const r = spawnSync(process.execPath, [CRASH, mode], { cwd: ROOT, encoding: 'utf8', env: env(extra), timeout: 60000 });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

// Starts a `signal` or `handled` service, sends `signal` once it waits.
function killed(mode, signal, extra = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CRASH, mode], { cwd: ROOT, env: env(extra), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => String(d).includes('WAITING') && child.kill(signal));
    child.on('close', (status, sig) => resolve({ status, signal: sig, stderr, pid: child.pid }));
  });
}

function readRecord(file) {
  const [header, ...lines] = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  return { header, lines };
}

const record = (file, more = {}) => ({ DYNPROBE_RECORD: 'bunyan:log-debug', DYNPROBE_RECORD_COUNT: '50', DYNPROBE_RECORD_FILE: file, ...more });

test('bunyan at level info, DYNPROBE_RECORD=bunyan:log-debug, an uncaught exception: the file holds the last 50 debug records; the crash is unchanged', () => {
  const file = path.join(tmp, 'throw.jsonl');
  const plain = run('throw');
  const recorded = run('throw', record(file));
  assert.deepEqual([recorded.status, recorded.signal], [plain.status, plain.signal]);
  assert.equal(recorded.status, 1);
  assert.match(recorded.stderr, /Error: the service fell over/);
  assert.equal(recorded.stderr.replace(/\d+/g, 'N'), plain.stderr.replace(/\d+/g, 'N'), 'the same output');
  const { header, lines } = readRecord(file);
  assert.equal(header.dynprobeRecord, 1);
  assert.match(header.reason, /^uncaughtException: Error: the service fell over$/);
  assert.deepEqual([header.pattern, header.firings, header.overwritten, header.limits.count], ['bunyan:log-debug', 50, 150, 50]);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  // As `dynprobe trace --json` prints them: bunyan's records, debug 151..200.
  assert.deepEqual(lines.map((l) => [l.provider, l.probe, l.types[0]]), lines.map(() => ['bunyan', 'log-debug', 'string']));
  const records = lines.map((l) => JSON.parse(l.args[0]));
  assert.deepEqual(records.map((r) => r.msg), Array.from({ length: 50 }, (_, i) => `debug ${151 + i}`));
  assert.deepEqual([records[0].level, records[0].name, records[0].i], [20, 'crashy', 151]);
  for (const l of lines) assert.ok(!Number.isNaN(Date.parse(l.time)));
});

test('an unhandled rejection, and fatal signals it can catch (SIGTERM, SIGINT, SIGHUP): the record is written, then the process dies of the same signal', async () => {
  const rejected = path.join(tmp, 'reject.jsonl');
  const plainReject = run('reject');
  const r = run('reject', record(rejected));
  assert.deepEqual([r.status, r.signal], [plainReject.status, plainReject.signal]);
  assert.match(readRecord(rejected).header.reason, /^unhandledRejection: Error: nobody caught this$/);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    const file = path.join(tmp, `${signal}-%p.jsonl`);
    const plain = await killed('signal', signal);
    const got = await killed('signal', signal, record(file));
    assert.deepEqual([got.status, got.signal], [plain.status, plain.signal]);
    assert.deepEqual([got.status, got.signal], [null, signal]);
    const { header, lines } = readRecord(file.replace('%p', String(got.pid)));
    assert.equal(header.reason, signal);
    assert.equal(lines.length, 50);
    assert.equal(JSON.parse(lines[49].args[0]).msg, 'debug 200');
  }
});

test('a program that handles the signal itself keeps doing so; one that exits normally writes nothing; bad settings warn and use the defaults', async () => {
  const file = path.join(tmp, 'handled.jsonl');
  const handled = await killed('handled', 'SIGTERM', record(file));
  assert.deepEqual([handled.status, handled.signal], [3, null]);
  assert.equal(fs.existsSync(file), false, 'the program lives on its own terms: no record');
  const quiet = path.join(tmp, 'exit.jsonl');
  const r = run('exit', record(quiet));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.existsSync(quiet), false);
  const bad = path.join(tmp, 'bad.jsonl');
  const b = run('throw', record(bad, { DYNPROBE_RECORD_COUNT: 'lots' }));
  assert.match(b.stderr, /\[DYNPROBE_RECORD_SETTING\] Warning: DYNPROBE_RECORD_COUNT=lots is not an integer from 1 to 1000000: using 1000/);
  assert.equal(readRecord(bad).lines.length, 200);
});
