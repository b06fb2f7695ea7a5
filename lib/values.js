'use strict';
// What a probe's values become for those who read them without a kernel
// tracer: in-process subscribers, `dynprobe trace` through a process's
// endpoint, and the flight recorder. One conversion, the one a tracer sees:
// the native fire converts each value by the probe's declared type
// (crates/dynprobe-node/src/fire.rs, ArgType::normalize) and a tracer reads
// it back, and these functions give the same result without the trip.
//
// On the hot path a fire only turns the callback's values into primitives
// (provider.js: ToNumber for integers, ToString for strings,
// JSON.stringify for JSON: user code runs there, once); everything here runs
// later, off the application's path.

const { DECLARED } = require('./cli/types');

const TWO_53 = 9007199254740992;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

// The declared type's size and sign; a type no library records is a string
// (as dtrace-provider reads unknown names).
const STRING = { size: 8, signed: false, kind: 'str' };
function typeInfo(declared) {
  return DECLARED.get(declared) || STRING;
}

// A number as the native side truncates it to a 64-bit register: toward
// zero, NaN as 0; beyond 2^53 saturated (to i64, or to u64 for a uint64_t
// that is not negative), as Rust's `as` casts do.
function truncated(f, unsigned) {
  if (Math.abs(f) < TWO_53) return BigInt(Math.trunc(f));
  if (Number.isNaN(f)) return 0n;
  if (unsigned && f >= 0) return f === Infinity ? U64_MAX : bigMin(BigInt(f), U64_MAX);
  if (f === Infinity) return I64_MAX;
  if (f === -Infinity) return I64_MIN;
  const b = BigInt(f);
  return b > I64_MAX ? I64_MAX : b < I64_MIN ? I64_MIN : b;
}

const bigMin = (a, b) => (a < b ? a : b);

// An integer argument (a number or a BigInt, as provider.js made it) as a
// tracer reads it: truncated to the declared size and sign. A Number when it
// is exact as one, else a BigInt.
function intValue(v, declared) {
  return intOf(v, typeInfo(declared));
}

// The same, with the declared type's typeInfo() at hand.
function intOf(v, t) {
  const bits = t.size * 8;
  if (typeof v === 'number' && Math.abs(v) < TWO_53) {
    // The common case, without a BigInt: JavaScript's integer conversions
    // truncate toward zero and wrap as a C cast does.
    switch (bits) {
      case 8:
        return t.signed ? (v << 24) >> 24 : v & 0xff;
      case 16:
        return t.signed ? (v << 16) >> 16 : v & 0xffff;
      case 32:
        return t.signed ? v | 0 : v >>> 0;
      default: {
        const n = Math.trunc(v);
        // -0 is 0 in a register; an unsigned 64-bit value wraps below.
        if (t.signed || n >= 0) return n === 0 ? 0 : n;
      }
    }
  }
  let big;
  if (typeof v === 'bigint') big = v;
  else if (typeof v === 'number') big = truncated(v, !t.signed && bits === 64);
  else big = truncated(Number(v), !t.signed && bits === 64);
  const wrapped = t.signed ? BigInt.asIntN(bits, big) : BigInt.asUintN(bits, big);
  const n = Number(wrapped);
  return Number.isSafeInteger(n) ? n : wrapped;
}

// Lone surrogates become U+FFFD, as the UTF-8 a tracer reads has them.
const SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

const wellFormed = typeof String.prototype.isWellFormed === 'function' ? (s) => s.isWellFormed() : (s) => !SURROGATE.test(s);

// A string argument as a tracer reads it: cut at the first NUL, in UTF-8.
function stringValue(s) {
  const text = typeof s === 'string' ? s : String(s);
  const nul = text.indexOf('\0');
  const cut = nul < 0 ? text : text.slice(0, nul);
  return SURROGATE.test(cut) ? cut.replace(LONE_SURROGATE, '\uFFFD') : cut;
}

// A JSON argument's text: its parsed value, or the text as a string when it
// does not parse (`undefined`, or a text cut short by a tracer).
function jsonArg(text, truncated = false) {
  try {
    return { type: 'json', value: JSON.parse(text), truncated: false };
  } catch {
    return { type: 'string', value: text, truncated, unparsed: true };
  }
}

// One value for a subscriber: an integer (Number, or BigInt beyond 2^53), a
// string, or a JSON argument's parsed value (its text when it does not
// parse).
function subscriberValue(v, declared) {
  const kind = typeInfo(declared).kind;
  if (kind === 'int' || kind === 'uint') return intValue(v, declared);
  const text = stringValue(v);
  if (kind !== 'json') return text;
  const parsed = jsonArg(text);
  return parsed.value;
}

// What each of a probe's declared types needs, looked up once per list of
// types (`types`: frozen, one per probe).
const decoders = new WeakMap();
function infosOf(types) {
  let infos = decoders.get(types);
  if (infos === undefined) {
    infos = types.map(typeInfo);
    decoders.set(types, infos);
  }
  return infos;
}

// A probe's values as subscriberValue makes them.
function subscriberValues(values, types) {
  const infos = infosOf(types);
  const n = values.length;
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const info = infos[i];
    const kind = info === undefined ? 'str' : info.kind;
    if (kind === 'int' || kind === 'uint') out[i] = intOf(v, info);
    else if (kind === 'json') out[i] = jsonArg(stringValue(v)).value;
    else out[i] = typeof v === 'string' && v.indexOf('\0') < 0 && wellFormed(v) ? v : stringValue(v);
  }
  return out;
}

// One value as the endpoint sends it: integers as Numbers, or as decimal
// strings beyond 2^53; strings cut; JSON as its text (the client parses it).
function wireValue(v, declared) {
  const kind = typeInfo(declared).kind;
  if (kind === 'int' || kind === 'uint') {
    const n = intValue(v, declared);
    return typeof n === 'bigint' ? String(n) : n;
  }
  return stringValue(v);
}

// A probe's values as wireValue makes them, after `head` leading elements
// (written by the caller) of the array returned.
function wireValues(values, types, head) {
  const infos = infosOf(types);
  const n = values.length;
  const out = new Array(head + n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const info = infos[i];
    const kind = info === undefined ? 'str' : info.kind;
    if (kind === 'int' || kind === 'uint') {
      const x = intOf(v, info);
      out[head + i] = typeof x === 'bigint' ? String(x) : x;
    } else {
      out[head + i] = typeof v === 'string' && v.indexOf('\0') < 0 && wellFormed(v) ? v : stringValue(v);
    }
  }
  return out;
}

// A value the endpoint sent, as `dynprobe trace` shows arguments (the shape
// of lib/cli/records.js's decode): { type: int|uint|string|json, value }.
// It came from another process: anything unexpected reads as a string.
function traceArg(wire, declared) {
  const kind = typeInfo(declared).kind;
  if (kind === 'int' || kind === 'uint') {
    const ok = (typeof wire === 'number' && Number.isSafeInteger(wire)) || (typeof wire === 'string' && /^-?\d{1,20}$/.test(wire));
    if (ok) return { type: kind, value: String(wire) };
  }
  const text = typeof wire === 'string' ? wire : String(wire);
  if (kind === 'json') return jsonArg(text);
  return { type: 'string', value: text, truncated: false };
}

module.exports = { typeInfo, intValue, intOf, stringValue, jsonArg, subscriberValue, subscriberValues, wireValue, wireValues, traceArg };
