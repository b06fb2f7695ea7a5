'use strict';
// DTrace's own registration, in a virtual machine running Oracle DTrace 2.0.7
// with its helper daemon dtprobed (this machine's kernel has no CUSE):
// scripts/provision-dtrace-vm.sh makes the VM, scripts/dtrace-vm boots it and
// runs a script in it.
//
// - The reference: a C program built with DTrace's own `dtrace -h`/`dtrace -G`
//   is listed by a provider glob and traced system-wide (`-Z`, no `-p`).
// - dynprobe: a provider that Provider::load registers with DTRACEHIOC_ADDDOF
//   (its DOF from dynprobe-format's dof module; crates/dynprobe/examples/
//   dtrace_register.rs) is seen by the seed's exact command, started before
//   the program, through the checked fire (is_enabled() turns on under
//   DTrace's probes); it is listed while registered, and gone after unload
//   (DTRACEHIOC_REMOVE) and after the process exits.
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
const VM = process.env.DYNPROBE_DTRACE_VM || '/var/lib/dynprobe/dtrace-vm';
const RUN = path.join(ROOT, 'scripts', 'dtrace-vm');
const FIXTURES = path.join(__dirname, 'fixtures');
const EXAMPLE = path.join(ROOT, 'target', 'release', 'examples', 'dtrace_register');
const SID_INCLUDE = path.join(
  process.env.DYNPROBE_SID_ROOT || '/var/lib/dynprobe/sid',
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
function inVm(script, files) {
  const r = spawnSync(RUN, ['--timeout', '420', script, ...files], { encoding: 'utf8', timeout: 900000 });
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
  assert.ok(fs.existsSync(EXAMPLE), `${EXAMPLE} is missing: cargo build --release -p dynprobe --examples`);
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
