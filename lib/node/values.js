'use strict';
// What the probes report, read from Node's objects without changing them:
// no getter that caches (socket.remoteAddress caches the peer name, request
// .headers builds an object), nothing that throws. A value that is missing
// or of the wrong type reads as a defined one: '' for strings, -1 for a file
// descriptor, 0 for other numbers.

function text(value) {
  return typeof value === 'string' ? value : '';
}

function int32(value, otherwise) {
  return typeof value === 'number' && Number.isFinite(value) ? value | 0 : otherwise;
}

// The socket's file descriptor, or -1 (none yet, closed, or not a TCP/pipe
// handle, e.g. TLS).
function fdOf(socket) {
  try {
    const handle = socket && socket._handle;
    const fd = handle ? handle.fd : undefined;
    return typeof fd === 'number' && fd >= 0 ? fd : -1;
  } catch {
    return -1;
  }
}

// The peer's address and port, asked of the socket's handle, as
// socket.remoteAddress does but without caching the answer on the socket.
// A connected socket's peer never changes: each is asked once (a system
// call), and remembered beside the socket, not on it.
const NO_PEER = { address: '', port: 0 };
const peers = new WeakMap();
function peerOf(socket) {
  try {
    if (!socket || typeof socket !== 'object') return NO_PEER;
    const known = peers.get(socket);
    if (known !== undefined) return known;
    let peer = NO_PEER;
    const cached = socket._peername;
    if (cached && typeof cached.address === 'string') peer = { address: cached.address, port: int32(cached.port, 0) };
    else {
      const handle = socket._handle;
      if (handle && typeof handle.getpeername === 'function') {
        const out = {};
        if (handle.getpeername(out) === 0 && typeof out.address === 'string') peer = { address: out.address, port: int32(out.port, 0) };
      }
    }
    if (peer !== NO_PEER) peers.set(socket, peer);
    return peer;
  } catch {
    // a closed or foreign handle: no peer
    return NO_PEER;
  }
}

function bufferedOf(socket) {
  try {
    return int32(socket && socket.writableLength, 0);
  } catch {
    return 0;
  }
}

// A request header from the raw [name, value, ...] list (the `headers`
// getter would build and keep an object); repeated ones joined by ', ' as
// Node joins x-forwarded-for. '' when absent.
function rawHeader(rawHeaders, lowerName) {
  if (!Array.isArray(rawHeaders)) return '';
  let found = '';
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (typeof name === 'string' && name.length === lowerName.length && name.toLowerCase() === lowerName) {
      const value = text(rawHeaders[i + 1]);
      found = found === '' ? value : `${found}, ${value}`;
    }
  }
  return found;
}

// The host and port an outgoing request asked for: `request.host` and the
// port of its Host header (the protocol's default when it names none), or the
// connected socket's peer port.
function clientTarget(request) {
  let host = '';
  let port = 0;
  try {
    host = text(request.host);
    const socket = request.socket;
    const peer = peerOf(socket);
    if (peer.port !== 0) port = peer.port;
    else {
      const header = typeof request.getHeader === 'function' ? request.getHeader('host') : undefined;
      const m = typeof header === 'string' ? /:(\d+)$/.exec(header) : null;
      if (m) port = Number(m[1]) | 0;
      else port = text(request.protocol) === 'https:' ? 443 : 80;
    }
  } catch {
    // defined values stay
  }
  return { host, port };
}

// The error's code (`ECONNREFUSED`, `ER_NO_SUCH_TABLE`; a numeric code as
// digits), else its name (`ReplyError`), else ''.
function errorCode(error) {
  try {
    const code = error && error.code;
    if (typeof code === 'string' && code !== '') return code;
    if (typeof code === 'number' && Number.isFinite(code)) return String(code);
    if (error && typeof error.name === 'string') return error.name;
  } catch {
    // fall through
  }
  return '';
}

function errorMessage(error) {
  try {
    return error && typeof error.message === 'string' ? error.message : '';
  } catch {
    return '';
  }
}

// The first line of a message, bounded.
function firstLine(message) {
  const s = text(message);
  const nl = s.indexOf('\n');
  return bounded(nl < 0 ? s : s.slice(0, nl));
}

// A text argument, at most MAX_TEXT UTF-16 units (a surrogate pair is never
// cut in two): what one firing copies stays bounded whatever the application
// sends (a bulk INSERT's SQL).
const MAX_TEXT = 4096;
function bounded(value) {
  const s = text(value);
  if (s.length <= MAX_TEXT) return s;
  const last = s.charCodeAt(MAX_TEXT - 1);
  return s.slice(0, last >= 0xd800 && last <= 0xdbff ? MAX_TEXT - 1 : MAX_TEXT);
}

// A message's own primitive fields, for its JSON: own enumerable data
// properties (getters are not run) holding a string, number, boolean, null
// or bigint (as its digits), at most MAX_FIELDS of them, strings cut so that
// the JSON stays within MAX_JSON characters (fields that no longer fit are
// left out). Anything unforeseen (a Proxy that throws) gives what was read
// so far.
const MAX_JSON = 1024;
const MAX_FIELDS = 32;
function primitiveFields(message) {
  const out = {};
  if (message === null || typeof message !== 'object') return out;
  try {
    let room = MAX_JSON - 2; // the braces
    let fields = 0;
    for (const key of Object.keys(message)) {
      if (fields === MAX_FIELDS || room <= 0) break;
      const d = Object.getOwnPropertyDescriptor(message, key);
      if (d === undefined || !('value' in d)) continue;
      let value = d.value;
      if (typeof value === 'bigint') value = String(value);
      else if (value !== null && typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') continue;
      // "key": plus a comma before every field but the first.
      const cost = JSON.stringify(key).length + 1 + (fields === 0 ? 0 : 1);
      let json = JSON.stringify(value);
      if (cost + json.length > room) {
        if (typeof value !== 'string') break;
        // Cut the string until its JSON fits (escapes make it longer).
        let keep = Math.max(0, room - cost - 2);
        value = value.slice(0, keep);
        json = JSON.stringify(value);
        while (cost + json.length > room && keep > 0) {
          keep = Math.max(0, keep - (cost + json.length - room));
          value = value.slice(0, keep);
          json = JSON.stringify(value);
        }
        if (cost + json.length > room) break;
      }
      out[key] = value;
      room -= cost + json.length;
      fields++;
    }
  } catch {
    // what was read so far
  }
  return out;
}

module.exports = {
  text,
  int32,
  fdOf,
  peerOf,
  bufferedOf,
  rawHeader,
  clientTarget,
  errorCode,
  errorMessage,
  bounded,
  firstLine,
  primitiveFields,
  MAX_TEXT,
  MAX_JSON,
};
