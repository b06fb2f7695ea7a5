'use strict';
// test-needs: nothing
// ES modules and TypeScript, as an application sees the package (here
// through node_modules/dynprobe and node_modules/dtrace-provider, both this
// checkout): `import { createDTraceProvider, DTraceProvider } from 'dynprobe'`
// and `import 'dynprobe/node'` (and `node --import dynprobe/node`) work on
// every supported Node major; `require` works as before; a TypeScript
// program compiled against index.d.ts with `tsc --strict`, as CommonJS and
// as an ES module, compiles and runs. Without the addon, TypeScript (a
// devDependency: npm ci) or a provisioned Node major, the tests that need it
// are skipped loudly, and with CI=true they fail.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./fixtures/helpers');
const runtimes = require('./fixtures/runtimes');

const TSC = path.join(h.ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const addonGate = h.gate('ES module tests', fs.existsSync(path.join(h.ROOT, 'build', 'dynprobe.node')) ? null : 'build/dynprobe.node is missing: run npm run build');
const tscGate = h.gate('TypeScript tests', addonGate.reason || (fs.existsSync(TSC) ? null : 'typescript is not installed (a devDependency: npm ci)'));

// What a program reports: the names it imported, and which dynprobe
// libraries this process maps (the provider it made, and `node` and
// `undici` when dynprobe/node is loaded: docs/channels.md).
const REPORT = `
  const libraries = () => readFileSync('/proc/self/maps', 'utf8').split('\\n')
    .map((l) => /\\/[0-9a-f]{40}\\/([^/\\s]+)$/.exec(l)).filter(Boolean).map((m) => m[1]);
  const report = (extra) => console.log(JSON.stringify({ ...extra, libraries: [...new Set(libraries())].sort() }));
`;

let app;
before(() => {
  app = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-esm-'));
  fs.mkdirSync(path.join(app, 'node_modules'));
  // As `npm install dynprobe` and `npm install dtrace-provider@npm:dynprobe` lay it out.
  for (const name of ['dynprobe', 'dtrace-provider']) fs.symlinkSync(h.ROOT, path.join(app, 'node_modules', name));
  const files = {
    'named.mjs': `
      import { readFileSync } from 'node:fs';
      import { createDTraceProvider, DTraceProvider, subscribe, providers } from 'dynprobe';
      import * as alias from 'dtrace-provider';
      import whole from 'dynprobe';
      ${REPORT}
      const dtp = createDTraceProvider('esmnamed');
      dtp.addProbe('p', 'int', 'char *');
      dtp.enable();
      report({
        createDTraceProvider: typeof createDTraceProvider,
        DTraceProvider: typeof DTraceProvider,
        subscribe: typeof subscribe,
        providers: providers().map((p) => p.provider),
        instance: dtp instanceof DTraceProvider,
        alias: alias.createDTraceProvider === createDTraceProvider && alias.DTraceProvider === DTraceProvider,
        defaultExport: whole.createDTraceProvider === createDTraceProvider,
      });
    `,
    'with-node.mjs': `
      import { readFileSync } from 'node:fs';
      import 'dynprobe/node';
      ${REPORT}
      report({});
    `,
    'plain.mjs': `
      import { readFileSync } from 'node:fs';
      ${REPORT}
      report({});
    `,
    'required.cjs': `
      const { readFileSync } = require('node:fs');
      const { createDTraceProvider, DTraceProvider } = require('dynprobe');
      const node = require('dynprobe/node');
      ${REPORT}
      report({
        createDTraceProvider: typeof createDTraceProvider,
        DTraceProvider: typeof DTraceProvider,
        alias: require('dtrace-provider').createDTraceProvider === createDTraceProvider,
        nodeProbes: Object.keys(node.probes).length > 0,
      });
    `,
  };
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(app, name), text);
});
after(() => app && fs.rmSync(app, { recursive: true, force: true }));

