'use strict';
// The part of the kernel's BTF that bpftrace 0.27 needs to trace USDT
// probes, written as a BTF file of its own for BPFTRACE_BTF:
//
//   node test/platform/usdt-btf.js [/sys/kernel/btf/vmlinux] OUT
//
// Why: to read a USDT probe's arguments, bpftrace 0.27 compiles libbpf's
// usdt.bpf.h with clang at every start, and first writes the whole kernel
// BTF out as a C header for it (vmlinux.h, 160 000 lines). Parsing that
// header is almost all of its start: about 30 s of each tracer case in the
// arm64 machine under TCG (1 s natively). The header needs only a few of the
// kernel's types: the registers' structs and the fixed-width integers. This
// keeps the types named below (as the kernel defines them: the same
// layouts), what they are made of, and a pointer's struct as a forward
// declaration, so that bpftrace writes a header of a few dozen lines.
// test/platform/vm-init.sh runs it in the arm64 machine; a failure leaves
// bpftrace with the whole BTF.

const fs = require('node:fs');

const ROOTS = [
  // the registers, as libbpf's bpf_tracing.h reads them (x86: pt_regs;
  // arm64: user_pt_regs)
  'pt_regs',
  'user_pt_regs',
  // what libbpf's headers and bpftrace's own declarations use
  'bpf_map_type',
  ...['u8', 'u16', 'u32', 'u64', 's8', 's16', 's32', 's64'].flatMap((t) => [t, `__${t}`]),
  '__be16',
  '__be32',
  '__wsum',
  '__sum16',
  'bool',
  'size_t',
  'ssize_t',
];

const KIND = { INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, FUNC_PROTO: 13, ENUM64: 19 };
// Bytes after the 12-byte common header, by kind: [fixed, per member].
const EXTRA = { 1: [4, 0], 3: [12, 0], 4: [0, 12], 5: [0, 12], 6: [0, 8], 13: [0, 8], 14: [4, 0], 15: [0, 12], 17: [4, 0], 19: [0, 12] };

