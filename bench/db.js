'use strict';
// `node bench/db.js` (or `npm run bench:db`): what dynprobe/node costs an
// application that queries a database. A real MariaDB (started here, on a
// Unix socket, with a private data directory: test/fixtures/servers.js)
// serves a bounded number of queries to applications, each its own process
// using mysql2 (a pool of CONCURRENCY connections, CONCURRENCY queries in
// flight):
//   base        node app.js
//   base again  the same: the A/A control, whose spread is the noise
//   loaded      node -r dynprobe/node app.js, nothing traces it
//   known cost  node app.js spending COST_NS more per query: the positive
//               control, a cost of known size the method must see
//   subscribed  node app.js that subscribes to mysql2:query in-process
//               with handlers that do nothing: what any in-process
//               subscriber (an APM agent) pays before doing anything, as
//               mysql2 then builds each query's context and wraps its callback
//   traced      node -r dynprobe/node app.js with bpftrace counting
//               mysql2_:query__start and mysql2_:query__done
// As bench/http.js does (and with its statistics, bench/measure.js): each
// round starts all of them fresh, warms them up, then has them run short
// bursts of queries taking turns in a random order; per round and
// application, queries/s and the application's CPU time per query, as
// ratios to the round's base applications; printed, the median ratio over
// the rounds with its 95% bootstrap interval. Nothing is asserted.
// BENCH_DB_JSON=FILE writes every round's numbers there.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { PIN, CPU, runPinned, cpuNs, rssMiB, median, random, medianWithInterval, fmt, within1 } = require('./measure');
const { startMariaDB } = require('../test/fixtures/servers');

const ROOT = path.join(__dirname, '..');
const ROUNDS = Number(process.env.BENCH_DB_ROUNDS) || 20;
const QUERIES = Number(process.env.BENCH_DB_QUERIES) || 3000; // per application and round, measured
const WARMUP = 1000; // per application and round, before
const BURST = 100; // queries per turn
const CONCURRENCY = 4;
const COST_NS = Number(process.env.BENCH_DB_COST_NS) || 2000;
const canTrace = process.getuid() === 0 && spawnSync('bpftrace', ['--version']).status === 0;

// The application: on each line `N` from its stdin, N queries, CONCURRENCY
// at a time; then `DONE ns`.
const APP = `
  const mysql = require('mysql2');
  if (process.env.DYNPROBE_BENCH_SUBSCRIBE) {
    const noop = () => {};
    require('node:diagnostics_channel').tracingChannel('mysql2:query')
      .subscribe({ start: noop, end: noop, asyncStart: noop, asyncEnd: noop, error: noop });
  }
  const costNs = BigInt(process.env.DYNPROBE_BENCH_COST_NS || 0);
  const spend = () => {
    if (costNs === 0n) return;
    const until = process.hrtime.bigint() + costNs;
    while (process.hrtime.bigint() < until);
  };
  const pool = mysql.createPool({ socketPath: process.env.DYNPROBE_BENCH_SOCKET, user: 'root', database: 'dynprobe',
    connectionLimit: ${CONCURRENCY} });
  let next = 0;
  function run(n) {
    const t0 = process.hrtime.bigint();
    let sent = 0;
    let done = 0;
    const one = () => {
      if (sent === n) return;
      sent++;
      spend();
      pool.query('SELECT id, name FROM items WHERE id = ?', [next++ & 7], (err) => {
        if (err) { console.error(err); process.exit(1); }
        if (++done === n) console.log('DONE ' + (process.hrtime.bigint() - t0));
        else one();
      });
    };
    for (let c = 0; c < Math.min(${CONCURRENCY}, n); c++) one();
  }
  let input = '';
  process.stdin.setEncoding('utf8').on('data', (chunk) => {
    input += chunk;
    let nl;
    while ((nl = input.indexOf('\\n')) >= 0) {
      const n = Number(input.slice(0, nl));
      input = input.slice(nl + 1);
      run(n);
    }
  });
  console.log('READY');
`;

function startApp(variant, socket) {
  const args = [...(variant.preload ? ['-r', path.join(ROOT, 'node.js')] : []), '-e', APP];
  const env = { ...process.env, DYNPROBE_BENCH_SOCKET: socket, ...variant.env };
  // From the checkout: mysql2 resolves from here, so dynprobe/node makes its provider.
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'], env, cwd: ROOT });
  const app = { child, lines: [], waiting: null };
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop();
    for (const line of parts) {
      if (app.waiting) {
        const w = app.waiting;
        app.waiting = null;
        w(line);
      } else app.lines.push(line);
    }
  });
  child.on('exit', (code) => {
    if (app.waiting) app.waiting(`EXIT ${code}`);
  });
  return app;
}

