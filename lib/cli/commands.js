'use strict';
// Ready-to-paste commands that trace one probe with each tracer, its
// arguments printed by their types: as declared when the library records
// them (strings and JSON read as strings, integers by their sign, uint64_t
// unsigned), else from the note, where strings are assumed for
// `char *|uint64_t` arguments (see types.js): that is what dtrace-provider's
// `char *` and `json` arguments are.

const shell = require('./shell');
const { argKinds, STRING_KINDS } = require('./types');
const { nameProblem, probeProblem } = require('./names');

// How many arguments each tracer reads (bpftrace 0.17, bcc-based, reads 6;
// libbpf-based ones 12; Oracle DTrace 2.0 reads 10).
const DTRACE_MAX_ARGS = 10;
const BPFTRACE_STRLEN = 200; // the most bpftrace 0.17 accepts

function bpftraceArg(kind, i) {
  switch (kind) {
    case 'int':
      return ['%ld', `arg${i}`];
    case 'uint':
    case 'float':
      return ['%lu', `arg${i}`];
    case 'str':
    case 'json':
    case 'strint':
      return ['%s', `str(arg${i})`];
    default:
      return ['%lx', `arg${i}`];
  }
}

function dtraceArg(kind, i) {
  switch (kind) {
    case 'int':
      return ['%d', `arg${i}`];
    case 'str':
    case 'json':
    case 'strint':
      return ['%s', `copyinstr(arg${i})`];
    default:
      return ['%u', `arg${i}`];
  }
}

// `printf("NAME %s %d\n", str(arg0), arg1)` for the first `max` arguments
// (`kinds`: theirs, from types.js).
function printfCall(label, kinds, max, toFormat) {
  const parts = kinds.slice(0, max).map(toFormat);
  const format = [label.replaceAll('%', '%%'), ...parts.map((p) => p[0])].join(' ');
  return `printf(${JSON.stringify(`${format}\n`)}${parts.map((p) => `, ${p[1]}`).join('')})`;
}

// DTrace shows `__` in a probe name as `-`.
function dtraceProbeName(name) {
  return name.replaceAll('__', '-');
}

// Whether another library of the process has a provider of the same name:
// then commands name the library (or module) rather than match them all.
function isShared(entry, all) {
  return all.some((other) => other !== entry && other.provider === entry.provider);
}

// Probes of the same name in two libraries of one process: bcc-based
// bpftrace (0.17) cannot attach one of them with -p, so such a command
// attaches by library path and keeps to the process with a predicate.
function bpftrace(pid, entry, probe, opts) {
  const byPath = opts.shared || entry.storage !== 'file';
  const pathProblem = byPath ? nameProblem('path', entry.tracerPath) : null;
  if (pathProblem !== null) return `# bpftrace must attach by library path, and ${pathProblem}`;
  const target = byPath ? entry.tracerPath : '*';
  const kinds = argKinds(probe);
  const body = printfCall(probe.name, kinds, opts.bpftraceMaxArgs, bpftraceArg);
  const filter = opts.shared ? ` /pid == ${pid}/` : '';
  const program = `usdt:${target}:${entry.provider}:${probe.name}${filter} { ${body}; }`;
  const env = kinds.some((k) => STRING_KINDS.has(k)) ? `BPFTRACE_STRLEN=${BPFTRACE_STRLEN} ` : '';
  return env + shell.command(['bpftrace', ...(opts.shared ? [] : ['-p', pid]), '-e', program]);
}

function dtrace(pid, entry, probe, opts) {
  const module = opts.shared && entry.storage === 'file' ? entry.module : '';
  const body = printfCall(probe.name, argKinds(probe), DTRACE_MAX_ARGS, dtraceArg);
  const program = `${entry.provider}$target:${module}::${dtraceProbeName(probe.name)} { ${body}; }`;
  return shell.command(['dtrace', '-q', '-n', program, '-p', pid]);
}

// perf names events after C identifiers; SDT names with other characters
// (bunyan's `log-info`) need a uprobe event defined through tracefs.
const C_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const cName = (s) => s.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(?=\d)/, '_');

