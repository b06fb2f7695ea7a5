'use strict';
// `node bench/http.js` (or `npm run bench:http`): what dynprobe/node costs a
// real HTTP service. A real client (node:http, keep-alive, CONCURRENCY
// requests in flight) sends a bounded number of requests to real servers on
// 127.0.0.1, each server its own process:
//   base        node server.js
//   base again  the same: the A/A control, whose spread is the noise
//   loaded      node -r dynprobe/node server.js, nothing traces it (its
//               endpoint listens, nobody connected)
//   loaded, endpoint off   the same with DYNPROBE_ENDPOINT=off: the
//               endpoint's idle cost is the difference
//   known cost  node server.js spending COST_NS more per request: the
//               positive control, a cost of known size the method must see
//   traced      node -r dynprobe/node server.js with bpftrace counting five
//               of its probes
// Each round starts all of them fresh (a process's own luck with JIT and
// memory layout is then spread over the rounds, not baked into one; on the
// project's VM it weighed little, the machine's load moment to moment much
// more), warms them up, then drives them in short bursts taking turns in a
// random order, so that whatever else loads the machine at a moment falls
// on all alike.
// Per round and server: requests/s (its requests over its bursts' time) and
// the server's CPU time per request, both as ratios to the round's base
// servers. Printed: the median ratio over the rounds and its 95% bootstrap
// confidence interval (rounds resampled), and whether that interval lies
// within 1% of 1. Nothing is asserted (shared machines are noisy).
// BENCH_HTTP_JSON=FILE writes every round's numbers there.

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { PIN, CPU, runPinned, cpuNs, rssMiB, median, random, medianWithInterval, fmt, within1 } = require('./measure');

const ROOT = path.join(__dirname, '..');
const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS) || 24;
const REQUESTS = Number(process.env.BENCH_HTTP_REQUESTS) || 6000; // per server and round, measured
const WARMUP = 1500; // per server and round, before
const BURST = 50; // requests per turn
const CONCURRENCY = 8;
const COST_NS = Number(process.env.BENCH_HTTP_COST_NS) || 400;
const canTrace = process.getuid() === 0 && spawnSync('bpftrace', ['--version']).status === 0;

const SERVER = `
  const http = require('node:http');
  const costNs = BigInt(process.env.DYNPROBE_BENCH_COST_NS || 0);
  const spend = () => {
    if (costNs === 0n) return;
    const until = process.hrtime.bigint() + costNs;
    while (process.hrtime.bigint() < until);
  };
  const server = http.createServer((req, res) => {
    spend();
    req.resume();
    req.on('end', () => res.end('hello ' + req.url));
  });
  server.keepAliveTimeout = 60000;
  server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
`;

