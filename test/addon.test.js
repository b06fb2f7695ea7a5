'use strict';
// test-needs: nothing
// test-tier: quick
// The raw addon (build/dynprobe.node), which anyone can require, abused as a
// careless or hostile caller would: whatever it is given, it never reads
// memory it does not own. Each case runs in a child process, which ends
// with a JS error or no effect; before the fix several died of SIGSEGV.
// DYNPROBE_TEST_ADDON=path runs the cases against another build of it.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { runChild, gate } = require('./fixtures/helpers');

const ADDON = process.env.DYNPROBE_TEST_ADDON || path.join(__dirname, '..', 'build', 'dynprobe.node');

// Another addon, for foreign Externals and wrapped objects: compiled here
// against node's own headers.
function compileForeignAddon() {
  const headers = path.join(path.dirname(process.execPath), '..', 'include', 'node');
  if (!fs.existsSync(path.join(headers, 'node_api.h'))) return { reason: `no node headers in ${headers}` };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-foreign-'));
  const out = path.join(dir, 'foreign.node');
  try {
    execFileSync('cc', ['-O2', '-shared', '-fPIC', '-I', headers, '-o', out, path.join(__dirname, 'fixtures', 'foreign-addon.c')], { stdio: 'pipe' });
  } catch (err) {
    return { reason: `cannot compile a C addon: ${err.stderr || err.message}` };
  }
  return { path: out, dir };
}
const foreign = compileForeignAddon();
const foreignGate = gate('foreign-addon tests', foreign.reason || null);
process.on('exit', () => foreign.dir && fs.rmSync(foreign.dir, { recursive: true, force: true }));

function run(code) {
  const prelude = `
    const addon = require(${JSON.stringify(ADDON)});
    const foreign = ${foreign.path ? `require(${JSON.stringify(foreign.path)})` : 'null'};
    const load = (name) => new addon.NativeProvider(name, name, [{ name: 'p', types: ['int64_t'] }, { name: 'q', types: ['char *'] }]);
    const attempt = (f) => { try { return { value: f() === undefined ? 'undefined' : 'value' }; } catch (err) { return { error: err.constructor.name + ': ' + err.message }; } };
  `;
  const r = runChild(prelude + code, { flags: ['--expose-gc'], timeout: 60000 });
  assert.equal(r.signal, null, `the child died of ${r.signal}:\n${r.stderr}`);
  assert.equal(r.status, 0, `child failed (${r.status}):\n${r.stderr}`);
  assert.ok(r.result !== undefined, `child reported nothing:\n${r.stdout}\n${r.stderr}`);
  return r.result;
}

test("unload() given another provider's buffer still detaches its own", () => {
  const r = run(`
    const a = load('rawunloada');
    const b = load('rawunloadb');
    const aView = new Uint32Array(a.semaphores());
    const bBuffer = b.semaphores();
    a.unload(bBuffer);
    const readA = aView[0]; // unmapped memory, if the view were still attached
    const bView = new Uint32Array(bBuffer);
    report({ aDetached: aView.length === 0, readA: readA === undefined, bStillLoaded: bView.length === 2 && bView[0] === 0 });
    b.unload();
  `);
  assert.deepEqual(r, { aDetached: true, readA: true, bStillLoaded: true });
});

test('every buffer a provider handed out is detached by unload()', () => {
  const r = run(`
    const a = load('rawunloadall');
    const views = [a.semaphores(), a.semaphores(), a.semaphores()].map((b) => new Uint32Array(b));
    a.unload();
    a.unload(); // idempotent
    report({ lengths: views.map((v) => v.length), reads: views.map((v) => v[0] === undefined) });
  `);
  assert.deepEqual(r, { lengths: [0, 0, 0], reads: [true, true, true] });
});

test('the buffer of a provider that was garbage-collected is detached with it', () => {
  const r = run(`
    const before = helpers.libraryPaths();
    let views = [];
    (() => {
      for (let i = 0; i < 5; i++) {
        const p = load('rawgc');
        views.push(new Uint32Array(p.semaphores()));
        p.handle(0);
      }
    })();
    const loaded = helpers.newLibraries(before).length;
    await helpers.collect();
    const reads = views.map((v) => v[0]); // unmapped memory, if still attached
    report({ loaded, left: helpers.newLibraries(before).length, lengths: views.map((v) => v.length), reads: reads.map((x) => x === undefined) });
  `);
  assert.deepEqual(r, { loaded: 5, left: 0, lengths: [0, 0, 0, 0, 0], reads: [true, true, true, true, true] });
});

