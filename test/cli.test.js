'use strict';
// test-needs: tracer
// The `dynprobe` CLI against real processes: `list` as root and as an
// unprivileged user (nobody, for its own process), and `trace` with real
// tracers. Tests that need root or a tracer are skipped loudly without them,
// and fail under CI=true.

const test = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { start, stop, unavailable, TRACERS } = require('./tracers/harness');
const { gate, bpftraceUnavailable } = require('./fixtures/helpers');

const ROOT = path.join(__dirname, '..');
const TARGET = path.join('test', 'fixtures', 'users', 'target.js');
const IS_ROOT = process.getuid() === 0;
const AS_NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--'];
const LIBRARY = /\/[0-9a-f]{40}\/clitest$/;

const rootGate = gate('CLI tests as user nobody', IS_ROOT ? null : 'they need root (setpriv)');

// A plain sys/sdt.h program (test/fixtures/sdt-program.c), built where the
// CLI looks for probe libraries (DIR/<40 hex>/NAME): its notes have no
// declared types. Null, with the reason, without a compiler or sys/sdt.h.
function buildSdtProgram() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-sdt-'));
  const sub = path.join(dir, 'e'.repeat(40));
  fs.mkdirSync(sub);
  const bin = path.join(sub, 'sdtprog');
  const r = spawnSync('cc', ['-O1', '-pthread', '-o', bin, path.join(__dirname, 'fixtures', 'sdt-program.c')], { encoding: 'utf8' });
  if (r.status === 0) return { dir, bin, why: null };
  fs.rmSync(dir, { recursive: true, force: true });
  const why = /sdt\.h/.test(r.stderr || '') ? 'no sys/sdt.h (apt-get install systemtap-sdt-dev)' : `cc failed: ${r.stderr || r.error}`;
  return { dir: null, bin: null, why };
}
const sdtProgram = buildSdtProgram();
test.after(() => sdtProgram.dir && fs.rmSync(sdtProgram.dir, { recursive: true, force: true }));
const sdtGate = gate('CLI tests with a plain sys/sdt.h program', sdtProgram.why);
const bpftraceGate = gate('CLI trace tests', bpftraceUnavailable());
const sidGate = gate('CLI trace tests with bpftrace 0.27', unavailable('bpftrace-0.27'));
const dtraceGate = gate('CLI trace tests with DTrace', unavailable('dtrace'));

// The files the CLI and the target need, copied where user nobody can read
// them (the checkout may not be readable by other users).
function copyForNobody() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-cli-'));
  for (const rel of ['index.js', 'package.json', 'lib', 'bin', path.join('build', 'dynprobe.node'), TARGET]) {
    fs.cpSync(path.join(ROOT, rel), path.join(dir, rel), { recursive: true });
  }
  spawnSync('chmod', ['-R', 'a+rX', dir]);
  return dir;
}

// An environment in which a process run as nobody picks its own cache directory.
function nobodyEnv() {
  const env = { ...process.env, HOME: '/tmp' };
  delete env.DYNPROBE_DIR;
  delete env.XDG_RUNTIME_DIR;
  return env;
}

// Starts the target (from `root`, as nobody if asked); resolves with its pid.
async function startTarget({ root = ROOT, nobody = false, env = {} } = {}) {
  const cmd = [process.execPath, path.join(root, TARGET)];
  const childEnv = { ...(nobody ? nobodyEnv() : process.env), ...env };
  delete childEnv.NODE_TEST_CONTEXT; // the target is no test file
  const proc = start(nobody ? [...AS_NOBODY, ...cmd] : cmd, { env: childEnv });
  const line = await proc.waitFor(/^READY \d+$/, 30000, 'target');
  proc.pid = Number(line.split(' ')[1]);
  return proc;
}

async function finish(proc) {
  proc.child.stdin.end();
  await stop(proc, 5000);
}

function cli(args, { root = ROOT, nobody = false, env = process.env, timeout = 120000 } = {}) {
  const cmd = [process.execPath, path.join(root, 'bin', 'dynprobe.js'), ...args.map(String)];
  const argv = nobody ? [...AS_NOBODY, ...cmd] : cmd;
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: nobody ? nobodyEnv() : env, timeout });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, all: `status ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}` };
}

const { RecordReader, Assembler } = require('../lib/cli/records');
const { build } = require('../lib/cli/program');

const jsonLines = (stdout) => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));

// A probe read by bpftrace 0.17: an int and two strings, one clause per string.
function assemblerFor(kinds = ['int', 'strint', 'strint']) {
  const probes = [{ index: 0, provider: 'p', probe: 'x', module: 'p', label: 'p:x', kinds, omitted: 0, clauses: [[1], [2]] }];
  return new Assembler({ clock: 'monotonic', probes }, { pid: process.pid, strlen: 200 });
}

// An address mapped in this process (strings point into memory like it).
const MAPPED = BigInt(`0x${fs.readFileSync('/proc/self/maps', 'utf8').split('-')[0]}`) + 16n;