// The client and every server run on one CPU (measure.js): a request is a
// CPU-bound ping-pong, and cross-CPU wake-ups in a VM weighed more than
// what is measured. Only one server is busy at a time.
function startServer(variant) {
  const args = [...(variant.preload ? ['-r', path.join(ROOT, 'node.js')] : []), '-e', SERVER];
  const command = PIN ? ['taskset', '-c', CPU, process.execPath, ...args] : [process.execPath, ...args];
  const env = { ...process.env, ...variant.env };
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], env });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), agent: new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY }) });
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code})`)));
  });
}

// Sends `n` GET requests through the server's agent, CONCURRENCY at a time;
// resolves with the nanoseconds they took.
function drive(server, n) {
  let sent = 0;
  let done = 0;
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const one = () => {
      if (sent === n) return;
      const i = sent++;
      http
        .get({ host: '127.0.0.1', port: server.port, path: `/item/${i}?q=${i & 7}`, agent: server.agent }, (res) => {
          res.resume();
          res.on('end', () => {
            if (++done === n) resolve(Number(process.hrtime.bigint() - t0));
            else one();
          });
        })
        .on('error', reject);
    };
    for (let c = 0; c < Math.min(CONCURRENCY, n); c++) one();
  });
}

// The traced servers use a dynprobe directory of their own, so their `node`
// library has a path no other process maps; one bpftrace attached to that
// path for the whole run traces each traced server from its first
// instruction (the kernel enables the probes in every process that maps the
// file, later ones too), while the loaded servers' library stays untraced.
const PROBES = ['http__server__request', 'http__server__response', 'net__server__connection', 'net__stream__end', 'gc__start'];
async function startTracer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-bench-http-'));
  const made = spawnSync(process.execPath, ['-r', path.join(ROOT, 'node.js'), '-e', '0'], { env: { ...process.env, DYNPROBE_DIR: dir }, encoding: 'utf8' });
  const build = fs.readdirSync(dir).find((f) => /^[0-9a-f]{40}$/.test(f) && fs.existsSync(path.join(dir, f, 'node')));
  if (made.status !== 0 || !build) throw new Error(`no node library in ${dir}: ${made.stderr}`);
  const library = path.join(dir, build, 'node');
  const program = `BEGIN { printf("ATTACHED\\n"); } ${PROBES.map((p) => `usdt:${library}:node:${p}`).join(', ')} { @[probe] = count(); }`;
  const bt = spawn('bpftrace', ['-e', program], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  bt.stdout.setEncoding('utf8').on('data', (c) => (out += c));
  bt.stderr.setEncoding('utf8').on('data', (c) => (out += c));
  const exited = new Promise((resolve) => bt.on('close', resolve));
  const cleanUp = () => fs.rmSync(dir, { recursive: true, force: true });
  await new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (out.includes('ATTACHED')) {
        clearInterval(timer);
        resolve();
      }
    }, 20);
    bt.on('close', () => {
      clearInterval(timer);
      cleanUp();
      reject(new Error(`bpftrace exited: ${out}`));
    });
  });
  return {
    env: { DYNPROBE_DIR: dir },
    async stop() {
      bt.kill('SIGINT');
      await exited;
      cleanUp();
      const counts = {};
      for (const m of out.matchAll(/^@\[usdt:.*:node:(\w+)\]: (\d+)$/gm)) counts[m[1]] = Number(m[2]);
      return counts;
    },
  };
}

// One round: fresh servers, warmed up, then REQUESTS each in bursts of BURST
// taking turns; resolves with requests/s and CPU ns per request for each.
async function runRound(variants, round) {
  const servers = [];
  try {
    // Started in a rotating order too (who starts first gets the warmer caches).
    const order = variants.map((_, k) => (k + round) % variants.length);
    for (const i of order) servers[i] = await startServer(variants[i]);
    // Each turn in a fresh random order: in a fixed rotation each server
    // always follows the same one, and that alone moved requests/s by 1%.
    const next = random(round + 1);
    const turns = async (total, each) => {
      const order = servers.map((_, i) => i);
      for (let b = 0; b < total / BURST; b++) {
        for (let k = order.length - 1; k > 0; k--) {
          const j = Math.floor(next() * (k + 1));
          [order[k], order[j]] = [order[j], order[k]];
        }
        for (const i of order) await each(i, await drive(servers[i], BURST));
      }
    };
    await turns(WARMUP, async () => {});
    const ns = servers.map(() => 0);
    const cpu0 = servers.map((s) => cpuNs(s.child.pid));
    await turns(REQUESTS, async (i, t) => {
      ns[i] += t;
    });
    const cpu = servers.map((s, i) => cpuNs(s.child.pid) - cpu0[i]);
    return { rates: ns.map((t) => (REQUESTS * 1e9) / t), cpuNs: cpu.map((c) => c / REQUESTS), rss: servers.map((s) => rssMiB(s.child.pid)) };
  } finally {
    for (const s of servers) {
      if (!s) continue;
      s.agent.destroy();
      s.child.kill();
    }
  }
}

async function main() {
  const load = os.loadavg()[0];
  console.log(
    `Loopback HTTP: ${ROUNDS} rounds, each with fresh servers, ${REQUESTS} requests to each in bursts of ${BURST} taking turns (after ${WARMUP} to warm up), ` +
      `${CONCURRENCY} in flight, keep-alive, Node ${process.version}${PIN ? `, client and servers on CPU ${CPU}` : ''}, load average ${load.toFixed(2)}`,
  );
  const variants = [
    { label: 'base: node server.js', env: {} },
    { label: 'base again (A/A: the noise)', env: {}, control: 'aa' },
    { label: 'loaded: -r dynprobe/node, untraced', preload: true, env: {}, loaded: true },
    // The same without its endpoint: the endpoint's idle cost is the
    // difference between the two (docs/no-root-tracing.md).
    { label: 'loaded, DYNPROBE_ENDPOINT=off', preload: true, env: { DYNPROBE_ENDPOINT: 'off' }, control: 'endpointOff' },
    { label: `known cost: base + ${COST_NS} ns/request`, env: { DYNPROBE_BENCH_COST_NS: String(COST_NS) }, control: 'cost' },
  ];
  let tracer = null;
  if (canTrace) {
    tracer = await startTracer();
    variants.push({ label: 'traced: bpftrace counting 5 probes', preload: true, env: tracer.env, traced: true });
  }
  const rates = variants.map(() => []);
  const cpu = variants.map(() => []);
  const rss = variants.map(() => []);
  let counts = {};
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const result = await runRound(variants, round);
      variants.forEach((_, i) => {
        rates[i].push(result.rates[i]);
        cpu[i].push(result.cpuNs[i]);
        rss[i].push(result.rss[i]);
      });
    }
  } finally {
    if (tracer) counts = await tracer.stop();
  }
  // The A/A control compares the two base servers of each round; the others
  // are compared with both (their geometric mean), which halves the variance
  // the reference adds. The control's interval is then, if anything, wider
  // than the noise in the others'.
  const aaIndex = variants.findIndex((v) => v.control === 'aa');
  const ratios = (xs, i) => xs[i].map((x, r) => x / (i === aaIndex ? xs[0][r] : Math.sqrt(xs[0][r] * xs[aaIndex][r])));
  const stats = variants.map((_, i) => ({
    rate: medianWithInterval(ratios(rates, i)),
    cpu: medianWithInterval(ratios(cpu, i)),
  }));
  console.log('  per round, each server against the two base servers of the round (base again: against base); over the rounds:');
  console.log('  the median ratio (Hodges-Lehmann) and its 95% confidence interval (bootstrap); req/s, CPU and RSS: medians');
  console.log(`  ${''.padEnd(38)} ${'req/s'.padStart(6)}  ${'vs base'.padEnd(24)}  ${'server CPU/req'.padStart(14)}  ${'vs base'.padEnd(24)}  RSS`);
  variants.forEach((v, i) => {
    const rate = median(rates[i]).toFixed(0).padStart(6);
    const us = `${(median(cpu[i]) / 1000).toFixed(2)} us`.padStart(14);
    const mem = `${median(rss[i]).toFixed(1)} MiB`;
    console.log(`  ${v.label.padEnd(38)} ${rate}  ${(i ? fmt(stats[i].rate) : '').padEnd(24)}  ${us}  ${(i ? fmt(stats[i].cpu) : '').padEnd(24)}  ${mem}`);
  });

  const aa = stats[aaIndex];
  const loaded = stats[variants.findIndex((v) => v.loaded)];
  const cost = stats[variants.findIndex((v) => v.control === 'cost')];
  const spread = (r) => `±${(((r.hi - r.lo) / 2) * 100).toFixed(1)}%`;
  const shown = (r) => (within1(r) ? 'within 1%: shown' : r.lo > 1 || r.hi < 1 ? 'differs from base' : 'within 1%: not shown at this noise');
  const seen = (r, slower) => (slower(r) ? 'seen' : 'not seen');
  console.log(`  the noise (A/A, two identical servers): req/s ${spread(aa.rate)}, CPU/request ${spread(aa.cpu)} (half the 95% interval)`);
  // The cost, at worst: how much lower req/s and how much higher CPU/request
  // can be, at the interval's bound.
  const worst = (r, sign) => {
    const bound = sign > 0 ? r.hi - 1 : 1 - r.lo;
    return bound > 0 ? `at most ${(bound * 100).toFixed(1)}% ${sign > 0 ? 'higher' : 'lower'}` : `no ${sign > 0 ? 'higher' : 'lower'}`;
  };
  console.log(`  loaded, untraced: req/s ${worst(loaded.rate, -1)}, CPU/request ${worst(loaded.cpu, 1)} (95% bounds)`);
  console.log(`  loaded, untraced, both ways: req/s ${shown(loaded.rate)}; CPU/request ${shown(loaded.cpu)}`);
  // The endpoint, listening with nobody connected: loaded against loaded
  // without it, per round.
  const off = variants.findIndex((v) => v.control === 'endpointOff');
  const on = variants.findIndex((v) => v.loaded);
  const idle = {
    rate: medianWithInterval(rates[on].map((x, r) => x / rates[off][r])),
    cpu: medianWithInterval(cpu[on].map((x, r) => x / cpu[off][r])),
  };
  console.log(`  the endpoint idle (loaded against loaded with DYNPROBE_ENDPOINT=off): req/s ${fmt(idle.rate)}, CPU/request ${fmt(idle.cpu)}; ${shown(idle.cpu)} (CPU/request)`);
  const expected = 1 + COST_NS / median(cpu[0]);
  console.log(
    `  known cost (at least ${COST_NS} ns, ${((expected - 1) * 100).toFixed(1)}% of base's CPU/request): CPU/request ${seen(cost.cpu, (r) => r.lo > 1)}, ` +
      `req/s ${seen(cost.rate, (r) => r.hi < 1)} (requests/s also carry the client's work)`,
  );

  // What dynprobe/node does while untraced: the semaphore check, four times a
  // second. Its cost, measured here, bounds the untraced overhead.
  const node = require('../node');
  const n = 20000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) node.refresh();
  const refreshNs = Number(process.hrtime.bigint() - t0) / n;
  console.log(`  untraced, dynprobe/node subscribes to nothing and runs one semaphore check (${refreshNs.toFixed(0)} ns) every 250 ms: ${(((refreshNs * 4) / 1e9) * 100).toFixed(5)}% of one CPU`);
  if (tracer) {
    const fired = (WARMUP + REQUESTS) * ROUNDS; // the traced servers', traced from their start
    console.log(
      `  bpftrace counted http__server__request ${counts.http__server__request || 0}, http__server__response ${counts.http__server__response || 0} ` +
        `(of ${fired} requests), net__server__connection ${counts.net__server__connection || 0}, gc__start ${counts.gc__start || 0}`,
    );
  } else {
    console.log('  traced: SKIPPED: needs root and bpftrace (scripts/provision-tracers.sh)');
  }
  console.log(`  load average at the end ${os.loadavg()[0].toFixed(2)}`);
  if (process.env.BENCH_HTTP_JSON) {
    const byVariant = variants.map((v, i) => ({ label: v.label, rates: rates[i], cpuNsPerRequest: cpu[i], rssMiB: rss[i] }));
    fs.writeFileSync(process.env.BENCH_HTTP_JSON, `${JSON.stringify({ node: process.version, ROUNDS, REQUESTS, WARMUP, BURST, COST_NS, variants: byVariant })}\n`);
  }
}

runPinned(__filename, main);
