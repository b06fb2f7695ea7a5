'use strict';
// The tracers `dynprobe trace` can drive, what each can read, and which to use.
//
//   bpftrace   `--bpftrace PATH`, else $DYNPROBE_BPFTRACE, else `bpftrace` on
//              PATH. Before 0.27 (bcc-based, Debian 12 has 0.17): 6
//              arguments, strings up to 200 bytes, each string in its own
//              clause because strings live on the 512-byte BPF stack; 0.27
//              and later (libbpf): 12 arguments, long strings.
//   dtrace     Oracle DTrace for Linux: `--dtrace PATH`, else
//              $DYNPROBE_DTRACE, else `dtrace` on PATH; 10 arguments.
//
// A path may name a wrapper script, as long as it takes the tracer's own
// arguments (`--version`, `-V`, `-p`, `-e`, `-s`).

const { spawnSync } = require('node:child_process');
const { CliError } = require('./errors');

const INSTALL_HINT =
  'install bpftrace: `apt-get install bpftrace` (Debian, Ubuntu) or `dnf install bpftrace` (Fedora), ' +
  'or name one that is not on PATH: --bpftrace PATH or DYNPROBE_BPFTRACE=PATH (Oracle DTrace: --dtrace PATH or ' +
  'DYNPROBE_DTRACE=PATH); or, with no kernel tracer, --via process reads your own processes through their endpoint';

function run(command, args) {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 30000 });
  if (r.error || r.status !== 0) return null;
  return `${r.stdout}\n${r.stderr}`;
}

function bpftraceTracer(id, command) {
  const out = run(command[0], [...command.slice(1), '--version']);
  const m = out && /bpftrace v?(\d+)\.(\d+)\.(\d+)/.exec(out);
  if (!m) return null;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  const modern = major > 0 || minor >= 27; // libbpf-based USDT, strings off the stack
  return {
    id,
    family: 'bpftrace',
    command,
    label: `bpftrace ${m[1]}.${m[2]}.${m[3]}`,
    maxArgs: modern ? 12 : 6,
    strlen: modern ? 4096 : 200,
    stringsPerClause: modern ? Infinity : 1,
    perLibrary: modern, // tells apart same-named probes of two libraries under -p
    env: modern ? { BPFTRACE_MAX_STRLEN: '4096' } : { BPFTRACE_STRLEN: '200' },
  };
}

function dtraceTracer(command) {
  const out = run(command[0], [...command.slice(1), '-V']);
  const m = out && /dtrace: D (\d+\.\d+(?:\.\d+)?)/.exec(out); // not systemtap's `dtrace` script
  if (!m) return null;
  return {
    id: 'dtrace',
    family: 'dtrace',
    command,
    label: `Oracle DTrace ${m[1]}`,
    maxArgs: 10,
    strlen: 1024,
    stringsPerClause: Infinity,
    perLibrary: true,
    env: {},
  };
}

const FAMILIES = ['bpftrace', 'dtrace'];
const ENV = { bpftrace: 'DYNPROBE_BPFTRACE', dtrace: 'DYNPROBE_DTRACE' };
const DETECT = { bpftrace: (command) => bpftraceTracer('bpftrace', command), dtrace: dtraceTracer };

// Where the tracer of `family` is: `paths[family]` (the command line's
// --bpftrace / --dtrace), else its environment setting, else its name on
// PATH; and what named it, for messages.
function locate(family, paths = {}) {
  if (paths[family]) return { command: paths[family], from: `--${family} ${paths[family]}` };
  const fromEnv = process.env[ENV[family]];
  if (fromEnv) return { command: fromEnv, from: `${ENV[family]}=${fromEnv}` };
  return { command: family, from: null };
}

// The tracer of `family` at its place, or null when nothing runs there.
function find(family, paths) {
  return DETECT[family]([locate(family, paths).command]);
}

function isRoot() {
  return process.geteuid() === 0;
}

// Without root nothing traces: say so, and whether a tracer is missing too.
function notRoot() {
  const installed = find('bpftrace') !== null || find('dtrace') !== null;
  const also = installed ? '' : '; and no tracer is installed (bpftrace, or Oracle DTrace)';
  return new CliError(
    `tracing needs root: tracers load BPF programs and attach uprobes (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)${also}`,
    { hint: `run the same command as root (sudo)${installed ? '' : `; ${INSTALL_HINT}`}` },
  );
}

function requireRoot() {
  if (!isRoot()) throw notRoot();
}

// The tracer to use: `wanted` (a family) if given, else bpftrace unless
// some probe has more arguments than it reads and DTrace reads more, else
// whichever is there. `paths`: the command line's --bpftrace and --dtrace.
function choose(wanted, neededArgs, paths = {}) {
  requireRoot();
  if (wanted) {
    if (!FAMILIES.includes(wanted)) throw new CliError(`unknown tracer ${wanted}: use one of ${FAMILIES.join(', ')}`, { code: 2 });
    const tracer = find(wanted, paths);
    if (tracer) return tracer;
    const { from } = locate(wanted, paths);
    if (from !== null) throw new CliError(`${from}: not ${wanted === 'dtrace' ? 'Oracle DTrace' : 'bpftrace'} (it does not run, or does not say its version)`);
    throw new CliError(`${wanted} is not available here`, { hint: INSTALL_HINT });
  }
  const found = [];
  for (const family of FAMILIES) {
    const tracer = find(family, paths);
    if (tracer === null) continue;
    if (tracer.maxArgs >= neededArgs) return tracer;
    found.push(tracer);
  }
  if (found.length > 0) return found[0];
  throw new CliError('no tracer found: bpftrace is not installed (nor Oracle DTrace)', { hint: INSTALL_HINT });
}

// The argument limit of `bpftrace` on PATH, for printed commands (6 when unknown).
function hostBpftraceMaxArgs() {
  const tracer = bpftraceTracer('bpftrace', ['bpftrace']);
  return tracer ? tracer.maxArgs : 6;
}

module.exports = { choose, requireRoot, hostBpftraceMaxArgs };