// A note location as a tracefs fetch argument: `%rdi` -> `%di`,
// `16(%rsp)` -> `+16(%sp)`, aarch64 `x0` -> `%x0`, `[sp, 8]` -> `+8(%sp)`.
function fetchLocation(location) {
  const x86 = /^(?:(-?\d+)\()?%([a-z0-9]+)\)?$/.exec(location);
  if (x86) {
    const reg = x86reg(x86[2]);
    if (reg === null) return null;
    return x86[1] === undefined ? `%${reg}` : `${Number(x86[1]) >= 0 ? '+' : ''}${x86[1]}(%${reg})`;
  }
  if (/^x\d+$/.test(location)) return `%${location}`;
  const a64 = /^\[(sp|x\d+), #?(-?\d+)\]$/.exec(location);
  if (a64) return `+${a64[2]}(%${a64[1]})`;
  return null;
}

function x86reg(name) {
  const legacy = /^[re]?(ax|bx|cx|dx|si|di|bp|sp)$|^(a|b|c|d)l$|^(si|di|bp|sp)l$/.exec(name);
  if (legacy) return legacy[1] || (legacy[2] ? `${legacy[2]}x` : legacy[3]);
  const numbered = /^r(\d+)[dwb]?$/.exec(name);
  return numbered ? `r${numbered[1]}` : null;
}

function fetchArg(arg, kind, i) {
  const loc = fetchLocation(arg.location);
  if (loc === null) return null;
  if (STRING_KINDS.has(kind)) return `arg${i}=+0(${loc}):string`;
  const bits = arg.size * 8;
  return `arg${i}=${loc}:${kind === 'int' ? 's' : 'u'}${bits}`;
}

function hex(n) {
  return `0x${n.toString(16)}`;
}

// Lines: define the event, record it, remove it.
function perf(pid, entry, probe) {
  if (entry.storage !== 'file') return [`# perf cannot attach to a ${entry.storage} library`];
  const pathProblem = nameProblem('path', entry.path);
  if (pathProblem !== null) return [`# perf: ${pathProblem}`];
  if (C_NAME.test(entry.provider) && C_NAME.test(probe.name)) {
    const event = `sdt_${entry.provider}:${probe.name}`;
    return [
      shell.command(['perf', 'probe', '-x', entry.path, event]),
      shell.command(['perf', 'record', '-e', event, '-p', pid]),
      shell.command(['perf', 'probe', '-d', event]),
    ];
  }
  if (probe.addressOffset == null) return ['# perf: the probe site is not in a loadable segment'];
  const group = `sdt_${cName(entry.provider)}`;
  const event = cName(probe.name);
  const sema = probe.semaphoreOffset == null ? '' : `(${hex(probe.semaphoreOffset)})`;
  const kinds = argKinds(probe);
  const fetch = probe.args.map((arg, i) => fetchArg(arg, kinds[i], i));
  const def = [`p:${group}/${event}`, `${entry.path}:${hex(probe.addressOffset)}${sema}`];
  if (fetch.every((f) => f !== null)) def.push(...fetch);
  const events = '/sys/kernel/tracing/uprobe_events';
  return [
    `echo ${shell.quote(def.join(' '))} >> ${events}`,
    shell.command(['perf', 'record', '-e', `${group}:${event}`, '-p', pid]),
    `echo ${shell.quote(`-:${group}/${event}`)} >> ${events}`,
  ];
}

function gdb(pid, entry, probe, opts) {
  const where = opts.shared ? `${entry.module}:${entry.provider}:${probe.name}` : `${entry.provider}:${probe.name}`;
  return shell.command(['gdb', '-p', pid, '-ex', `break -probe-stap ${where}`, '-ex', 'continue']);
}

// Every command for `probe` of provider `entry` in process `pid`; `all` is
// every provider entry of that process. Its names come from the process:
// null when they do not fit the grammar that tracer programs can take
// (`probeProblem` says why).
function forProbe(pid, entry, probe, all, { bpftraceMaxArgs = 6 } = {}) {
  if (probeProblem(entry, probe) !== null) return null;
  const opts = { shared: isShared(entry, all), bpftraceMaxArgs };
  return {
    bpftrace: bpftrace(pid, entry, probe, opts),
    dtrace: dtrace(pid, entry, probe, opts),
    perf: perf(pid, entry, probe),
    gdb: gdb(pid, entry, probe, opts),
  };
}

module.exports = { forProbe, dtraceProbeName, isShared };
