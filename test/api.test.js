'use strict';
// test-needs: tracer
// test-tier: quick
// The dtrace-provider contract (docs/dtrace-provider.md), line by line,
// without a tracer; the traced path at the end attaches the real bpftrace to
// this process (root only: skipped loudly otherwise, failed under
// CI=true).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const dynprobe = require('..');
const { nativeType } = require('../lib/provider');
const h = require('./fixtures/helpers');
// musl never unmaps on dlclose: there a disabled library stays mapped.
const { dlcloseUnmaps } = require('./platform/libc');

const { DTraceProvider, createDTraceProvider } = dynprobe;
const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));
const mustNotRun = () => {
  throw new Error('the callback ran although nothing traces');
};

describe('module', () => {
  test('exports DTraceProvider, a real constructor with its methods on the prototype', () => {
    assert.equal(typeof DTraceProvider, 'function');
    assert.equal(typeof createDTraceProvider, 'function');
    for (const m of ['addProbe', 'removeProbe', 'enable', 'disable', 'fire']) {
      assert.equal(typeof DTraceProvider.prototype[m], 'function', m);
    }
    const dtp = new DTraceProvider('apimod');
    assert.ok(dtp instanceof DTraceProvider);
    assert.ok(createDTraceProvider('apimod') instanceof DTraceProvider);
    assert.deepEqual(Object.keys(dtp), [], 'a provider has no enumerable own properties but its probes');
  });

  test('addProbe.apply(provider, [name, ...types]) works (restify)', () => {
    const dtp = createDTraceProvider('apimod');
    const probe = DTraceProvider.prototype.addProbe.apply(dtp, ['route-start', 'char *', 'char *', 'int', 'json']);
    assert.equal(dtp['route-start'], probe);
    assert.deepEqual(probe.types, ['char *', 'char *', 'int', 'json']);
    assert.equal(DTraceProvider.prototype.fire.call(dtp, 'route-start', mustNotRun), true);
  });

  test('createDTraceProvider and new DTraceProvider check their arguments', () => {
    for (const make of [(...a) => createDTraceProvider(...a), (...a) => new DTraceProvider(...a)]) {
      for (const bad of [[], [undefined], [null], [42], [{}], [['x']]]) {
        assert.throws(() => make(...bad), TypeError, `name ${String(bad[0])}`);
      }
      for (const bad of [undefined, null, 42, {}]) {
        assert.throws(() => make('apimod', bad), TypeError, `module ${String(bad)}`);
      }
      assert.throws(() => make('apimod', 'mod', 'extra'), (err) => err instanceof Error && !(err instanceof TypeError));
      assert.ok(make('apimod') instanceof DTraceProvider);
      assert.ok(make('apimod', 'mod1') instanceof DTraceProvider);
    }
  });

  test('invalid provider and module names: RangeError saying why', () => {
    const cases = [
      ['', /empty/],
      ['two words', /white space/],
      ['nul\0byte', /NUL/],
      ['x'.repeat(300), /long/],
    ];
    for (const [name, why] of cases) {
      assert.throws(() => createDTraceProvider(name), (e) => e instanceof RangeError && why.test(e.message));
      assert.throws(() => createDTraceProvider('apimod', name), (e) => e instanceof RangeError && why.test(e.message));
    }
    assert.throws(() => createDTraceProvider('apimod', 'a/b'), RangeError);
  });

  test('two providers with the same name and probes map distinct libraries', () => {
    const before = h.libraryPaths();
    const a = createDTraceProvider('apisame');
    const b = createDTraceProvider('apisame');
    a.addProbe('p', 'int');
    b.addProbe('p', 'int');
    a.enable();
    b.enable();
    try {
      const libs = h.newLibraries(before);
      assert.equal(libs.length, 2, libs.join('\n'));
      assert.notEqual(path.basename(libs[0]), path.basename(libs[1]), 'distinct modules');
    } finally {
      a.disable();
      b.disable();
    }
  });

  // The original named the default module `mod-<address>`: unique per provider
  // object. The native loader numbers a module while the same provider name
  // and module are loaded, whatever the probes.
  test('the default module is unique per provider object, whatever its probes', () => {
    const before = h.libraryPaths();
    const a = createDTraceProvider('apidiff');
    const b = createDTraceProvider('apidiff');
    a.addProbe('p', 'int');
    b.addProbe('q', 'char *');
    a.enable();
    b.enable();
    try {
      const modules = h.newLibraries(before).map((p) => path.basename(p));
      assert.equal(new Set(modules).size, 2, modules.join(', '));
    } finally {
      a.disable();
      b.disable();
    }
  });
});

