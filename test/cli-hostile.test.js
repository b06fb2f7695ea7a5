'use strict';
// test-needs: tracer
// The `dynprobe` CLI treats every process as hostile. Real processes map
// crafted libraries (their notes say what an attacker likes), run as root or
// as nobody, some in user and mount namespaces of their own where they hide
// the mapped file under a FIFO, /dev/zero or another file; the CLI runs
// under a watchdog that kills it past a memory or time bound. Tests that
// need root or a tracer are skipped loudly without them, and fail under
// CI=true.

const test = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { gate, bpftraceUnavailable } = require('./fixtures/helpers');
const { unavailable, TRACERS } = require('./tracers/harness');
const { writeLibrary, sharedDir, mapper, hiddenMapper, fuseMapper, watchedCli } = require('./fixtures/hostile');
const { withRecords } = require('./fixtures/hostile/declared');

const ROOT = path.join(__dirname, '..');
const IS_ROOT = process.getuid() === 0;

const rootGate = gate('hostile-process CLI tests', IS_ROOT ? null : 'they need root (processes as nobody, namespaces, map_files)');
const bpftraceGate = gate('hostile-process CLI trace tests with bpftrace', bpftraceUnavailable());
const dtraceGate = gate('hostile-process CLI trace tests with DTrace', unavailable('dtrace'));
const nsGate = gate('hostile-process CLI tests in user namespaces', namespacesUnavailable());
const fuseGate = gate('CLI test with a file system that does not answer', fuseUnavailable());

function fuseUnavailable() {
  if (!IS_ROOT) return 'it needs root (a FUSE mount)';
  if (!fs.existsSync('/dev/fuse')) return 'no /dev/fuse (modprobe fuse)';
  return null;
}

// Whether nobody can make a user and mount namespace here (or why not).
function namespacesUnavailable() {
  if (!IS_ROOT) return 'they need root';
  const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', 'unshare', '-Urm', 'true'], { encoding: 'utf8' });
  if (r.status === 0) return null;
  return `user nobody cannot create a user namespace (${(r.stderr || String(r.error)).trim()}); allow it with \`sysctl user.max_user_namespaces=10000\` (and kernel.unprivileged_userns_clone=1 where it exists)`;
}

// Characters that must never reach a terminal raw (newline aside).
// eslint-disable-next-line no-control-regex -- control characters are what it matches
const RAW_CONTROL = /[\0-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\u{e0000}-\u{e007f}]/u;
const assertNoRawControls = (text, what) => {
  const m = RAW_CONTROL.exec(text);
  assert.ok(m === null, `${what} writes U+${m && m[0].codePointAt(0).toString(16).padStart(4, '0')} raw at ${m && m.index}: ${JSON.stringify(text.slice(Math.max(0, (m && m.index) - 80), (m && m.index) + 40))}`);
};

const dirs = [];
const stops = [];
test.after(() => {
  for (const stop of stops) stop();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});
function tempDir() {
  const dir = sharedDir('dynprobe-hostile-');
  dirs.push(dir);
  return dir;
}
async function started(promise) {
  const proc = await promise;
  stops.push(proc.stop);
  return proc;
}

// The files the CLI needs, where user nobody can read them.
function copyForNobody() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-cli-'));
  dirs.push(dir);
  for (const rel of ['index.js', 'package.json', 'lib', 'bin', path.join('build', 'dynprobe.node')]) {
    fs.cpSync(path.join(ROOT, rel), path.join(dir, rel), { recursive: true });
  }
  spawnSync('chmod', ['-R', 'a+rX', dir]);
  return dir;
}

// A C library built with sys/sdt.h, where a compiler and the header exist:
// DTRACE_PROBE1(my-app, log-info, x) has no semaphore and names that are
// not C identifiers. Null (with the reason) otherwise.
function sdtLibrary(dir) {
  const src = path.join(dir, 'sdt.c');
  fs.writeFileSync(src, '#include <sys/sdt.h>\nvoid f(int x) { DTRACE_PROBE1(sdt-app, log-info, x); }\n');
  const sub = path.join(dir, 'c'.repeat(40));
  fs.mkdirSync(sub, { mode: 0o755 });
  const lib = path.join(sub, 'sdt-lib');
  const r = spawnSync('cc', ['-O1', '-shared', '-fPIC', '-o', lib, src], { encoding: 'utf8' });
  if (r.status !== 0) {
    const why = /sdt\.h/.test(r.stderr || '') ? 'no sys/sdt.h (apt-get install systemtap-sdt-dev)' : `cc failed: ${r.stderr || r.error}`;
    return { lib: null, why };
  }
  return { lib, why: null };
}

