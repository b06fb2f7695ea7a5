'use strict';
// test-needs: nothing
// test-tier: quick
// Lifetimes: a probe keeps its provider alive; an unreachable provider leaves
// no mapping or descriptor behind; disable() unmaps at once; cycles do not
// leak; workers each load their own providers. Each case runs in a child
// `node --expose-gc` and reports what it measured.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { runChild } = require('./fixtures/helpers');

function run(code) {
  const r = runChild(`const dynprobe = require(helpers.ROOT);\n${code}`, { flags: ['--expose-gc'], timeout: 120000 });
  assert.equal(r.status, 0, `child failed (${r.signal || r.status}):\n${r.stderr}`);
  assert.ok(r.result !== undefined, `child reported nothing:\n${r.stdout}\n${r.stderr}`);
  return r.result;
}

test('a probe keeps its provider (and its library) alive through gc()', () => {
  const r = run(`
    const before = helpers.libraryPaths();
    let probe = (() => {
      const dtp = dynprobe.createDTraceProvider('gckeep');
      const p = dtp.addProbe('p', 'int');
      dtp.enable();
      return p;
    })();
    const [lib] = helpers.newLibraries(before);
    await helpers.collect();
    const kept = helpers.libraryPaths().includes(lib);
    const semaphore = probe._sema[0]; // 0 while mapped and untraced
    const fired = probe.fire(() => { throw new Error('nothing traces'); });
    probe = null;
    await helpers.collect();
    report({ lib, kept, semaphore, fired: fired === undefined, releasedWithTheProbe: !helpers.libraryPaths().includes(lib) });
  `);
  assert.match(r.lib, /\/[0-9a-f]{40}\/gckeep$/);
  assert.deepEqual(r, { lib: r.lib, kept: true, semaphore: 0, fired: true, releasedWithTheProbe: true });
});

test('unreachable providers are released: no mapping, no descriptor', () => {
  const r = run(`
    const cycle = () => {
      const dtp = dynprobe.createDTraceProvider('gcwarm');
      dtp.addProbe('p', 'int');
      dtp.enable();
      dtp.disable();
    };
    cycle(); // loads the cache directory and anything lazily opened
    await helpers.collect();
    const fds = helpers.fdCount();
    const before = helpers.libraryPaths();
    (() => {
      for (let i = 0; i < 5; i++) {
        const dtp = dynprobe.createDTraceProvider('gcdrop');
        const p = dtp.addProbe('p', 'int', 'char *');
        dtp.addProbe('q', 'json');
        dtp.enable();
        p.fire(() => [i, 'x']);
      }
    })();
    const loaded = helpers.newLibraries(before).length;
    await helpers.collect();
    report({ loaded, left: helpers.newLibraries(before), fdDelta: helpers.fdCount() - fds });
  `);
  assert.deepEqual(r, { loaded: 5, left: [], fdDelta: 0 });
});

test('disable() unmaps at once; the old semaphore view reads undefined; fire is a no-op', () => {
  const r = run(`
    const before = helpers.libraryPaths();
    const dtp = dynprobe.createDTraceProvider('gcdisable');
    const p = dtp.addProbe('p', 'int');
    const removed = dtp.addProbe('removed', 'int');
    dtp.enable();
    const mapped = helpers.newLibraries(before).length;
    const sema = p._sema;
    const removedSema = removed._sema;
    dtp.removeProbe(removed);
    const live = sema[0];
    dtp.disable();
    let ran = false;
    const cb = () => { ran = true; return [1]; };
    report({
      mapped,
      live,
      left: helpers.newLibraries(before),
      detached: sema.buffer.byteLength === 0 && sema.length === 0,
      reads: [sema[0], sema[1], removedSema[0]],
      fire: [p.fire(cb), removed.fire(cb), dtp.fire('p', cb)],
      ran,
    });
  `);
  assert.deepEqual(r, {
    mapped: 1,
    live: 0,
    left: [],
    detached: true,
    reads: [null, null, null], // undefined, through JSON
    fire: [null, null, true],
    ran: false,
  });
});

test('2,000 create/enable/disable cycles: RSS grows < 8 MiB, descriptors flat', () => {
  const r = run(`
    const cycles = (n) => {
      for (let i = 0; i < n; i++) {
        const dtp = dynprobe.createDTraceProvider('gccycle');
        const p = dtp.addProbe('p', 'int', 'char *');
        dtp.enable();
        p.fire(() => [i, 'x']);
        dtp.disable();
      }
    };
    // Warm up until V8's heap and malloc's arenas have grown to their working
    // size: the first thousands of cycles of anything grow RSS by ~6 MiB.
    cycles(2000);
    await helpers.collect();
    const rss = process.memoryUsage().rss;
    const fds = helpers.fdCount();
    const before = helpers.libraryPaths();
    const start = Date.now();
    cycles(2000);
    const ms = Date.now() - start;
    await helpers.collect();
    report({ rssGrowth: process.memoryUsage().rss - rss, fdDelta: helpers.fdCount() - fds, left: helpers.newLibraries(before), ms });
  `);
  assert.ok(r.rssGrowth < 8 * 1024 * 1024, `RSS grew by ${(r.rssGrowth / 1048576).toFixed(1)} MiB`);
  assert.equal(r.fdDelta, 0);
  assert.deepEqual(r.left, []);
});

