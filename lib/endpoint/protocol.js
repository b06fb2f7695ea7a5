'use strict';
// The endpoint's wire format. A message is a 4-byte big-endian length, then
// that many bytes of UTF-8 JSON (an object). The process speaks first (a
// hello); a client sends requests ({ id, op, ... }) and reads replies
// ({ type: 'reply', id, ... } or { type: 'error', id, message }) and
// events ({ type: 'probes' | 'firings', sub, ... }). Both sides refuse a
// message longer than their limit before reading it, and check every field
// of what they read: neither trusts the other.

const MAGIC = 'dynprobe-endpoint';
const PROTOCOL = 1;
// Requests are small; what a process sends is batched below this.
const MAX_REQUEST = 64 * 1024;
const MAX_MESSAGE = 16 * 1024 * 1024;
const MAX_PATTERN = 512;
const OPS = new Set(['list', 'subscribe', 'unsubscribe', 'record', 'stop-recording', 'dump']);
// What a client may ask a queue to hold: [default, min, max] of firings and
// of bytes, for a subscription and for the recorder (one per process, and
// the user's explicit choice: it may be larger).
const LIMITS = {
  subscribe: { count: [65536, 1, 1000000], bytes: [16 * 1024 * 1024, 1024, 64 * 1024 * 1024] },
  record: { count: [1000, 1, 1000000], bytes: [4 * 1024 * 1024, 1024, 256 * 1024 * 1024] },
};

class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

function encode(message) {
  const text = JSON.stringify(message);
  const out = Buffer.allocUnsafe(4 + Buffer.byteLength(text, 'utf8'));
  out.writeUInt32BE(out.length - 4, 0);
  out.write(text, 4, 'utf8');
  return out;
}

// Splits a stream into message bodies, refusing any longer than `max`:
// memory held is at most one message and a header.
class FrameReader {
  constructor(max) {
    this.max = max;
    this.chunks = [];
    this.held = 0;
    this.need = -1; // the body length being read, or -1 for a header
  }

  // The complete bodies in what arrived so far (Buffers); throws
  // ProtocolError for a message that is too long.
  push(chunk) {
    this.chunks.push(chunk);
    this.held += chunk.length;
    const out = [];
    for (;;) {
      if (this.need < 0) {
        if (this.held < 4) break;
        const length = this.take(4).readUInt32BE(0);
        if (length > this.max) throw new ProtocolError(`a message of ${length} bytes is longer than the ${this.max} allowed`);
        this.need = length;
      }
      if (this.held < this.need) break;
      out.push(this.take(this.need));
      this.need = -1;
    }
    return out;
  }

  take(n) {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.held);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.held = rest.length;
    return head;
  }
}

// A message body as an object, or ProtocolError.
function parseObject(body) {
  let value;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new ProtocolError(`not JSON: ${err.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ProtocolError('a message must be a JSON object');
  return value;
}

const isId = (v) => Number.isSafeInteger(v) && v >= 0 && v < 2 ** 31;

function limitOf(request, name, op) {
  const [fallback, min, max] = LIMITS[op][name];
  const v = request[name];
  if (v === undefined || v === null) return fallback;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new ProtocolError(`${name} must be an integer from ${min} to ${max}`);
  return v;
}

function patternOf(request) {
  const p = request.pattern;
  if (typeof p !== 'string' || p.length > MAX_PATTERN) throw new ProtocolError(`pattern must be a string of at most ${MAX_PATTERN} characters`);
  return p;
}

// A request from a client, checked: { id, op, ... } with only the fields
// its op takes. Throws ProtocolError; `err.id` is the request's id when it
// had a valid one.
function parseRequest(body) {
  const request = parseObject(body);
  const id = request.id;
  if (!isId(id)) throw new ProtocolError('id must be an integer from 0 to 2^31-1');
  try {
    const op = request.op;
    if (typeof op !== 'string' || !OPS.has(op)) throw new ProtocolError(`op must be one of ${[...OPS].join(', ')}`);
    switch (op) {
      case 'subscribe':
        return { id, op, pattern: patternOf(request), count: limitOf(request, 'count', 'subscribe'), bytes: limitOf(request, 'bytes', 'subscribe') };
      case 'record':
        return { id, op, pattern: patternOf(request), count: limitOf(request, 'count', 'record'), bytes: limitOf(request, 'bytes', 'record') };
      case 'unsubscribe':
        if (!isId(request.sub)) throw new ProtocolError('sub must be a subscription id');
        return { id, op, sub: request.sub };
      default:
        return { id, op };
    }
  } catch (err) {
    err.id = id;
    throw err;
  }
}

module.exports = { MAGIC, PROTOCOL, MAX_REQUEST, MAX_MESSAGE, MAX_PATTERN, LIMITS, ProtocolError, FrameReader, encode, parseObject, parseRequest, isId };