function parse(buf) {
  if (buf.readUInt16LE(0) !== 0xeb9f) throw new Error('not a little-endian BTF file');
  const hdrLen = buf.readUInt32LE(4);
  const typeOff = hdrLen + buf.readUInt32LE(8);
  const typeEnd = typeOff + buf.readUInt32LE(12);
  const strOff = hdrLen + buf.readUInt32LE(16);
  const str = (off) => buf.toString('latin1', strOff + off, buf.indexOf(0, strOff + off));
  const types = [null]; // ids start at 1
  for (let at = typeOff; at < typeEnd; ) {
    const info = buf.readUInt32LE(at + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const [fixed, each] = EXTRA[kind] || [0, 0];
    const size = 12 + fixed + each * vlen;
    types.push({ kind, vlen, info, name: str(buf.readUInt32LE(at)), ref: buf.readUInt32LE(at + 8), raw: buf.subarray(at, at + size), str });
    at += size;
  }
  return types;
}

// The ids of the types `t` refers to, with where each sits in its record.
function references(t) {
  const out = [];
  const u32 = (off) => t.raw.readUInt32LE(off);
  switch (t.kind) {
    case KIND.INT:
    case KIND.ENUM:
    case KIND.ENUM64:
    case KIND.FWD:
      break;
    case KIND.ARRAY:
      out.push([12, u32(12)], [16, u32(16)]);
      break;
    case KIND.STRUCT:
    case KIND.UNION:
      for (let i = 0; i < t.vlen; i++) out.push([12 + i * 12 + 4, u32(12 + i * 12 + 4)]);
      break;
    case KIND.FUNC_PROTO:
      out.push([8, t.ref]);
      for (let i = 0; i < t.vlen; i++) out.push([12 + i * 8 + 4, u32(12 + i * 8 + 4)]);
      break;
    default:
      out.push([8, t.ref]); // PTR, TYPEDEF, CONST, VOLATILE, RESTRICT, FUNC, VAR, TYPE_TAG ...
  }
  return out.filter(([, id]) => id !== 0);
}

// Name offsets inside a record, to rewrite into the new string table.
function nameOffsets(t) {
  const offs = [0];
  const member = { [KIND.STRUCT]: 12, [KIND.UNION]: 12, [KIND.ENUM]: 8, [KIND.ENUM64]: 12, [KIND.FUNC_PROTO]: 8 }[t.kind];
  if (member) for (let i = 0; i < t.vlen; i++) offs.push(12 + i * member);
  return offs;
}

function subset(types, roots) {
  const wanted = new Set(roots);
  const order = []; // the ids kept whole, in the order they are written
  const kept = new Set();
  const forwards = new Map(); // struct/union id -> its forward declaration
  const visit = (id) => {
    if (kept.has(id)) return;
    const t = types[id];
    kept.add(id);
    order.push(id);
    for (const [, ref] of references(t)) {
      const target = types[ref];
      if (t.kind === KIND.PTR && (target.kind === KIND.STRUCT || target.kind === KIND.UNION)) {
        if (!forwards.has(ref)) forwards.set(ref, { name: target.name, union: target.kind === KIND.UNION });
      } else {
        visit(ref);
      }
    }
  };
  for (let id = 1; id < types.length; id++) {
    const t = types[id];
    if (t.name && wanted.has(t.name) && [KIND.INT, KIND.STRUCT, KIND.UNION, KIND.ENUM, KIND.ENUM64, KIND.TYPEDEF].includes(t.kind)) visit(id);
  }
  // A pointed-to struct that is kept whole stays whole; the others become
  // forward declarations.
  for (const id of kept) forwards.delete(id);
  return { order, forwards };
}

function write(types, { order, forwards }) {
  const strings = ['\0'];
  let strLen = 1;
  const strIds = new Map([['', 0]]);
  const name = (s) => {
    if (!strIds.has(s)) {
      strIds.set(s, strLen);
      strings.push(`${s}\0`);
      strLen += Buffer.byteLength(s, 'latin1') + 1;
    }
    return strIds.get(s);
  };
  const newId = new Map();
  let next = 1;
  for (const id of [...order, ...forwards.keys()]) newId.set(id, next++);
  const records = [];
  for (const id of order) {
    const t = types[id];
    const rec = Buffer.from(t.raw);
    for (const off of nameOffsets(t)) rec.writeUInt32LE(name(t.str(t.raw.readUInt32LE(off))), off);
    for (const [off, ref] of references(t)) rec.writeUInt32LE(newId.get(ref), off);
    records.push(rec);
  }
  for (const fwd of forwards.values()) {
    const rec = Buffer.alloc(12);
    rec.writeUInt32LE(name(fwd.name), 0);
    rec.writeUInt32LE(((KIND.FWD << 24) | (fwd.union ? 0x80000000 : 0)) >>> 0, 4);
    records.push(rec);
  }
  const typeSec = Buffer.concat(records);
  const strSec = Buffer.from(strings.join(''), 'latin1');
  const hdr = Buffer.alloc(24);
  hdr.writeUInt16LE(0xeb9f, 0);
  hdr.writeUInt8(1, 2);
  hdr.writeUInt32LE(24, 4);
  hdr.writeUInt32LE(0, 8);
  hdr.writeUInt32LE(typeSec.length, 12);
  hdr.writeUInt32LE(typeSec.length, 16);
  hdr.writeUInt32LE(strSec.length, 20);
  return { bytes: Buffer.concat([hdr, typeSec, strSec]), count: records.length };
}

function usdtBtf(input, output) {
  const types = parse(fs.readFileSync(input));
  const { bytes, count } = write(types, subset(types, ROOTS));
  fs.writeFileSync(output, bytes);
  return `${count} of the kernel's ${types.length - 1} types`;
}

module.exports = { usdtBtf, parse, references, KIND };

if (require.main === module) {
  const args = process.argv.slice(2);
  const [input, output] = args.length === 1 ? ['/sys/kernel/btf/vmlinux', args[0]] : args;
  process.stdout.write(`${usdtBtf(input, output)}\n`);
}