// Node runs N-API finalizers only when the event loop turns: whatever a
// provider left for one to free piled up in a loop that never yields
// (+28 MiB for these 40,000 cycles before the fix, ~800 bytes a cycle).
// disable() now frees it all at once; what is left is Node's own record of
// each semaphore buffer (~190 bytes, freed at the next turn of the loop).
test('40,000 create/enable/fire/disable cycles, in a loop that never yields and in one that does: RSS grows < 14 MiB', () => {
  const r = run(`
    const cycle = (i) => {
      const dtp = dynprobe.createDTraceProvider('gcloop');
      const p = dtp.addProbe('p', 'int', 'char *');
      dtp.enable();
      p.fire(() => [i, 'x']);
      dtp.disable();
    };
    const sync = (n) => { for (let i = 0; i < n; i++) cycle(i); };
    const yielding = async (n) => {
      for (let i = 0; i < n; i++) {
        cycle(i);
        if (i % 100 === 99) await helpers.tick();
      }
    };
    // Warm up both shapes (V8's heap and malloc's arenas grow to size).
    await yielding(5000);
    sync(5000);
    await helpers.collect();
    const fds = helpers.fdCount();
    const growth = {};
    for (const [shape, loop] of [['sync', sync], ['yielding', yielding]]) {
      const before = process.memoryUsage().rss;
      await loop(40000);
      await helpers.collect();
      growth[shape] = process.memoryUsage().rss - before;
    }
    report({ growth, fdDelta: helpers.fdCount() - fds, left: helpers.libraryPaths().length });
  `);
  const mib = (b) => `${(b / 1048576).toFixed(1)} MiB`;
  assert.ok(r.growth.sync < 14 * 1048576, `a loop that never yields grew RSS by ${mib(r.growth.sync)}`);
  assert.ok(r.growth.yielding < 14 * 1048576, `a loop that yields grew RSS by ${mib(r.growth.yielding)}`);
  assert.equal(r.fdDelta, 0);
  assert.equal(r.left, 0);
});

test('workers: each loads the addon and its own same-named provider; terminating releases them', () => {
  const r = run(`
    const { Worker } = require('node:worker_threads');
    // Node opens /dev/null for good with the first worker: count after one.
    await new Promise((resolve) => new Worker('', { eval: true }).once('exit', resolve));
    const fds = helpers.fdCount();
    const before = helpers.libraryPaths();
    const source = \`
      const { parentPort, workerData } = require('node:worker_threads');
      const dynprobe = require(workerData);
      const dtp = dynprobe.createDTraceProvider('gcworker');
      const p = dtp.addProbe('w', 'int', 'char *');
      dtp.enable();
      let ran = false;
      p.fire(() => { ran = true; return [1, 'x']; });
      parentPort.postMessage({ ran });
      setInterval(() => {}, 1000); // stays until terminated
    \`;
    const start = () => new Worker(source, { eval: true, workerData: helpers.ROOT });
    const workers = [start(), start(), start(), start()];
    const messages = await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    })));
    const loaded = helpers.newLibraries(before).map((p) => p.split('/').pop()).sort();
    await workers[0].terminate();
    await helpers.collect();
    const afterOne = helpers.newLibraries(before).length;
    await Promise.all(workers.slice(1).map((w) => w.terminate()));
    await helpers.collect();
    // A worker that ends by itself releases its provider too.
    const natural = new Worker(source.replace('setInterval', 'void'), { eval: true, workerData: helpers.ROOT });
    await new Promise((resolve) => natural.once('exit', resolve));
    await helpers.collect();
    report({ messages, loaded, afterOne, left: helpers.newLibraries(before), fdDelta: helpers.fdCount() - fds });
  `);
  assert.deepEqual(r.messages, [{ ran: false }, { ran: false }, { ran: false }, { ran: false }]);
  assert.deepEqual(r.loaded, ['gcworker', 'gcworker-2', 'gcworker-3', 'gcworker-4']);
  assert.equal(r.afterOne, 3, 'the other workers keep theirs');
  assert.deepEqual(r.left, []);
  assert.equal(r.fdDelta, 0);
});