function nextLine(app) {
  if (app.lines.length > 0) return Promise.resolve(app.lines.shift());
  return new Promise((resolve) => (app.waiting = resolve));
}

// N queries; resolves with the ns they took in the application.
async function burst(app, n) {
  app.child.stdin.write(`${n}\n`);
  const line = await nextLine(app);
  const m = /^DONE (\d+)$/.exec(line);
  if (!m) throw new Error(`the application said ${JSON.stringify(line)}`);
  return Number(m[1]);
}

// The traced applications use a dynprobe directory of their own, so that
// their mysql2_ library has a path no other process maps; one bpftrace
// attached to it by path for the whole run traces each of them from its
// first instruction (as in bench/http.js).
const PROBES = ['query__start', 'query__done'];
async function startTracer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-bench-db-'));
  const made = spawnSync(process.execPath, ['-r', path.join(ROOT, 'node.js'), '-e', '0'], { env: { ...process.env, DYNPROBE_DIR: dir }, cwd: ROOT, encoding: 'utf8' });
  const build = fs.readdirSync(dir).find((f) => /^[0-9a-f]{40}$/.test(f) && fs.existsSync(path.join(dir, f, 'mysql2_')));
  if (made.status !== 0 || !build) throw new Error(`no mysql2_ library in ${dir}: ${made.stderr}`);
  const library = path.join(dir, build, 'mysql2_');
  const program = `BEGIN { printf("ATTACHED\\n"); } ${PROBES.map((p) => `usdt:${library}:mysql2_:${p}`).join(', ')} { @[probe] = count(); }`;
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
      for (const m of out.matchAll(/^@\[usdt:.*:mysql2_:(\w+)\]: (\d+)$/gm)) counts[m[1]] = Number(m[2]);
      return counts;
    },
  };
}

async function runRound(variants, socket, round) {
  const apps = [];
  try {
    const order = variants.map((_, k) => (k + round) % variants.length);
    for (const i of order) {
      apps[i] = startApp(variants[i], socket);
      const ready = await nextLine(apps[i]);
      if (ready !== 'READY') throw new Error(`application ${variants[i].label}: ${ready}`);
    }
    const next = random(round + 1);
    const turns = async (total, each) => {
      const turn = apps.map((_, i) => i);
      for (let b = 0; b < total / BURST; b++) {
        for (let k = turn.length - 1; k > 0; k--) {
          const j = Math.floor(next() * (k + 1));
          [turn[k], turn[j]] = [turn[j], turn[k]];
        }
        for (const i of turn) each(i, await burst(apps[i], BURST));
      }
    };
    await turns(WARMUP, () => {});
    const ns = apps.map(() => 0);
    const cpu0 = apps.map((a) => cpuNs(a.child.pid));
    await turns(QUERIES, (i, t) => {
      ns[i] += t;
    });
    const cpu = apps.map((a, i) => cpuNs(a.child.pid) - cpu0[i]);
    return { rates: ns.map((t) => (QUERIES * 1e9) / t), cpuNs: cpu.map((c) => c / QUERIES), rss: apps.map((a) => rssMiB(a.child.pid)) };
  } finally {
    for (const a of apps) if (a) a.child.kill();
  }
}

