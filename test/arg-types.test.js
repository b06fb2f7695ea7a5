'use strict';
// test-needs: nothing
// test-tier: quick
// One table of argument types and limits: lib/arg-types.json, which the JS
// layer reads (lib/provider.js, lib/cli/types.js, lib/cli/names.js), is what
// the format crate has (the addon's formatTable(), and its rules for
// argument names through checkProbe), and index.d.ts declares the same
// types and limits.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./fixtures/helpers');

const TABLE = require('../lib/arg-types.json');
const ADDON = path.join(h.ROOT, 'build', 'dynprobe.node');
const gate = h.gate('argument-type table tests against the addon', fs.existsSync(ADDON) ? null : 'build/dynprobe.node is missing: run npm run build');
const addon = () => require(ADDON);

test("lib/arg-types.json is the format crate's table", { skip: gate.skip }, () => {
  assert.ok(!gate.reason, gate.reason);
  const rust = addon().formatTable();
  assert.deepEqual(TABLE.types, rust.types);
  assert.deepEqual(TABLE.limits, {
    maxArgs: rust.maxArgs,
    maxArgNameLen: rust.maxArgNameLen,
    maxProviderLen: rust.maxProviderLen,
    maxProbeLen: rust.maxProbeLen,
    maxModuleLen: rust.maxModuleLen,
  });
});

test("the argument-name rules are the format crate's", { skip: gate.skip }, () => {
  assert.ok(!gate.reason, gate.reason);
  const { argNameProblem } = require('../lib/cli/names');
  const max = TABLE.limits.maxArgNameLen;
  const names = [
    'a', '_', 'url', 'A9_z', 'n'.repeat(max), 'n'.repeat(max + 1), '', '9lives', 'dash-ed', 'has space', '\u00e9t\u00e9',
    'arg', 'arg0', 'arg1', 'arg9', 'arg12', 'arg31', 'arg007', 'argv', 'arg_1', 'Arg1', 'ARG0', 'sarg', 'sarg0', 'sarg12',
    'args', 'args2', 'Args', 'pid', 'retval', 'probe', 'arg0x', 'xarg0',
  ];
  for (const name of names) {
    const refused = addon().checkProbe({ name: 'p', types: ['int64_t'], argNames: [name] });
    assert.equal(argNameProblem(name) === null, refused === null, `${JSON.stringify(name)}: Rust says ${refused}, JS says ${argNameProblem(name)}`);
  }
});

test('every type in the table is accepted by the addon as declared, and travels as its C type', { skip: gate.skip }, () => {
  assert.ok(!gate.reason, gate.reason);
  for (const t of TABLE.types) {
    assert.equal(addon().checkProbe({ name: 'p', types: [t.travelsAs], declared: [t.name] }), null, t.name);
  }
  const many = Array.from({ length: TABLE.limits.maxArgs + 1 }, () => 'int64_t');
  assert.match(addon().checkProbe({ name: 'p', types: many }), new RegExp(`at most ${TABLE.limits.maxArgs}`));
  assert.equal(addon().checkProbe({ name: 'p', types: many.slice(1) }), null);
});

test('index.d.ts declares the same types and limits', () => {
  const dts = fs.readFileSync(path.join(h.ROOT, 'index.d.ts'), 'utf8');
  const union = /export type ProbeArgType =([\s\S]*?);/.exec(dts);
  assert.ok(union, 'index.d.ts has no ProbeArgType');
  const names = [...union[1].matchAll(/'([^']*)'/g)].map((m) => m[1]);
  assert.deepEqual([...names].sort(), TABLE.types.map((t) => t.name).sort());
  const maxArgs = [...dts.matchAll(/up to (\d+) arguments|more than (\d+) arguments/g)].map((m) => Number(m[1] || m[2]));
  assert.ok(maxArgs.length >= 2, 'index.d.ts states the argument limit');
  for (const n of maxArgs) assert.equal(n, TABLE.limits.maxArgs);
  const nameLengths = [...dts.matchAll(/of 1 to (\d+) bytes/g)].map((m) => Number(m[1]));
  assert.ok(nameLengths.length >= 2, 'index.d.ts states the argument-name limit');
  for (const n of nameLengths) assert.equal(n, TABLE.limits.maxArgNameLen);
});

test('the CLI shows and checks types by the table', () => {
  const { DECLARED } = require('../lib/cli/types');
  assert.deepEqual([...DECLARED.keys()], TABLE.types.map((t) => t.name));
  for (const t of TABLE.types) assert.deepEqual(DECLARED.get(t.name), { size: t.size, signed: t.signed, kind: t.kind });
});
