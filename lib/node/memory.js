'use strict';
// The memory Node 18's struct arguments point at: one ArrayBuffer per thread
// (its backing store never moves, and this module keeps it alive), holding
// the structs and, after them, the strings their fields point at. Every
// fire writes what it points at before firing, so the tracer reads pages
// the process has written (bpftrace 0.17 cannot read a page never touched).
//
// Layouts (LP64: x86-64 and aarch64, little-endian), as Node 18's
// node_dtrace.h:
//   connection      { int32 fd @0; int32 port @4; char *remote @8; int32 buffered @16 }
//   server request  { uint32 version = 1 in an 8-byte union @0; char *url @8;
//                     char *method @16; char *forwardedFor @24; char *pad[8] = 0 @32 }
//   client request  { char *url @0; char *method @8 }

const SERVER_REQUEST = 0; // 96 bytes
const CLIENT_REQUEST = 96; // 16 bytes
const CONNECTION = 128; // 24 bytes
const STRINGS = 256;
const SIZE = 64 * 1024;
// Longer strings are cut (at a character boundary) in the structs; the flat
// string arguments carry them whole.
const MAX_STRING_BYTES = 4095;
const TWO_32 = 0x100000000;

function createMemory(addressOf) {
  const arena = new ArrayBuffer(SIZE);
  const bytes = Buffer.from(arena);
  const u32 = new Uint32Array(arena);
  const i32 = new Int32Array(arena);
  // Written once, so that every page is present (and the pad stays zero).
  bytes.fill(0);
  let base = 0;
  try {
    base = addressOf === null ? 0 : addressOf(bytes);
  } catch {
    base = 0; // an addon without addressOf: the pointers read as NULL
  }
  let top = STRINGS;

  function setPointer(offset, address) {
    u32[offset >>> 2] = address % TWO_32;
    u32[(offset >>> 2) + 1] = Math.floor(address / TWO_32);
  }

  // Copies `text` (a string) in, NUL-terminated; returns its address.
  function string(text) {
    if (base === 0) return 0;
    const room = Math.min(SIZE - top - 1, MAX_STRING_BYTES);
    const at = top;
    let n = 0;
    // Short ASCII strings (most URLs, methods, addresses) byte by byte: a
    // call into Buffer.write costs more than the copy.
    if (text.length <= 64 && text.length <= room) {
      for (; n < text.length; n++) {
        const c = text.charCodeAt(n);
        if (c >= 0x80) break;
        bytes[at + n] = c;
      }
    }
    if (n < text.length) n = room > 0 ? bytes.write(text, at, room, 'utf8') : 0;
    bytes[at + n] = 0;
    top = at + n + 1;
    return base + at;
  }

  return {
    // The isolate's stand-in in the GC probes: an address unique to this
    // thread (the v8::Isolate itself is out of JavaScript's reach).
    id: base,
    // Starts a fire: its strings are written afresh.
    begin() {
      top = STRINGS;
    },
    connection(fd, port, remote, buffered) {
      i32[CONNECTION >>> 2] = fd;
      i32[(CONNECTION >>> 2) + 1] = port;
      setPointer(CONNECTION + 8, string(remote));
      i32[(CONNECTION >>> 2) + 4] = buffered;
      return base === 0 ? 0 : base + CONNECTION;
    },
    serverRequest(url, method, forwardedFor) {
      u32[SERVER_REQUEST >>> 2] = 1;
      u32[(SERVER_REQUEST >>> 2) + 1] = 0;
      setPointer(SERVER_REQUEST + 8, string(url));
      setPointer(SERVER_REQUEST + 16, string(method));
      setPointer(SERVER_REQUEST + 24, string(forwardedFor));
      return base === 0 ? 0 : base + SERVER_REQUEST;
    },
    clientRequest(url, method) {
      setPointer(CLIENT_REQUEST, string(url));
      setPointer(CLIENT_REQUEST + 8, string(method));
      return base === 0 ? 0 : base + CLIENT_REQUEST;
    },
  };
}

module.exports = { createMemory, MAX_STRING_BYTES };