test('--help names every command and the two paths (kernel, process); an unknown option is a usage error', () => {
  for (const args of [['--help'], ['help']]) {
    const r = cli(args);
    assert.strictEqual(r.status, 0, r.all);
    for (const command of ['list', 'trace', 'record', 'dump']) assert.match(r.stdout, new RegExp(`^ {2}dynprobe ${command} `, 'm'));
    assert.match(r.stdout, /--via PATH +kernel: a kernel tracer only \(root\); process: the/);
    assert.match(r.stdout, /--bpftrace PATH/);
    assert.match(r.stdout, /--dtrace PATH/);
  }
  const bad = cli(['trace', '1', '--nonsense']);
  assert.strictEqual(bad.status, 2, bad.all);
  assert.match(bad.stderr, /--nonsense/);
});

test('records: split on control characters, strings keep their newlines, other text passes through', () => {
  const records = [];
  const text = [];
  const reader = new RecordReader({ onRecord: (r) => records.push(r), onText: (l) => text.push(l) });
  const stream = Buffer.from('Attaching 2 probes...\n\x1e0\x1f1\x1fa\nb\x1d\n\x1eready\x1d\nLost 3 events\n');
  for (let i = 0; i < stream.length; i += 5) reader.push(stream.subarray(i, i + 5)); // any chunking
  reader.end();
  assert.deepStrictEqual(records, [['0', '1', 'a\nb'], ['ready']]);
  assert.deepStrictEqual(text, ['Attaching 2 probes...', 'Lost 3 events']);
});

test('records: the clauses of a firing are joined by fingerprint, whatever their order, and a half-seen firing is dropped', () => {
  const a = assemblerFor();
  const rec = (clause, t, n, str) => ['0', String(clause), '7', String(t), String(n), String(MAPPED), String(MAPPED + 8n), str];
  // Firing n=1 was caught while attaching: only its second clause printed.
  assert.deepStrictEqual(a.add(rec(1, 100, 1, '{"n":1}')), []);
  // Firing 2 arrives clause 1 first (another CPU's buffer), then clause 0.
  assert.deepStrictEqual(a.add(rec(1, 201, 2, '{"n":2}')), []);
  const [two] = a.add(rec(0, 200, 2, 'two'));
  assert.deepStrictEqual(two.args.map((x) => x.value), ['2', 'two', '{"n":2}']);
  assert.deepStrictEqual(two.args.map((x) => x.type), ['int', 'string', 'string']);
  const [three] = [...a.add(rec(0, 300, 3, 'three')), ...a.add(rec(1, 301, 3, '{"n":3}'))];
  assert.deepStrictEqual(three.args.map((x) => x.value), ['3', 'three', '{"n":3}']);
  assert.strictEqual(three.tid, 7);

  // Raw values decode by kind: signed, and unsigned 8-byte values that point nowhere.
  const b = assemblerFor(['int', 'strint']);
  b.plan.probes[0].clauses = [[1]];
  const [f] = b.add(['0', '0', '7', '5', String(2n ** 64n - 5n), String(2n ** 64n - 1n), '']);
  assert.deepStrictEqual(f.args, [{ type: 'int', value: '-5' }, { type: 'uint', value: '18446744073709551615' }]);
});

