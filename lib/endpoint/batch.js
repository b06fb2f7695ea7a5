'use strict';
// Batches of firings on the wire, in binary: encoding a firing as JSON cost
// the process more than the firing itself (numbers to text). The only
// binary message; a process sends it, a client reads it, checking every
// length against what is there (the process may be hostile).
//
// A message body (after the 4-byte length, see protocol.js), little-endian:
//   u8  1 (FIRINGS; a JSON message starts with `{`)
//   u32 subscription id
//   f64 firings dropped so far (an integer)
//   u32 number of firings
//   per firing:
//     u32 probe id, f64 time (performance.now(), ms), u8 number of values
//     per value: u8 tag, then
//       0  f64    an integer (exact: at most 2^53)
//       1  u32 n, n bytes of UTF-8: a string (cut at NUL)
//       2  u32 n, n ASCII digits (and a leading -): an integer beyond 2^53
// Values are what values.js's wireValue makes them: the declared types
// applied.

const { ProtocolError } = require('./protocol');
const { typeInfo, intOf, stringValue } = require('../values');

const FIRINGS = 1;
const HEAD = 1 + 4 + 8 + 4;
// Strings up to this length are copied byte by byte while they are ASCII.
const SHORT = 64;

const infosByTypes = new WeakMap();
function infosOf(types) {
  let infos = infosByTypes.get(types);
  if (infos === undefined) {
    infos = types.map((t) => {
      const info = typeInfo(t);
      return { info, int: info.kind === 'int' || info.kind === 'uint' };
    });
    infosByTypes.set(types, infos);
  }
  return infos;
}

// Writes one batch into a buffer it grows as needed; `finish()` returns the
// framed message (length prefix included).
class BatchWriter {
  constructor(capacity = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(capacity);
    this.at = 0;
    this.count = 0;
  }

  begin(sub, dropped) {
    this.at = 4 + HEAD;
    this.count = 0;
    this.sub = sub;
    this.dropped = dropped;
  }

  room(n) {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }

  add(tap, time, values) {
    const infos = infosOf(tap.types);
    const n = values.length;
    this.room(13 + 9 * n);
    let at = this.buf.writeUInt32LE(tap.id, this.at);
    at = this.buf.writeDoubleLE(time, at);
    at = this.buf.writeUInt8(n, at);
    this.at = at;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      const info = infos[i];
      if (info !== undefined && info.int) {
        const x = intOf(v, info.info);
        if (typeof x === 'number') {
          this.room(9);
          this.buf[this.at] = 0;
          this.at = this.buf.writeDoubleLE(x, this.at + 1);
        } else {
          this.text(2, String(x));
        }
      } else {
        this.text(1, typeof v === 'string' && v.indexOf('\0') < 0 ? v : stringValue(v));
      }
    }
    this.count++;
    return this.at;
  }

  text(tag, s) {
    const n = s.length;
    this.room(5 + 3 * n);
    const b = this.buf;
    const start = this.at + 5;
    b[this.at] = tag;
    // A short ASCII string byte by byte: cheaper than a call into C++.
    let i = 0;
    if (n <= SHORT) for (; i < n && s.charCodeAt(i) < 0x80; i++) b[start + i] = s.charCodeAt(i);
    const written = i === n ? n : b.write(s, start, 'utf8');
    b.writeUInt32LE(written, this.at + 1);
    this.at = start + written;
  }

  // The framed message, a copy (the writer's buffer is reused).
  finish() {
    const b = this.buf;
    b.writeUInt32BE(this.at - 4, 0);
    b[4] = FIRINGS;
    b.writeUInt32LE(this.sub, 5);
    b.writeDoubleLE(this.dropped, 9);
    b.writeUInt32LE(this.count, 17);
    return Buffer.from(b.subarray(0, this.at));
  }

  get bytes() {
    return this.at;
  }
}

const isBatch = (body) => body.length > 0 && body[0] === FIRINGS;

// A batch's contents: { sub, dropped, firings: [[probe id, time, ...values]] },
// or ProtocolError for anything that does not add up.
function readBatch(body) {
  const fail = (why) => {
    throw new ProtocolError(`a bad batch of firings: ${why}`);
  };
  if (body.length < HEAD || body[0] !== FIRINGS) fail('too short');
  const sub = body.readUInt32LE(1);
  const dropped = body.readDoubleLE(5);
  const count = body.readUInt32LE(13);
  if (!Number.isSafeInteger(dropped) || dropped < 0) fail('a bad drop count');
  // Each firing takes at least 13 bytes: no count can make us allocate more.
  if (count > (body.length - HEAD) / 13) fail(`${count} firings in ${body.length} bytes`);
  let at = HEAD;
  const need = (n) => {
    if (at + n > body.length) fail('cut short');
  };
  const firings = new Array(count);
  for (let f = 0; f < count; f++) {
    need(13);
    const id = body.readUInt32LE(at);
    const time = body.readDoubleLE(at + 4);
    const n = body[at + 12];
    at += 13;
    const firing = new Array(2 + n);
    firing[0] = id;
    firing[1] = time;
    for (let i = 0; i < n; i++) {
      need(1);
      const tag = body[at];
      if (tag === 0) {
        need(9);
        const x = body.readDoubleLE(at + 1);
        if (!Number.isSafeInteger(x)) fail('an integer that is not one');
        firing[2 + i] = x;
        at += 9;
      } else if (tag === 1 || tag === 2) {
        need(5);
        const len = body.readUInt32LE(at + 1);
        need(5 + len);
        const text = body.toString(tag === 1 ? 'utf8' : 'latin1', at + 5, at + 5 + len);
        if (tag === 2 && !/^-?\d{1,20}$/.test(text)) fail('a big integer that is not one');
        firing[2 + i] = text;
        at += 5 + len;
      } else {
        fail(`unknown value tag ${tag}`);
      }
    }
    firings[f] = firing;
  }
  if (at !== body.length) fail('bytes left over');
  return { sub, dropped, firings };
}

module.exports = { BatchWriter, readBatch, isBatch, FIRINGS };
