'use strict';
// `node bench/http.js`: what dynprobe/node costs a real HTTP service. A real
// client (node:http, keep-alive, CONCURRENCY requests in flight) sends a
// bounded number of requests to a real server on 127.0.0.1, each server in
// its own process:
//   baseline   node server.js
//   loaded     node -r dynprobe/node server.js, nothing traces it
//   traced     the same, with bpftrace counting its http, net and gc probes
// Each turn starts fresh servers, two of them baselines (their ratio is the
// noise between two identical processes), and measures them one after
// another in a rotating order; each ratio is the median of the turns' ratios
// against the first baseline of the same turn. Prints requests/s and ratios; nothing is asserted (shared machines
// are noisy).

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..');
const REQUESTS = Number(process.env.BENCH_HTTP_REQUESTS) || 6000;
const BURSTS = 20;
const TURNS = Number(process.env.BENCH_HTTP_TURNS) || 8;
const WARMUP = 2000;
const CONCURRENCY = 8;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const canTrace = process.getuid() === 0 && spawnSync('bpftrace', ['--version']).status === 0;

const SERVER = `
  const http = require('node:http');
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('hello ' + req.url));
  });
  server.keepAliveTimeout = 60000;
  server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
`;

// The client runs on one CPU and every server on another (only one server
// is busy at a time): where the scheduler puts a process would otherwise
// differ from process to process, and weigh more than what is measured.
const CPUS = allowedCpus();
const PINNED = process.env.DYNPROBE_BENCH_SERVER_CPU !== undefined; // this is the re-run on the client's CPU
const PIN = PINNED || (CPUS.length >= 2 && spawnSync('taskset', ['--version']).status === 0);
const SERVER_CPU = PINNED ? process.env.DYNPROBE_BENCH_SERVER_CPU : String(CPUS[0]);
function allowedCpus() {
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!m) return [];
  return m[1].split(',').flatMap((part) => {
    const [lo, hi = lo] = part.split('-').map(Number);
    return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  });
}

