'use strict';
// What bench/http.js and bench/db.js share: running on one CPU, reading a
// process's CPU time and memory, and the statistics they print (the median
// ratio over rounds, Hodges-Lehmann, with its 95% bootstrap interval).

const fs = require('node:fs');
const { spawnSync } = require('node:child_process');

const RESAMPLES = 10000;

// The benchmark, its client and the processes it measures run on one CPU:
// an operation is a CPU-bound ping-pong, and cross-CPU wake-ups in a VM
// weighed more than what is measured. Only one measured process is busy at
// a time.
const CPUS = allowedCpus();
const PINNED = process.env.DYNPROBE_BENCH_CPU !== undefined; // this is the re-run on that CPU
const PIN = PINNED || (CPUS.length >= 1 && spawnSync('taskset', ['--version']).status === 0);
const CPU = PINNED ? process.env.DYNPROBE_BENCH_CPU : String(CPUS[0]);
function allowedCpus() {
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!m) return [];
  return m[1].split(',').flatMap((part) => {
    const [lo, hi = lo] = part.split('-').map(Number);
    return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  });
}

// Runs `main` on CPU (the script `file` runs itself again there, under
// taskset, when it can).
function runPinned(file, main) {
  if (PIN && !PINNED) {
    const r = spawnSync('taskset', ['-c', CPU, process.execPath, file], {
      stdio: 'inherit',
      env: { ...process.env, DYNPROBE_BENCH_CPU: CPU },
    });
    process.exitCode = r.status === null ? 1 : r.status;
    return;
  }
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}

// CPU time the process has used, all its threads, in ns: what
// process.cpuUsage() (user + system) would report inside it, read from the
// scheduler's own account (/proc/PID/task/*/schedstat) without disturbing
// the process.
function cpuNs(pid) {
  let total = 0;
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    total += Number(fs.readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
  }
  return total;
}

function rssMiB(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// A small seeded generator (mulberry32), so that a run's intervals can be
// recomputed from its numbers.
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The Hodges-Lehmann median of ratios `xs`: the median of the means of
// every pair of their logarithms (each with itself too), back as a ratio. A
// median (one bad round moves it little) that uses the data about as well as
// a mean; with its 95% percentile-bootstrap interval, rounds resampled.
function pairMedian(logs) {
  const means = [];
  for (let i = 0; i < logs.length; i++) for (let j = i; j < logs.length; j++) means.push((logs[i] + logs[j]) / 2);
  return median(means);
}
function medianWithInterval(xs) {
  const logs = xs.map(Math.log);
  const next = random(0x5eed);
  const medians = new Float64Array(RESAMPLES);
  const sample = new Array(logs.length);
  for (let r = 0; r < RESAMPLES; r++) {
    for (let i = 0; i < logs.length; i++) sample[i] = logs[Math.floor(next() * logs.length)];
    medians[r] = pairMedian(sample);
  }
  medians.sort();
  const at = (q) => Math.exp(medians[Math.min(RESAMPLES - 1, Math.floor(q * RESAMPLES))]);
  return { median: Math.exp(pairMedian(logs)), lo: at(0.025), hi: at(0.975) };
}

const fmt = (r) => `${r.median.toFixed(3)}x [${r.lo.toFixed(3)}, ${r.hi.toFixed(3)}]`;
const within1 = (r) => r.lo >= 0.99 && r.hi <= 1.01;

module.exports = { PIN, CPU, runPinned, cpuNs, rssMiB, median, random, medianWithInterval, fmt, within1 };
