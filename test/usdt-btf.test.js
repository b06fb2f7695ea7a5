'use strict';
// test-needs: nothing
// test-tier: quick
// test/platform/usdt-btf.js, on this machine's kernel BTF: the file it
// writes is BTF that keeps the registers' struct and the integer typedefs
// exactly as the kernel defines them, refers to no type it lacks, and is a
// few dozen types, not the kernel's 100 000. (Whether bpftrace traces with
// it is the arm64 VM's test: test/platform-arm64.test.js.)

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { usdtBtf, parse, references, KIND } = require('./platform/usdt-btf');

const VMLINUX = '/sys/kernel/btf/vmlinux';
let readable = null;
try {
  fs.accessSync(VMLINUX, fs.constants.R_OK);
} catch (err) {
  readable = `${VMLINUX} cannot be read here (${err.code}): the kernel has no BTF`;
}
const gate = require('./fixtures/helpers').gate('usdt-btf tests', readable);

// A struct's members as "name:type name", to compare two files' layouts.
function layout(types, id) {
  const t = types[id];
  const members = [];
  for (let i = 0; i < t.vlen; i++) {
    const at = 12 + i * 12;
    const type = types[t.raw.readUInt32LE(at + 4)];
    members.push(`${t.str(t.raw.readUInt32LE(at))}@${t.raw.readUInt32LE(at + 8)}:${type.kind}:${type.name}`);
  }
  return members;
}

const byName = (types, name, kind) => types.findIndex((t, id) => id > 0 && t.name === name && t.kind === kind);

test('the USDT BTF keeps the kernel\'s registers and integers, and nothing else', { skip: gate.skip }, () => {
  assert.ok(!readable, readable);
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-btf-')), 'usdt.btf');
  try {
    const said = usdtBtf(VMLINUX, out);
    const kernel = parse(fs.readFileSync(VMLINUX));
    const small = parse(fs.readFileSync(out));
    assert.match(said, new RegExp(`^${small.length - 1} of the kernel's ${kernel.length - 1} types$`));
    assert.ok(small.length - 1 < 200, `${small.length - 1} types`);
    for (let id = 1; id < small.length; id++) {
      for (const [, ref] of references(small[id])) assert.ok(ref > 0 && ref < small.length, `type ${id} refers to ${ref}`);
    }
    const regs = process.arch === 'arm64' ? 'user_pt_regs' : 'pt_regs';
    const [k, s] = [byName(kernel, regs, KIND.STRUCT), byName(small, regs, KIND.STRUCT)];
    assert.ok(k > 0 && s > 0, `struct ${regs}`);
    assert.deepEqual(layout(small, s), layout(kernel, k));
    assert.equal(small[s].raw.readUInt32LE(8), kernel[k].raw.readUInt32LE(8), 'its size');
    for (const name of ['__u8', '__u16', '__u32', '__u64', '__s64']) {
      assert.ok(byName(small, name, KIND.TYPEDEF) > 0, `typedef ${name}`);
    }
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
});
