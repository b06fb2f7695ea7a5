'use strict';
// test-needs: nothing
// test-tier: quick
// docs/environment.md is the one table of environment settings and warning
// codes: every `DYNPROBE_*` name the code reads, sets or emits is in it, and
// every name in it is used somewhere. "The code": lib/, bin/, index.js,
// node.js, crates/, scripts/, test/, bench/, demo/.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const TABLE = path.join(ROOT, 'docs', 'environment.md');
const SOURCES = ['lib', 'bin', 'index.js', 'node.js', 'crates', 'scripts', 'test', 'bench', 'demo'];
// Built or installed things, not sources.
const SKIP_DIRS = new Set(['node_modules', 'target', 'build', 'dist', '.git']);
// A name as code spells it: not part of a longer identifier (NT_DYNPROBE_DECLARED is a constant).
const NAME = /(?<![A-Za-z0-9_])DYNPROBE_[A-Z0-9][A-Z0-9_]*(?![A-Za-z0-9_])/g;

// Every source file, as [relative path, text].
function sources() {
  const files = [];
  const visit = (rel) => {
    const abs = path.join(ROOT, rel);
    if (!fs.existsSync(abs)) return;
    const stat = fs.statSync(abs);
    if (stat.isDirectory()) {
      for (const entry of fs.readdirSync(abs)) if (!SKIP_DIRS.has(entry)) visit(path.join(rel, entry));
    } else if (stat.size < 4 << 20) {
      const bytes = fs.readFileSync(abs);
      if (!bytes.includes(0)) files.push([rel, bytes.toString('utf8')]);
    }
  };
  SOURCES.forEach(visit);
  // Not this file: the names it checks for are no use of them.
  return files.filter(([rel]) => rel !== path.join('test', 'environment.test.js'));
}

// The names in the table's first column (a cell may list several).
function tableNames() {
  const names = new Set();
  for (const line of fs.readFileSync(TABLE, 'utf8').split('\n')) {
    const cell = /^\|([^|]*)\|/.exec(line);
    if (!cell) continue;
    for (const m of cell[1].matchAll(/`([A-Z][A-Z0-9_]*)`/g)) names.add(m[1]);
  }
  return names;
}

test('every DYNPROBE_* name the code reads, sets or emits is in docs/environment.md', () => {
  const listed = tableNames();
  const missing = new Map();
  for (const [file, text] of sources()) {
    for (const m of text.matchAll(NAME)) {
      if (listed.has(m[0])) continue;
      if (!missing.has(m[0])) missing.set(m[0], new Set());
      missing.get(m[0]).add(file);
    }
  }
  const report = [...missing].map(([name, files]) => `${name} (${[...files].join(', ')})`);
  assert.deepEqual(report, [], 'add a row to docs/environment.md for each');
});

test('every name in docs/environment.md is used by the code', () => {
  const all = sources().map(([, text]) => text);
  const unused = [...tableNames()].filter((name) => {
    const re = new RegExp(`(?<![A-Za-z0-9_])${name}(?![A-Za-z0-9_])`);
    return !all.some((text) => re.test(text));
  });
  assert.deepEqual(unused, [], 'rows for names nothing uses');
});

test('the table has the settings and warning codes it is about', () => {
  const listed = tableNames();
  assert.ok(listed.size >= 30, `only ${listed.size} names found: is the table's format still | \`NAME\` | ... |?`);
  for (const name of ['DYNPROBE_DIR', 'DYNPROBE_SITE', 'NODE_DTRACE_PROVIDER_REQUIRE', 'DYNPROBE_BPFTRACE', 'DYNPROBE_FIRE_FAILED', 'DYNPROBE_ENABLE_FAILED']) {
    assert.ok(listed.has(name), name);
  }
  // A name the scan would miss is no name at all: the scan sees the ones in this file.
  const seen = [...'const x = process.env.DYNPROBE_DIR; // NT_DYNPROBE_DECLARED'.matchAll(NAME)].map((m) => m[0]);
  assert.deepEqual(seen, ['DYNPROBE_DIR']);
});
