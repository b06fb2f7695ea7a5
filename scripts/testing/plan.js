'use strict';
// What each test file needs, as the file itself says in a comment line near
// its top, so that a new file is scheduled right without being listed here:
//
//   // test-needs: tracer     attaches a tracer (bpftrace, DTrace, gdb, perf)
//                             to processes of this machine
//   // test-needs: vm         boots a QEMU virtual machine
//   // test-needs: nothing    neither
//   // test-tier: quick       also run by `npm run test:quick` (needs no
//                             root and no provisioning to be worth running)
//
// scripts/test.js runs at most one `tracer` file at a time (two tracers
// attaching at once disturb each other: a uprobe semaphore was seen left at
// 1), and at most one `vm` file; `nothing` files run beside them. A file
// that says nothing is run as a `tracer` file, and the runner says so.

const fs = require('node:fs');
const path = require('node:path');

const NEEDS = new Set(['tracer', 'vm', 'nothing']);
const TIERS = new Set(['quick']);
const HEAD_LINES = 40;

function declared(file) {
  const head = fs.readFileSync(file, 'utf8').split('\n').slice(0, HEAD_LINES);
  const words = (key) => {
    const line = head.find((l) => new RegExp(`^//\\s*${key}:`).test(l));
    return line === undefined ? null : line.slice(line.indexOf(':') + 1).trim().split(/[\s,]+/).filter(Boolean);
  };
  const needs = words('test-needs');
  const tiers = words('test-tier') || [];
  const name = path.relative(path.join(__dirname, '..', '..'), file);
  for (const word of needs || []) if (!NEEDS.has(word)) throw new Error(`${name}: unknown test-needs word ${JSON.stringify(word)} (one of ${[...NEEDS].join(', ')})`);
  for (const word of tiers) if (!TIERS.has(word)) throw new Error(`${name}: unknown test-tier word ${JSON.stringify(word)} (one of ${[...TIERS].join(', ')})`);
  if (needs && needs.includes('nothing') && needs.length > 1) throw new Error(`${name}: test-needs says nothing and something: ${needs.join(' ')}`);
  return {
    file: name,
    needs: needs === null ? ['tracer'] : needs.filter((w) => w !== 'nothing'),
    undeclared: needs === null,
    quick: tiers.includes('quick'),
  };
}

// The test files under test/ (test/*.test.js), sorted, with what they need.
function testFiles(root) {
  const dir = path.join(root, 'test');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => declared(path.join(dir, f)));
}

module.exports = { testFiles, declared };
