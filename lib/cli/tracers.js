'use strict';
// The tracers `dynprobe trace` can drive, what each can read, and which to use.
//
//   bpftrace      the host's (Debian 12: 0.17, bcc-based: 6 arguments,
//                 strings up to 200 bytes, each string in its own clause
//                 because strings live on the 512-byte BPF stack)
//   bpftrace-sid  bpftrace 0.27 from a dynprobe checkout's provisioned sid
//                 root (scripts/bpftrace-sid): 12 arguments, long strings
//   dtrace        Oracle DTrace for Linux: `dtrace` on PATH, or the
//                 checkout's scripts/dtrace; 10 arguments

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { CliError } = require('./errors');

const ROOT = path.join(__dirname, '..', '..');
const SCRIPTS = path.join(ROOT, 'scripts');

const INSTALL_HINT =
  'install bpftrace: `apt-get install bpftrace` (Debian, Ubuntu) or `dnf install bpftrace` (Fedora); ' +
  'in a dynprobe checkout, `sudo bash scripts/provision-tracers.sh` installs bpftrace 0.17 and, in a ' +
  'Debian sid root, Oracle DTrace 2.0.7 and bpftrace 0.27';

function run(command, args) {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 30000 });
  if (r.error || r.status !== 0) return null;
  return `${r.stdout}\n${r.stderr}`;
}

function sidProvisioned() {
  const root = process.env.DYNPROBE_SID_ROOT || '/var/lib/dynprobe/sid';
  return fs.existsSync(path.join(root, '.dynprobe-ready'));
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

const FINDERS = {
  bpftrace: () => bpftraceTracer('bpftrace', ['bpftrace']),
  'bpftrace-sid': () => {
    const script = path.join(SCRIPTS, 'bpftrace-sid');
    return fs.existsSync(script) && sidProvisioned() ? bpftraceTracer('bpftrace-sid', [script]) : null;
  },
  dtrace: () => {
    const onPath = dtraceTracer(['dtrace']);
    if (onPath) return onPath;
    const script = path.join(SCRIPTS, 'dtrace');
    return fs.existsSync(script) && sidProvisioned() ? dtraceTracer([script]) : null;
  },
};

const IDS = Object.keys(FINDERS);

function isRoot() {
  return process.geteuid() === 0;
}

// Without root nothing traces: say so, and whether a tracer is missing too.
function notRoot() {
  const installed = FINDERS.bpftrace() !== null || FINDERS.dtrace() !== null;
  const also = installed ? '' : '; and no tracer is installed (bpftrace, or Oracle DTrace)';
  return new CliError(
    `tracing needs root: tracers load BPF programs and attach uprobes (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)${also}`,
    { hint: `run the same command as root (sudo)${installed ? '' : `; ${INSTALL_HINT}`}` },
  );
}

// The tracer to use: `wanted` (an id) if given, else the host's bpftrace
// unless some probe has more arguments than it reads and another tracer
// reads more, else whatever is there.
function requireRoot() {
  if (!isRoot()) throw notRoot();
}

function choose(wanted, neededArgs) {
  requireRoot();
  if (wanted) {
    if (!FINDERS[wanted]) throw new CliError(`unknown tracer ${wanted}: use one of ${IDS.join(', ')}`, { code: 2 });
    const tracer = FINDERS[wanted]();
    if (!tracer) throw new CliError(`${wanted} is not available here`, { hint: INSTALL_HINT });
    return tracer;
  }
  const found = [];
  for (const id of IDS) {
    const tracer = FINDERS[id]();
    if (tracer === null) continue;
    if (tracer.maxArgs >= neededArgs) return tracer;
    found.push(tracer);
  }
  if (found.length > 0) return found[0];
  throw new CliError('no tracer found: bpftrace is not installed (nor Oracle DTrace)', { hint: INSTALL_HINT });
}

// The host bpftrace's argument limit, for printed commands (6 when unknown).
function hostBpftraceMaxArgs() {
  const tracer = FINDERS.bpftrace();
  return tracer ? tracer.maxArgs : 6;
}

module.exports = { choose, requireRoot, hostBpftraceMaxArgs };
