'use strict';
// The tracer program `dynprobe trace` runs, generated from the probes'
// notes, and the plan that decodes what it prints.
//
// Every firing prints records `\036 fields separated by \037 \035\n`:
//   probe-index, clause, tid, time, raw value of every argument,
//   then the strings this clause reads
// Integers are decoded from their raw 64-bit values (dynprobe passes them
// sign- or zero-extended); a string's raw value is the pointer it was read
// from. Arguments are read as their declared types say when the library
// records them (`char *` and `json` as strings, integers as integers);
// otherwise a `char *|uint64_t` argument is read both ways. Strings may hold newlines (bunyan's
// records end with one): records are delimited by control characters.
//
// bpftrace 0.17 keeps strings on the 512-byte BPF stack, so a firing with
// several strings is read by several clauses on the same probe, one string
// each. The raw values in every record are the firing's fingerprint: the
// decoder matches one record per clause by thread, fingerprint and time,
// and recovers by itself from a firing caught half-attached. The clauses
// start only once all are attached (the BEGIN gate).

const { argKinds, STRING_KINDS } = require('./types');
const { dtraceProbeName, isShared } = require('./commands');
const { probeProblem, shown } = require('./names');

const RS = '\\036'; // record start
const US = '\\037'; // field separator
const END = '\\035\\n'; // record end
const GATE = '@dpgo';

// A string an argument points to; DTrace aborts a clause that copies from a
// bad address, so it reads only addresses that may be user memory.
function stringField(family, i) {
  if (family === 'bpftrace') return ['%s', `str(arg${i})`];
  return ['%s', `arg${i} > 0xffff && arg${i} < 0x800000000000 ? copyinstr(arg${i}) : ""`];
}

// The string arguments each clause reads, `perClause` at a time (at least
// one clause, which also carries the integers).
function clausesFor(kinds, perClause) {
  const strings = kinds.flatMap((k, i) => (STRING_KINDS.has(k) ? [i] : []));
  const clauses = [];
  for (let i = 0; i < strings.length; i += perClause) clauses.push(strings.slice(i, i + perClause));
  return clauses.length > 0 ? clauses : [[]];
}

// Whether another library of the process has a probe of the same provider
// and name: bcc-based bpftrace (0.17) cannot attach it with -p (it merges
// them and fails to read the arguments), so it attaches by path instead.
function sameNameElsewhere(entry, probe, providers) {
  return providers.some((e) => e !== entry && e.provider === entry.provider && e.probes.some((p) => p.name === probe.name));
}

function planProbe(index, { entry, probe }, tracer, providers) {
  // The names go into the program as they are: only names of the strict
  // grammar may (trace.js leaves the others out, saying so).
  const problem = probeProblem(entry, probe, { needsPath: tracer.family !== 'dtrace' });
  if (problem !== null) throw new Error(`probe ${shown(entry.provider)}:${shown(probe.name)} ${problem}`);
  const shared = isShared(entry, providers);
  const readable = probe.args.slice(0, tracer.maxArgs);
  const kinds = argKinds(probe).slice(0, tracer.maxArgs);
  return {
    index,
    provider: entry.provider,
    probe: probe.name,
    module: entry.module,
    label: shared ? `${entry.provider}[${entry.module}]:${probe.name}` : `${entry.provider}:${probe.name}`,
    kinds,
    omitted: probe.args.length - readable.length,
    clauses: clausesFor(kinds, tracer.stringsPerClause),
    sameName: sameNameElsewhere(entry, probe, providers),
    attach:
      tracer.family === 'dtrace'
        ? `${entry.provider}$target:${shared && entry.storage === 'file' ? entry.module : ''}::${dtraceProbeName(probe.name)}`
        : `usdt:${entry.tracerPath}:${entry.provider}:${probe.name}`,
  };
}

// fields: [format, value or null for a literal]
function printf(fields) {
  const format = fields.map((f) => f[0]).join(US);
  const values = fields.filter((f) => f[1] !== null).map((f) => `, ${f[1]}`);
  return `printf("${RS}${format}${END}"${values.join('')})`;
}

// Header, raw values, then the strings of the clause's arguments.
function recordFields(family, p, clause, args) {
  const time = family === 'dtrace' ? 'walltimestamp' : 'nsecs';
  const fields = [[`${p.index}`, null], [`${clause}`, null], ['%d', 'tid'], [family === 'dtrace' ? '%d' : '%lu', time]];
  p.kinds.forEach((_, i) => fields.push([family === 'dtrace' ? '%u' : '%lu', `arg${i}`]));
  for (const i of args) if (STRING_KINDS.has(p.kinds[i])) fields.push(stringField(family, i));
  return fields;
}

function bpftraceClauses(p, predicate) {
  return p.clauses.map((args, c) => `${p.attach} /${predicate}/ { ${printf(recordFields('bpftrace', p, c, args))}; }`);
}

function dtraceClause(p) {
  return `${p.attach}\n{\n  ${printf(recordFields('dtrace', p, 0, p.clauses.flat()))};\n}`;
}

// The program text and the decoding plan for `selected` ({entry, probe}
// pairs of process `pid`, whose providers are `providers`). `byPath`: the
// program must run without -p (it keeps to `pid` itself).
function build(selected, tracer, providers, pid) {
  const probes = selected.map((s, i) => planProbe(i, s, tracer, providers));
  if (tracer.family === 'dtrace') {
    const single = probes.map((p) => ({ ...p, clauses: [p.clauses.flat()] }));
    const text = [`BEGIN\n{\n  printf("${RS}ready${END}");\n}`, ...single.map(dtraceClause)].join('\n\n');
    return { text: `${text}\n`, plan: { clock: 'wall', probes: single }, byPath: false };
  }
  const byPath = !tracer.perLibrary && probes.some((p) => p.sameName);
  const predicate = byPath ? `${GATE} && pid == ${pid}` : GATE;
  const lines = [
    `BEGIN { ${GATE} = 1; printf("${RS}ready${END}"); }`,
    ...probes.flatMap((p) => bpftraceClauses(p, predicate)),
    `END { clear(${GATE}); }`,
  ];
  return { text: `${lines.join('\n')}\n`, plan: { clock: 'monotonic', probes }, byPath };
}

module.exports = { build };