test('program: bpftrace 0.17 reads one string per clause behind a gate; DTrace one clause per probe', () => {
  const arg = (spec) => {
    const [size, location] = spec.split('@');
    return { spec, size: Math.abs(Number(size)), signed: size.startsWith('-'), float: false, location, types: [] };
  };
  const entry = { provider: 'p', module: 'p', storage: 'file', tracerPath: '/lib/p', probes: [] };
  const probe = { name: 'x', args: ['-8@%rdi', '8@%rsi', '8@%rdx'].map(arg) };
  entry.probes.push(probe);
  const old = { family: 'bpftrace', maxArgs: 6, stringsPerClause: 1, perLibrary: false };
  const { text, plan } = build([{ entry, probe }], old, [entry], 42);
  assert.deepStrictEqual(plan.probes[0].clauses, [[1], [2]]);
  const clauses = text.split('\n').filter((l) => l.startsWith('usdt:/lib/p:p:x /@dpgo/ {'));
  assert.strictEqual(clauses.length, 2, text);
  assert.ok(clauses.every((c) => (c.match(/str\(/g) || []).length === 1), text);
  assert.match(text, /^BEGIN \{ @dpgo = 1; /);
  const dtrace = build([{ entry, probe }], { family: 'dtrace', maxArgs: 10, stringsPerClause: Infinity, perLibrary: true }, [entry], 42);
  assert.match(dtrace.text, /^p\$target:::x$/m);
  assert.strictEqual((dtrace.text.match(/copyinstr/g) || []).length, 2);
});

test('list shows a process, its providers, probes with their declared types, and tracer commands that read each type its way', async () => {
  const target = await startTarget();
  try {
    const pid = target.pid;
    const r = cli(['list', pid]);
    assert.strictEqual(r.status, 0, r.all);
    const out = r.stdout;
    assert.match(out, new RegExp(`^PID ${pid}  ${process.execPath} .*target\\.js$`, 'm'));
    assert.match(out, /^ {2}provider clitest {2}\(module clitest, file\)$/m);
    assert.match(out, /^ {4}library {2}\/\S+\/[0-9a-f]{40}\/clitest$/m);
    // As declared (the library records it), not as the note's sizes say.
    assert.match(out, /^ {6}tick\(int, char \*, json\)$/m);
    assert.match(out, /^ {6}tock\(uint8_t, int32_t, uint64_t\)$/m);
    assert.match(out, /^ {6}seven\(int(, int){6}\)$/m);
    assert.match(out, /^ {6}ping\(char \*\)$/m);
    assert.ok(out.includes(`dynprobe trace ${pid} 'clitest:*'`), out);
    assert.ok(out.includes(`bpftrace -p ${pid} -e 'usdt:*:clitest:tick { printf("tick %ld %s %s\\n", arg0, str(arg1), str(arg2)); }'`), out);
    assert.ok(out.includes(`dtrace -q -n 'clitest$target:::tick { printf("tick %d %s %s\\n", arg0, copyinstr(arg1), copyinstr(arg2)); }' -p ${pid}`), out);
    assert.match(out, new RegExp(`perf probe -x \\S+/clitest sdt_clitest:tick\\n\\s+perf record -e sdt_clitest:tick -p ${pid}`));
    assert.ok(out.includes(`gdb -p ${pid} -ex 'break -probe-stap clitest:tick' -ex continue`), out);
    assert.doesNotMatch(out, /char \*\|uint64_t/);
    assert.doesNotMatch(out, /declared types not used/);
  } finally {
    await finish(target);
  }
});

test('records: declared strings are never taken for JSON, declared JSON is parsed, JSON cut short stays the string it is', () => {
  const { formatLine, formatJson } = require('../lib/cli/format');
  const a = assemblerFor(['str', 'json', 'uint']);
  a.plan.probes[0].clauses = [[0, 1]];
  const json = '{"n":1,"ok":true}';
  // A declared char * holding JSON, a declared json, and a uint64_t that
  // equals a mapped address (still a number).
  const [f] = a.add(['0', '0', '7', '5', String(MAPPED), String(MAPPED), String(MAPPED), json, json]);
  assert.deepStrictEqual(f.args.map((x) => x.type), ['string', 'json', 'uint']);
  assert.deepStrictEqual(f.args[1].value, { n: 1, ok: true });
  assert.match(formatLine(f), / p:x "\{\\"n\\":1,\\"ok\\":true\}" \{"n":1,"ok":true\} \d+$/);
  assert.match(formatLine(f, { pretty: true }), / p:x "\{.*\}"\n {4}\{\n {6}"n": 1,\n {6}"ok": true\n {4}\} \d+$/);
  assert.deepStrictEqual(JSON.parse(formatJson(f, 1)).args, [json, { n: 1, ok: true }, Number(MAPPED)]);
  assert.deepStrictEqual(JSON.parse(formatJson(f, 1)).types, ['string', 'json', 'uint']);
  // Cut at the tracer's string limit (200 bytes here): not JSON any more.
  const long = JSON.stringify({ s: 'x'.repeat(300) }).slice(0, 199);
  const [cut] = a.add(['0', '0', '7', '6', '1', '1', '1', 'a', long]);
  assert.deepStrictEqual([cut.args[1].type, cut.args[1].truncated, cut.args[1].value], ['string', true, long]);
  assert.ok(formatLine(cut).endsWith('"… 1'), formatLine(cut));
  // Without a record (strint), JSON-looking strings are shown as JSON, as before.
  const old = assemblerFor(['strint']);
  old.plan.probes[0].clauses = [[0]];
  const [g] = old.add(['0', '0', '7', '5', String(MAPPED), json]);
  assert.deepStrictEqual(g.args[0], { type: 'string', value: json, truncated: false, guessed: true });
  assert.match(formatLine(g), / p:x \{"n":1,"ok":true\}$/);
});

test('list --json describes every probe for scripts', async () => {
  const target = await startTarget();
  try {
    const r = cli(['list', target.pid, '--json']);
    assert.strictEqual(r.status, 0, r.all);
    const [proc, ...others] = JSON.parse(r.stdout);
    assert.strictEqual(others.length, 0);
    assert.strictEqual(proc.pid, target.pid);
    assert.deepStrictEqual(proc.providers.map((p) => p.provider).sort(), ['cliother', 'clitest']);
    const clitest = proc.providers.find((p) => p.provider === 'clitest');
    assert.strictEqual(clitest.module, 'clitest');
    assert.strictEqual(clitest.storage, 'file');
    assert.match(clitest.path, LIBRARY);
    assert.strictEqual(clitest.tracerPath, clitest.path);
    const probes = Object.fromEntries(clitest.probes.map((p) => [p.name, p]));
    assert.deepStrictEqual(Object.keys(probes), ['tick', 'tock', 'seven']);
    assert.deepStrictEqual(probes.tock.args.map((a) => a.type), ['uint8_t', 'int32_t', 'uint64_t']);
    assert.deepStrictEqual(probes.tick.declared, ['int', 'char *', 'json']);
    assert.deepStrictEqual(probes.tick.args.map((a) => [a.type, a.declared, a.types.join('|')]), [
      ['int', 'int', 'int64_t'],
      ['char *', 'char *', 'char *|uint64_t'],
      ['json', 'json', 'char *|uint64_t'],
    ]);
    assert.strictEqual(probes.tick.declaredProblem, null);
    // Each argument read its way: strings and JSON with str(), integers by
    // sign, the uint64_t unsigned (not as a string).
    assert.strictEqual(probes.tock.commands.bpftrace, `bpftrace -p ${target.pid} -e 'usdt:*:clitest:tock { printf("tock %lu %ld %lu\\n", arg0, arg1, arg2); }'`);
    assert.strictEqual(probes.tock.commands.dtrace, `dtrace -q -n 'clitest$target:::tock { printf("tock %u %d %u\\n", arg0, arg1, arg2); }' -p ${target.pid}`);
    assert.ok(probes.tick.commands.perf.every((l) => !l.includes('undefined')));
    assert.deepStrictEqual(probes.tock.args.map((a) => [a.size, a.signed]), [[1, false], [4, true], [8, false]]);
    assert.strictEqual(probes.tick.argSpec, '-8@%rdi 8@%rsi 8@%rdx');
    assert.strictEqual(probes.seven.args.length, 7);
    assert.strictEqual(probes.seven.args[6].location, '8(%rsp)');
    for (const p of clitest.probes) {
      assert.ok(p.address > 0 && p.semaphore > 0, JSON.stringify(p));
      assert.deepStrictEqual(Object.keys(p.commands), ['bpftrace', 'dtrace', 'perf', 'gdb']);
      assert.ok(p.commands.bpftrace.includes(`usdt:*:clitest:${p.name} `), p.commands.bpftrace);
    }
  } finally {
    await finish(target);
  }
});

test('list without PIDs finds the process among all others', async () => {
  const target = await startTarget();
  try {
    const r = cli(['list', '--json']);
    assert.strictEqual(r.status, 0, r.all);
    const procs = JSON.parse(r.stdout);
    assert.ok(procs.some((p) => p.pid === target.pid), r.all);
    assert.ok(procs.every((p) => p.providers.length > 0));
  } finally {
    await finish(target);
  }
});

test('list errors name the problem', async () => {
  const missing = cli(['list', '999999999']);
  assert.strictEqual(missing.status, 1, missing.all);
  assert.match(missing.stderr, /^dynprobe: no such process: 999999999$/m);

  const plain = start(['sleep', '60'], {});
  try {
    const r = cli(['list', plain.child.pid]);
    assert.strictEqual(r.status, 1, r.all);
    assert.match(r.stderr, new RegExp(`^dynprobe: no dynprobe providers in process ${plain.child.pid} \\(sleep 60\\)$`, 'm'));
  } finally {
    plain.child.kill('SIGKILL');
    await plain.exit;
  }

  const usage = cli(['list', 'abc']);
  assert.strictEqual(usage.status, 2, usage.all);
  assert.match(usage.stderr, /not a process id: abc/);
});

test('as user nobody: list shows its own process; trace says it needs root', { skip: rootGate.skip }, async () => {
  assert.ok(!rootGate.reason, rootGate.reason);
  const copy = copyForNobody();
  const target = await startTarget({ root: copy, nobody: true });
  try {
    const nobodyUid = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim());
    const r = cli(['list', target.pid, '--json'], { root: copy, nobody: true });
    assert.strictEqual(r.status, 0, r.all);
    const [proc] = JSON.parse(r.stdout);
    const clitest = proc.providers.find((p) => p.provider === 'clitest');
    assert.ok(clitest.path.startsWith(`/tmp/dynprobe-${nobodyUid}/`), clitest.path);
    assert.deepStrictEqual(clitest.probes.map((p) => p.name), ['tick', 'tock', 'seven']);

    const text = cli(['list', target.pid], { root: copy, nobody: true });
    assert.strictEqual(text.status, 0, text.all);
    assert.match(text.stdout, /^ {6}tick\(int, char \*, json\)$/m);

    // Every process it can read: its own, and none of root's.
    const all = cli(['list', '--json'], { root: copy, nobody: true });
    assert.strictEqual(all.status, 0, all.all);
    const pids = JSON.parse(all.stdout).map((p) => p.pid);
    assert.ok(pids.includes(target.pid), all.all);

    // Root's processes are not for nobody to read.
    const denied = cli(['list', process.pid], { root: copy, nobody: true });
    assert.strictEqual(denied.status, 1, denied.all);
    assert.match(denied.stderr, /permission denied/);

    // A kernel tracer needs root; without --via, nobody's own process is
    // read through its endpoint instead (test/endpoint.test.js has more).
    const traced = cli(['trace', target.pid, '--via', 'kernel'], { root: copy, nobody: true });
    assert.strictEqual(traced.status, 1, traced.all);
    assert.match(traced.stderr, /^dynprobe: tracing needs root/m);
    const viaProcess = cli(['trace', target.pid, 'clitest:tick', '--count', '1'], { root: copy, nobody: true });
    assert.strictEqual(viaProcess.status, 0, viaProcess.all);
    assert.match(viaProcess.stderr, /^dynprobe: tracing through the process's endpoint, with no kernel tracer: kernel tracers need root/m);
    assert.match(viaProcess.stdout, /^\d\d:\d\d:\d\d\.\d{6} clitest:tick \d+ "tick \d+" \{"n":\d+,"ok":true\}$/m);

    // And root lists nobody's process too.
    const asRoot = cli(['list', target.pid, '--json']);
    assert.strictEqual(JSON.parse(asRoot.stdout)[0].providers.find((p) => p.provider === 'clitest').path, clitest.path);
  } finally {
    await finish(target);
    fs.rmSync(copy, { recursive: true, force: true });
  }
});

test('trace --count prints decoded firings, as JSON and as lines', { skip: bpftraceGate.skip, timeout: 120000 }, async () => {
  assert.ok(!bpftraceGate.reason, bpftraceGate.reason);
  const target = await startTarget();
  try {
    const pid = target.pid;
    const r = cli(['trace', pid, 'clitest:tick', '--count', 3, '--json', '--tracer', 'bpftrace']);
    assert.strictEqual(r.status, 0, r.all);
    assert.match(r.stderr, new RegExp(`tracing 1 probe in process ${pid} .* with bpftrace 0\\.17`));
    const firings = jsonLines(r.stdout);
    assert.strictEqual(firings.length, 3, r.all);
    const first = firings[0].args[0];
    firings.forEach((f, i) => {
      const n = first + i;
      assert.deepStrictEqual([f.provider, f.probe, f.module, f.pid], ['clitest', 'tick', 'clitest', pid]);
      // The json argument decoded as JSON; the char * one stays a string.
      assert.deepStrictEqual(f.args, [n, `tick ${n}`, { n, ok: true }]);
      assert.deepStrictEqual(f.types, ['int', 'string', 'json']);
      assert.ok(Math.abs(Date.parse(f.time) - Date.now()) < 60000, f.time);
    });

    // A glob over two probes; integers by size and sign.
    const lines = cli(['trace', pid, 'clitest:t*', '--count', 6]);
    assert.strictEqual(lines.status, 0, lines.all);
    const printed = lines.stdout.trim().split('\n');
    assert.strictEqual(printed.length, 6, lines.all);
    for (const line of printed) assert.match(line, /^\d\d:\d\d:\d\d\.\d{6} clitest:(tick \d+ "tick \d+" \{"n":\d+,"ok":true\}|tock 255 -7 18446744073709551615)$/);
    assert.ok(printed.some((l) => l.includes('clitest:tock')) && printed.some((l) => l.includes('clitest:tick')), lines.all);

    const pretty = cli(['trace', pid, 'clitest:tick', '--count', 1, '--pretty']);
    assert.strictEqual(pretty.status, 0, pretty.all);
    assert.match(pretty.stdout, /clitest:tick \d+ "tick \d+"\n {4}\{\n {6}"n": \d+,\n {6}"ok": true\n {4}\}\n$/);
  } finally {
    await finish(target);
  }
});

test('trace --duration stops by itself; a provider name alone means all its probes', { skip: bpftraceGate.skip, timeout: 120000 }, async () => {
  assert.ok(!bpftraceGate.reason, bpftraceGate.reason);
  const target = await startTarget();
  try {
    const began = Date.now();
    const r = cli(['trace', target.pid, 'cliother', '--duration', 2]);
    assert.strictEqual(r.status, 0, r.all);
    assert.ok(Date.now() - began < 30000);
    const lines = r.stdout.trim().split('\n');
    assert.ok(lines.length >= 10, r.all);
    for (const line of lines) assert.match(line, /^\S+ cliother:ping "pong"$/);
  } finally {
    await finish(target);
  }
});

test('trace ends on Ctrl-C (SIGINT), and when the process exits', { skip: bpftraceGate.skip, timeout: 120000 }, async () => {
  assert.ok(!bpftraceGate.reason, bpftraceGate.reason);
  const target = await startTarget();
  try {
    const cmd = [process.execPath, path.join(ROOT, 'bin', 'dynprobe.js'), 'trace', String(target.pid), 'cliother:ping'];
    const interrupted = start(cmd, {});
    await interrupted.waitFor(/cliother:ping "pong"$/, 60000, 'dynprobe trace');
    interrupted.child.kill('SIGINT');
    assert.deepStrictEqual(await interrupted.exit, { code: 0, signal: null }, interrupted.stderr);

    const ended = start(cmd, {});
    await ended.waitFor(/cliother:ping "pong"$/, 60000, 'dynprobe trace');
    await finish(target);
    await stop(ended, 30000);
    assert.deepStrictEqual(ended.exited, { code: 0, signal: null }, ended.stderr);
    assert.match(ended.stderr, new RegExp(`^dynprobe: process ${target.pid} exited$`, 'm'));
  } finally {
    await finish(target);
  }
});

test('trace errors: no such process, no providers, no match (listing what exists), no tracer', async () => {
  const missing = cli(['trace', '999999999']);
  assert.strictEqual(missing.status, 1, missing.all);
  assert.match(missing.stderr, IS_ROOT ? /^dynprobe: no such process: 999999999$/m : /cannot trace process 999999999: .*no such process/);
  if (!IS_ROOT) return;

  const plain = start(['sleep', '60'], {});
  try {
    const r = cli(['trace', plain.child.pid]);
    assert.strictEqual(r.status, 1, r.all);
    assert.match(r.stderr, /no dynprobe providers in process \d+ \(sleep 60\)/);
  } finally {
    plain.child.kill('SIGKILL');
    await plain.exit;
  }

  const target = await startTarget();
  try {
    const r = cli(['trace', target.pid, 'nope:*']);
    assert.strictEqual(r.status, 1, r.all);
    assert.match(r.stderr, new RegExp(`^dynprobe: no probe matches nope:\\* in process ${target.pid}; its probes are:$`, 'm'));
    for (const p of ['clitest:tick(int, char *, json)', 'clitest:seven(', 'cliother:ping(char *)']) {
      assert.ok(r.stderr.includes(`  ${p}`), r.all);
    }

    // No tracer anywhere: PATH without bpftrace/dtrace, none named.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-nopath-'));
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    const env = { ...process.env, PATH: bin };
    delete env.DYNPROBE_BPFTRACE;
    delete env.DYNPROBE_DTRACE;
    const none = cli(['trace', target.pid, 'clitest:tick', '--via', 'kernel'], { env });
    // Without --via: the process's endpoint, saying why.
    const fallback = cli(['trace', target.pid, 'clitest:tick', '--count', '1'], { env });
    fs.rmSync(bin, { recursive: true, force: true });
    assert.strictEqual(none.status, 1, none.all);
    assert.match(none.stderr, /^dynprobe: no tracer found: bpftrace is not installed/m);
    assert.match(none.stderr, /apt-get install bpftrace/);
    assert.match(none.stderr, /--bpftrace PATH or DYNPROBE_BPFTRACE=PATH/);
    assert.match(none.stderr, /--via process reads your own processes/);
    assert.strictEqual(fallback.status, 0, fallback.all);
    assert.match(fallback.stderr, /^dynprobe: tracing through the process's endpoint, with no kernel tracer: no tracer found: bpftrace is not installed/m);
  } finally {
    await finish(target);
  }
});

test('two libraries with same-named probes, and libraries in memfds, are listed and traced', { skip: bpftraceGate.skip, timeout: 120000 }, async () => {
  assert.ok(!bpftraceGate.reason, bpftraceGate.reason);
  const twice = await startTarget({ env: { CLI_TARGET_TWICE: '1' } });
  try {
    const listed = JSON.parse(cli(['list', twice.pid, '--json']).stdout)[0];
    const pings = listed.providers.filter((p) => p.provider === 'cliother');
    assert.deepStrictEqual(pings.map((p) => p.module).sort(), ['cliother', 'cliother-2']);
    for (const p of pings) {
      // bpftrace 0.17 cannot attach one of two same-named probes with -p.
      assert.ok(p.probes[0].commands.bpftrace.startsWith(`BPFTRACE_STRLEN=200 bpftrace -e 'usdt:${p.path}:cliother:ping /pid == ${twice.pid}/ {`), p.probes[0].commands.bpftrace);
      assert.ok(p.probes[0].commands.dtrace.includes(`cliother$target:${p.module}::ping`), p.probes[0].commands.dtrace);
    }
    const r = cli(['trace', twice.pid, 'cliother:ping', '--count', 6, '--json', '--tracer', 'bpftrace']);
    assert.strictEqual(r.status, 0, r.all);
    const seen = new Set(jsonLines(r.stdout).map((f) => `${f.module} ${f.args[0]}`));
    assert.deepStrictEqual([...seen].sort(), ['cliother pong', 'cliother-2 pong-2'], r.all);
  } finally {
    await finish(twice);
  }

  // No exec-capable directory: the libraries live in memfds, which tracers
  // reach through /proc/PID/fd/N.
  const memfd = await startTarget({ env: { DYNPROBE_DIR: '/proc/no-such-dir' } });
  try {
    const listed = JSON.parse(cli(['list', memfd.pid, '--json']).stdout)[0];
    const clitest = listed.providers.find((p) => p.provider === 'clitest');
    assert.strictEqual(clitest.storage, 'memfd');
    assert.strictEqual(clitest.path, '/memfd:clitest (deleted)');
    assert.match(clitest.tracerPath, new RegExp(`^/proc/${memfd.pid}/fd/\\d+$`));
    const r = cli(['trace', memfd.pid, 'clitest:tick', '--count', 2, '--json']);
    assert.strictEqual(r.status, 0, r.all);
    assert.deepStrictEqual(jsonLines(r.stdout).map((f) => f.args[1].slice(0, 5)), ['tick ', 'tick ']);
  } finally {
    await finish(memfd);
  }
});

test('trace runs the bpftrace it is given (--bpftrace PATH, DYNPROBE_BPFTRACE): 0.27 reads a probe\'s 7 arguments', { skip: sidGate.skip, timeout: 120000 }, async () => {
  assert.ok(!sidGate.reason, sidGate.reason);
  const target = await startTarget();
  try {
    // The CLI knows no test root: the test names bpftrace 0.27 by its path.
    const sid = TRACERS['bpftrace-0.27'].command[0];
    const r = cli(['trace', target.pid, 'clitest:seven', '--count', 1, '--json'], { env: { ...process.env, DYNPROBE_BPFTRACE: sid } });
    assert.strictEqual(r.status, 0, r.all);
    assert.match(r.stderr, /with bpftrace 0\.27/);
    const [f] = jsonLines(r.stdout);
    assert.deepStrictEqual(f.args, [1, 2, 3, 4, 5, 6, 7]);
    assert.strictEqual(f.omitted, 0);

    // A json argument decoded as JSON under 0.27 too, and a uint64_t as a number.
    const json = cli(['trace', target.pid, 'clitest:t*', '--count', 4, '--json', '--bpftrace', sid]);
    assert.strictEqual(json.status, 0, json.all);
    const firings = jsonLines(json.stdout);
    const tick = firings.find((x) => x.probe === 'tick');
    const tock = firings.find((x) => x.probe === 'tock');
    assert.ok(tick && tock, json.all);
    assert.deepStrictEqual(tick.args, [tick.args[0], `tick ${tick.args[0]}`, { n: tick.args[0], ok: true }]);
    assert.deepStrictEqual(tick.types, ['int', 'string', 'json']);
    assert.deepStrictEqual(tock.args, [255, -7, '18446744073709551615']);

    // The host's 0.17 reads six, and says so.
    const old = cli(['trace', target.pid, 'clitest:seven', '--count', 1, '--tracer', 'bpftrace']);
    assert.strictEqual(old.status, 0, old.all);
    assert.match(old.stdout, /clitest:seven 1 2 3 4 5 6 \(\+1 not read\)$/m);
    assert.match(old.stderr, /reads 6 arguments: the last 1 of clitest:seven are not shown/);
  } finally {
    await finish(target);
  }
});

test('trace with Oracle DTrace', { skip: dtraceGate.skip, timeout: 120000 }, async () => {
  assert.ok(!dtraceGate.reason, dtraceGate.reason);
  const target = await startTarget();
  try {
    const r = cli(['trace', target.pid, 'clitest:*', '--count', 4, '--json', '--tracer', 'dtrace', '--dtrace', TRACERS.dtrace.command[0]]);
    assert.strictEqual(r.status, 0, r.all);
    assert.match(r.stderr, /with Oracle DTrace 2\./);
    const firings = jsonLines(r.stdout);
    assert.strictEqual(firings.length, 4, r.all);
    const tock = firings.find((f) => f.probe === 'tock');
    const tick = firings.find((f) => f.probe === 'tick');
    assert.ok(tock && tick, r.all);
    assert.deepStrictEqual(tock.args, [255, -7, '18446744073709551615']);
    assert.deepStrictEqual(tick.args, [tick.args[0], `tick ${tick.args[0]}`, { n: tick.args[0], ok: true }]);
    assert.deepStrictEqual(tick.types, ['int', 'string', 'json']);
    assert.deepStrictEqual(tock.types, ['uint', 'int', 'uint']);
    const seven = firings.find((f) => f.probe === 'seven');
    if (seven) assert.deepStrictEqual(seven.args, [1, 2, 3, 4, 5, 6, 7]);
  } finally {
    await finish(target);
  }
});

test('a plain sys/sdt.h program: list shows what its notes say (char *|uint64_t) and trace decides per firing, as before', { skip: sdtGate.skip, timeout: 120000 }, async () => {
  assert.ok(!sdtGate.reason, sdtGate.reason);
  const proc = start([sdtProgram.bin], {});
  try {
    const pid = Number((await proc.waitFor(/^READY \d+$/, 30000, 'sdt program')).split(' ')[1]);
    const r = cli(['list', pid]);
    assert.strictEqual(r.status, 0, r.all);
    assert.match(r.stdout, /^ {2}provider sdtprog {2}\(module sdtprog, file\)$/m);
    assert.match(r.stdout, /^ {6}fire\(int32_t, char \*\|uint64_t, char \*\|uint64_t, char \*\|uint64_t\)$/m);
    assert.match(r.stdout, /char \*\|uint64_t: the probe note records an unsigned 8-byte value, which is a string \(char \*, json\) or a uint64_t, and the library records no declared types/);
    assert.ok(r.stdout.includes(`bpftrace -p ${pid} -e 'usdt:*:sdtprog:fire { printf("fire %ld %s %s %s\\n", arg0, str(arg1), str(arg2), str(arg3)); }'`), r.stdout);
    const [listed] = JSON.parse(cli(['list', pid, '--json']).stdout);
    const [fire] = listed.providers[0].probes;
    assert.strictEqual(fire.declared, null);
    assert.strictEqual(fire.declaredProblem, null);
    assert.deepStrictEqual(fire.args.map((a) => a.declared), [null, null, null, null]);

    if (bpftraceGate.skip) return;
    assert.ok(!bpftraceGate.reason, bpftraceGate.reason);
    const traced = cli(['trace', pid, 'sdtprog:fire', '--count', 2, '--json', '--tracer', 'bpftrace']);
    assert.strictEqual(traced.status, 0, traced.all);
    for (const f of jsonLines(traced.stdout)) {
      // Pointers into the process are strings (JSON stays a string in --json), the rest numbers.
      assert.deepStrictEqual(f.args, [-7, 'hello', '{"n":1,"ok":true}', '18446744073709551615']);
      assert.deepStrictEqual(f.types, ['int', 'string', 'string', 'uint']);
    }
    const lines = cli(['trace', pid, 'sdtprog:fire', '--count', 1, '--tracer', 'bpftrace']);
    assert.match(lines.stdout, /sdtprog:fire -7 "hello" \{"n":1,"ok":true\} 18446744073709551615$/m);
  } finally {
    proc.child.stdin.end();
    await stop(proc, 5000);
  }
});

test('dynprobe/node (node -r ./node.js) lists its probes with their argument names and declared types', async () => {
  const app = start([process.execPath, '-r', path.join(ROOT, 'node.js'), '-e', 'console.log(`READY ${process.pid}`); process.stdin.resume(); process.stdin.on("end", () => process.exit(0))'], {
    env: (({ NODE_TEST_CONTEXT, ...env }) => env)(process.env),
  });
  try {
    const pid = Number((await app.waitFor(/^READY \d+$/, 30000, 'node -r node.js')).split(' ')[1]);
    const r = cli(['list', pid]);
    assert.strictEqual(r.status, 0, r.all);
    assert.match(
      r.stdout,
      /^ {6}http__server__request\(uint64_t request_struct, uint64_t connection_struct, char \*remote, int32_t port, char \*method, char \*url, int32_t fd\)$/m,
    );
    assert.match(r.stdout, /^ {6}http__server__response\(uint64_t connection_struct, char \*remote, int32_t port, int32_t fd\)$/m);
    assert.match(r.stdout, /^ {6}gc__start\(uint32_t type, uint32_t flags, uint64_t isolate, uint64_t start_ns, uint64_t duration_ns\)$/m);
    assert.match(r.stdout, /^ {6}child__process__spawn\(int32_t pid, char \*file, json argv\)$/m);
    assert.doesNotMatch(r.stdout, /char \*\|uint64_t|declared types not used|argument names not used/);
    // The tracer commands are as before: positions, never names.
    assert.match(r.stdout, /usdt:\*:node:http__server__request \{ printf\("http__server__request %lu %lu %s %ld %s %s\\n", arg0, arg1, str\(arg2\)/);
    const [listed] = JSON.parse(cli(['list', pid, '--json']).stdout);
    const node = listed.providers.find((p) => p.provider === 'node');
    assert.ok(node.probes.every((p) => Array.isArray(p.declared) && p.declared.length === p.args.length), JSON.stringify(node.probes.map((p) => p.declared)));
    // Every probe names every argument, as lib/node/probes.js does.
    const { PROBES } = require('../lib/node/probes');
    for (const probe of PROBES) {
      const listedProbe = node.probes.find((p) => p.name === probe.name);
      assert.ok(listedProbe, probe.name);
      assert.deepStrictEqual(listedProbe.argNames, probe.args.map((a) => a.name), probe.name);
      assert.deepStrictEqual(listedProbe.args.map((a) => [a.name, a.type]), probe.args.map((a) => [a.name, a.type]), probe.name);
      assert.strictEqual(listedProbe.argNamesProblem, null, probe.name);
    }
  } finally {
    app.child.stdin.end();
    await stop(app, 5000);
  }
});
