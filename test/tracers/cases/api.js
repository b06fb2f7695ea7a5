'use strict';
// Cases for the Node.js package: the spirit of dtrace-provider's own suite,
// plus what dynprobe adds (sized integers, BigInt, UTF-8, workers).

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));
const ints = (n) => range(n, (i) => `arg${i}`);
const fmt = (spec, n) => range(n, () => spec).join(' ');

module.exports = [
  {
    name: 'api: int and string arguments',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('p1', 'int', 'char *');
      dtp.enable();
      await ready();
      p.fire(() => [42, 'forty-two']);
    `,
    bpftrace: 'usdt:*:nodeapp:p1 { printf("%d %s\\n", arg0, str(arg1)); }',
    dtrace: 'nodeapp$target:::p1 { printf("%d %s\\n", arg0, copyinstr(arg1)); }',
    expect: ['42 forty-two'],
  },
  {
    // A probe's semaphore is off until a tracer attaches, so its callback
    // does not run; on while one is attached (untilTraced polls it).
    name: 'api: the semaphore is off untraced, on while traced',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('sem', 'int', 'char *');
      dtp.enable();
      let untraced = 0;
      for (let i = 0; i < 3; i++) p.fire(() => { untraced++; return [-1, 'untraced']; });
      await ready();
      await untilTraced(p);
      p.fire(() => [untraced, 'traced']);
    `,
    bpftrace: 'usdt:*:nodeapp:sem { printf("%d %s\\n", arg0, str(arg1)); }',
    dtrace: 'nodeapp$target:::sem { printf("%d %s\\n", arg0, copyinstr(arg1)); }',
    expect: ['0 traced'],
  },
  {
    // The addon refuses objects without firing; the JS layer converts them
    // (running their toString and valueOf) and fires once.
    name: 'api: objects converted by toString and valueOf, fired once',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('obj', 'int', 'char *', 'char *');
      dtp.enable();
      await ready();
      let calls = 0;
      const n = { valueOf() { calls++; return 7; } };
      const s = { toString() { calls++; return 'seven'; } };
      p.fire(() => [n, 'plain', s]);
      p.fire(() => [calls, [1, 2], null]);
    `,
    bpftrace: 'usdt:*:nodeapp:obj { printf("%d %s %s\\n", arg0, str(arg1), str(arg2)); }',
    dtrace: 'nodeapp$target:::obj { printf("%d %s %s\\n", arg0, copyinstr(arg1), copyinstr(arg2)); }',
    expect: ['7 plain seven', '2 1,2 null'],
  },
  {
    name: 'api: the README example',
    node: `
      const d = dynprobe.createDTraceProvider('nodeapp');
      d.addProbe('probe1', 'int', 'int');
      d.addProbe('probe2', 'char *');
      d.enable();
      await ready();
      d.fire('probe1', function (p) { return [1, 2]; });
      d.fire('probe2', function (p) { return ['hello, dtrace']; });
    `,
    bpftrace: 'usdt:*:nodeapp:probe1 { printf("%d %d\\n", arg0, arg1); } usdt:*:nodeapp:probe2 { printf("%s\\n", str(arg0)); }',
    dtrace: 'nodeapp$target:::probe1 { printf("%d %d\\n", arg0, arg1); } nodeapp$target:::probe2 { printf("%s\\n", copyinstr(arg0)); }',
    expect: ['1 2', 'hello, dtrace'],
  },
  {
    name: 'api: 12 integer arguments',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('p12', ${range(12, () => "'int'").join(', ')});
      dtp.enable();
      await ready();
      p.fire(() => [${range(12, (i) => i * 1000 - 5).join(', ')}]);
    `,
    bpftrace: `usdt:*:nodeapp:p12 { printf("${fmt('%d', 6)}\\n", ${ints(6).join(', ')}); }`,
    bpftrace027: `usdt:*:nodeapp:p12 { printf("${fmt('%d', 12)}\\n", ${ints(12).join(', ')}); }`,
    dtrace: `nodeapp$target:::p12 { printf("${fmt('%d', 10)}\\n", ${ints(10).join(', ')}); }`,
    expect: [range(12, (i) => i * 1000 - 5).join(' ')],
    expectBy: {
      'bpftrace-0.17': [range(6, (i) => i * 1000 - 5).join(' ')],
      dtrace: [range(10, (i) => i * 1000 - 5).join(' ')],
    },
  },
  {
    name: 'api: 12 string arguments',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('s12', ${range(12, () => "'char *'").join(', ')});
      dtp.enable();
      await ready();
      p.fire(() => [${range(12, (i) => `'s${i}'`).join(', ')}]);
    `,
    bpftrace: `usdt:*:nodeapp:s12 { printf("${fmt('%s', 6)}\\n", ${range(6, (i) => `str(arg${i})`).join(', ')}); }`,
    bpftrace027: `usdt:*:nodeapp:s12 { printf("${fmt('%s', 12)}\\n", ${range(12, (i) => `str(arg${i})`).join(', ')}); }`,
    dtrace: `nodeapp$target:::s12 { printf("${fmt('%s', 10)}\\n", ${range(10, (i) => `copyinstr(arg${i})`).join(', ')}); }`,
    expect: [range(12, (i) => `s${i}`).join(' ')],
    expectBy: {
      'bpftrace-0.17': [range(6, (i) => `s${i}`).join(' ')],
      dtrace: [range(10, (i) => `s${i}`).join(' ')],
    },
  },
  {
    name: 'api: fewer and more values than types',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('p', 'int', 'int', 'char *');
      dtp.enable();
      await ready();
      p.fire(() => [1]);
      p.fire(() => [1, 2, 'three', 4, 'five']);
    `,
    bpftrace: 'usdt:*:nodeapp:p { printf("%d %d %s\\n", arg0, arg1, str(arg2)); }',
    dtrace: 'nodeapp$target:::p { printf("%d %d %s\\n", arg0, arg1, copyinstr(arg2)); }',
    expect: ['1 0 undefined', '1 2 three'],
  },
  {
    name: 'api: JSON arguments',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('j', 'json', 'int');
      dtp.enable();
      await ready();
      p.fire(() => [{ a: 1, b: ['x', null] }, 7]);
      p.fire(() => [undefined, 8]);
      p.fire(() => ['quoted', 9]);
    `,
    bpftrace: 'usdt:*:nodeapp:j { printf("%s %d\\n", str(arg0), arg1); }',
    dtrace: 'nodeapp$target:::j { printf("%s %d\\n", copyinstr(arg0), arg1); }',
    expect: ['{"a":1,"b":["x",null]} 7', 'undefined 8', '"quoted" 9'],
  },
  {
    name: 'api: extra arguments after the callback',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('x', 'int', 'char *');
      dtp.enable();
      await ready();
      p.fire(function (n, s) { return [n * 2, s + this.name]; }, 21, 'probe-');
      dtp.fire('x', (n, s) => [n, s], 5, 'by-name');
    `,
    bpftrace: 'usdt:*:nodeapp:x { printf("%d %s\\n", arg0, str(arg1)); }',
    dtrace: 'nodeapp$target:::x { printf("%d %s\\n", arg0, copyinstr(arg1)); }',
    expect: ['42 probe-x', '5 by-name'],
  },
  {
    name: 'api: integer sizes, signs and BigInt; strings in UTF-8 cut at NUL',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const i = dtp.addProbe('ints', 'int8_t', 'uint8_t', 'int32_t', 'uint64_t', 'int', 'int');
      const s = dtp.addProbe('strs', 'char *', 'char *', 'char *', 'char *');
      dtp.enable();
      await ready();
      i.fire(() => [300, -1, 2 ** 31, 2n ** 64n - 1n, -5n, '12.7']);
      i.fire(() => [NaN, 'abc', -3.9, 0, 2 ** 53, null]);
      s.fire(() => ['héllo ☃', 'ab\\u0000cd', null, 5]);
    `,
    bpftrace: `
      usdt:*:nodeapp:ints { printf("%ld %lu %ld %lu %ld %ld\\n", arg0, arg1, arg2, arg3, arg4, arg5); }
      usdt:*:nodeapp:strs { printf("%s|%s|%s|%s\\n", str(arg0), str(arg1), str(arg2), str(arg3)); }`,
    dtrace: `
      nodeapp$target:::ints { printf("%d %u %d %u %d %d\\n", arg0, arg1, arg2, arg3, arg4, arg5); }
      nodeapp$target:::strs { printf("%s|%s|%s|%s\\n", copyinstr(arg0), copyinstr(arg1), copyinstr(arg2), copyinstr(arg3)); }`,
    expect: ['44 255 -2147483648 18446744073709551615 -5 12', '0 0 -3 0 9007199254740992 0', 'héllo ☃|ab|null|5'],
  },
  {
    name: 'api: a long string argument',
    env: { BPFTRACE_STRLEN: '200' },
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('long', 'char *');
      dtp.enable();
      await ready();
      p.fire(() => ['x'.repeat(150) + 'END']);
    `,
    bpftrace: 'usdt:*:nodeapp:long { printf("%s\\n", str(arg0)); }',
    dtrace: 'nodeapp$target:::long { printf("%s\\n", copyinstr(arg0)); }',
    expect: ['x'.repeat(150) + 'END'],
  },
  {
    // Past the addon's fast path: 1103 UTF-16 units and 2203 bytes of UTF-8,
    // after a string already on the stack; lone surrogates become U+FFFD.
    // DTrace reads the whole string; bpftrace (at most 200 bytes) its start.
    name: 'api: a 2 KiB multi-byte string after a short one, lone surrogates',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('big', 'char *', 'char *', 'int');
      dtp.enable();
      await ready();
      const big = 'é'.repeat(1100) + 'END';
      p.fire(() => ['a\\ud800b\\udc00c😀', big, big.length]);
    `,
    dtraceFlags: ['-x', 'strsize=2300'],
    dtrace: 'nodeapp$target:::big { printf("%s %d %d %s\\n", copyinstr(arg0), arg2, strlen(copyinstr(arg1)), substr(copyinstr(arg1), 2194)); }',
    bpftrace: 'usdt:*:nodeapp:big { printf("%s %d %s\\n", str(arg0), arg2, str(arg1, 6)); }',
    // bpftrace 0.27 counts the NUL in str()'s length.
    bpftrace027: 'usdt:*:nodeapp:big { printf("%s %d %s\\n", str(arg0), arg2, str(arg1, 7)); }',
    expect: ['a\ufffdb\ufffdc😀 1103 2203 éééEND'],
    expectBy: {
      'bpftrace-0.17': ['a\ufffdb\ufffdc😀 1103 ééé'],
      'bpftrace-0.27': ['a\ufffdb\ufffdc😀 1103 ééé'],
    },
  },
  {
    name: 'api: probes added after enable appear after disable(); enable()',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const first = dtp.addProbe('first', 'int');
      dtp.enable();
      const later = dtp.addProbe('later', 'int');
      let ran = false;
      later.fire(() => { ran = true; return [0]; });
      if (ran) throw new Error('callback of a probe not yet enabled ran');
      dtp.disable();
      dtp.enable();
      await ready();
      first.fire(() => [1]);
      later.fire(() => [2]);
    `,
    bpftrace: 'usdt:*:nodeapp:first { printf("first %d\\n", arg0); } usdt:*:nodeapp:later { printf("later %d\\n", arg0); }',
    dtrace: 'nodeapp$target:::first { printf("first %d\\n", arg0); } nodeapp$target:::later { printf("later %d\\n", arg0); }',
    expect: ['first 1', 'later 2'],
  },
  {
    name: 'api: enable/disable cycles; a value fired while disabled never appears',
    node: `
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('cycle', 'int');
      dtp.enable();
      dtp.enable();
      await ready();
      p.fire(() => [1]);
      dtp.disable();
      p.fire(() => [2]);
      dtp.fire('cycle', () => [3]);
      dtp.enable();
      await untilTraced(p);
      p.fire(() => [4]);
    `,
    bpftrace: 'usdt:*:nodeapp:cycle { printf("%d\\n", arg0); }',
    dtrace: 'nodeapp$target:::cycle { printf("%d\\n", arg0); }',
    expect: ['1', '4'],
  },
  {
    name: 'api: ten providers with the same name are distinct',
    node: `
      const providers = [];
      for (let i = 0; i < 10; i++) {
        const dtp = dynprobe.createDTraceProvider('nodeapp');
        dtp.addProbe('same', 'int');
        dtp.enable();
        providers.push(dtp);
      }
      await ready();
      providers.forEach((dtp, i) => dtp.fire('same', () => [i]));
    `,
    // bpftrace 0.17 (bcc) merges same-named probes of several libraries in
    // one process into one and reads them all through the last library.
    bpftrace027: 'usdt:*:nodeapp:same { printf("%d\\n", arg0); }',
    dtrace: 'nodeapp$target:::same { printf("%d\\n", arg0); }',
    expect: range(10, String),
  },
  {
    name: 'api: providers told apart by module',
    node: `
      const mods = ['mod1', 'mod2', 'mod3', 'mod4'].map((m) => {
        const dtp = dynprobe.createDTraceProvider('nodeapp', m);
        dtp.addProbe('m', 'char *');
        dtp.enable();
        return dtp;
      });
      await ready();
      mods.forEach((dtp, i) => dtp.fire('m', () => ['from mod' + (i + 1)]));
    `,
    // A glob on the library path needs bpftrace 0.27.
    bpftrace027: 'usdt:*mod2:nodeapp:m { printf("%s\\n", str(arg0)); }',
    dtrace: 'nodeapp$target:mod2::m { printf("%s %s\\n", probemod, copyinstr(arg0)); }',
    expect: ['from mod2'],
    expectBy: { dtrace: ['mod2 from mod2'] },
  },
  {
    name: 'api: a provider reachable only through its probe survives gc()',
    nodeArgs: ['--expose-gc'],
    node: `
      const probe = (() => {
        const dtp = dynprobe.createDTraceProvider('nodeapp');
        const p = dtp.addProbe('orphan', 'int');
        dtp.enable();
        return p;
      })();
      for (let i = 0; i < 3; i++) { gc(); await sleep(10); }
      await ready();
      probe.fire(() => [42]);
    `,
    bpftrace: 'usdt:*:nodeapp:orphan { printf("%d\\n", arg0); }',
    dtrace: 'nodeapp$target:::orphan { printf("%d\\n", arg0); }',
    expect: ['42'],
  },
  {
    name: "api: a worker thread's provider",
    node: `
      const { Worker } = require('node:worker_threads');
      const worker = new Worker(\`
        const { parentPort, workerData } = require('node:worker_threads');
        const dynprobe = require(workerData);
        const dtp = dynprobe.createDTraceProvider('workerapp');
        const p = dtp.addProbe('w', 'int', 'char *');
        dtp.enable();
        parentPort.postMessage('ready');
        parentPort.once('message', () => {
          p.fire(() => [7, 'from a worker']);
          parentPort.postMessage('fired');
        });
      \`, { eval: true, workerData: require.resolve(process.env.DYNPROBE_PACKAGE || '../..') });
      const next = () => new Promise((resolve) => worker.once('message', resolve));
      await next();
      await ready();
      worker.postMessage('go');
      await next();
      await worker.terminate();
    `,
    bpftrace: 'usdt:*:workerapp:w { printf("%d %s\\n", arg0, str(arg1)); }',
    dtrace: 'workerapp$target:::w { printf("%d %s\\n", arg0, copyinstr(arg1)); }',
    expect: ['7 from a worker'],
  },
  {
    name: 'api: DTrace -Z catches a provider created after it started',
    node: `
      await ready();
      const dtp = dynprobe.createDTraceProvider('nodeapp');
      const p = dtp.addProbe('late', 'int', 'char *');
      dtp.enable();
      await untilTraced(p);
      await fireWhileTraced(p, [9, 'late']);
    `,
    // DTrace turns the semaphore on a moment before its program runs at the
    // probe (helpers.fireWhileTraced): the program fires until DTrace has
    // printed once and exited.
    dtrace: 'nodeapp$target:::late /!seen/ { seen = 1; printf("%d %s\\n", arg0, copyinstr(arg1)); exit(0); }',
    dtraceFlags: ['-Z'],
    expect: ['9 late'],
  },
];
