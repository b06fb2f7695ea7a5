'use strict';
// Everything the CLI takes from a process (provider, probe and module names
// from its notes, library paths from its memory map, its command line) is
// written by whoever runs that process. Two rules keep it from doing harm:
//
// - Only names that fit a strict grammar are pasted into a tracer program
//   or a printed command; a probe with any other name is refused, with a
//   message that names it (escaped). Tracer languages have no quoting for
//   probe names, so refusing is the only safe choice.
// - Nothing from a process reaches the terminal raw: control characters
//   (C0, DEL, C1), and the invisible and bidirectional formatting ones that
//   make one name look like another, are shown as `\x1b`, `\u202e`.

// What bpftrace's and DTrace's lexers read as part of a probe description,
// minus everything with a meaning there (`:` separates, `$` starts a macro,
// `*?[]!\` are globs, `` ` `` scopes a module) and everything a shell or the
// printed commands would have to quote. dtrace-provider's names (bunyan's
// `log-info`, restify's `route-start`) and sys/sdt.h's C identifiers fit.
const GRAMMAR = {
  provider: /^[A-Za-z_][A-Za-z0-9_.-]*$/,
  probe: /^[A-Za-z0-9_.-]+$/,
  module: /^[A-Za-z0-9_.-]+$/,
  // A library path in a bpftrace attach point (`usdt:PATH:provider:probe`).
  path: /^(\/[A-Za-z0-9_.-]+)+$/,
};
// An argument name as a library records it (lib/arg-types.json, the same
// rules as crates/dynprobe-format's types.rs): a C identifier of 1 to 64
// bytes that is not a tracer's own name for an argument (arg0, args, ...).
// Shown in listings only, never put in a tracer program.
const { argNames: ARG_NAME_RULES, limits: LIMITS } = require('../arg-types.json');
const IDENTIFIER = new RegExp(ARG_NAME_RULES.identifier);
const TRACER_WORD = new RegExp(ARG_NAME_RULES.tracerWords);

// Why `name` cannot name an argument in a listing, or null.
function argNameProblem(name) {
  if (typeof name !== 'string' || name.length === 0 || name.length > LIMITS.maxArgNameLen || !IDENTIFIER.test(name)) {
    return `is not a C identifier of at most ${LIMITS.maxArgNameLen} bytes`;
  }
  if (TRACER_WORD.test(name)) return "is a tracer's own name for an argument (arg0, arg1, ..., sarg0, ..., args)";
  return null;
}

// Longer than any name a tracer keeps (DTrace: 64 bytes).
const MAX_NAME = 128;
const MAX_PATH = 4096;
const WHAT = { provider: 'provider name', probe: 'probe name', module: 'module name', path: 'library path' };

// Why `text` cannot go into a tracer program as a `kind` name, or null.
function nameProblem(kind, text) {
  const max = kind === 'path' ? MAX_PATH : MAX_NAME;
  if (text.length > max) return `its ${WHAT[kind]} is ${text.length} characters long (at most ${max})`;
  if (!GRAMMAR[kind].test(text)) {
    const allowed = kind === 'path' ? 'letters, digits, and _ . - between slashes' : 'letters, digits, _ . -';
    return `its ${WHAT[kind]} ${quoted(text)} has characters a tracer program cannot take (allowed: ${allowed})`;
  }
  return null;
}

// Why a probe of a provider entry cannot be traced by name, or null.
// `needsPath`: its commands name the library by path.
function probeProblem(entry, probe, { needsPath = false } = {}) {
  if (probe.omittedArgs > 0) return `its note lists ${probe.args.length + probe.omittedArgs} arguments (no tracer reads more than 12)`;
  return (
    nameProblem('provider', entry.provider) ||
    nameProblem('probe', probe.name) ||
    nameProblem('module', entry.module) ||
    (needsPath && entry.tracerPath !== null ? nameProblem('path', entry.tracerPath) : null)
  );
}

// What never reaches a terminal raw: C0 controls, DEL, C1 controls, the
// line and paragraph separators, and Unicode's invisible and bidirectional
// formatting characters (format, Cf: U+200B, U+202E, U+2066, U+FEFF, ...);
// in a value also the backslash, so that an escape cannot be faked, and in a
// message not the newline.
/* eslint-disable no-control-regex -- control characters are what these match */
const UNSAFE_VALUE = /[\0-\x1f\x7f-\x9f\\\u2028\u2029]|\p{Cf}/gu;
const UNSAFE_MESSAGE = /[\0-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]|\p{Cf}/gu;
/* eslint-enable no-control-regex */

function escape(c) {
  if (c === '\\') return '\\\\';
  const code = c.codePointAt(0);
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, '0')}`;
  return code < 0x10000 ? `\\u${code.toString(16).padStart(4, '0')}` : `\\u{${code.toString(16)}}`;
}

// One value from a process (a name, a path, a command line), safe to print
// on one line of a terminal, and unambiguous.
function visible(text) {
  return String(text).replace(UNSAFE_VALUE, escape);
}

// A message (which may quote values already shown by `visible`): lines stay
// lines, nothing else reaches the terminal raw.
function safeText(text) {
  return String(text).replace(UNSAFE_MESSAGE, escape);
}

// A name for a listing: visible, and cut (saying so) when it is absurdly long.
const SHOWN_MAX = 200;
function shown(text) {
  const s = String(text);
  if (s.length <= SHOWN_MAX) return visible(s);
  return `${visible(s.slice(0, SHOWN_MAX))}… (${s.length} characters)`;
}

// A name in a message: shown, in double quotes (escaped inside).
function quoted(text) {
  return `"${shown(text).replaceAll('"', '\\"')}"`;
}

// JSON for a terminal: JSON.stringify escapes C0 controls, not C1 ones nor
// formatting characters; in JSON those can only occur inside strings, where
// \uXXXX means the same.
const UNSAFE_JSON = /[\x7f-\x9f\u2028\u2029]|\p{Cf}/gu;
function jsonEscape(c) {
  const code = c.codePointAt(0);
  if (code < 0x10000) return `\\u${code.toString(16).padStart(4, '0')}`;
  // A format character beyond the BMP (tags, U+E0001...): its surrogates.
  const hi = Math.floor((code - 0x10000) / 0x400) + 0xd800;
  const lo = ((code - 0x10000) % 0x400) + 0xdc00;
  return `\\u${hi.toString(16)}\\u${lo.toString(16)}`;
}
function safeJson(value, ...rest) {
  return safeJson.raw(JSON.stringify(value, ...rest));
}
// Text that is valid JSON without raw C0 controls, made as safe.
safeJson.raw = (json) => json.replace(UNSAFE_JSON, jsonEscape);

module.exports = { argNameProblem, nameProblem, probeProblem, visible, safeText, shown, quoted, safeJson };