async function main() {
  const load = os.loadavg()[0];
  console.log(
    `MariaDB through mysql2: ${ROUNDS} rounds, each with fresh applications, ${QUERIES} queries from each in bursts of ${BURST} taking turns ` +
      `(after ${WARMUP} to warm up), a pool of ${CONCURRENCY} connections with ${CONCURRENCY} queries in flight, Node ${process.version}` +
      `${PIN ? `, everything on CPU ${CPU}` : ''}, load average ${load.toFixed(2)}`,
  );
  const db = await startMariaDB();
  const seed = spawnSync(process.execPath, ['-e', `
    const c = require('mysql2').createConnection({ socketPath: ${JSON.stringify(db.socket)}, user: 'root', database: 'dynprobe' });
    c.query("INSERT INTO items VALUES (0,'a'),(1,'b'),(2,'c'),(3,'d'),(4,'e'),(5,'f'),(6,'g'),(7,'h')", (err) => { if (err) throw err; c.end(); });`], { cwd: ROOT, encoding: 'utf8' });
  if (seed.status !== 0) throw new Error(`could not fill the table: ${seed.stderr}`);
  const variants = [
    { label: 'base: node app.js', env: {} },
    { label: 'base again (A/A: the noise)', env: {}, control: 'aa' },
    { label: 'loaded: -r dynprobe/node, untraced', preload: true, env: {}, loaded: true },
    { label: `known cost: base + ${COST_NS} ns/query`, env: { DYNPROBE_BENCH_COST_NS: String(COST_NS) }, control: 'cost' },
    { label: 'subscribed in-process, doing nothing', env: { DYNPROBE_BENCH_SUBSCRIBE: '1' } },
  ];
  let tracer = null;
  if (canTrace) {
    tracer = await startTracer();
    variants.push({ label: 'traced: bpftrace counting 2 probes', preload: true, env: tracer.env, traced: true });
  }
  const rates = variants.map(() => []);
  const cpu = variants.map(() => []);
  const rss = variants.map(() => []);
  let counts = {};
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const result = await runRound(variants, db.socket, round);
      variants.forEach((_, i) => {
        rates[i].push(result.rates[i]);
        cpu[i].push(result.cpuNs[i]);
        rss[i].push(result.rss[i]);
      });
    }
  } finally {
    if (tracer) counts = await tracer.stop();
    await db.stop();
  }
  const aaIndex = variants.findIndex((v) => v.control === 'aa');
  const ratios = (xs, i) => xs[i].map((x, r) => x / (i === aaIndex ? xs[0][r] : Math.sqrt(xs[0][r] * xs[aaIndex][r])));
  const stats = variants.map((_, i) => ({ rate: medianWithInterval(ratios(rates, i)), cpu: medianWithInterval(ratios(cpu, i)) }));
  console.log('  per round, each application against the two base applications of the round (base again: against base); over the rounds:');
  console.log('  the median ratio (Hodges-Lehmann) and its 95% confidence interval (bootstrap); queries/s, CPU and RSS: medians');
  console.log(`  ${''.padEnd(38)} ${'queries/s'.padStart(9)}  ${'vs base'.padEnd(24)}  ${'app CPU/query'.padStart(13)}  ${'vs base'.padEnd(24)}  RSS`);
  variants.forEach((v, i) => {
    const rate = median(rates[i]).toFixed(0).padStart(9);
    const us = `${(median(cpu[i]) / 1000).toFixed(2)} us`.padStart(13);
    console.log(`  ${v.label.padEnd(38)} ${rate}  ${(i ? fmt(stats[i].rate) : '').padEnd(24)}  ${us}  ${(i ? fmt(stats[i].cpu) : '').padEnd(24)}  ${median(rss[i]).toFixed(1)} MiB`);
  });
  const aa = stats[aaIndex];
  const loaded = stats[variants.findIndex((v) => v.loaded)];
  const cost = stats[variants.findIndex((v) => v.control === 'cost')];
  const spread = (r) => `±${(((r.hi - r.lo) / 2) * 100).toFixed(1)}%`;
  const worst = (r, sign) => {
    const bound = sign > 0 ? r.hi - 1 : 1 - r.lo;
    return bound > 0 ? `at most ${(bound * 100).toFixed(1)}% ${sign > 0 ? 'higher' : 'lower'}` : `no ${sign > 0 ? 'higher' : 'lower'}`;
  };
  const shown = (r) => (within1(r) ? 'within 1%: shown' : r.lo > 1 || r.hi < 1 ? 'differs from base' : 'within 1%: not shown at this noise');
  console.log(`  the noise (A/A, two identical applications): queries/s ${spread(aa.rate)}, CPU/query ${spread(aa.cpu)} (half the 95% interval)`);
  console.log(`  loaded, untraced: queries/s ${worst(loaded.rate, -1)}, CPU/query ${worst(loaded.cpu, 1)} (95% bounds)`);
  console.log(`  loaded, untraced, both ways: queries/s ${shown(loaded.rate)}; CPU/query ${shown(loaded.cpu)}`);
  const expected = 1 + COST_NS / median(cpu[0]);
  console.log(
    `  known cost (at least ${COST_NS} ns, ${((expected - 1) * 100).toFixed(1)}% of base's CPU/query): CPU/query ${cost.cpu.lo > 1 ? 'seen' : 'not seen'}, ` +
      `queries/s ${cost.rate.hi < 1 ? 'seen' : 'not seen'}`,
  );
  if (tracer) {
    const fired = (WARMUP + QUERIES) * ROUNDS;
    console.log(`  bpftrace counted query__start ${counts.query__start || 0}, query__done ${counts.query__done || 0} (of ${fired} queries)`);
  } else {
    console.log('  traced: SKIPPED: needs root and bpftrace (scripts/provision-tracers.sh)');
  }
  console.log(`  load average at the end ${os.loadavg()[0].toFixed(2)}`);
  if (process.env.BENCH_DB_JSON) {
    const byVariant = variants.map((v, i) => ({ label: v.label, rates: rates[i], cpuNsPerQuery: cpu[i], rssMiB: rss[i] }));
    fs.writeFileSync(process.env.BENCH_DB_JSON, `${JSON.stringify({ node: process.version, ROUNDS, QUERIES, WARMUP, BURST, COST_NS, variants: byVariant })}\n`);
  }
}

runPinned(__filename, main);