test('list: a probe with no semaphore whose names are not C identifiers (plain sys/sdt.h) is listed, and never aborts the scan', { skip: rootGate.skip, timeout: 120000 }, async (t) => {
  assert.ok(!rootGate.reason, rootGate.reason);
  const dir = tempDir();
  const crafted = writeLibrary(dir, 'sdt-style', [
    { provider: 'my-app', name: 'log-info', semaphore: false },
    { provider: 'my_app', name: 'plain', semaphore: false },
  ]);
  const sdt = sdtLibrary(dir);
  if (sdt.why) {
    // Provisioning installs sys/sdt.h: in CI the real compiled case is required.
    assert.ok(process.env.CI !== 'true', `CI=true: ${sdt.why}`);
    t.diagnostic(`the sys/sdt.h library is left out: ${sdt.why}`);
  }
  const libs = [crafted, ...(sdt.lib ? [sdt.lib] : [])];
  const proc = await started(mapper(libs));

  const text = await watchedCli(['list', proc.pid]);
  assert.strictEqual(text.status, 0, text.all);
  assert.doesNotMatch(text.stderr, /TypeError|at .*\.js/, text.all);
  assert.match(text.stdout, /^ {6}log-info\(int32_t\)$/m);
  // perf's event is defined through tracefs, without a semaphore.
  assert.match(text.stdout, /echo 'p:sdt_my_app\/log_info \S+\/sdt-style:0x[0-9a-f]+ arg0=%di:s32' >> \/sys\/kernel\/tracing\/uprobe_events/);

  const [listed] = JSON.parse((await watchedCli(['list', proc.pid, '--json'])).stdout);
  const probes = listed.providers.flatMap((p) => p.probes.map((probe) => ({ provider: p.provider, ...probe })));
  const logInfo = probes.find((p) => p.provider === 'my-app');
  assert.strictEqual(logInfo.semaphore, 0);
  assert.strictEqual(logInfo.semaphoreOffset, null, 'null, not missing');
  assert.ok(logInfo.commands.perf.every((l) => !l.includes('undefined')), logInfo.commands.perf.join('\n'));
  if (sdt.lib) {
    const c = probes.find((p) => p.provider === 'sdt-app');
    assert.ok(c && c.name === 'log-info' && c.semaphore === 0 && c.commands !== null, JSON.stringify(probes));
  }

  // The whole scan goes on past it.
  const all = await watchedCli(['list', '--json']);
  assert.strictEqual(all.status, 0, all.all);
  assert.ok(JSON.parse(all.stdout).some((p) => p.pid === proc.pid), all.all);
});

// Names that would change a bpftrace or DTrace program, or a printed shell
// command, if pasted as they are.
const INJECTIONS = [
  ['x', 'p { cat("/etc/shadow"); } usdt:*:x:q'],
  ['x', 'p { system("id"); }\nx$target:::q'],
  ['x', "p'; touch /tmp/dynprobe-pwned; '"],
  ['x', 'p"q'],
  ['x', 'p}q'],
  ['x', 'p;q'],
  ['x', 'p\nq'],
  ['x', 'p*/q'],
  ['x', 'p/*q'],
  ['x', '$(touch /tmp/dynprobe-pwned)'],
  ['x', '`touch /tmp/dynprobe-pwned`'],
  ['x', 'p:q'],
  ['x', 'p q'],
  ['x', 'p\\q'],
  ['x', '*'],
  ["x'y", 'p'],
  ['x}y', 'p'],
  ['x{y', 'p'],
  ['x$target', 'p'],
  ['x;y', 'p'],
  ['9x', 'p'],
  ['x', 'p'.repeat(129)],
];
// What none of the generated text may contain.
const MARKERS = ['cat(', 'system(', 'dynprobe-pwned', '/etc/shadow', '$target$target', 'p"q', 'p}q', 'p;q', '*/q', '/*q'];

// A process mapping a library whose notes hold every injection, and one good
// probe, good:fine, that a tracer may trace.
function injectedProcess() {
  const probes = [...INJECTIONS.map(([provider, name]) => ({ provider, name })), { provider: 'good', name: 'fine' }];
  return started(mapper([writeLibrary(tempDir(), 'inject', probes)]));
}

test('names that could change a tracer program never reach one: refused by name in list, and in trace for bpftrace and DTrace', { skip: rootGate.skip, timeout: 180000 }, async () => {
  assert.ok(!rootGate.reason, rootGate.reason);
  const dir = tempDir();
  const notes = [...INJECTIONS.map(([provider, name]) => ({ provider, name })), { provider: 'x', name: 'ok' }, { provider: 'good', name: 'fine' }];
  const lib = writeLibrary(dir, 'inject', notes);
  const proc = await started(mapper([lib]));

  const json = await watchedCli(['list', proc.pid, '--json']);
  assert.strictEqual(json.status, 0, json.all);
  const [listed] = JSON.parse(json.stdout);
  const probes = listed.providers.flatMap((p) => p.probes.map((probe) => ({ provider: p.provider, ...probe })));
  assert.strictEqual(probes.length, notes.length, 'every probe is listed');
  for (const [provider, name] of INJECTIONS) {
    const probe = probes.find((p) => p.provider === provider && p.name === name);
    assert.ok(probe, `${provider}:${name} listed`);
    assert.strictEqual(probe.commands, null, `${JSON.stringify(provider)}:${JSON.stringify(name)} has no commands`);
    assert.match(probe.refused, /^cannot be traced by name: its (provider|probe) name (".*" has characters a tracer program cannot take|is \d+ characters long)/);
  }
  for (const [provider, name] of [['x', 'ok'], ['good', 'fine']]) {
    const probe = probes.find((p) => p.provider === provider && p.name === name);
    assert.strictEqual(probe.refused, null);
    const commands = [probe.commands.bpftrace, probe.commands.dtrace, ...probe.commands.perf, probe.commands.gdb].join('\n');
    for (const marker of MARKERS) assert.ok(!commands.includes(marker), `${marker} in\n${commands}`);
  }

  // The text listing shows each refused name once, escaped, with the reason;
  // its commands are only those of the names that fit.
  const text = await watchedCli(['list', proc.pid]);
  assert.strictEqual(text.status, 0, text.all);
  assertNoRawControls(text.stdout, 'list');
  assert.ok(text.stdout.includes('p { system(\\"id\\"); }\\x0ax$target:::q'), text.stdout);
  const commandLines = text.stdout.split('\n').filter((l) => /^ {6}(dynprobe|bpftrace|BPFTRACE|dtrace|perf|echo|gdb) /.test(l));
  assert.ok(commandLines.length >= 12, text.stdout);
  for (const line of commandLines) for (const marker of MARKERS) assert.ok(!line.includes(marker), line);
  assert.strictEqual(fs.existsSync('/tmp/dynprobe-pwned'), false);
});

