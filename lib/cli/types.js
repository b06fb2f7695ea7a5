'use strict';
// How a probe argument is shown and read. A dynprobe library records each
// probe's declared types (`int`, `char *`, `json`, `uint64_t`, ...; see
// crates/dynprobe-format/src/declared.rs): then they say it. Without that
// record (a plain sys/sdt.h object) only the stapsdt note's size, sign and
// location are known, and an unsigned 8-byte argument is a string
// (`char *`, which is also how `json` arguments travel) or a `uint64_t`:
// listings say so, and `dynprobe trace` reads both forms and decides per
// firing (see records.js).

const { argNameProblem } = require('./names');

// The declared types a library may record, and what a tracer reads for
// each: its size and sign, and how to show it (lib/arg-types.json).
const DECLARED = new Map(require('../arg-types.json').types.map((t) => [t.name, { size: t.size, signed: t.signed, kind: t.kind }]));

// Kinds whose value is read as a string.
const STRING_KINDS = new Set(['str', 'json', 'strint']);

// A probe's declared types as the reader returned them, checked again here:
// they come from the traced process's file (and maybe from an older or
// foreign addon). Returns { declared: [names] | null, declaredProblem }.
// Anything but a known name of the note's size and sign, one per argument,
// is treated as absent, saying why.
function checkDeclared(note) {
  const problem = typeof note.declaredProblem === 'string' ? note.declaredProblem : null;
  const types = note.declared;
  if (types === null || types === undefined) return { declared: null, declaredProblem: problem };
  const refuse = (why) => ({ declared: null, declaredProblem: `its declared-types record ${why}` });
  if (!Array.isArray(types)) return refuse('is not a list');
  const args = Array.isArray(note.args) ? note.args : [];
  if ((note.omittedArgs || 0) > 0 || types.length !== args.length) {
    return refuse(`lists ${types.length} types for the ${args.length + (note.omittedArgs || 0)} arguments of its note`);
  }
  for (let i = 0; i < types.length; i++) {
    const t = types[i];
    const known = typeof t === 'string' ? DECLARED.get(t) : undefined;
    if (known === undefined) return refuse(`names an unknown type ${JSON.stringify(String(t).slice(0, 32))}`);
    const arg = args[i];
    if (arg.float || arg.size !== known.size || Boolean(arg.signed) !== known.signed) {
      return refuse(`says ${t} for argument ${i}, which its note records as ${JSON.stringify(String(arg.spec).slice(0, 64))}`);
    }
  }
  return { declared: types.slice(), declaredProblem: null };
}

// A probe's argument names as the reader returned them (`declared`: the
// types checkDeclared kept), checked again for the same reason: used only
// with usable types, one C identifier per argument, each once. Returns
// { argNames: [names] | null, argNamesProblem }.
function checkArgNames(note, declared) {
  const problem = typeof note.argNamesProblem === 'string' ? note.argNamesProblem : null;
  const names = note.argNames;
  if (declared === null || names === null || names === undefined) return { argNames: null, argNamesProblem: declared === null ? null : problem };
  const refuse = (why) => ({ argNames: null, argNamesProblem: `its declared-types record ${why}` });
  if (!Array.isArray(names)) return refuse('has argument names that are not a list');
  if (names.length !== declared.length) return refuse(`names ${names.length} arguments of ${declared.length}`);
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const problem = argNameProblem(name);
    if (problem !== null) return refuse(`names argument ${i} ${JSON.stringify(String(name).slice(0, 80))}, which ${problem}`);
    if (names.indexOf(name) !== i) return refuse(`names two arguments ${JSON.stringify(name)}`);
  }
  return { argNames: names.slice(), argNamesProblem: null };
}

// int: signed integer; uint: unsigned integer; str: a string (char *);
// json: a string holding JSON; strint: char * or uint64_t (no record);
// float: floating point (tracers read the raw bits); unknown: no size.
function kindOf(arg, declared = null) {
  if (declared !== null && DECLARED.has(declared)) return DECLARED.get(declared).kind;
  if (arg.float) return 'float';
  if (!arg.size) return 'unknown';
  if (arg.size === 8 && !arg.signed) return 'strint';
  return arg.signed ? 'int' : 'uint';
}

// The name of argument `i` of `probe`, or null.
function argNameAt(probe, i) {
  return Array.isArray(probe.argNames) ? probe.argNames[i] : null;
}

// The declared type of argument `i` of `probe`, or null.
function declaredAt(probe, i) {
  return Array.isArray(probe.declared) ? probe.declared[i] : null;
}

// Every argument's kind.
function argKinds(probe) {
  return probe.args.map((arg, i) => kindOf(arg, declaredAt(probe, i)));
}

// `int`, `json` (declared), `int32_t`, `char *|uint64_t`, or the raw token
// when nothing better is known.
function typeLabel(arg, declared = null) {
  if (declared !== null && DECLARED.has(declared)) return declared;
  return arg.types.length > 0 ? arg.types.join('|') : `? (${arg.spec})`;
}

// `uint64_t request_struct`, `char *url`: as C declares a parameter.
function parameter(label, name) {
  if (name === null || name === undefined) return label;
  return label.endsWith('*') ? `${label}${name}` : `${label} ${name}`;
}

function signature(probe) {
  const more = probe.omittedArgs > 0 ? [`... ${probe.omittedArgs} more`] : [];
  const params = probe.args.map((a, i) => parameter(typeLabel(a, declaredAt(probe, i)), argNameAt(probe, i)));
  return `${probe.name}(${[...params, ...more].join(', ')})`;
}

const AMBIGUOUS_NOTE =
  'char *|uint64_t: the probe note records an unsigned 8-byte value, which is a string ' +
  '(char *, json) or a uint64_t, and the library records no declared types; the commands ' +
  'above read it as a string, `dynprobe trace` decides per firing.';

module.exports = {
  DECLARED,
  STRING_KINDS,
  checkDeclared,
  checkArgNames,
  kindOf,
  argKinds,
  declaredAt,
  argNameAt,
  typeLabel,
  signature,
  AMBIGUOUS_NOTE,
};