function startServer(preload) {
  const args = [...(preload ? ['-r', path.join(ROOT, 'node.js')] : []), '-e', SERVER];
  const command = PIN ? ['taskset', '-c', SERVER_CPU, process.execPath, ...args] : [process.execPath, ...args];
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code})`)));
  });
}

// Sends `n` GET requests through `agent`, CONCURRENCY at a time; resolves
// with the seconds they took.
function drive(port, agent, n) {
  let sent = 0;
  let done = 0;
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const one = () => {
      if (sent === n) return;
      const i = sent++;
      http
        .get({ host: '127.0.0.1', port, path: `/item/${i}?q=${i & 7}`, agent }, (res) => {
          res.resume();
          res.on('end', () => {
            if (++done === n) resolve(Number(process.hrtime.bigint() - t0) / 1e9);
            else one();
          });
        })
        .on('error', reject);
    };
    for (let c = 0; c < CONCURRENCY; c++) one();
  });
}

// bpftrace counting the node provider's probes in `pid`, once it has
// attached; stop() resolves with the counts by probe.
function trace(pid) {
  const probes = ['http__server__request', 'http__server__response', 'net__server__connection', 'net__stream__end', 'gc__start'];
  const program = `BEGIN { printf("ATTACHED\\n"); } ${probes.map((p) => `usdt:*:node:${p}`).join(', ')} { @[probe] = count(); }`;
  const bt = spawn('bpftrace', ['-p', String(pid), '-e', program], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  bt.stdout.setEncoding('utf8').on('data', (c) => (out += c));
  bt.stderr.setEncoding('utf8').on('data', (c) => (out += c));
  const exited = new Promise((resolve) => bt.on('close', resolve));
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (!out.includes('ATTACHED')) return;
      clearInterval(timer);
      resolve({
        async stop() {
          bt.kill('SIGINT');
          await exited;
          const counts = {};
          for (const m of out.matchAll(/^@\[usdt:.*:node:(\w+)\]: (\d+)$/gm)) counts[m[1]] = Number(m[2]);
          return counts;
        },
      });
    }, 20);
    bt.on('close', () => {
      clearInterval(timer);
      reject(new Error(`bpftrace exited: ${out}`));
    });
  });
}

// CPU time the process has used, all its threads, in ns (the scheduler's
// own account: exact, and much less disturbed by other load on the machine
// than requests/s).
function cpuNs(pid) {
  let total = 0;
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    total += Number(fs.readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
  }
  return total;
}

// One turn: fresh server processes (a process's own luck with JIT and
// placement would otherwise bias every turn alike), warmed up, then driven in
// short bursts, taking turns in a rotating order, so that the machine's load
// at any moment falls on all of them alike; resolves with requests/s for
// each variant.
async function runTurn(variants, turn) {
  const servers = [];
  let tracer = null;
  try {
    for (const v of variants) {
      const s = await startServer(v.preload);
      s.agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
      servers.push(s);
    }
    for (const s of servers) await drive(s.port, s.agent, WARMUP);
    const tracedIndex = variants.findIndex((v) => v.traced);
    if (tracedIndex >= 0) {
      tracer = await trace(servers[tracedIndex].child.pid);
      // dynprobe/node sees the tracer within a quarter of a second.
      await new Promise((r) => setTimeout(r, 600));
    }
    // Warm up again, every server alike, now that the traced path runs.
    for (const s of servers) await drive(s.port, s.agent, WARMUP);
    const seconds = servers.map(() => 0);
    const cpu = servers.map(() => 0);
    for (let round = 0; round < BURSTS; round++) {
      for (let k = 0; k < servers.length; k++) {
        const i = (k + round + turn) % servers.length;
        const before = cpuNs(servers[i].child.pid);
        seconds[i] += await drive(servers[i].port, servers[i].agent, REQUESTS / BURSTS);
        cpu[i] += cpuNs(servers[i].child.pid) - before;
      }
    }
    const counts = tracer ? await tracer.stop() : null;
    tracer = null;
    return { rates: seconds.map((t) => REQUESTS / t), cpuUs: cpu.map((ns) => ns / 1000 / REQUESTS), counts };
  } finally {
    if (tracer) await tracer.stop();
    for (const s of servers) {
      s.agent.destroy();
      s.child.kill();
    }
  }
}

async function main() {
  console.log(`Loopback HTTP: ${TURNS} turns, each with fresh servers, ${REQUESTS} requests to each in ${BURSTS} bursts taking turns (after ${WARMUP} to warm up), ${CONCURRENCY} in flight, keep-alive, Node ${process.version}${PIN ? `, client on CPU ${CPUS[0]}, servers on CPU ${SERVER_CPU}` : ''}`);
  const variants = [
    { label: 'baseline: node server.js', preload: false },
    { label: 'baseline again (the noise between two processes)', preload: false },
    { label: 'loaded: node -r dynprobe/node, untraced', preload: true },
  ];
  if (canTrace) variants.push({ label: 'traced: the same, bpftrace counting 5 probes', preload: true, traced: true });
  const rates = variants.map(() => []);
  const cpuUs = variants.map(() => []);
  const counts = {};
  for (let turn = 0; turn < TURNS; turn++) {
    const result = await runTurn(variants, turn);
    result.rates.forEach((r, i) => rates[i].push(r));
    result.cpuUs.forEach((c, i) => cpuUs[i].push(c));
    for (const [probe, n] of Object.entries(result.counts || {})) counts[probe] = (counts[probe] || 0) + n;
  }
  const ratio = (xs, i) => median(xs[i].map((r, t) => r / xs[0][t]));
  console.log(`  ${''.padEnd(50)} ${'req/s'.padStart(7)}  ${'vs base'.padStart(7)}  ${'server CPU/request'.padStart(18)}  ${'vs base'.padStart(7)}`);
  variants.forEach((v, i) =>
    console.log(
      `  ${v.label.padEnd(50)} ${median(rates[i]).toFixed(0).padStart(7)}  ${(i ? `${ratio(rates, i).toFixed(3)}x` : '').padStart(7)}` +
        `  ${`${median(cpuUs[i]).toFixed(1)} us`.padStart(18)}  ${(i ? `${ratio(cpuUs, i).toFixed(3)}x` : '').padStart(7)}`,
    ),
  );
  // What dynprobe/node does while untraced: the semaphore check, four times a
  // second. Its cost, measured here, bounds the untraced overhead.
  const node = require('../node');
  const n = 20000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) node.refresh();
  const refreshNs = Number(process.hrtime.bigint() - t0) / n;
  console.log(`  untraced, dynprobe/node runs one semaphore check (${refreshNs.toFixed(0)} ns) every 250 ms: ${((refreshNs * 4) / 1e9 * 100).toFixed(5)}% of one CPU`);
  if (canTrace) {
    const expected = (REQUESTS + WARMUP) * TURNS; // the traced server's, after the tracer attached
    console.log(`  bpftrace counted http__server__request ${counts.http__server__request || 0}, http__server__response ${counts.http__server__response || 0} (of ${expected} requests), net__server__connection ${counts.net__server__connection || 0}, gc__start ${counts.gc__start || 0}`);
  } else {
    console.log('  traced: SKIPPED: needs root and bpftrace (scripts/provision-tracers.sh)');
  }
}

if (PIN && !PINNED) {
  // Run again on the client's CPU.
  const r = spawnSync('taskset', ['-c', String(CPUS[0]), process.execPath, __filename], {
    stdio: 'inherit',
    env: { ...process.env, DYNPROBE_BENCH_SERVER_CPU: SERVER_CPU },
  });
  process.exitCode = r.status === null ? 1 : r.status;
} else {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
