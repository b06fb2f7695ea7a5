'use strict';
// Runs test jobs (a test file under node --test, or cargo test) side by
// side, within two limits: at most `slots` at once, and at most one at a
// time per need (`tracer`, `vm`; see plan.js). Each job's output goes to a
// file and is printed whole when the job ends, so that jobs running at once
// do not mix their lines.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// A whole job that runs longer is killed (its own tests have shorter
// timeouts: this only ends a hang that nothing else would).
const JOB_LIMIT_MS = 45 * 60 * 1000;
const STILL_RUNNING_EVERY_MS = 5 * 60 * 1000;

const stamp = () => new Date().toISOString().slice(11, 19);
const minutes = (ms) => `${Math.floor(ms / 60000)}:${String(Math.round((ms % 60000) / 1000)).padStart(2, '0')}`;

// Kills a job's process group (its node or cargo and all they started).
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

const running = new Set();
function stopAll() {
  for (const job of running) killGroup(job.child, 'SIGTERM');
  setTimeout(() => {
    for (const job of running) killGroup(job.child, 'SIGKILL');
  }, 10000).unref();
}

// Runs one job; resolves with { seconds, code, signal, output }.
function runOne(job, workDir) {
  const log = path.join(workDir, `${job.name.replace(/[^\w.-]+/g, '_')}.log`);
  const fd = fs.openSync(log, 'w');
  const started = Date.now();
  // Its own process group (detached), so that a hang can be ended whole.
  const child = spawn(job.cmd, job.args, { cwd: job.cwd, env: job.env, stdio: ['ignore', fd, fd], detached: true });
  fs.closeSync(fd);
  const entry = { child };
  running.add(entry);
  return new Promise((resolve) => {
    const limit = setTimeout(() => {
      fs.appendFileSync(log, `\n*** npm test: ${job.name} still running after ${minutes(JOB_LIMIT_MS)}: killed ***\n`);
      killGroup(child, 'SIGKILL');
    }, JOB_LIMIT_MS);
    const still = setInterval(() => process.stdout.write(`[${stamp()}] … ${job.name} still running (${minutes(Date.now() - started)})\n`), STILL_RUNNING_EVERY_MS);
    const done = (code, signal, error) => {
      clearTimeout(limit);
      clearInterval(still);
      running.delete(entry);
      // What is left of its group (a tracer or a VM a killed test started).
      killGroup(child, 'SIGKILL');
      let output = fs.readFileSync(log, 'utf8');
      if (error) output += `\n*** npm test: ${job.cmd} did not start: ${error.message} ***\n`;
      resolve({ seconds: (Date.now() - started) / 1000, code, signal, output });
    };
    child.on('error', (err) => done(null, null, err));
    child.on('exit', (code, signal) => done(code, signal, null));
  });
}

// Runs `jobs` ([{ name, needs, cmd, args, env, cwd, count(output) }], in the
// order they should start) and resolves with their results, in that order.
async function runJobs(jobs, { slots }) {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-test-'));
  const results = new Array(jobs.length);
  const waiting = jobs.map((job, i) => ({ job, i }));
  const busy = new Set(); // needs held by running jobs
  let active = 0;
  await new Promise((resolveAll) => {
    const next = () => {
      if (waiting.length === 0 && active === 0) return resolveAll();
      for (let k = 0; k < waiting.length && active < slots; ) {
        const { job, i } = waiting[k];
        if (job.needs.some((n) => busy.has(n))) {
          k++;
          continue;
        }
        waiting.splice(k, 1);
        active++;
        job.needs.forEach((n) => busy.add(n));
        const needs = job.needs.length ? job.needs.join(', ') : 'nothing';
        process.stdout.write(`[${stamp()}] ▶ ${job.name} (needs ${needs})\n`);
        runOne(job, workDir).then((r) => {
          active--;
          job.needs.forEach((n) => busy.delete(n));
          results[i] = { ...r, ...job.count(r) };
          report(job, results[i]);
          next();
        });
      }
    };
    next();
  });
  fs.rmSync(workDir, { recursive: true, force: true });
  return results;
}

function report(job, r) {
  const status = r.ok ? 'ok' : 'FAILED';
  const bar = '─'.repeat(Math.max(4, 72 - job.name.length));
  process.stdout.write(`\n──── ${job.name} ${bar}\n${r.output.replace(/\n*$/, '\n')}`);
  process.stdout.write(`[${stamp()}] ${status === 'ok' ? '✔' : '✖'} ${job.name}: ${status} in ${r.seconds.toFixed(1)} s (${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped${r.todo ? `, ${r.todo} todo` : ''})\n\n`);
}

module.exports = { runJobs, stopAll };
