'use strict';
// test-needs: vm
// DTrace's own registration, in a virtual machine running Oracle DTrace 2.0.7
// with its helper daemon dtprobed (this machine's kernel has no CUSE):
// scripts/provision-dtrace-vm.sh makes the VM, scripts/dtrace-vm boots it and
// runs a script in it.
//
// - The reference: a C program built with DTrace's own `dtrace -h`/`dtrace -G`
//   is listed by a provider glob and traced system-wide (`-Z`, no `-p`).
// - dynprobe: a provider that Provider::load registers with DTRACEHIOC_ADDDOF
//   (its DOF from dynprobe-format's dof module;
//   test/drivers/src/bin/dtrace_register.rs) is seen by the seed's exact
//   command, started before the program, through the checked fire (is_enabled() turns on under
//   DTrace's probes); it is listed while registered, and gone after unload
//   (DTRACEHIOC_REMOVE) and after the process exits.
// - Node: one boot runs every Node case (test/fixtures/dtrace-vm-node/
//   guest.sh) with this process's node binary, dynprobe and bunyan in the
//   share: the seed's exact command started before the seed's example, the
//   listing while it runs and after disable() and exit, bunyan's -Z command,
//   the fire callbacks run only while traced, and refused registrations are
//   warnings while the stapsdt probes go on working.
//
// Without root, the VM or the tracers these tests are skipped loudly; with
// CI=true they fail.

const test = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { gate } = require('./fixtures/helpers');

const ROOT = path.join(__dirname, '..');
const cache = require('../scripts/lib/paths');

const VM = cache.DYNPROBE_DTRACE_VM;
const RUN = path.join(ROOT, 'scripts', 'dtrace-vm');
const FIXTURES = path.join(__dirname, 'fixtures');
const ADDON = path.join(ROOT, 'build', 'dynprobe.node');
const NODE_FIXTURES = path.join(FIXTURES, 'dtrace-vm-node');
// What every guest script sources (up, now, stop_dtrace).
const GUEST_LIB = path.join(FIXTURES, 'dtrace-guest-lib.sh');
const EXAMPLE = path.join(ROOT, 'target', 'release', 'dtrace_register');
const SID_INCLUDE = path.join(
  cache.DYNPROBE_SID_ROOT,
  'usr/lib/x86_64-linux-gnu/dtrace/include',
);

function vmUnavailable() {
  if (process.platform !== 'linux' || process.arch !== 'x64') return 'the DTrace VM is x86-64 Linux only';
  if (process.getuid() !== 0) return 'the DTrace VM needs root';
  if (!fs.existsSync(path.join(VM, '.ready'))) {
    return `no DTrace VM in ${VM}: run sudo bash scripts/provision-dtrace-vm.sh`;
  }
  const qemu = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
  if (qemu.error || qemu.status !== 0) return 'qemu-system-x86_64 is not installed (scripts/provision-dtrace-vm.sh)';
  return null;
}

const vmGate = gate('DTrace VM tests', vmUnavailable());