test('fire with a handle after unload or after its provider was collected does nothing', () => {
  const r = run(`
    const a = load('rawstale');
    const stale = a.handle(0);
    a.unload();
    const afterUnload = attempt(() => addon.fire(stale, 1));
    let collected = (() => { const p = load('rawstale2'); return p.handle(1); })();
    await helpers.collect();
    const afterGc = attempt(() => addon.fire(collected, 'x'));
    // A new provider in the same slot: the old handles still find nothing.
    const b = load('rawstale3');
    const afterReuse = [attempt(() => addon.fire(stale, 1)), attempt(() => addon.fire(collected, 'x'))];
    b.unload();
    report({ afterUnload, afterGc, afterReuse });
  `);
  assert.deepEqual(r, {
    afterUnload: { value: 'undefined' },
    afterGc: { value: 'undefined' },
    afterReuse: [{ value: 'undefined' }, { value: 'undefined' }],
  });
});

test('methods called on anything but a loaded provider throw', () => {
  const r = run(`
    const proto = addon.NativeProvider.prototype;
    const unloaded = load('rawthis');
    unloaded.unload();
    report({
      plain: [attempt(() => proto.handle.call({}, 0)), attempt(() => proto.semaphores.call({})), attempt(() => proto.unload.call({}))],
      primitive: attempt(() => proto.unload.call(42)),
      unloaded: [attempt(() => unloaded.handle(0)), attempt(() => unloaded.semaphores()), attempt(() => unloaded.unload())],
      noNew: attempt(() => addon.NativeProvider('x', 'x', [])),
      badIndex: attempt(() => { const p = load('rawindex'); try { return p.handle(2); } finally { p.unload(); } }),
    });
  `);
  assert.match(r.plain[0].error, /TypeError/);
  assert.match(r.plain[1].error, /TypeError/);
  assert.match(r.plain[2].error, /TypeError/);
  assert.match(r.primitive.error, /TypeError/);
  assert.match(r.unloaded[0].error, /unloaded/);
  assert.match(r.unloaded[1].error, /unloaded/);
  assert.deepEqual(r.unloaded[2], { value: 'undefined' });
  assert.match(r.noNew.error, /TypeError/);
  assert.match(r.badIndex.error, /TypeError: no probe at index 2/);
});

test('fire given an External another addon made throws or does nothing', { skip: foreignGate.skip }, () => {
  const r = run(`
    const live = load('rawforeign'); // slot 0, generation 0: what a zero id would name
    report({
      small: attempt(() => addon.fire(foreign.external(16), 1)),
      nullData: attempt(() => addon.fire(foreign.external(0), 1)),
      heapLike: attempt(() => addon.fire(foreign.external(0x7f0000001000), 1, 2, 3)),
      // The marker bit set, nothing behind it: no provider in that slot.
      markedJunk: attempt(() => addon.fire(foreign.externalBits(0x80001234, 0xdeadbeef), 'x')),
      // A forged id of the live provider with a probe index out of range.
      forgedIndex: attempt(() => addon.fire(foreign.externalBits(0x80000000, 0x000ff), 1)),
    });
    live.unload();
  `);
  assert.match(r.small.error, /TypeError: fire\(handle, \.\.\.values\): bad handle/);
  assert.match(r.nullData.error, /TypeError/);
  assert.match(r.heapLike.error, /TypeError/);
  assert.deepEqual(r.markedJunk, { value: 'undefined' });
  assert.deepEqual(r.forgedIndex, { value: 'undefined' });
});

test("methods called on an object another addon wrapped throw", { skip: foreignGate.skip }, () => {
  const r = run(`
    const proto = addon.NativeProvider.prototype;
    const obj = foreign.wrapped(16);
    report({
      handle: attempt(() => proto.handle.call(obj, 0)),
      semaphores: attempt(() => proto.semaphores.call(obj)),
      unload: attempt(() => proto.unload.call(obj)),
    });
  `);
  assert.match(r.handle.error, /TypeError/);
  assert.match(r.semaphores.error, /TypeError/);
  assert.match(r.unload.error, /TypeError/);
});