test('trace: refused names never reach bpftrace, whose program traces the rest', { skip: bpftraceGate.skip, timeout: 180000 }, async () => {
  assert.ok(!bpftraceGate.reason, bpftraceGate.reason);
  const proc = await injectedProcess();

  const dry = await watchedCli(['trace', proc.pid, '--dry-run', '--tracer', 'bpftrace']);
  assert.strictEqual(dry.status, 0, dry.all);
  for (const marker of MARKERS) assert.ok(!dry.stdout.includes(marker), `${marker} in\n${dry.stdout}`);
  assert.match(dry.stdout, /usdt:\S+\/inject:good:fine \//);
  const refused = dry.stderr.split('\n').filter((l) => / is not traced: /.test(l));
  assert.strictEqual(refused.length, INJECTIONS.length, dry.stderr);
  assertNoRawControls(dry.stderr, 'trace');

  // bpftrace really runs the program: it attaches, and stops by itself.
  const run = await watchedCli(['trace', proc.pid, '--duration', 1, '--tracer', 'bpftrace'], { ms: 120000 });
  assert.strictEqual(run.status, 0, run.all);
  assert.match(run.stderr, /tracing 1 probe in process \d+ .* with bpftrace/);

  // Nothing left to trace: an error that names every probe left out.
  const none = await watchedCli(['trace', proc.pid, "x'y", '--tracer', 'bpftrace']);
  assert.strictEqual(none.status, 1, none.all);
  assert.match(none.stderr, /^dynprobe: no probe matching x'y in process \d+ can be traced:\nprobe x'y:p is not traced: its provider name "x'y" has characters/m);
  assert.strictEqual(fs.existsSync('/tmp/dynprobe-pwned'), false);
});

test('trace: refused names never reach a DTrace script', { skip: dtraceGate.skip, timeout: 180000 }, async () => {
  assert.ok(!dtraceGate.reason, dtraceGate.reason);
  const proc = await injectedProcess();
  const dry = await watchedCli(['trace', proc.pid, '--dry-run', '--tracer', 'dtrace', '--dtrace', TRACERS.dtrace.command[0]]);
  assert.strictEqual(dry.status, 0, dry.all);
  for (const marker of MARKERS) assert.ok(!dry.stdout.includes(marker), `${marker} in\n${dry.stdout}`);
  assert.match(dry.stdout, /^good\$target:::fine$/m);
  const clauses = dry.stdout.split('\n').filter((l) => /\$target:/.test(l));
  assert.deepStrictEqual(clauses, ['good$target:::fine'], dry.stdout);
  assert.strictEqual(dry.stderr.split('\n').filter((l) => / is not traced: /.test(l)).length, INJECTIONS.length, dry.stderr);
});

test('the program builders refuse a name outside the grammar themselves', () => {
  const { build } = require('../lib/cli/program');
  const arg = { spec: '-4@%edi', size: 4, signed: true, float: false, location: '%edi', types: ['int32_t'] };
  const bpftrace = { family: 'bpftrace', maxArgs: 6, stringsPerClause: 1, perLibrary: false };
  const dtrace = { family: 'dtrace', maxArgs: 10, stringsPerClause: Infinity, perLibrary: true };
  for (const [provider, name] of INJECTIONS) {
    const entry = { provider, module: 'm', storage: 'file', tracerPath: '/lib/m', probes: [] };
    const probe = { name, args: [arg] };
    entry.probes.push(probe);
    for (const tracer of [bpftrace, dtrace]) {
      assert.throws(() => build([{ entry, probe }], tracer, [entry], 1), /has characters a tracer program cannot take|characters long/, `${provider}:${name}`);
    }
  }
  // A library path bpftrace cannot take (DTrace does not name it).
  const entry = { provider: 'p', module: 'm', storage: 'memfd', tracerPath: '/tmp/a b{ system("id") }', probes: [] };
  const probe = { name: 'x', args: [arg] };
  assert.throws(() => build([{ entry, probe }], bpftrace, [entry], 1), /library path/);
  assert.doesNotThrow(() => build([{ entry, probe }], dtrace, [entry], 1));
});

test('list never writes a raw control or formatting character: names, types and command lines are escaped', { skip: rootGate.skip, timeout: 120000 }, async () => {
  assert.ok(!rootGate.reason, rootGate.reason);
  const dir = tempDir();
  const names = [
    ['esc\x1b]0;pwned\x07', 'title'],
    ['bell', 'ring\x07'],
    ['cr', 'over\rwrite'],
    ['csi', 'c1\u009b31m'],
    ['del', 'a\x7fb'],
    ['bidi', 'log-info\u202eofni'],
    ['isolate', 'a\u2066b\u2069'],
    ['zw', 'a\u200bb'],
    ['bom', '\ufeffbunyan'],
    ['tag', 'a\u{e0041}b'],
  ];
  const lib = writeLibrary(dir, 'controls', [
    ...names.map(([provider, name]) => ({ provider, name })),
    { provider: 'args', name: 'spec', args: '-4@%edi\x1b[2J 8@\u202e%rsi' },
  ]);
  const proc = await started(mapper([lib], { argv0: 'sleep\x1b]2;fake title\x07' }));

  const text = await watchedCli(['list', proc.pid]);
  assert.strictEqual(text.status, 0, text.all);
  assertNoRawControls(text.stdout, 'list');
  assertNoRawControls(text.stderr, 'list');
  for (const shown of ['esc\\x1b]0;pwned\\x07', 'ring\\x07', 'over\\x0dwrite', 'c1\\x9b31m', 'a\\x7fb', 'log-info\\u202eofni', 'a\\u2066b\\u2069', 'a\\u200bb', '\\ufeffbunyan', 'a\\u{e0041}b', 'sleep\\x1b]2;fake title\\x07 600']) {
    assert.ok(text.stdout.includes(shown), `${shown} in\n${text.stdout}`);
  }

  // JSON: the same names, exactly, with nothing raw on the wire.
  const json = await watchedCli(['list', proc.pid, '--json']);
  assert.strictEqual(json.status, 0, json.all);
  assertNoRawControls(json.stdout, 'list --json');
  const [listed] = JSON.parse(json.stdout);
  assert.strictEqual(listed.command, 'sleep\x1b]2;fake title\x07 600');
  const got = listed.providers.flatMap((p) => p.probes.map((probe) => [p.provider, probe.name]));
  for (const pair of names) assert.ok(got.some((g) => g[0] === pair[0] && g[1] === pair[1]), JSON.stringify(pair));

  // trace's messages too.
  if (!bpftraceGate.skip) {
    const dry = await watchedCli(['trace', proc.pid, '--dry-run', '--tracer', 'bpftrace']);
    assertNoRawControls(dry.stdout + dry.stderr, 'trace');
  }
});

// Hiding the mapped file under something else in the process's own mount
// namespace: what the path shows is not what is mapped.
const HIDERS = [
  { label: 'a FIFO', make: (dir) => fifo(dir), nobodySays: /is a FIFO, not a regular file: skipped/ },
  { label: '/dev/zero', make: () => '/dev/zero', nobodySays: /is a character device, not a regular file: skipped/ },
  {
    label: 'another library',
    make: (dir) => writeLibrary(dir, 'impostor-src', [{ provider: 'impostor', name: 'p' }]),
    nobodySays: /is not the file the process maps \(device [0-9a-f]+:[0-9a-f]+ inode \d+, mapped: [0-9a-f]+:[0-9a-f]+ inode \d+; replaced, or hidden by a mount\): skipped/,
  },
];
function fifo(dir) {
  const file = path.join(dir, 'fifo');
  spawnSync('mkfifo', ['-m', '0666', file]);
  return file;
}

for (const hider of HIDERS) {
  test(`a library hidden under ${hider.label} by nobody in its own namespaces: root lists what is mapped and gives no tracer the path, nobody skips it, neither hangs nor grows`, { skip: nsGate.skip, timeout: 240000 }, async (t) => {
    assert.ok(!nsGate.reason, nsGate.reason);
    const dir = tempDir();
    const lib = writeLibrary(dir, 'hidden', [{ provider: 'hostilereal', name: 'p' }]);
    const proc = await started(hiddenMapper(lib, hider.make(dir)));
    const bound = { maxRss: 256 << 20, ms: 60000 };

    const one = await watchedCli(['list', proc.pid, '--json'], bound);
    t.diagnostic(`root list PID: ${one.ms} ms, peak RSS ${(one.peakRss / 1048576).toFixed(1)} MiB`);
    assert.strictEqual(one.killed, null, one.all);
    assert.strictEqual(one.status, 0, one.all);
    const [listed] = JSON.parse(one.stdout);
    assert.deepStrictEqual(listed.providers.map((p) => p.provider), ['hostilereal'], 'read through map_files: the mapped file');

    const scan = await watchedCli(['list'], bound);
    t.diagnostic(`root list (every process): ${scan.ms} ms, peak RSS ${(scan.peakRss / 1048576).toFixed(1)} MiB`);
    assert.strictEqual(scan.killed, null, scan.all);
    assert.strictEqual(scan.status, 0, scan.all);
    assert.ok(scan.stdout.includes(`PID ${proc.pid}  sleep 600`), scan.all);

    // A tracer would open the path: trace refuses to give it one that no
    // longer shows the mapped file.
    if (!bpftraceGate.skip) {
      const dry = await watchedCli(['trace', proc.pid, '--dry-run', '--tracer', 'bpftrace'], bound);
      assert.strictEqual(dry.killed, null, dry.all);
      assert.strictEqual(dry.status, 1, dry.all);
      assert.match(dry.stderr, /probe hostilereal:p is not traced: its library \S+\/hidden no longer shows the mapped file \(.* skipped\)/, dry.all);
    }

    // nobody cannot read map_files: it reads the path, checks it, skips it.
    const copy = copyForNobody();
    const mine = await watchedCli(['list', proc.pid], { ...bound, nobody: true, root: copy });
    t.diagnostic(`nobody list PID: ${mine.ms} ms, peak RSS ${(mine.peakRss / 1048576).toFixed(1)} MiB`);
    assert.strictEqual(mine.killed, null, mine.all);
    assert.strictEqual(mine.status, 1, mine.all);
    assert.match(mine.stderr, /^dynprobe: no dynprobe providers in process \d+ \(sleep 600\)$/m, mine.all);
    assert.doesNotMatch(mine.stdout + mine.stderr, /impostor/);
    const warned = await watchedCli(['list', '--json'], { ...bound, nobody: true, root: copy });
    assert.strictEqual(warned.killed, null, warned.all);
    assert.ok(!JSON.parse(warned.stdout || '[]').some((p) => p.pid === proc.pid), warned.all);
    // What was skipped, and why.
    assert.match(mine.stderr, hider.nobodySays, mine.all);
  });
}

test('crafted libraries (100,000 notes, 1 MiB names, 100,001 arguments, an 80 MiB file) cost bounded time and memory through list', { skip: rootGate.skip, timeout: 300000 }, async (t) => {
  assert.ok(!rootGate.reason, rootGate.reason);
  const dir = tempDir();
  // Past the note reader's limits (crates/dynprobe-format/src/read.rs): each
  // file is refused whole, with the reason, and the scan goes on.
  const many = writeLibrary(dir, 'many', Array.from({ length: 100000 }, (_, i) => ({ provider: 'many', name: `p${i}` })));
  const mib = 'n'.repeat(1 << 20);
  const long = writeLibrary(dir, 'long', [{ provider: mib, name: 'p' }, { provider: 'long', name: mib }]);
  const args = writeLibrary(dir, 'args', [{ provider: 'args', name: 'q', args: `-4@%edi ${'8@%rsi '.repeat(100000)}` }]);
  const huge = writeLibrary(dir, 'huge', [{ provider: 'huge', name: 'p' }], { extra: 80 << 20 });
  // Within them: the CLI's own caps (names cut on screen, probes shown per library).
  const name = 'n'.repeat(4000);
  const wide = writeLibrary(dir, 'wide', [{ provider: name, name: 'p' }, ...Array.from({ length: 65535 }, (_, i) => ({ provider: 'wide', name: `p${i}` }))]);
  const good = writeLibrary(dir, 'good', [{ provider: 'good', name: 'fine' }]);
  const proc = await started(mapper([many, long, args, huge, wide, good]));
  const bound = { maxRss: 1024 << 20, ms: 120000 };
  const re = (file) => file.replace(/[.]/g, '\\.');

  for (const format of [[], ['--json']]) {
    const r = await watchedCli(['list', proc.pid, ...format], bound);
    t.diagnostic(`list ${format.join(' ') || '(text)'}: ${r.ms} ms, peak RSS ${(r.peakRss / 1048576).toFixed(1)} MiB, ${(r.stdout.length / 1048576).toFixed(1)} MiB of output`);
    assert.strictEqual(r.killed, null, r.all);
    assert.strictEqual(r.status, 0, r.all);
    assert.doesNotMatch(r.stderr, /TypeError|RangeError|at .*\.js/, r.all);
    const out = format.length === 0 ? r.stdout : JSON.parse(r.stdout)[0].warnings.join('\n');
    assert.match(out, new RegExp(`${re(many)}: refused: the file has more than 65536 stapsdt probes`));
    assert.match(out, new RegExp(`${re(long)}: refused: the file has a provider or probe name longer than 4096 bytes`));
    assert.match(out, new RegExp(`${re(args)}: refused: the file has (an argument string longer than 8192 bytes|a probe with more than 64 arguments)`));
    assert.match(out, new RegExp(`${re(huge)}: is \\d+ bytes, more than the 67108864 a probe library may have: skipped`));
    if (format.length === 0) {
      assertNoRawControls(r.stdout, 'list');
      // No line carries a whole 4000-character name.
      const longest = Math.max(...r.stdout.split('\n').map((l) => l.length));
      assert.ok(longest < 1024, `a line of ${longest} characters`);
      assert.match(r.stdout, /^ {2}provider n{200}… \(4000 characters\) {2}\(module wide, file\)$/m);
      assert.match(r.stdout, /^ {8}cannot be traced by name: its provider name is 4000 characters long \(at most 128\)$/m);
      assert.match(r.stdout, /^ {2}provider good {2}\(module good, file\)$/m);
    } else {
      const [listed] = JSON.parse(r.stdout);
      const wideProbes = listed.providers.filter((p) => p.provider === 'wide').flatMap((p) => p.probes);
      // All of them, or the first ones with a warning saying how many there are.
      if (wideProbes.length < 65535) assert.ok(listed.warnings.some((w) => w.includes(`${wide}: 65536 probes; only the first`)), listed.warnings.join('\n'));
      assert.ok(wideProbes.length > 0);
      assert.ok(listed.providers.some((p) => p.provider === 'good'));
    }
  }
});

test('crafted declared-types records (unknown and escaping type names, 100,000 types, wrong counts and sizes, two records) are listed safely: as absent, saying why, never in a tracer program', { skip: rootGate.skip, timeout: 180000 }, async () => {
  assert.ok(!rootGate.reason, rootGate.reason);
  const dir = tempDir();
  const probes = [
    { provider: 'decl', name: 'good', args: '-8@%rdi 8@%rsi' },
    { provider: 'decl', name: 'escape', args: '-8@%rdi' },
    { provider: 'decl', name: 'inject', args: '8@%rdi' },
    { provider: 'decl', name: 'huge', args: '-8@%rdi' },
    { provider: 'decl', name: 'count', args: '-8@%rdi 8@%rsi' },
    { provider: 'decl', name: 'size', args: '-4@%edi' },
    { provider: 'decl', name: 'twice', args: '-8@%rdi' },
    { provider: 'decl', name: 'loose', args: '8@%rdi' },
    { provider: 'decl', name: 'none', args: '8@%rdi' },
  ];
  const lib = withRecords(writeLibrary(dir, 'declared', probes), [
    { provider: 'decl', name: 'good', types: ['int', 'json'] },
    { provider: 'decl', name: 'escape', types: ['\x1b]0;pwned\x07'] },
    { provider: 'decl', name: 'inject', types: ['");system("id'] },
    { provider: 'decl', name: 'huge', types: Array(100000).fill('int') },
    { provider: 'decl', name: 'count', types: ['int'] },
    { provider: 'decl', name: 'size', types: ['uint64_t'] },
    { provider: 'decl', name: 'twice', types: ['int'] },
    { provider: 'decl', name: 'twice', types: ['int64_t'] },
    { provider: 'decl', name: 'loose', types: ['char*'] },
    // Not records: another owner, another type, and a record for no probe.
    { provider: 'decl', name: 'none', types: ['json'], owner: 'dynprobf' },
    { provider: 'decl', name: 'none', types: ['json'], type: 3 },
    { provider: 'decl', name: 'nosuch', types: ['json'] },
  ]);
  const proc = await started(mapper([lib]));

  const text = await watchedCli(['list', proc.pid], { maxRss: 256 << 20 });
  assert.strictEqual(text.killed, null, text.all);
  assert.strictEqual(text.status, 0, text.all);
  assertNoRawControls(text.stdout, 'list');
  const out = text.stdout;
  const reasons = {
    escape: 'names an unknown type "\\u{1b}]0;pwned\\u{7}"',
    inject: 'names an unknown type "\\");system(\\"id"',
    huge: 'lists more than 64 types',
    count: 'lists 1 types for the 2 arguments of its note',
    size: 'says uint64_t for argument 0, which its note records as "-4@%edi"',
    twice: 'it has more than one declared-types record',
    loose: 'names an unknown type "char*"',
  };
  assert.match(out, /^ {6}good\(int, json\)$/m);
  assert.match(out, /^ {6}escape\(int64_t\)\n {8}declared types not used: its declared-types record names an unknown type "\\u\{1b\}\]0;pwned\\u\{7\}"$/m);
  assert.match(out, /^ {6}size\(int32_t\)$/m);
  assert.match(out, /^ {6}none\(char \*\|uint64_t\)$/m);
  for (const [name, why] of Object.entries(reasons)) {
    const at = out.indexOf(`      ${name}(`);
    assert.ok(at >= 0, `${name} listed:\n${out}`);
    const next = out.slice(at).split('\n')[1];
    assert.ok(next.startsWith('        declared types not used: ') && next.includes(why), `${name}: ${next}`);
  }
  // Without a usable record the old reading (and its note) is back.
  assert.match(out, /char \*\|uint64_t: the probe note records an unsigned 8-byte value/);

  const json = await watchedCli(['list', proc.pid, '--json'], { maxRss: 256 << 20 });
  assert.strictEqual(json.status, 0, json.all);
  assertNoRawControls(json.stdout, 'list --json');
  const [listed] = JSON.parse(json.stdout);
  const by = Object.fromEntries(listed.providers.flatMap((p) => p.probes).map((p) => [p.name, p]));
  assert.deepStrictEqual(by.good.declared, ['int', 'json']);
  assert.deepStrictEqual(by.good.args.map((a) => a.type), ['int', 'json']);
  assert.strictEqual(by.good.declaredProblem, null);
  assert.ok(by.good.commands.bpftrace.includes('printf("good %ld %s\\n", arg0, str(arg1))'), by.good.commands.bpftrace);
  for (const name of [...Object.keys(reasons), 'none']) {
    assert.strictEqual(by[name].declared, null, name);
    assert.strictEqual(by[name].args.every((a) => a.declared === null), true, name);
  }
  assert.strictEqual(by.none.declaredProblem, null);
  assert.match(by.escape.declaredProblem, /unknown type "\\u\{1b\}\]0;pwned\\u\{7\}"/);
  // Nothing of a refused record reaches a command.
  const commands = Object.values(by).flatMap((p) => [p.commands.bpftrace, p.commands.dtrace, ...p.commands.perf, p.commands.gdb]).join('\n');
  for (const marker of ['system(', 'pwned', 'char*']) assert.ok(!commands.includes(marker), `${marker} in\n${commands}`);
  if (!bpftraceGate.skip) {
    const dry = await watchedCli(['trace', proc.pid, '--dry-run', '--tracer', 'bpftrace']);
    assert.strictEqual(dry.status, 0, dry.all);
    for (const marker of ['system(', 'pwned', 'char*']) assert.ok(!dry.stdout.includes(marker), `${marker} in\n${dry.stdout}`);
  }
});

test('crafted argument names (escaping, injecting, 65 bytes, 1 MiB, 100,000 names, too few, repeated, a tracer\'s own words) are listed safely: the types kept, the names absent saying why, never in a tracer program', { skip: rootGate.skip, timeout: 180000 }, async () => {
  assert.ok(!rootGate.reason, rootGate.reason);
  const dir = tempDir();
  const cases = {
    good: { names: ['count', 'url'] },
    escape: { names: ['count', '\x1b]0;pwned\x07'], why: 'argument name "\\u{1b}]0;pwned\\u{7}" is not a C identifier' },
    inject: { names: ['count', '");system("id'], why: 'is not a C identifier' },
    long: { names: ['count', 'n'.repeat(65)], why: 'an argument name longer than 64 bytes' },
    huge: { names: ['n'.repeat(1 << 20)], why: 'an argument name longer than 64 bytes' },
    many: { names: ['a', 'b', ...Array(100000).fill('c')], why: 'names more arguments than its 2 types' },
    few: { names: ['count'], why: 'names 1 arguments of 2' },
    twice: { names: ['url', 'url'], why: 'names two arguments "url"' },
    digit: { names: ['count', '2url'], why: 'is not a C identifier' },
    // A tracer's own words: the listing would read `req(int arg1, char *arg0)`.
    tracerword: { names: ['arg1', 'arg0'], why: "is a tracer's own name for an argument" },
    args: { names: ['count', 'args'], why: "is a tracer's own name for an argument" },
  };
  const probes = Object.keys(cases).map((name) => ({ provider: 'argn', name, args: '-8@%rdi 8@%rsi' }));
  const lib = withRecords(
    writeLibrary(dir, 'argnames', probes),
    Object.entries(cases).map(([name, c]) => ({ provider: 'argn', name, types: ['int', 'char *'], names: c.names })),
  );
  const proc = await started(mapper([lib]));

  const text = await watchedCli(['list', proc.pid], { maxRss: 256 << 20 });
  assert.strictEqual(text.killed, null, text.all);
  assert.strictEqual(text.status, 0, text.all);
  assertNoRawControls(text.stdout, 'list');
  const out = text.stdout;
  assert.match(out, /^ {6}good\(int count, char \*url\)$/m);
  for (const [name, c] of Object.entries(cases)) {
    if (name === 'good') continue;
    // The declared types are still used; the names are not, saying why.
    const lines = out.split('\n');
    const at = lines.indexOf(`      ${name}(int, char *)`);
    assert.ok(at >= 0, `${name} listed with its types only:\n${out}`);
    assert.ok(lines[at + 1].startsWith('        argument names not used: ') && lines[at + 1].includes(c.why), `${name}: ${lines[at + 1]}`);
  }

  const json = await watchedCli(['list', proc.pid, '--json'], { maxRss: 256 << 20 });
  assert.strictEqual(json.status, 0, json.all);
  assertNoRawControls(json.stdout, 'list --json');
  const [listed] = JSON.parse(json.stdout);
  const by = Object.fromEntries(listed.providers.flatMap((p) => p.probes).map((p) => [p.name, p]));
  assert.deepStrictEqual(by.good.argNames, ['count', 'url']);
  assert.deepStrictEqual(by.good.args.map((a) => a.name), ['count', 'url']);
  assert.strictEqual(by.good.argNamesProblem, null);
  for (const name of Object.keys(cases).filter((n) => n !== 'good')) {
    assert.deepStrictEqual(by[name].declared, ['int', 'char *'], name);
    assert.strictEqual(by[name].argNames, null, name);
    assert.ok(by[name].args.every((a) => a.name === null), name);
    assert.ok(by[name].argNamesProblem.includes(cases[name].why), `${name}: ${by[name].argNamesProblem}`);
  }
  // Names, good or bad, never reach a command.
  const commands = Object.values(by).flatMap((p) => [p.commands.bpftrace, p.commands.dtrace, ...p.commands.perf, p.commands.gdb]).join('\n');
  for (const marker of ['system(', 'pwned', 'count', 'url', 'nnnn']) assert.ok(!commands.includes(marker), `${marker} in\n${commands}`);
  if (!bpftraceGate.skip) {
    const dry = await watchedCli(['trace', proc.pid, '--dry-run', '--tracer', 'bpftrace']);
    assert.strictEqual(dry.status, 0, dry.all);
    for (const marker of ['system(', 'pwned', 'count', 'nnnn']) assert.ok(!dry.stdout.includes(marker), `${marker} in\n${dry.stdout}`);
  }
});

test('the CLI checks argument names again, whatever the reader returned', () => {
  const { checkArgNames } = require('../lib/cli/types');
  const declared = ['int', 'char *'];
  assert.deepStrictEqual(checkArgNames({ argNames: ['a', 'b'] }, declared), { argNames: ['a', 'b'], argNamesProblem: null });
  assert.deepStrictEqual(checkArgNames({}, declared), { argNames: null, argNamesProblem: null });
  // No usable types: no names, and no second reason.
  assert.deepStrictEqual(checkArgNames({ argNames: ['a', 'b'], argNamesProblem: 'x' }, null), { argNames: null, argNamesProblem: null });
  for (const [note, why] of [
    [{ argNames: 'a' }, /not a list/],
    [{ argNames: ['a'] }, /names 1 arguments of 2/],
    [{ argNames: ['a', 'b', 'c'] }, /names 3 arguments of 2/],
    [{ argNames: ['a', ''] }, /argument 1 "", which is not a C identifier/],
    [{ argNames: ['a', '1b'] }, /"1b", which is not/],
    [{ argNames: ['a', 'b c'] }, /"b c"/],
    [{ argNames: ['a', '\u202eb'] }, /not a C identifier/],
    [{ argNames: ['a', 7] }, /"7", which is not/],
    [{ argNames: ['a', 'n'.repeat(65)] }, /at most 64 bytes/],
    [{ argNames: ['a', 'n'.repeat(1000)] }, /"n{80}", which/],
    [{ argNames: ['a', 'a'] }, /names two arguments "a"/],
    [{ argNames: ['a', 'arg0'] }, /argument 1 "arg0", which is a tracer's own name for an argument/],
    [{ argNames: ['args', 'b'] }, /argument 0 "args", which is a tracer's own name/],
    [{ argNames: null, argNamesProblem: 'from the reader' }, /^from the reader$/],
  ]) {
    const got = checkArgNames(note, declared);
    assert.strictEqual(got.argNames, null, JSON.stringify(note));
    assert.match(got.argNamesProblem, why, JSON.stringify(note));
  }
});

test('the CLI checks declared types again, whatever the reader returned', () => {
  const { checkDeclared } = require('../lib/cli/types');
  const arg = (spec, size, signed) => ({ spec, size, signed, float: false, types: [] });
  const args = [arg('-8@%rdi', 8, true), arg('8@%rsi', 8, false)];
  assert.deepStrictEqual(checkDeclared({ args, declared: ['int', 'json'] }), { declared: ['int', 'json'], declaredProblem: null });
  assert.deepStrictEqual(checkDeclared({ args }), { declared: null, declaredProblem: null });
  const refused = (note) => checkDeclared({ args, ...note });
  for (const [note, why] of [
    [{ declared: 'int' }, /is not a list/],
    [{ declared: ['int'] }, /lists 1 types for the 2 arguments/],
    [{ declared: ['int', 'json'], omittedArgs: 3 }, /for the 5 arguments/],
    [{ declared: ['int', 'string'] }, /unknown type "string"/],
    [{ declared: ['int', 7] }, /unknown type "7"/],
    [{ declared: ['int', '__proto__'] }, /unknown type "__proto__"/],
    [{ declared: ['int', 'x'.repeat(1000)] }, /unknown type "x{32}"$/],
    [{ declared: ['uint64_t', 'json'] }, /says uint64_t for argument 0, which its note records as "-8@%rdi"/],
    [{ declared: ['int', 'int32_t'] }, /says int32_t for argument 1/],
    [{ declared: null, declaredProblem: 'from the reader' }, /^from the reader$/],
  ]) {
    const got = refused(note);
    assert.strictEqual(got.declared, null, JSON.stringify(note));
    assert.match(got.declaredProblem, why, JSON.stringify(note));
  }
});

test('the API refuses names with invisible or bidirectional characters, with which one provider could pose as another in a listing', () => {
  const { createDTraceProvider } = require('..');
  const invisible = ['\u200b', '\u200d', '\u200e', '\u202e', '\u2066', '\ufeff', '\u00ad', '\u{e0041}', '\u3164'];
  for (const c of invisible) {
    const hex = c.codePointAt(0).toString(16);
    for (const name of [`bun${c}yan`, `${c}bunyan`, `bunyan${c}`]) {
      assert.throws(() => createDTraceProvider(name), (e) => e instanceof RangeError && /invisible or bidirectional formatting character/.test(e.message) && e.message.includes(`\\u{${hex}}`), `provider U+${hex}`);
      assert.throws(() => createDTraceProvider('apimod', name), (e) => e instanceof RangeError && /invisible/.test(e.message), `module U+${hex}`);
      const dtp = createDTraceProvider('apinames2');
      assert.throws(() => dtp.addProbe(`log${c}-info`, 'char *'), (e) => e instanceof RangeError && /invisible/.test(e.message), `probe U+${hex}`);
    }
  }
  assert.throws(() => createDTraceProvider('a\ue000'), (e) => e instanceof RangeError && /private-use/.test(e.message));
  // What applications name things keeps working.
  const bunyan = createDTraceProvider('bunyan');
  for (const p of ['log-info', 'log-trace', '__proto__', 'handler-0', 'request.done', 'über']) bunyan.addProbe(p, 'char *');
  createDTraceProvider('restify').addProbe('route-start', 'char *', 'char *', 'int', 'char *', 'char *', 'json');
});

test('a library on a file system that does not answer: list gives up on it after the time limit, once per file system, and exits', { skip: fuseGate.skip, timeout: 240000 }, async (t) => {
  assert.ok(!fuseGate.reason, fuseGate.reason);
  const dir = tempDir();
  const source = writeLibrary(dir, 'src', [{ provider: 'fusey', name: 'p' }]);
  const token = require('node:crypto').randomBytes(8).toString('hex');
  const fuse = await started(fuseMapper(source, dir, token, 2));
  const other = await started(mapper([writeLibrary(dir, 'good', [{ provider: 'good', name: 'fine' }])]));

  // Answered, it is an ordinary library.
  const answered = await watchedCli(['list', fuse.pid, '--json']);
  assert.strictEqual(answered.status, 0, answered.all);
  assert.deepStrictEqual(JSON.parse(answered.stdout)[0].providers.map((p) => p.provider), ['fusey', 'fusey']);

  // Never answered: one time limit (5 s) for the file system, then the
  // other library on it is skipped at once; the CLI exits although its
  // reader is stuck for good.
  const env = { DYNPROBE_FUSE_STALL: token };
  const one = await watchedCli(['list', fuse.pid], { env, ms: 60000 });
  t.diagnostic(`list PID, file system not answering: ${one.ms} ms`);
  assert.strictEqual(one.killed, null, one.all);
  assert.strictEqual(one.status, 1, one.all);
  assert.match(one.stderr, /warning: \S+\/fusemod\d: no answer within 5000 ms \(a file system that does not answer\?\): skipped/, one.all);
  assert.match(one.stderr, /warning: \S+\/fusemod\d: skipped: its file system \(device [0-9a-f]+:[0-9a-f]+\) did not answer in time before/, one.all);
  assert.ok(one.ms < 20000, `${one.ms} ms`);

  const scan = await watchedCli(['list', '--json'], { env, ms: 60000 });
  t.diagnostic(`list (every process), file system not answering: ${scan.ms} ms`);
  assert.strictEqual(scan.killed, null, scan.all);
  assert.strictEqual(scan.status, 0, scan.all);
  const pids = JSON.parse(scan.stdout).map((p) => p.pid);
  assert.ok(pids.includes(other.pid) && !pids.includes(fuse.pid), scan.all);
});

test('trace prints what a probe fires without a raw control or formatting character, as lines and as JSON', () => {
  const { formatLine, formatJson } = require('../lib/cli/format');
  const probe = { provider: 'p', probe: 'x', module: 'p', label: 'p:x', omitted: 0 };
  const values = ['csi \u009b2J', 'rlo \u202egnp.exe', 'esc \x1b]0;t\x07', 'zw\u200bsp', '{"a":1,\r"b":"\u009b"}', '[1,\r\n2]'];
  // As declared strings, as strings of unknown type (JSON is then parsed),
  // and as declared JSON.
  const strings = values.map((value) => ({ type: 'string', value, truncated: false }));
  const guessed = values.map((value) => ({ type: 'string', value, truncated: false, guessed: true }));
  const parsed = [{ a: '\u009b\x1b]0;t\x07', b: ['\u202e'] }, '\u200b'].map((value) => ({ type: 'json', value }));
  const firing = { probe, tid: 1, time: 1700000000000000000n, args: [...strings, ...guessed, ...parsed] };
  for (const pretty of [false, true]) {
    const line = formatLine(firing, { pretty, pid: 1 });
    assertNoRawControls(line, `trace${pretty ? ' --pretty' : ''}`);
    assert.ok(line.includes('\\u009b2J') && line.includes('\\u202egnp.exe') && line.includes('\\u001b]0;t\\u0007'), line);
  }
  const json = formatJson(firing, 1);
  assertNoRawControls(json, 'trace --json');
  assert.deepStrictEqual(JSON.parse(json).args, [...values, ...values, ...parsed.map((a) => a.value)], 'the same values, escaped');
});
