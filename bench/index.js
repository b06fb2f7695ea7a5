'use strict';
// `npm run bench`: dynprobe against its baselines, measured in this process
// and this run, with medians over several repetitions. Prints ratios; the
// targets are in the issue tracker and the README, not asserted here (shared
// machines are noisy).

const { spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const dynprobe = require('..');
const stub = require('dtrace-provider-stub');

const REPS = 7;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const canTrace = process.getuid() === 0 && spawnSync('bpftrace', ['--version']).status === 0;

// ns per iteration of `loop(n)`, median over REPS runs.
function nsPerOp(loop, n) {
  loop(Math.min(n, 1e5)); // warm up
  const runs = [];
  for (let r = 0; r < REPS; r++) {
    const t = process.hrtime.bigint();
    loop(n);
    runs.push(Number(process.hrtime.bigint() - t) / n);
  }
  return median(runs);
}

function row(label, value, unit, baseline, target) {
  const ratio = baseline ? `  ${(value / baseline).toFixed(2)}x` : '';
  const goal = target ? `  (target ${target})` : '';
  console.log(`  ${label.padEnd(46)} ${value.toFixed(value < 10 ? 2 : 1).padStart(9)} ${unit}${ratio}${goal}`);
}

function ratioRow(label, ratio, target) {
  const goal = target ? `  (target ${target})` : '';
  console.log(`  ${label.padEnd(46)} ${ratio.toFixed(2).padStart(9)}x${goal}`);
}

function rss() {
  const pages = Number(fs.readFileSync('/proc/self/statm', 'utf8').split(' ')[1]);
  return (pages * 4096) / (1024 * 1024);
}
const fds = () => fs.readdirSync('/proc/self/fd').length;
const heap = () => process.memoryUsage().heapUsed / (1024 * 1024);

function disabledFire() {
  console.log('\nDisabled fire (nothing traces), ns per call');
  const n = 5e7;
  function empty() {}
  const sp = stub.createDTraceProvider('benchstub');
  const sprobe = sp.addProbe('p', 'int', 'char *');
  sp.enable();
  const dp = dynprobe.createDTraceProvider('benchdis');
  const probe = dp.addProbe('p', 'int', 'char *');
  dp.enable();
  // The least a semaphore check costs in V8: one read of a Uint32Array over
  // memory outside the heap, in the same loop.
  const floorCheck = { sema: new Uint32Array(new ArrayBuffer(4)), fire(cb) { if (this.sema[0] !== 0) cb(); } };
  const base = nsPerOp((k) => { for (let i = 0; i < k; i++) empty(() => [i, 'hello']); }, n);
  const floor = nsPerOp((k) => { for (let i = 0; i < k; i++) floorCheck.fire(() => [i, 'hello']); }, n);
  const stubProbe = nsPerOp((k) => { for (let i = 0; i < k; i++) sprobe.fire(() => [i, 'hello']); }, n);
  const ours = nsPerOp((k) => { for (let i = 0; i < k; i++) probe.fire(() => [i, 'hello']); }, n);
  const stubProvider = nsPerOp((k) => { for (let i = 0; i < k; i++) sp.fire('p', () => [i, 'hello']); }, n);
  const oursProvider = nsPerOp((k) => { for (let i = 0; i < k; i++) dp.fire('p', () => [i, 'hello']); }, n);
  row('empty function call', base, 'ns');
  row('dtrace-provider 0.8.8 stub: probe.fire', stubProbe, 'ns');
  row('a bare Uint32Array check (the least a read costs)', floor, 'ns', stubProbe);
  row('dynprobe: probe.fire', ours, 'ns', stubProbe, '<= 1.25x the stub');
  row('  against the bare check', ours, 'ns', floor);
  row('dtrace-provider 0.8.8 stub: provider.fire', stubProvider, 'ns');
  row('dynprobe: provider.fire', oursProvider, 'ns', stubProvider, '<= 1.25x the stub');
  console.log('  (node-usdt, for reference: 88 ns per disabled fire)');
  dp.disable();
}

// Median us of create + addProbe x2 + enable: for new definitions (a new
// library file each) and for one whose file is cached.
function createTimes() {
  const once = (name) => {
    const t = process.hrtime.bigint();
    const p = dynprobe.createDTraceProvider(name);
    p.addProbe('a', 'int', 'char *');
    p.addProbe('b', 'json');
    p.enable();
    const us = Number(process.hrtime.bigint() - t) / 1000;
    p.disable();
    return us;
  };
  const stamp = `${process.pid}x${Date.now().toString(36)}`;
  const first = median(Array.from({ length: 50 }, (_, i) => once(`fresh${stamp}n${i}`)));
  once('cached');
  const cached = median(Array.from({ length: 2000 }, () => once('cached')));
  return { first, cached };
}

// The same in a child process whose cache directory is on tmpfs: creating a
// file is most of a first creation, and its cost is the file system's.
function createTimesOnTmpfs() {
  const dir = fs.mkdtempSync('/dev/shm/dynprobe-bench-');
  try {
    const out = execFileSync(process.execPath, [__filename], {
      env: { ...process.env, DYNPROBE_DIR: dir, DYNPROBE_BENCH_CHILD: 'create' },
      encoding: 'utf8',
    });
    return JSON.parse(out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function createEnable() {
  console.log('\nCreate + addProbe x2 + enable, us');
  const here = createTimes();
  const tmpfs = createTimesOnTmpfs();
  row('first creation (new library file), default dir', here.first, 'us', null, '< 100 us');
  row('first creation, cache dir on tmpfs', tmpfs.first, 'us', null, '< 100 us');
  row('file already cached', here.cached, 'us', null, '< 30 us');
  console.log('  (node-usdt, for reference: 120 us per provider)');
}

// Starts bpftrace counting hits of each [provider, probe] in process `pid`;
// resolves once its BEGIN probe has fired (every probe is attached by then:
// bpftrace says "Attaching" before it attaches, and a semaphore is set before
// the BPF program runs), with a function that stops it and returns the
// counts by provider.
async function countHits(pid, ...probes) {
  const counters = probes.map(([prov, name]) => `usdt:*:${prov}:${name} { @${prov} = count(); }`).join(' ');
  const program = `BEGIN { printf("__READY__\\n"); } ${counters}`;
  const bt = spawn('bpftrace', ['-p', String(pid), '-e', program], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  bt.stdout.on('data', (d) => (out += d));
  bt.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => bt.on('close', resolve));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bpftrace did not attach: ${out}`)), 30000);
    const check = () => (out.includes('__READY__') ? (clearTimeout(timer), resolve()) : setTimeout(check, 20));
    check();
  });
  // Resolves to the counts by provider.
  return async () => {
    bt.kill('SIGINT');
    await exited;
    const count = (prov) => {
      const m = new RegExp(`@${prov}: (\\d+)`).exec(out);
      return m ? Number(m[1]) : 0;
    };
    return Object.fromEntries(probes.map(([prov]) => [prov, count(prov)]));
  };
}

async function untilTraced(probe) {
  for (let start = Date.now(); Date.now() - start < 30000; ) {
    let traced = false;
    probe.fire(() => ((traced = true), null));
    if (traced) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('probe was never traced');
}

// Compiles the C baselines: a program, and an N-API addon for the same probe
// in this process (null when node's headers are missing).
function compileCProbes() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-bench-'));
  const flags = ['-O2', '-mno-red-zone'];
  const bin = path.join(dir, 'c-probe');
  execFileSync('cc', [...flags, '-o', bin, path.join(__dirname, 'c-probe.c')]);
  const headers = path.join(path.dirname(process.execPath), '..', 'include', 'node');
  if (!fs.existsSync(path.join(headers, 'node_api.h'))) return { bin, addon: null };
  const addon = path.join(dir, 'c-probe.node');
  execFileSync('cc', [...flags, '-shared', '-fPIC', '-I', headers, '-o', addon, path.join(__dirname, 'c-probe-addon.c')]);
  return { bin, addon: require(addon) };
}

async function cTracedFire(bin, n) {
  const child = spawn(bin, [String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.on('close', resolve));
  while (!/READY/.test(out)) await new Promise((r) => setTimeout(r, 10));
  const stop = await countHits(child.pid, ['cprobe', 'fire']);
  child.stdin.end('go\n');
  await exited;
  const hits = (await stop()).cprobe;
  return { ns: Number(out.trim().split('\n').pop()), hits };
}

// Disabled fires in call sites compiled now (new functions, so that V8 reuses
// no code compiled earlier), ns per call: the call shapes, and the bare
// Uint32Array check with a callback in its branch.
let loopCopies = 0;
function disabledShapes({ probe, provider, floor }) {
  const n = 3e7;
  const make = (body) => new Function('probe', 'provider', 'floor', 'fn', `return (k) => { for (let i = 0; i < k; i++) ${body}; }; // ${++loopCopies}`);
  const fn = (i, s) => [i, s];
  const shape = (body) => nsPerOp(make(body)(probe, provider, floor, fn), n);
  return {
    closure: shape("probe.fire(() => [i, 'hello'])"),
    provider: shape("provider.fire('p', () => [i, 'hello'])"),
    madeOnce: shape("probe.fire(fn, i, 'hello')"),
    floor: shape("floor.fire(() => [i, 'hello'])"),
    floorMadeOnce: shape('floor.fire(fn)'),
  };
}

function afterTracingRows(before, after) {
  console.log('\nDisabled fire before and after a tracing session (bpftrace attached to another probe and');
  console.log('detached, semaphores back to 0), in call sites compiled before and after it, ns per call');
  const rows = [
    ['closure', 'probe.fire(() => [i, "hello"])'],
    ['provider', 'provider.fire("p", () => [i, "hello"])'],
    ['madeOnce', 'probe.fire(fn, i, "hello"), fn made once'],
    ['floor', 'a bare Uint32Array check, its branch has run'],
    ['floorMadeOnce', '  the same with its callback made once'],
  ];
  for (const [key, label] of rows) {
    console.log(`  ${label.padEnd(46)} ${before[key].toFixed(2).padStart(6)} -> ${after[key].toFixed(2).padStart(6)} ns  ${(after[key] / before[key]).toFixed(2)}x`);
  }
  console.log('  (once a fire method\'s traced branch has run, V8 compiles it into every caller from then on: a');
  console.log('  callback closure made at the call site is passed on in it, so it is allocated on every call, and');
  console.log('  the check is no longer hoisted out of the loop. The bare check pays the same: no JavaScript can');
  console.log('  avoid it. A callback made once, with the values as extra arguments, allocates nothing.)');
}

// dynprobe, the C probe inside this process (a loop in C, and one N-API
// call per fire) and the C program take turns, TURNS times: each ratio
// compares runs made a second apart, and the medians of the ratios are shown.
const TURNS = 11;
async function tracedFire() {
  console.log('\nTraced fire (bpftrace 0.17 attached, @c = count()), ns per fire');
  if (!canTrace) return console.log('  SKIPPED: needs root and bpftrace (scripts/provision-tracers.sh)');
  const n = 200000;
  const { bin, addon } = compileCProbes();
  // Never traced: its disabled fires are measured before and after.
  const quiet = dynprobe.createDTraceProvider('benchquiet');
  const quietProbe = quiet.addProbe('p', 'int', 'char *');
  quiet.enable();
  const floor = { sema: new Uint32Array(new ArrayBuffer(4)), fire(cb) { if (this.sema[0] !== 0) cb(); } };
  const shapes = { probe: quietProbe, provider: quiet, floor };
  const beforeTracing = disabledShapes(shapes);
  const dp = dynprobe.createDTraceProvider('benchtrace');
  const probe = dp.addProbe('p', 'int', 'char *');
  dp.enable();
  const stop = await countHits(process.pid, ['benchtrace', 'p'], ...(addon ? [['cprobe', 'fire']] : []));
  await untilTraced(probe);
  for (let start = Date.now(); addon && !addon.enabled() && Date.now() - start < 30000; ) {
    await new Promise((r) => setTimeout(r, 10));
  }
  // Plain functions: V8 compiles a loop inside an async function worse.
  const fires = (k) => { for (let i = 0; i < k; i++) probe.fire(() => [i, 'hello']); };
  const firesOneCall = (k) => { for (let i = 0; i < k; i++) addon.fireOne(i, 'hello'); };
  const timed = (f) => {
    const t = process.hrtime.bigint();
    f(n);
    return Number(process.hrtime.bigint() - t) / n;
  };
  // Warm up (V8 compiles the loops), then take turns.
  timed(fires);
  if (addon) timed(firesOneCall);
  const ours = [], inNode = [], oneCall = [], program = [];
  for (let r = 0; r < TURNS; r++) {
    ours.push(timed(fires));
    if (addon) {
      inNode.push(addon.fire(n));
      oneCall.push(timed(firesOneCall));
    }
    program.push(await cTracedFire(bin, n));
  }
  // A tracing session takes every shape's traced path: the provider's fire
  // and extra arguments too.
  const shapeFires = 10000;
  const fn = (i, s) => [i, s];
  for (let i = 0; i < shapeFires; i++) probe.fire(fn, i, 'hello');
  for (let i = 0; i < shapeFires; i++) dp.fire('p', () => [i, 'hello']);
  for (let i = 0; i < shapeFires; i++) dp.fire('p', fn, i, 'hello');
  const counts = await stop();
  const hits = counts.benchtrace - 3 * shapeFires;
  // The floor's branch runs too, as often as a traced probe's would.
  floor.sema[0] = 1;
  for (let i = 0; i < n; i++) floor.fire(() => [i, 'hello']);
  floor.sema[0] = 0;
  for (let start = Date.now(); probe._sema[0] !== 0 && Date.now() - start < 30000; ) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const afterTracing = disabledShapes(shapes);
  dp.disable();
  quiet.disable();
  const ratio = (xs, ys) => median(xs.map((x, i) => x / ys[i]));
  const cns = program.map((x) => x.ns);
  row('C probe on a nop5 site (sys/sdt.h style), C program', median(cns), 'ns');
  row('dynprobe: probe.fire(() => [i, "hello"])', median(ours), 'ns');
  ratioRow('  against the C program', ratio(ours, cns), '<= 1.2x the C probe');
  if (addon) {
    row('the same C probe fired inside this node process', median(inNode), 'ns');
    ratioRow('  dynprobe against that', ratio(ours, inNode));
    // The floor of any addon: JS calls native code once per fire.
    row('the C probe fired by one N-API call per fire', median(oneCall), 'ns');
    ratioRow('  against the C probe inside node', ratio(oneCall, inNode));
    ratioRow('  dynprobe against that', ratio(ours, oneCall));
  } else {
    console.log('  (no node headers: the in-process C baselines are skipped)');
  }
  const inNodeHits = addon ? `, C in node ${counts.cprobe} of ${n * (2 * TURNS + 1)}` : '';
  console.log(`  hits counted by bpftrace: dynprobe ${hits} of ${n * (TURNS + 1)} fires, C program ${program.map((x) => x.hits).join('/')} of ${n} each${inNodeHits}`);
  if (addon && counts.cprobe !== n * (2 * TURNS + 1)) process.exitCode = 1;
  if (program.some((x) => x.hits !== n)) process.exitCode = 1;
  console.log('  (node-usdt, for reference: 1540 ns per traced fire)');
  if (hits !== n * (TURNS + 1)) process.exitCode = 1;
  afterTracingRows(beforeTracing, afterTracing);
}

// Lets N-API finalizers run (Node defers them to the event loop), then
// collects garbage: what stays is what leaked.
async function settle() {
  for (let i = 0; i < 3; i++) {
    await new Promise(setImmediate);
    global.gc();
  }
}

// `count` create/enable/disable cycles, yielding to the event loop every
// `yieldEvery` cycles (0: never).
async function cycles(count, yieldEvery) {
  for (let i = 0; i < count; i++) {
    const p = dynprobe.createDTraceProvider('benchmem');
    p.addProbe('a', 'int');
    p.enable();
    p.disable();
    if (yieldEvery !== 0 && i % yieldEvery === yieldEvery - 1) await new Promise(setImmediate);
  }
}

// In a child process of its own (a shape must not find memory that another
// one freed): RSS, fds and heap before and after `count` cycles.
async function cyclesChild(yieldEvery) {
  const count = 100000;
  // V8 sizes its heaps during the first cycles: warm up in the same shape.
  await cycles(20000, yieldEvery);
  await settle();
  const before = { rss: rss(), fds: fds(), heap: heap() };
  await cycles(count, yieldEvery);
  const peak = rss();
  await settle();
  return { count, before, peak, after: { rss: rss(), fds: fds(), heap: heap() } };
}

async function memory() {
  console.log('\nMemory and descriptors (after a warm-up, with gc)');
  for (const [label, yieldEvery] of [['a loop that never yields', 0], ['a loop that yields every 100 cycles', 100]]) {
    for (let run = 0; run < 2; run++) {
      const out = execFileSync(process.execPath, ['--expose-gc', __filename], {
        env: { ...process.env, DYNPROBE_BENCH_CHILD: `cycles:${yieldEvery}` },
        encoding: 'utf8',
      });
      const { count, before, after } = JSON.parse(out);
      console.log(`  ${count} create/enable/disable cycles, ${label}: RSS ${before.rss.toFixed(1)} -> ${after.rss.toFixed(1)} MiB (${(after.rss - before.rss).toFixed(2)} MiB), fds ${before.fds} -> ${after.fds}, V8 heap in use ${before.heap.toFixed(1)} -> ${after.heap.toFixed(1)} MiB  (target: < 2 MiB, 0 fds)`);
    }
  }
  console.log('  (what a loop that never yields keeps is Node\'s own record of each semaphore buffer, ~190 bytes,');
  console.log('  freed at the next turn of the event loop: malloc keeps the pages, and reuses them)');
  if (!canTrace) return console.log('  traced fires: SKIPPED: needs root and bpftrace');
  const fires = 5000000;
  const dp = dynprobe.createDTraceProvider('benchmem2');
  const probe = dp.addProbe('s', 'char *');
  dp.enable();
  const stop = await countHits(process.pid, ['benchmem2', 's']);
  await untilTraced(probe);
  for (let i = 0; i < 100000; i++) probe.fire(() => [`string ${i & 1023}`]);
  await settle();
  const before = { rss: rss(), fds: fds() };
  for (let i = 0; i < fires; i++) probe.fire(() => [`string ${i & 1023}`]);
  await settle();
  const after = { rss: rss(), fds: fds() };
  const hits = (await stop()).benchmem2;
  dp.disable();
  const counted = fires + 100000;
  console.log(`  ${fires} traced fires with a string: RSS ${before.rss.toFixed(1)} -> ${after.rss.toFixed(1)} MiB (${(after.rss - before.rss).toFixed(2)} MiB), fds ${before.fds} -> ${after.fds}, bpftrace counted ${hits} of ${counted}`);
  if (hits !== counted) process.exitCode = 1;
}

async function main() {
  const child = process.env.DYNPROBE_BENCH_CHILD;
  if (child === 'create') return console.log(JSON.stringify(createTimes()));
  if (child && child.startsWith('cycles:')) return console.log(JSON.stringify(await cyclesChild(Number(child.slice(7)))));
  console.log(`dynprobe benchmark (node ${process.version}, ${os.cpus()[0].model}, medians of ${REPS})`);
  disabledFire();
  createEnable();
  await tracedFire();
  await memory();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