// Its children fake the platform with `node -r`, which Deno's command line
// does not take (test/bun-deno.test.js runs this file under Deno).
const NO_PRELOAD = typeof globalThis.Deno === 'undefined' ? false : "Deno's command line takes no -r preload";
describe('module loading (child processes)', { skip: NO_PRELOAD }, () => {
  const preload = path.join(__dirname, 'fixtures', 'fake-platform.js');
  const useStub = `
    const d = require(helpers.ROOT);
    const dtp = d.createDTraceProvider('stubbed');
    const p = dtp.addProbe('p', 'int');
    let ran = false;
    dtp.enable();
    p.fire(() => { ran = true; return [1]; });
    dtp.fire('p', () => { ran = true; return [1]; });
    report({ ran, libs: helpers.libraryPaths(), keys: Object.keys(d).sort(), enable: dtp.enable(), disable: dtp.disable() });
  `;

  test('on an unsupported platform: plain providers, callbacks never run while nobody subscribes', () => {
    const r = h.runChild(useStub, { flags: ['-r', preload], env: { NODE_DTRACE_PROVIDER_REQUIRE: '' } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.result, { ran: false, libs: [], keys: ['DTraceProvider', 'createDTraceProvider', 'providers', 'subscribe'] });
  });

  test('on an unsupported platform with NODE_DTRACE_PROVIDER_REQUIRE=hard: require throws a clear error', () => {
    const code = `try { require(helpers.ROOT); report({ loaded: true }); } catch (e) { report({ error: e.message }); }`;
    const r = h.runChild(code, { flags: ['-r', preload], env: { NODE_DTRACE_PROVIDER_REQUIRE: 'hard' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.result.error || '', /dynprobe does not support sunos\//);
  });

  test('on Linux with NODE_DTRACE_PROVIDER_REQUIRE=hard: the real provider', () => {
    const code = `
      const d = require(helpers.ROOT);
      const dtp = d.createDTraceProvider('hardreal');
      dtp.addProbe('p', 'int');
      dtp.enable();
      report({ libs: helpers.libraryPaths().map((p) => require('path').basename(p)) });
    `;
    const r = h.runChild(code, { env: { NODE_DTRACE_PROVIDER_REQUIRE: 'hard' } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.result.libs, ['hardreal']);
  });

  test('a provider that cannot load: a warning, or with NODE_DTRACE_PROVIDER_REQUIRE=hard an error', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-unsafe-'));
    fs.chmodSync(dir, 0o777); // others can write: refused
    try {
      const code = `
        const d = require(helpers.ROOT);
        const warnings = [];
        process.emitWarning = (message, options) => warnings.push([message, options && options.code]);
        const dtp = d.createDTraceProvider('unsafe');
        const p = dtp.addProbe('p', 'int');
        let error = null;
        try { dtp.enable(); } catch (e) { error = e.message; }
        report({ error, warnings, fire: p.fire(() => [1]) === undefined && dtp.fire('p', () => [1]) === true, libs: helpers.libraryPaths() });
      `;
      const soft = h.runChild(code, { env: { DYNPROBE_DIR: dir, NODE_DTRACE_PROVIDER_REQUIRE: '' } });
      assert.equal(soft.status, 0, soft.stderr);
      assert.equal(soft.result.error, null);
      assert.equal(soft.result.warnings.length, 1);
      assert.match(soft.result.warnings[0][0], /provider unsafe was not enabled: .*others can write/);
      assert.equal(soft.result.warnings[0][1], 'DYNPROBE_ENABLE_FAILED');
      assert.deepEqual([soft.result.fire, soft.result.libs], [true, []]);
      const hard = h.runChild(code, { env: { DYNPROBE_DIR: dir, NODE_DTRACE_PROVIDER_REQUIRE: 'hard' } });
      assert.equal(hard.status, 0, hard.stderr);
      assert.match(hard.result.error || '', /others can write/);
      assert.deepEqual(hard.result.warnings, []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // The fallback cases in full: test/fallback.test.js.
  test('on Linux a missing addon: the stub with a DYNPROBE_ADDON_MISSING warning, or with NODE_DTRACE_PROVIDER_REQUIRE=hard an error', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-noaddon-'));
    try {
      fs.copyFileSync(path.join(h.ROOT, 'index.js'), path.join(dir, 'index.js'));
      fs.cpSync(path.join(h.ROOT, 'lib'), path.join(dir, 'lib'), { recursive: true });
      const code = `
        const warnings = [];
        process.on('warning', (w) => warnings.push(w.code));
        try { require(${JSON.stringify(dir)}); } catch (e) { report({ error: e.message }); return; }
        await new Promise((resolve) => setImmediate(resolve));
        report({ warnings });
      `;
      const soft = h.runChild(code, { env: { NODE_DTRACE_PROVIDER_REQUIRE: '' } });
      assert.equal(soft.status, 0, soft.stderr);
      assert.deepEqual(soft.result, { warnings: ['DYNPROBE_ADDON_MISSING'] });
      const hard = h.runChild(code, { env: { NODE_DTRACE_PROVIDER_REQUIRE: 'hard' } });
      assert.equal(hard.status, 0, hard.stderr);
      assert.match(hard.result.error || '', /no native addon for linux-.*is not installed.*npm run build/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The mapped library of `module` (a cache file named by its build-id).
function libraryOf(module) {
  const lib = h.libraryPaths().find((f) => f.endsWith(`/${module}`) && /\/[0-9a-f]{40}\//.test(f));
  assert.ok(lib, `library ${module} is mapped: ${h.libraryPaths().join(', ')}`);
  return lib;
}

describe('addProbe({ name, args }): dynprobe names the arguments', () => {
  const spec = () => ({
    name: 'req',
    args: [
      { name: 'request_struct', type: 'uint64_t' },
      { name: 'url', type: 'char *' },
      { name: 'status', type: 'int' },
      { name: 'body', type: 'json' },
    ],
  });

  test('adds the probe with its types; the library records the names, and readProbes returns them', () => {
    const dtp = createDTraceProvider('apinamed', 'apinamed');
    const probe = dtp.addProbe(spec());
    assert.equal(dtp.req, probe);
    assert.deepEqual(probe.types, ['uint64_t', 'char *', 'int', 'json']);
    assert.deepEqual(probe.argNames, ['request_struct', 'url', 'status', 'body']);
    probe.argNames.push('changed');
    assert.equal(probe.argNames.length, 4, 'argNames is a copy');
    const plain = dtp.addProbe('plain', 'int');
    assert.equal(plain.argNames, null);
    assert.ok(!Object.keys(plain).includes('argNames'), 'argNames is not an own property of a dtrace-provider probe');
    // The same spec again is the same probe; other names are another probe.
    assert.equal(dtp.addProbe(spec()), probe);
    const renamed = spec();
    renamed.args[1].name = 'path';
    assert.throws(() => dtp.addProbe(renamed), (e) => e instanceof Error && /req already exists .*argument names \(request_struct, url, status, body\)/.test(e.message));
    assert.throws(() => dtp.addProbe('req', 'uint64_t', 'char *', 'int', 'json'), /req already exists/);
    dtp.enable();
    try {
      const { addon } = require('../lib/native').load();
      const read = addon.readProbes(libraryOf('apinamed'));
      const by = Object.fromEntries(read.probes.map((p) => [p.name, p]));
      assert.deepEqual(by.req.argNames, ['request_struct', 'url', 'status', 'body']);
      assert.equal(by.req.argNamesProblem ?? null, null);
      assert.deepEqual(by.req.declared, ['uint64_t', 'char *', 'int', 'json']);
      assert.equal(by.plain.argNames ?? null, null);
      assert.equal(by.plain.argNamesProblem ?? null, null);
      assert.equal(probe.fire(mustNotRun), undefined);
    } finally {
      dtp.disable();
    }
  });

  test('the names are part of the library: the same probe without them (or with others) is another file', () => {
    const paths = [];
    for (const names of [null, ['a', 'b'], ['a', 'c']]) {
      const dtp = createDTraceProvider('apinamehash', 'apinamehash');
      if (names === null) dtp.addProbe('p', 'int', 'char *');
      else dtp.addProbe({ name: 'p', args: [{ name: names[0], type: 'int' }, { name: names[1], type: 'char *' }] });
      // musl's dlclose never unmaps: the libraries of earlier rounds are still
      // mapped there, so this round's is the one that was not.
      const before = new Set(h.libraryPaths());
      dtp.enable();
      try {
        const added = h.libraryPaths().filter((f) => f.endsWith('/apinamehash') && !before.has(f));
        assert.equal(added.length, 1, `one new library: ${added.join(', ')}`);
        paths.push(added[0]);
      } finally {
        dtp.disable();
      }
    }
    assert.equal(new Set(paths).size, 3, paths.join('\n'));
  });

  test('names that are not C identifiers of 1 to 64 bytes, or repeated, or more than 32 arguments: RangeError saying why', () => {
    const dtp = createDTraceProvider('apinamebad');
    const one = (name) => ({ name: 'p', args: [{ name: 'ok', type: 'int' }, { name, type: 'char *' }] });
    const cases = [
      ['', /argument 1 is empty/],
      ['9lives', /"9lives" of argument 1 is not a C identifier/],
      ['has space', /not a C identifier/],
      ['dash-ed', /not a C identifier/],
      ['\u00e9t\u00e9', /not a C identifier/],
      ['nul\0byte', /not a C identifier/],
      ['\u202eevil', /"\\u\{202e\}evil" of argument 1 is not a C identifier/],
      ['x'.repeat(65), /is 65 bytes long; at most 64/],
      ['ok', /"ok" of argument 1 is also the name of an earlier argument/],
    ];
    for (const [name, why] of cases) {
      assert.throws(() => dtp.addProbe(one(name)), (e) => e instanceof RangeError && why.test(e.message), JSON.stringify(name));
      assert.equal(dtp.p, undefined, JSON.stringify(name));
    }
    assert.equal(dtp.addProbe(one('x'.repeat(64))).argNames[1].length, 64, '64 bytes is fine');
    const many = { name: 'many', args: range(33, (i) => ({ name: `a${i}`, type: 'int' })) };
    assert.throws(() => dtp.addProbe(many), (e) => e instanceof RangeError && /33 arguments; at most 32/.test(e.message));
    many.args.pop();
    assert.equal(dtp.addProbe(many).types.length, 32);
    // A bad probe name is refused as addProbe(name, ...types) refuses it.
    assert.throws(() => dtp.addProbe({ name: ' lead', args: [] }), (e) => e instanceof RangeError && /white space/.test(e.message));
  });

  test("names that spell a tracer's own argument words (arg0, arg1, ..., sarg0, args): RangeError saying why", () => {
    const dtp = createDTraceProvider('apinameword');
    for (const word of ['arg0', 'arg1', 'arg9', 'arg12', 'sarg0', 'args']) {
      const spec = { name: 'req', args: [{ name: 'url', type: 'char *' }, { name: word, type: 'int32_t' }] };
      assert.throws(() => dtp.addProbe(spec), (e) => e instanceof RangeError && e.message.includes(`"${word}" of argument 1 is a tracer's own name for an argument`), word);
      assert.equal(dtp.req, undefined, word);
    }
    // Names that only look alike are fine.
    const ok = dtp.addProbe({ name: 'req', args: ['arg', 'argv', 'arg_1', 'Arg1', 'args2', 'pid'].map((name) => ({ name, type: 'int' })) });
    assert.deepEqual(ok.argNames, ['arg', 'argv', 'arg_1', 'Arg1', 'args2', 'pid']);
  });

  test('a spec of the wrong shape: TypeError saying what', () => {
    const dtp = createDTraceProvider('apinameshape');
    const cases = [
      [{ args: [] }, /probe name \(spec.name\) must be a string/],
      [{ name: 7, args: [] }, /spec.name/],
      [{ name: 'p' }, /spec.args must be an array/],
      [{ name: 'p', args: 'int' }, /spec.args must be an array/],
      [{ name: 'p', args: [null] }, /argument 0 must be an object/],
      [{ name: 'p', args: ['int'] }, /argument 0 must be an object/],
      [{ name: 'p', args: [{ type: 'int' }] }, /the name of argument 0 must be a string/],
      [{ name: 'p', args: [{ name: 'a', type: 'int' }, { name: 'b' }] }, /the type of argument 1 must be a string/],
      [{ name: 'p', args: [{ name: Symbol('a'), type: 'int' }] }, /the name of argument 0 must be a string/],
    ];
    for (const [spec, why] of cases) {
      assert.throws(() => dtp.addProbe(spec), (e) => e instanceof TypeError && why.test(e.message), String(why));
    }
    // dtrace-provider's form is unchanged: an object with types after it is not a spec.
    assert.throws(() => dtp.addProbe({ name: 'p', args: [] }, 'int'), (e) => e instanceof TypeError && e.message === 'probe name must be a string');
    assert.throws(() => dtp.addProbe(null), (e) => e instanceof TypeError && e.message === 'probe name must be a string');
    assert.deepEqual(Object.keys(dtp), []);
  });

  test('the plain providers (where there is no addon) take the same form', () => {
    const { createApi } = require('../lib/provider');
    const plain = createApi(require('../lib/plain'));
    const dtp = plain.createDTraceProvider('plainnamed');
    const probe = dtp.addProbe(spec());
    assert.equal(dtp.req, probe);
    assert.equal(probe.name, 'req');
    assert.deepEqual(probe.types, ['uint64_t', 'char *', 'int', 'json']);
    assert.deepEqual(probe.argNames, ['request_struct', 'url', 'status', 'body']);
    dtp.enable();
    let ran = false;
    probe.fire(() => { ran = true; return []; });
    assert.equal(ran, false);
    dtp.disable();
  });
});

describe('addProbe', () => {
  test('returns the probe and stores it as an own, enumerable property', () => {
    const dtp = createDTraceProvider('apiadd');
    const probe = dtp.addProbe('p1', 'int', 'char *');
    assert.equal(dtp.p1, probe);
    assert.ok(Object.prototype.hasOwnProperty.call(dtp, 'p1'));
    assert.deepEqual(Object.keys(dtp), ['p1']);
    assert.equal(probe.name, 'p1');
    assert.deepEqual(probe.types, ['int', 'char *']);
    assert.equal(typeof probe.fire, 'function');
  });

  test('probe names that clash with methods or internals shadow them and break nothing', () => {
    const dtp = createDTraceProvider('apiclash');
    const names = ['enable', 'disable', 'fire', 'addProbe', 'constructor', '__proto__', '_name', '_native', '_probes', 'hasOwnProperty'];
    const proto = DTraceProvider.prototype;
    const probes = names.map((n) => proto.addProbe.call(dtp, n, 'int'));
    for (const [i, n] of names.entries()) {
      assert.ok(Object.prototype.hasOwnProperty.call(dtp, n), n);
      assert.equal(Object.getOwnPropertyDescriptor(dtp, n).value, probes[i], n);
    }
    assert.equal(Object.getPrototypeOf(dtp), DTraceProvider.prototype, 'a probe named __proto__ is not the prototype');
    assert.equal(typeof dtp.enable.fire, 'function', 'dtp.enable is the probe');
    const before = h.libraryPaths();
    assert.equal(proto.enable.call(dtp), undefined);
    try {
      assert.equal(h.newLibraries(before).length, 1, 'enabled through the prototype');
      for (const n of names) {
        assert.equal(proto.fire.call(dtp, n, mustNotRun), true, n);
      }
      for (const probe of probes) assert.equal(probe.fire(mustNotRun), undefined);
      assert.equal(proto.removeProbe.call(dtp, probes[0]), true);
      assert.equal(Object.prototype.hasOwnProperty.call(dtp, 'enable'), false);
      assert.equal(dtp.enable, proto.enable, 'the method is visible again');
    } finally {
      proto.disable.call(dtp);
    }
    assert.equal(h.newLibraries(before).length, dlcloseUnmaps() ? 0 : 1, 'disabled through the prototype');
  });

  test('up to 32 arguments; more: RangeError', () => {
    const dtp = createDTraceProvider('apimax');
    const p32 = dtp.addProbe('p32', ...range(32, () => 'int'));
    assert.equal(p32.types.length, 32);
    assert.throws(() => dtp.addProbe('p33', ...range(33, () => 'int')), (e) => e instanceof RangeError && /32/.test(e.message));
    assert.equal(dtp.p33, undefined);
    dtp.enable();
    dtp.disable();
  });

  test('the same name with the same types returns the existing probe; other types: Error', () => {
    const dtp = createDTraceProvider('apidup');
    const p = dtp.addProbe('p', 'int', 'char *');
    assert.equal(dtp.addProbe('p', 'int', 'char *'), p);
    assert.throws(() => dtp.addProbe('p', 'char *', 'int'), (e) => e instanceof Error && /p already exists/.test(e.message));
    assert.throws(() => dtp.addProbe('p', 'int'), Error);
    assert.equal(dtp.p, p);
  });

  test('invalid probe names: RangeError saying why', () => {
    const dtp = createDTraceProvider('apinames');
    const cases = [
      ['', /is empty/],
      [' lead', /white space/],
      ['tab\there', /white space/],
      ['nul\0byte', /NUL/],
      ['x'.repeat(300), /long/],
    ];
    for (const [name, why] of cases) {
      assert.throws(() => dtp.addProbe(name, 'int'), (e) => e instanceof RangeError && why.test(e.message), JSON.stringify(name));
      assert.equal(Object.prototype.hasOwnProperty.call(dtp, name), false);
    }
    assert.throws(() => dtp.addProbe(42, 'int'), TypeError);
    assert.throws(() => dtp.enable(), /no probes defined/, 'nothing was added');
  });

  test('types are matched by prefix; exact C integer types keep their size', () => {
    const expected = {
      json: 'json',
      'json *': 'json',
      'char *': 'char *',
      'char *s': 'char *',
      int: 'int64_t',
      integer: 'int64_t',
      int8_t: 'int8_t',
      uint16_t: 'uint16_t',
      int32_t: 'int32_t',
      uint64_t: 'uint64_t',
      id: 'char *',
      'unsigned int': 'char *',
      '': 'char *',
    };
    for (const [type, native] of Object.entries(expected)) assert.equal(nativeType(type), native, type);
    const dtp = createDTraceProvider('apitypes');
    dtp.addProbe('all', ...Object.keys(expected));
    dtp.enable();
    dtp.disable();
  });
});

describe('removeProbe', () => {
  test('returns true and removes provider[name]; the name can be reused', () => {
    const dtp = createDTraceProvider('apirm');
    const p = dtp.addProbe('p', 'int');
    dtp.addProbe('q', 'int');
    assert.equal(dtp.removeProbe(p), true);
    assert.equal(Object.prototype.hasOwnProperty.call(dtp, 'p'), false);
    assert.equal(dtp.fire('p', mustNotRun), undefined, 'no longer known by name');
    assert.equal(dtp.removeProbe(p), true, 'twice');
    const again = dtp.addProbe('p', 'char *');
    assert.notEqual(again, p);
    assert.equal(dtp.p, again);
  });

  test('a probe of another provider, or a non-probe: TypeError for non-probes only', () => {
    const a = createDTraceProvider('apirm');
    const b = createDTraceProvider('apirm');
    const pa = a.addProbe('p', 'int');
    const pb = b.addProbe('p', 'int');
    assert.equal(b.removeProbe(pa), true);
    assert.equal(b.p, pb, 'the other provider keeps its own probe');
    assert.equal(a.p, pa);
    for (const bad of [undefined, null, 'p', {}, { name: 'p', fire() {} }]) {
      assert.throws(() => a.removeProbe(bad), TypeError);
    }
    assert.equal(a.p, pa);
  });

  test('removing every probe, then disable(); enable(): no probes defined', () => {
    const dtp = createDTraceProvider('apirm');
    const p = dtp.addProbe('p', 'int');
    dtp.enable();
    dtp.removeProbe(p);
    assert.equal(p.fire(mustNotRun), undefined);
    dtp.disable();
    assert.throws(() => dtp.enable(), { message: 'no probes defined' });
  });
});

describe('enable() / disable()', () => {
  test('enable() maps the library once; twice is a no-op; both return undefined', () => {
    const before = h.libraryPaths();
    const dtp = createDTraceProvider('apien');
    dtp.addProbe('p', 'int');
    assert.equal(dtp.enable(), undefined);
    const libs = h.newLibraries(before);
    assert.equal(libs.length, 1);
    assert.equal(path.basename(libs[0]), 'apien');
    assert.equal(dtp.enable(), undefined);
    assert.deepEqual(h.newLibraries(before), libs);
    assert.equal(dtp.disable(), undefined);
    assert.deepEqual(h.newLibraries(before), dlcloseUnmaps() ? [] : libs, 'disable() unmaps at once (musl: never)');
    assert.equal(dtp.disable(), undefined, 'twice');
  });

  test("no probes: Error('no probes defined')", () => {
    const dtp = createDTraceProvider('apien');
    assert.throws(() => dtp.enable(), (e) => e.constructor === Error && e.message === 'no probes defined');
  });

  test('disable() when never enabled is a no-op returning undefined', () => {
    const dtp = createDTraceProvider('apien');
    assert.equal(dtp.disable(), undefined);
    dtp.addProbe('p', 'int');
    assert.equal(dtp.disable(), undefined);
  });

  test('probes added after enable() are in the library after disable(); enable()', () => {
    const before = h.libraryPaths();
    const dtp = createDTraceProvider('apilate');
    dtp.addProbe('first', 'int');
    dtp.enable();
    const [first] = h.newLibraries(before);
    const later = dtp.addProbe('later', 'int');
    assert.equal(later.fire(mustNotRun), undefined);
    dtp.disable();
    const disabled = h.libraryPaths(); // musl still maps the first library here
    dtp.enable();
    const [second] = h.newLibraries(disabled);
    assert.ok(second, 'enable() maps a library');
    assert.notEqual(second, first, 'a new definition, a new library');
    dtp.disable();
  });
});

describe('fire without a tracer', () => {
  const dtp = createDTraceProvider('apifire');
  const p = dtp.addProbe('p', 'int', 'char *');

  for (const state of ['not enabled', 'enabled']) {
    test(`argument checks come first (${state})`, (t) => {
      if (state === 'enabled') {
        dtp.enable();
        t.after(() => dtp.disable());
      }
      for (const bad of [undefined, null, 42, 'cb', {}, [() => []]]) {
        assert.throws(() => p.fire(bad), TypeError);
        assert.throws(() => dtp.fire('p', bad), TypeError);
        assert.throws(() => dtp.fire('unknown', bad), TypeError);
      }
      for (const bad of [undefined, null, 42, {}, Symbol('p')]) {
        assert.throws(() => dtp.fire(bad, mustNotRun), TypeError);
      }
      assert.throws(() => p.fire(), TypeError);
      assert.throws(() => dtp.fire(), TypeError);
      assert.throws(() => dtp.fire('p'), TypeError);
    });

    test(`the callback does not run when nothing traces (${state})`, (t) => {
      if (state === 'enabled') {
        dtp.enable();
        t.after(() => dtp.disable());
      }
      assert.equal(p.fire(mustNotRun), undefined);
      assert.equal(p.fire(mustNotRun, 1, 2, 3), undefined);
      assert.equal(dtp.fire('p', mustNotRun), true, 'provider.fire: true when the probe exists');
      assert.equal(dtp.fire('p', mustNotRun, 'extra'), true);
      assert.equal(dtp.fire('unknown', mustNotRun), undefined, 'unknown name: undefined');
      assert.equal(dtp.fire('__proto__', mustNotRun), undefined);
      assert.equal(dtp.fire('toString', mustNotRun), undefined);
    });
  }
});

describe('the disabled check reads the whole semaphore slot', () => {
  // Each probe's slot is 4 bytes: the kernel's u16 semaphore (tracers that
  // attach through the stapsdt note count in it), then the u16 flag the
  // addon's site watcher sets while a plain uprobe is at the site (DTrace's
  // registered probes set no semaphore). Either half turns the probe on;
  // here each is set by hand, as the kernel and the watcher would.
  for (const [half, name] of [[0, 'semaphore'], [1, 'DTrace flag']]) {
    test(`the ${name} alone enables the probe, and only that probe`, (t) => {
      const dtp = createDTraceProvider('apislot');
      const probes = ['a', 'b', 'c'].map((n) => dtp.addProbe(n, 'int'));
      dtp.enable();
      t.after(() => dtp.disable());
      const halves = new Uint16Array(probes[0]._sema.buffer);
      assert.equal(halves.length, 2 * probes.length, 'two u16 halves per probe');
      const ran = [];
      const fireAll = () => probes.forEach((p, i) => p.fire(() => (ran.push(i), null)));
      fireAll();
      assert.deepEqual(ran, []);
      halves[2 * 1 + half] = 1; // probe b
      try {
        fireAll();
        assert.deepEqual(ran, [1]);
      } finally {
        halves[2 * 1 + half] = 0;
      }
      fireAll();
      assert.deepEqual(ran, [1]);
    });
  }
});

// The traced path with the real bpftrace attached to this very process.
const tracer = h.gate('api traced-path tests (bpftrace)', h.bpftraceUnavailable());

describe('fire with bpftrace attached', { skip: tracer.skip, timeout: 120000 }, () => {
  const dtp = createDTraceProvider('dpapitraced');
  const p = {};
  for (const [name, ...types] of [
    ['ok', 'int', 'char *'],
    ['byname', 'int', 'char *'],
    ['throws', 'int'],
    ['throws2', 'int'],
    ['throws3', 'int'],
    ['cycle', 'json'],
    ['bigjson', 'json', 'int'],
    ['badstr', 'char *'],
    ['badint', 'int'],
    ['notarray', 'int'],
    ['inner', 'char *'],
  ]) {
    p[name] = dtp.addProbe(name, ...types);
  }
  // A second provider, which its tests disable.
  const other = createDTraceProvider('dpapitraced2');
  const off = other.addProbe('off', 'char *');
  const fired = {}; // what fire() said it fired, to compare with bpftrace
  const count = (name, result) => {
    if (result === true) fired[name] = (fired[name] || 0) + 1;
    return result;
  };
  let bt;

  before(async () => {
    assert.ok(!tracer.reason, `bpftrace is required when CI=true: ${tracer.reason}`);
    dtp.enable();
    other.enable();
    bt = h.attachBpftrace(process.pid, 'usdt:*:dpapitraced:*, usdt:*:dpapitraced2:* { @fired[probe] = count(); }');
    await bt.attached();
    for (const probe of [...Object.values(p), off]) await h.untilTraced(probe, 30000, bt);
  });
  after(async () => {
    if (bt) await bt.stop();
    dtp.disable();
    other.disable();
  });

  const warnings = (t) => {
    t.mock.method(process, 'emitWarning', () => {});
    return () => process.emitWarning.mock.calls.map((c) => c.arguments);
  };

  test('probe.fire returns true; the callback gets the probe as this and the extra arguments', () => {
    let seen;
    const result = p.ok.fire(function (...args) {
      seen = { self: this, args };
      return [42, 'forty-two'];
    }, 'a', 2);
    assert.equal(count('ok', result), true);
    assert.equal(seen.self, p.ok);
    assert.deepEqual(seen.args, ['a', 2]);
    assert.equal(count('ok', p.ok.fire(() => [1])), true, 'fewer values than types');
    assert.equal(count('ok', p.ok.fire(() => [1, 'two', 3, 4])), true, 'more values than types');
  });

  test('provider.fire returns true and passes the extra arguments', () => {
    let seen;
    const result = dtp.fire('byname', function (...args) {
      seen = { self: this, args };
      return [5, 'by-name'];
    }, 'x', 'y');
    assert.equal(result, true);
    fired.byname = 1;
    assert.equal(seen.self, p.byname);
    assert.deepEqual(seen.args, ['x', 'y']);
  });

  test('the callback gets exactly the extra arguments given, none to six of them', () => {
    const given = [[], ['a'], ['a', 2], ['a', 2, null], ['a', 2, null, undefined], ['a', 2, null, undefined, 5], [1, 2, 3, 4, 5, 6]];
    for (const extra of given) {
      const seen = {};
      const cb = (which) => function () {
        seen[which] = { self: this, args: [...arguments] };
        return [extra.length, 'extra'];
      };
      assert.equal(count('ok', p.ok.fire(cb('probe'), ...extra)), true);
      assert.equal(dtp.fire('byname', cb('provider'), ...extra), true);
      fired.byname += 1;
      assert.deepEqual(seen, { probe: { self: p.ok, args: extra }, provider: { self: p.byname, args: extra } }, `${extra.length} extra`);
    }
  });

  test('a throwing callback: no throw, no fire, one warning per probe', (t) => {
    const calls = warnings(t);
    const boom = () => {
      throw new Error('boom');
    };
    for (let i = 0; i < 3; i++) {
      assert.equal(p.throws.fire(boom), undefined);
      assert.equal(dtp.fire('throws', boom), true, 'provider.fire: the probe exists');
    }
    assert.equal(calls().length, 1);
    assert.match(calls()[0][0], /dpapitraced:throws.*boom/);
    assert.equal(calls()[0][1].code, 'DYNPROBE_FIRE_FAILED');
    assert.equal(p.throws2.fire(() => {
      throw 'not an Error';
    }), undefined);
    assert.equal(calls().length, 2, 'another probe warns once too');
    assert.match(calls()[1][0], /throws2.*not an Error/);
    // Something thrown that cannot even be turned into a string.
    assert.equal(p.throws3.fire(() => {
      throw Object.create(null);
    }), undefined);
    assert.equal(calls().length, 3);
    assert.match(calls()[2][0], /throws3.*cannot be described/);
  });

  test('JSON that cannot be serialised (a cycle, a BigInt): no throw, no fire, one warning', (t) => {
    const calls = warnings(t);
    const cyclic = {};
    cyclic.self = cyclic;
    assert.equal(p.cycle.fire(() => [cyclic]), undefined);
    assert.equal(p.cycle.fire(() => [cyclic]), undefined);
    assert.equal(p.bigjson.fire(() => [{ n: 1n }, 1]), undefined);
    assert.equal(dtp.fire('bigjson', () => [10n, 1]), true);
    assert.equal(calls().length, 2);
    assert.match(calls()[0][0], /cycle/);
    assert.match(calls()[1][0], /bigjson.*BigInt/);
    assert.equal(count('bigjson', p.bigjson.fire(() => [undefined, 2n])), true, 'undefined and BigInt ints are fine');
  });

  test('values whose conversion throws: no throw, no fire, one warning', (t) => {
    const calls = warnings(t);
    const bad = { toString() { throw new Error('no string'); } };
    assert.equal(p.badstr.fire(() => [bad]), undefined);
    assert.equal(p.badstr.fire(() => [Symbol('s')]), undefined);
    assert.equal(p.badint.fire(() => [{ valueOf() { throw new Error('no number'); } }]), undefined);
    assert.equal(p.badint.fire(() => [Symbol('i')]), undefined);
    assert.equal(calls().length, 2);
  });

  test('a non-array return value: nothing fires, no warning', (t) => {
    const calls = warnings(t);
    for (const v of [undefined, null, 5, 'str', { length: 1, 0: 1 }, new Uint8Array(1)]) {
      assert.equal(p.notarray.fire(() => v), undefined);
      assert.equal(dtp.fire('notarray', () => v), true);
    }
    assert.equal(calls().length, 0);
  });

  test("a value's toString may fire another probe", () => {
    const nested = { toString: () => String(count('inner', p.inner.fire(() => ['inside']))) };
    assert.equal(count('ok', p.ok.fire(() => [7, nested])), true);
    assert.equal(fired.inner, 1);
  });

  test('a callback that disables its provider: no fire, no crash; then it stops running', async (t) => {
    const calls = warnings(t);
    const disabling = { toString() { other.disable(); return 'late'; } };
    assert.equal(off.fire(() => [disabling]), undefined);
    assert.equal(off.fire(mustNotRun), undefined);
    other.enable();
    await h.untilTraced(off, 30000, bt);
    assert.equal(off.fire(() => { other.disable(); return ['x']; }), undefined);
    assert.equal(off.fire(mustNotRun), undefined);
    assert.equal(calls().length, 0);
  });

  test('bpftrace saw exactly the fires that returned true', async () => {
    const out = await bt.stop();
    bt = null;
    assert.deepEqual(h.bpftraceCounts(out, 'fired'), fired, out);
  });
});
