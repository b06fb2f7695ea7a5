'use strict';
// test-needs: nothing
// test-tier: quick
// No module imports one that imports it back, directly or around a circle:
// in each Rust crate (crates/*/src, by `crate::` paths and the crate root's
// re-exports), and among the JavaScript modules (index.js, node.js, bin/,
// lib/, by relative require()). A circle means two modules cannot be read,
// tested or changed apart; the layout is meant to show the architecture, so
// each module depends only on those below it.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');

// Code without comments, so that a doc comment naming a module is no edge.
function withoutComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
}

// The names of a Rust use-group body `a, b::c, d::{e, f}`: the first
// segment of each top-level entry.
function groupHeads(body) {
  const heads = [];
  let depth = 0;
  let entry = '';
  for (const c of `${body},`) {
    if (c === '{') depth++;
    if (c === '}') depth--;
    if (c === ',' && depth === 0) {
      const head = /^\s*([A-Za-z_][A-Za-z0-9_]*)/.exec(entry);
      if (head && head[1] !== 'self') heads.push(head[1]);
      entry = '';
    } else entry += c;
  }
  return heads;
}

// The text of the brace group starting at `text[open]` ('{'), without its braces.
function braceGroup(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    if (text[i] === '}' && --depth === 0) return text.slice(open + 1, i);
  }
  return text.slice(open + 1);
}

// The first path segments after every `crate::` in `code`.
function crateReferences(code) {
  const names = [];
  const re = /\bcrate::(\{|[A-Za-z_][A-Za-z0-9_]*)/g;
  let m;
  while ((m = re.exec(code)) !== null) {
    if (m[1] === '{') names.push(...groupHeads(braceGroup(code, m.index + m[0].length - 1)));
    else names.push(m[1]);
  }
  return names;
}

// module -> Set of modules it uses, for the crate whose sources are in `src`
// (one file per module, lib.rs the root). An item defined in the root is
// an edge to the root, which itself uses every module.
function rustGraph(src) {
  const files = fs.readdirSync(src).filter((f) => f.endsWith('.rs'));
  const modules = new Set(files.map((f) => f.slice(0, -3)).filter((m) => m !== 'lib'));
  const root = withoutComments(fs.readFileSync(path.join(src, 'lib.rs'), 'utf8'));
  // Names the root re-exports: `pub use module::{A, B}` / `pub use module::A`.
  const reexported = new Map();
  const useRe = /\bpub\s+use\s+([A-Za-z_][A-Za-z0-9_]*)::(\{|[A-Za-z_][A-Za-z0-9_]*)/g;
  let m;
  while ((m = useRe.exec(root)) !== null) {
    if (!modules.has(m[1])) continue;
    const names = m[2] === '{' ? groupHeads(braceGroup(root, m.index + m[0].length - 1)) : [m[2]];
    for (const name of names) reexported.set(name, m[1]);
  }
  const graph = new Map([['lib', new Set(modules)]]);
  for (const mod of modules) {
    const code = withoutComments(fs.readFileSync(path.join(src, `${mod}.rs`), 'utf8'));
    const uses = new Set();
    for (const name of crateReferences(code)) {
      const target = modules.has(name) ? name : reexported.has(name) ? reexported.get(name) : 'lib';
      if (target !== mod) uses.add(target);
    }
    graph.set(mod, uses);
  }
  return graph;
}

// file -> Set of files it requires, for the package's own JavaScript.
function jsGraph() {
  const files = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (/\.(c|m)?js$/.test(entry.name)) files.push(rel);
    }
  };
  for (const f of fs.readdirSync(ROOT)) if (/\.(c|m)?js$/.test(f)) files.push(f);
  walk('lib');
  walk('bin');
  const resolve = (from, request) => {
    const base = path.join(path.dirname(from), request);
    for (const candidate of [base, `${base}.js`, path.join(base, 'index.js')]) {
      if (files.includes(candidate)) return candidate;
    }
    return null;
  };
  const graph = new Map();
  for (const file of files) {
    const code = withoutComments(fs.readFileSync(path.join(ROOT, file), 'utf8'));
    const uses = new Set();
    const re = /\b(?:require\s*\(|import\s*\(|from\s+|import\s+)\s*['"](\.{1,2}(?:\/[^'"]*)?)['"]/g;
    let m;
    while ((m = re.exec(code)) !== null) {
      const target = resolve(file, m[1]);
      if (target !== null && target !== file) uses.add(target);
    }
    graph.set(file, uses);
  }
  return graph;
}

// Every circle in `graph`, each once, as [a, b, ..., a].
function cycles(graph) {
  const found = new Map();
  const visit = (node, trail) => {
    const at = trail.indexOf(node);
    if (at >= 0) {
      const circle = trail.slice(at);
      const key = [...circle].sort().join(' ');
      if (!found.has(key)) found.set(key, [...circle, node]);
      return;
    }
    for (const next of graph.get(node) || []) visit(next, [...trail, node]);
  };
  for (const node of graph.keys()) visit(node, []);
  return [...found.values()];
}

for (const crate of fs.readdirSync(path.join(ROOT, 'crates'))) {
  const src = path.join(ROOT, 'crates', crate, 'src');
  if (!fs.existsSync(path.join(src, 'lib.rs'))) continue;
  test(`crate ${crate}: no module imports one that imports it back`, () => {
    const graph = rustGraph(src);
    assert.ok(graph.size > 1, `no modules found in ${src}`);
    assert.deepEqual(cycles(graph).map((c) => c.join(' -> ')), [], `module cycles in ${crate} (lib: an item of the crate root)`);
  });
}

test('JavaScript: no module requires one that requires it back', () => {
  const graph = jsGraph();
  assert.ok(graph.has(path.join('lib', 'provider.js')));
  assert.deepEqual(cycles(graph).map((c) => c.join(' -> ')), [], 'require cycles');
});

test('the checker sees a circle', () => {
  const graph = new Map([
    ['a', new Set(['b'])],
    ['b', new Set(['c'])],
    ['c', new Set(['a'])],
    ['d', new Set(['a'])],
  ]);
  assert.deepEqual(cycles(graph), [['a', 'b', 'c', 'a']]);
  assert.deepEqual(crateReferences('use crate::{a, b::{c, d}, e::F};\nlet x = crate::g::h();'), ['a', 'b', 'e', 'g']);
});