function runIn(node, args) {
  const env = { ...process.env, NODE_OPTIONS: '' };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(node, args, { cwd: app, env, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `${node} ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  assert.equal(r.stderr, '', 'no warning of any kind');
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

function checkEsm(node) {
  assert.deepEqual(runIn(node, ['named.mjs']), {
    createDTraceProvider: 'function',
    DTraceProvider: 'function',
    subscribe: 'function',
    providers: ['esmnamed'],
    instance: true,
    alias: true,
    defaultExport: true,
    libraries: ['esmnamed'],
  });
  assert.deepEqual(runIn(node, ['with-node.mjs']).libraries, ['node', 'undici']);
  assert.deepEqual(runIn(node, ['--import', 'dynprobe/node', 'plain.mjs']).libraries, ['node', 'undici']);
  assert.deepEqual(runIn(node, ['-r', 'dynprobe/node', 'plain.mjs']).libraries, ['node', 'undici']);
  assert.deepEqual(runIn(node, ['required.cjs']), {
    createDTraceProvider: 'function',
    DTraceProvider: 'function',
    alias: true,
    nodeProbes: true,
    libraries: ['node', 'undici'],
  });
}

test(`Node ${process.versions.node.split('.')[0]} (this one): named imports, import 'dynprobe/node', --import dynprobe/node, require`, { skip: addonGate.skip, timeout: 120000 }, () => {
  assert.ok(!addonGate.reason, addonGate.reason);
  checkEsm(process.execPath);
});

for (const major of runtimes.NODE_MAJORS) {
  const found = runtimes.nodeOfMajor(major);
  const gate = h.gate(`ES module tests on Node ${major}`, addonGate.reason || found.reason || null);
  test(`Node ${major}: named imports, import 'dynprobe/node', --import dynprobe/node, require`, { skip: gate.skip, timeout: 120000 }, () => {
    assert.ok(!gate.reason, `required when CI=true: ${gate.reason}`);
    checkEsm(found.node);
  });
}

// The same program as CommonJS (.cts) and as an ES module (.mts). The
// `@ts-expect-error` lines must be errors: index.d.ts refuses what the API
// refuses.
const TS_PROGRAM = (kind) => `
import { createDTraceProvider, DTraceProvider, subscribe, providers } from 'dynprobe';
import type { DTraceProbe, Firing, ProbeArgType, ProbeSpec, Subscription } from 'dynprobe';
import node from 'dynprobe/node';

const dtp: DTraceProvider = createDTraceProvider('ts${kind}');
const types: ProbeArgType[] = ['int', 'char *', 'json', 'uint64_t'];
const plain: DTraceProbe = dtp.addProbe('plain', ...types);
const spec: ProbeSpec = { name: 'named', args: [{ name: 'url', type: 'char *' }, { name: 'status', type: 'int32_t' }] };
const named: DTraceProbe = dtp.addProbe(spec);
const other = new DTraceProvider('ts${kind}other', 'module');
other.addProbe('p', 'int');
dtp.enable();
const once = (n: number, s: string): unknown[] => [n, s, { n }, BigInt(n)];
const fired: true | undefined = plain.fire(once, 1, 'one');
const byName: true | undefined = dtp.fire('named', () => ['/', 200]);
const names: string[] | null = named.argNames;
const added: { probes: string[]; refused: string[] } = node.addChannels(['tracing:ts${kind}:job']);
const seen: unknown[][] = [];
const sub: Subscription = subscribe('ts${kind}:named', (f: Firing) => { seen.push([f.probe, ...f.args, typeof f.time]); });
const listed: string[] = providers().filter((p) => p.probes.some((q) => q.name === 'named')).map((p) => p.provider + '/' + p.module);
dtp.fire('named', () => ['/sub', 201]);
// Never called: what the API refuses, the types refuse.
export function refused(): void {
  // @ts-expect-error a probe name is a string
  dtp.addProbe(42, 'int');
  // @ts-expect-error fire takes a callback
  plain.fire([1, 'one']);
  // @ts-expect-error createDTraceProvider takes a name
  createDTraceProvider();
  // @ts-expect-error addChannels takes channel names
  node.addChannels(5);
  // @ts-expect-error a pattern is a string
  subscribe(5, () => {});
}
setTimeout(() => {
  sub.close();
  dtp.disable();
  console.log(JSON.stringify({ kind: '${kind}', fired: fired ?? null, byName: byName ?? null, names, types: plain.types, channels: added.probes, listed, seen, delivered: sub.delivered }));
}, 50);
`;

test('TypeScript: a program against index.d.ts compiles with tsc --strict, as CommonJS and as an ES module, and runs', { skip: tscGate.skip, timeout: 180000 }, () => {
  assert.ok(!tscGate.reason, `required when CI=true: ${tscGate.reason}`);
  fs.writeFileSync(path.join(app, 'program.cts'), TS_PROGRAM('cjs'));
  fs.writeFileSync(path.join(app, 'program.mts'), TS_PROGRAM('esm'));
  const tsc = spawnSync(
    process.execPath,
    [TSC, '--strict', '--noEmitOnError', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--outDir', 'out', 'program.cts', 'program.mts'],
    { cwd: app, encoding: 'utf8', timeout: 120000 },
  );
  assert.equal(tsc.status, 0, `tsc:\n${tsc.stdout}\n${tsc.stderr}`);
  assert.equal(tsc.stdout + tsc.stderr, '');
  for (const [file, kind] of [['out/program.cjs', 'cjs'], ['out/program.mjs', 'esm']]) {
    const r = spawnSync(process.execPath, [file], { cwd: app, encoding: 'utf8', timeout: 60000 });
    assert.equal(r.status, 0, `${file}:\n${r.stdout}\n${r.stderr}`);
    assert.equal(r.stderr, '', 'no warning of any kind');
    // Untraced: nothing fires, and the probe exists.
    const channels = ['start', 'done', 'error'].map((e) => `ts${kind}:job__${e}`);
    assert.deepEqual(JSON.parse(r.stdout), {
      kind,
      fired: null,
      byName: true,
      names: ['url', 'status'],
      types: ['int', 'char *', 'json', 'uint64_t'],
      channels,
      listed: [`ts${kind}/ts${kind}`],
      seen: [['named', '/sub', 201, 'bigint']],
      delivered: 1,
    });
  }
});