// Runs `script` in the VM with `files` in its share; its output by "== name"
// section, with the exit code and the runner's own lines.
// With `share`, the files are already in that directory.
// Each script sources GUEST_LIB from the share.
function inVm(script, files, share = null) {
  const args = share === null ? ['--timeout', '420'] : ['--timeout', '420', '--share', share];
  const r = spawnSync(RUN, [...args, script, GUEST_LIB, ...files], { encoding: 'utf8', timeout: 900000 });
  // The runner's timing lines, for the log.
  process.stderr.write(r.stderr || '');
  const sections = {};
  let current = null;
  for (const line of (r.stdout || '').split('\n')) {
    const m = /^== (.*?)(?: \[[\d.]+\])?$/.exec(line);
    if (m) {
      current = m[1];
      sections[current] = [];
    } else if (current !== null) {
      sections[current].push(line);
    }
  }
  const text = (name) => (sections[name] || []).join('\n');
  const why = `\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
  return { status: r.status, sections, text, why, stderr: r.stderr };
}

// `dtrace -l` rows: { provider, module, func, name }.
function listed(text) {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 5 && /^\d+$/.test(f[0]))
    .map(([, provider, module, func, name]) => ({ provider, module, func, name }));
}

test('DTrace VM: dtrace -V, and a dtrace -G program listed by a provider glob and traced with -Z', { skip: vmGate.skip, timeout: 900000 }, () => {
  assert.ok(!vmGate.reason, vmGate.reason);
  // Built here with the host's compiler and sid's dtrace -h/-G (scripts/dtrace).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-dtrace-g-'));
  try {
    const src = path.join(FIXTURES, 'dtrace-g');
    const dtrace = path.join(ROOT, 'scripts', 'dtrace');
    const step = (cmd, args) => {
      const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', timeout: 120000 });
      assert.strictEqual(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}${r.error || ''}`);
    };
    step(dtrace, ['-h', '-s', path.join(src, 'prov.d'), '-o', 'prov.h']);
    step('gcc', ['-O2', '-I', SID_INCLUDE, '-I', dir, '-c', path.join(src, 'prog.c'), '-o', 'prog.o']);
    step(dtrace, ['-G', '-s', path.join(src, 'prov.d'), 'prog.o', '-o', 'prov.o']);
    step('gcc', ['-o', 'prog', 'prog.o', 'prov.o']);

    const r = inVm(path.join(src, 'guest.sh'), [path.join(dir, 'prog')]);
    assert.strictEqual(r.status, 0, r.why);
    assert.match(r.text('version'), /dtrace: D 2\.0\.7/, r.why);
    const rows = listed(r.text('listing'));
    assert.ok(
      rows.some((p) => /^prov\d+$/.test(p.provider) && p.module === 'prog' && p.func === 'main' && p.name === 'probe1'),
      `prov<pid>:prog:main:probe1 not listed${r.why}`,
    );
    const hits = Number(/hits (\d+)/.exec(r.text('trace output'))[1]);
    assert.ok(hits > 0, `the -Z enabling saw no firing${r.why}`);
    assert.match(r.text('trace output'), /^probe1 \d+ hello$/m, r.why);
    // The is-enabled check of the note form turns on while traced.
    const fired = Number(/fired (\d+)/.exec(r.text('program output'))[1]);
    assert.ok(fired >= hits, `program fired ${fired}, tracer saw ${hits}${r.why}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("DTrace VM: the seed's exact command sees a dynprobe provider registered with DTRACEHIOC_ADDDOF", { skip: vmGate.skip, timeout: 900000 }, () => {
  assert.ok(!vmGate.reason, vmGate.reason);
  assert.ok(fs.existsSync(EXAMPLE), `${EXAMPLE} is missing: cargo build --release -p dynprobe-test-drivers`);
  const r = inVm(path.join(FIXTURES, 'dtrace-registration.sh'), [EXAMPLE]);
  assert.strictEqual(r.status, 0, r.why);

  const program = r.text('program output');
  assert.match(program, /^registered$/m, r.why);
  const pid = /^pid (\d+) /m.exec(program)[1];

  // dtrace -l -n 'nodeapp*:::' while registered: the provider carries the pid,
  // the module is the library's file name, the function the probe's stub.
  const rows = listed(r.text('listing while registered'));
  assert.deepStrictEqual(
    rows.map((p) => `${p.provider}:${p.module}:${p.func}:${p.name}`).sort(),
    [`nodeapp${pid}:nodeapp:nodeapp__probe1:probe1`, `nodeapp${pid}:nodeapp:nodeapp__probe2:probe2`],
    r.why,
  );
  assert.deepStrictEqual(listed(r.text('listing after remove')), [], `still listed after REMOVE${r.why}`);
  assert.deepStrictEqual(listed(r.text('listing after exit')), [], `still listed after exit${r.why}`);

  // The seed's output: `1 2` from probe1 and `hello, dtrace` from probe2, for
  // both runs of the program (the second started while -Z was running).
  const seed = r.text('seed output');
  assert.match(seed, /nodeapp__probe1:probe1\s+1\s+2\s*$/m, r.why);
  assert.match(seed, /nodeapp__probe2:probe2\s+hello, dtrace\s*$/m, r.why);
  const ids = new Set([...seed.matchAll(/^\s*\d+\s+(\d+)\s+nodeapp__probe1:probe1/gm)].map((m) => m[1]));
  assert.strictEqual(ids.size, 2, `one probe id per registered process expected${r.why}`);
  assert.match(r.text('seed errors'), /description 'nodeapp\*:::probe1' matched 0 probes/, r.why);

  // What a traced probe looks like from inside the process: DTrace's uprobe
  // replaces the site's NOP (0x0f) with int3 (0xcc), but leaves the stapsdt
  // semaphore at 0: it registers the site without the semaphore. The site
  // watcher sees the site change and sets the probe's flag, so is_enabled()
  // (one load of semaphore and flag) turns on, and the checked fires reached
  // DTrace (the seed output above).
  assert.match(program, /^state: probe1 semaphore=0 flag=1 enabled=true site=cc, probe2 semaphore=0 flag=1 enabled=true site=cc$/m, r.why);
  assert.doesNotMatch(program, /semaphore=[1-9]/, r.why);
  const traced = Number(/^removed after \d+ rounds, (\d+) traced fires$/m.exec(program)[1]);
  assert.ok(traced > 0, `no checked fire was traced${r.why}`);
});

// The share of the Node cases: this process's node (it needs only libc,
// libstdc++ and libgcc_s, which the guest's sid root has), dynprobe as the
// package would install it, bunyan with what its library requires, and
// node_modules/dtrace-provider pointing at dynprobe, as the project's own
// node_modules does.
function nodeShare() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-vm-node-'));
  const put = (from, to = path.basename(from)) => fs.cpSync(from, path.join(dir, to), { recursive: true });
  put(process.execPath, 'node');
  put(path.join(ROOT, 'index.js'));
  put(path.join(ROOT, 'package.json'));
  put(path.join(ROOT, 'lib'));
  put(ADDON, path.join('build', 'dynprobe.node'));
  const bunyan = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', 'bunyan', 'package.json'), 'utf8'));
  for (const name of ['bunyan', ...Object.keys(bunyan.dependencies || {}), 'safe-json-stringify']) {
    put(path.join(ROOT, 'node_modules', name), path.join('node_modules', name));
  }
  fs.symlinkSync('..', path.join(dir, 'node_modules', 'dtrace-provider'));
  for (const f of fs.readdirSync(NODE_FIXTURES)) put(path.join(NODE_FIXTURES, f));
  return dir;
}

function nodeCasesUnavailable() {
  if (!fs.existsSync(ADDON)) return `${ADDON} is missing: node scripts/build-addon.js`;
  if (!fs.existsSync(path.join(ROOT, 'node_modules', 'bunyan', 'package.json'))) return 'bunyan is missing: npm ci';
  return null;
}

test('DTrace VM, Node: the seed example under the seed command, listings, bunyan, is-enabled, a refused registration', { skip: vmGate.skip, timeout: 900000 }, (t) => {
  assert.ok(!vmGate.reason, vmGate.reason);
  const missing = nodeCasesUnavailable();
  assert.ok(missing === null, missing);
  const share = nodeShare();
  let r;
  try {
    r = inVm(path.join(NODE_FIXTURES, 'guest.sh'), [], share);
  } finally {
    fs.rmSync(share, { recursive: true, force: true });
  }
  // Where the guest's time goes (its uptime at each step), for the log.
  const steps = [...r.why.matchAll(/^== (.*?) \[([\d.]+)\]$/gm)].map(([, name, at]) => `${name} ${at} s`);
  t.diagnostic(`guest timeline: ${steps.join(', ')}`);
  assert.strictEqual(r.status, 0, r.why);
  assert.match(r.text('node version'), new RegExp(`^${process.version.replace(/\./g, '\\.')}$`, 'm'), `node did not run in the guest${r.why}`);

  // Nobody traces: the fire callbacks never ran.
  assert.match(r.text('untraced'), /^pid \d+ enabled/m, r.why);
  assert.match(r.text('untraced'), /^calls probe1 0 probe2 0 rounds 20$/m, `a fire callback ran untraced${r.why}`);

  // The seed's exact command, started before the programs, with no -p.
  assert.match(r.text('seed errors'), /description 'nodeapp\*:::probe1' matched 0 probes/, r.why);
  assert.match(r.text('seed errors'), /description 'nodeapp\*:::probe2' matched 0 probes/, r.why);
  const first = r.text('first output');
  const second = r.text('second output');
  const pids = [first, second].map((out) => {
    const m = /^pid (\d+) enabled/m.exec(out);
    assert.ok(m, r.why);
    return m[1];
  });
  const latencies = [first, second].map((out) => {
    const m = /^traced (\d+) ms after enable\(\)/m.exec(out);
    assert.ok(m, `the -Z enabling never turned the probes on${r.why}`);
    return Number(m[1]);
  });
  t.diagnostic(`enable() to both probes traced by the running -Z enabling (TCG guest): ${latencies.join(' ms, ')} ms`);
  // `uniq -c` lines: "COUNT CPU ID FUNCTION:NAME VALUES".
  const seed = [...r.text('seed output').matchAll(/^\s*(\d+) \d+\s+(\d+)\s+\S*:(probe[12])\s+(.*?)\s*$/gm)].map(
    ([, count, id, name, values]) => ({ count: Number(count), id, name, values }),
  );
  const expected = { probe1: /^1\s+2$/, probe2: /^hello, dtrace$/ };
  assert.ok(seed.length > 0 && seed.every((l) => expected[l.name].test(l.values)), `not the seed's values${r.why}`);
  // Each process has its own probe ids: both processes are seen, by both probes.
  for (const name of ['probe1', 'probe2']) {
    assert.strictEqual(new Set(seed.filter((l) => l.name === name).map((l) => l.id)).size, 2, `${name}: one id per process expected${r.why}`);
  }

  // Listed while they run; gone after the first's disable() and the second's exit.
  assert.deepStrictEqual(
    listed(r.text('listing while running')).map((p) => `${p.provider}:${p.module}:${p.name}`).sort(),
    pids.flatMap((pid) => [`nodeapp${pid}:nodeapp:probe1`, `nodeapp${pid}:nodeapp:probe2`]).sort(),
    r.why,
  );
  assert.deepStrictEqual(listed(r.text('listing after disable and exit')), [], `still listed${r.why}`);

  // Is-enabled: the callbacks ran while the seed command traced, and not
  // once after disable().
  const atDisable = /^disabled; calls (probe1 (\d+) probe2 (\d+)) rounds \d+$/m.exec(first);
  assert.ok(atDisable, r.why);
  assert.ok(Number(atDisable[2]) > 0 && Number(atDisable[3]) > 0, `callbacks did not run while traced${r.why}`);
  assert.match(first, new RegExp(`^exiting; calls ${atDisable[1]} rounds \\d+$`, 'm'), `a callback ran after disable()${r.why}`);
  assert.match(second, /^exiting; calls probe1 [1-9]\d* probe2 [1-9]\d* /m, r.why);

  // bunyan: a debug record that no stream gets (the logger is at info) is
  // seen by the -Z command started before the logger.
  const loggerPid = /^pid (\d+) logging$/m.exec(r.text('bunyan-app output'));
  assert.ok(loggerPid, r.why);
  assert.doesNotMatch(r.text('bunyan-app output'), /only a tracer/, r.why);
  const records = r
    .text('bunyan -Z output')
    .split('\n')
    .map((l) => /log-debug\s+(\{.*\})\s*$/.exec(l))
    .filter(Boolean)
    .map((m) => JSON.parse(m[1]));
  assert.ok(
    records.some((rec) => rec.name === 'vmapp' && rec.level === 20 && rec.msg === 'a record only a tracer sees' && rec.pid === Number(loggerPid[1])),
    `no bunyan record seen by the -Z command${r.why}`,
  );

  // Refused registrations: a warning that says why, and the stapsdt probes
  // still fire for a tracer that names the process.
  const warning = /^warning DYNPROBE_DTRACE_REGISTRATION_FAILED: provider nodeapp is not registered with DTrace: (.*)$/m;
  const refused = r.text('refused output');
  assert.match(refused, warning, r.why);
  assert.match(warning.exec(refused)[1], /module name "refused-m+" cannot be registered with DTrace: 1 to 63 bytes/, r.why);
  const refusedDaemon = r.text('refused-daemon output');
  assert.match(refusedDaemon, warning, r.why);
  t.diagnostic(`the daemon's refusal, as the process says it: ${warning.exec(refusedDaemon)[1]}`);
  // The daemon says why in its log: it could not stash the DOF.
  assert.match(r.text('dtprobed log'), /I\/O error stashing DOF: Read-only file system/, r.why);
  for (const out of [refused, refusedDaemon]) {
    const pid = /^pid (\d+) enabled/m.exec(out)[1];
    assert.match(r.text('refused dtrace output'), new RegExp(`^\\s*\\d+ ${pid}: 1 2$`, 'm'), r.why);
    assert.match(out, /^traced$/m, r.why);
  }
});
