'use strict';
// Reads what a generated tracer program prints (see program.js) back into
// firings: splits the output into records, joins the clauses of one firing,
// and decodes each argument by its kind.

const fs = require('node:fs');

const RS = 0x1e;
const US = 0x1f;
const END = Buffer.from([0x1d, 0x0a]);
const NL = 0x0a;

// Splits a tracer's stdout into records (arrays of field strings) and the
// text around them (the tracer's own lines), as chunks arrive.
class RecordReader {
  constructor({ onRecord, onText }) {
    this.onRecord = onRecord;
    this.onText = onText;
    this.buffer = Buffer.alloc(0);
  }

  push(chunk) {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const start = this.buffer.indexOf(RS);
      const textEnd = start < 0 ? this.buffer.lastIndexOf(NL) + 1 : start;
      if (textEnd > 0) this.text(this.buffer.subarray(0, textEnd));
      if (start < 0) {
        this.buffer = this.buffer.subarray(textEnd);
        return;
      }
      const end = this.buffer.indexOf(END, start);
      if (end < 0) {
        this.buffer = this.buffer.subarray(start);
        return;
      }
      const record = this.buffer.subarray(start + 1, end);
      this.buffer = this.buffer.subarray(end + END.length);
      this.onRecord(split(record));
    }
  }

  end() {
    if (this.buffer.length > 0) this.text(this.buffer);
    this.buffer = Buffer.alloc(0);
  }

  text(buf) {
    for (const line of buf.toString('utf8').split('\n')) if (line.trim() !== '') this.onText(line);
  }
}

function split(record) {
  const fields = [];
  let from = 0;
  for (let i = record.indexOf(US); i >= 0; i = record.indexOf(US, from)) {
    fields.push(record.subarray(from, i).toString('utf8'));
    from = i + 1;
  }
  fields.push(record.subarray(from).toString('utf8'));
  return fields;
}

// The target's mapped address ranges: a `char *|uint64_t` value that points
// into one is a string (a uint64_t that equals a mapped address is possible,
// but not something a program does by chance).
class AddressSpace {
  constructor(pid) {
    this.pid = pid;
    this.ranges = [];
    this.readAt = 0;
    this.refresh();
  }

  refresh() {
    this.readAt = Date.now();
    try {
      this.ranges = fs
        .readFileSync(`/proc/${this.pid}/maps`, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.slice(0, l.indexOf(' ')).split('-').map((h) => BigInt(`0x${h}`)));
    } catch {
      // the process is gone: keep what we knew
    }
  }

  contains(address) {
    const find = () => this.ranges.some(([lo, hi]) => address >= lo && address < hi);
    if (find()) return true;
    // The heap may have grown since: look again, at most every 250 ms.
    if (Date.now() - this.readAt < 250) return false;
    this.refresh();
    return find();
  }
}

const QUEUE_MAX = 1000;

// Joins records into firings and decodes them. A probe read by several
// clauses (see program.js) prints one record per clause and firing; per
// probe and thread each clause's records wait in a queue, ordered by time,
// until every clause has one. Records of one firing carry the same raw
// values: heads that disagree with the latest head belong to an older firing
// that some clause did not see (caught while attaching, or lost), and go.
class Assembler {
  constructor(plan, { pid, strlen, maxPending = 10000 }) {
    this.plan = plan;
    this.strlen = strlen;
    this.maxPending = maxPending;
    this.memory = new AddressSpace(pid);
    this.pending = new Map();
    // bpftrace's nsecs is CLOCK_MONOTONIC, as is process.hrtime.
    this.monotonicToWall = BigInt(Date.now()) * 1000000n - process.hrtime.bigint();
  }

  // A record's fields -> the firings it completes (usually none or one).
  add(fields) {
    const p = this.plan.probes[Number(fields[0])];
    const clause = Number(fields[1]);
    if (p === undefined || !(clause < p.clauses.length)) return [];
    const n = p.kinds.length;
    const raw = fields.slice(4, 4 + n);
    const record = { clause, time: BigInt(fields[3]), raw, fp: raw.join(' '), strings: fields.slice(4 + n) };
    const tid = Number(fields[2]);
    if (p.clauses.length === 1) return [this.firing(p, tid, [record])];
    return this.join(p, tid, record);
  }

  join(p, tid, record) {
    const key = `${p.index}/${tid}`;
    let queues = this.pending.get(key);
    if (queues === undefined) {
      queues = p.clauses.map(() => []);
      this.pending.set(key, queues);
      if (this.pending.size > this.maxPending) this.pending.delete(this.pending.keys().next().value);
    }
    const queue = queues[record.clause];
    queue.push(record);
    if (queue.length > 1 && queue[queue.length - 2].time > record.time) queue.sort((a, b) => (a.time < b.time ? -1 : 1));
    if (queue.length > QUEUE_MAX) queue.shift();
    const done = [];
    while (queues.every((q) => q.length > 0)) {
      const heads = queues.map((q) => q[0]);
      const latest = heads.reduce((a, b) => (b.time > a.time ? b : a));
      if (heads.every((h) => h.fp === latest.fp)) {
        queues.forEach((q) => q.shift());
        done.push(this.firing(p, tid, heads));
      } else {
        queues.forEach((q) => q[0].fp !== latest.fp && q.shift());
      }
    }
    return done;
  }

  // One firing from its records (one per clause, in clause order).
  firing(p, tid, records) {
    const strings = new Map();
    records.forEach((r) => p.clauses[r.clause].forEach((arg, k) => strings.set(arg, r.strings[k])));
    const time = records.reduce((min, r) => (r.time < min ? r.time : min), records[0].time);
    return {
      probe: p,
      tid,
      time: this.plan.clock === 'monotonic' ? time + this.monotonicToWall : time,
      args: p.kinds.map((kind, i) => this.decode(kind, BigInt(records[0].raw[i] || 0), strings.get(i))),
    };
  }

  // One argument by its kind (types.js). Declared strings and JSON are
  // strings whatever they look like; JSON is parsed (one cut short by the
  // tracer's string limit does not parse, and stays the string it is). Only
  // without a record (`strint`) is a value guessed to be a string or not.
  decode(kind, raw, string) {
    if (kind === 'int') return { type: 'int', value: String(BigInt.asIntN(64, raw)) };
    const cut = (s) => Buffer.byteLength(s) >= this.strlen - 1;
    if (kind === 'str') return { type: 'string', value: string || '', truncated: cut(string || '') };
    if (kind === 'json') {
      const text = string || '';
      try {
        return { type: 'json', value: JSON.parse(text), truncated: false };
      } catch {
        return { type: 'string', value: text, truncated: cut(text), unparsed: true };
      }
    }
    if (kind === 'strint' && raw !== 0n && string !== undefined && this.memory.contains(raw)) {
      return { type: 'string', value: string, truncated: cut(string), guessed: true };
    }
    return { type: 'uint', value: String(BigInt.asUintN(64, raw)) };
  }
}

module.exports = { RecordReader, Assembler };
