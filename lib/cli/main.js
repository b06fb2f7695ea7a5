'use strict';
// The `dynprobe` command: parses the command line and runs a subcommand.

const { CliError, UsageError } = require('./errors');
const { safeText } = require('./names');

const USAGE = `Usage:
  dynprobe list [PID...] [--json]
      Processes with dynprobe providers (all you can read, or the given ones):
      providers, modules, libraries, probes with their argument types (as
      declared, when the library records them), and commands that trace
      them with bpftrace, DTrace, perf and gdb.
      Needs no tracer, and no root for your own processes.

  dynprobe trace PID [PROVIDER[:PROBE]] [options]
      Attaches a tracer (bpftrace; DTrace where found) and prints every
      firing: time, provider:probe, arguments decoded by type (json
      arguments as JSON). Globs are
      allowed: 'bunyan:log-*', 'restify', '*:request-done'. Needs root.
        --count N        stop after N firings
        --duration S     stop after S seconds
        --pretty         indent JSON arguments
        --json           one JSON object per firing
        --tracer NAME    bpftrace or dtrace (default: bpftrace, unless a
                         probe has more arguments than it reads and DTrace
                         reads more)
        --bpftrace PATH  the bpftrace to run (default: $DYNPROBE_BPFTRACE,
                         else bpftrace on PATH); implies --tracer bpftrace
        --dtrace PATH    the Oracle DTrace to run (default: $DYNPROBE_DTRACE,
                         else dtrace on PATH); implies --tracer dtrace
        --dry-run        print the tracer command and program, do not run

  dynprobe help`;

// Options each command takes: name -> 'flag' or a value parser.
const positiveInt = (name) => (v) => {
  if (!/^[1-9]\d*$/.test(v)) throw new UsageError(`--${name} takes a positive integer, not ${JSON.stringify(v)}`);
  return Number(v);
};
const positiveNumber = (name) => (v) => {
  const n = Number(v);
  if (v === '' || !(n > 0)) throw new UsageError(`--${name} takes a positive number of seconds, not ${JSON.stringify(v)}`);
  return n;
};
const tracerPath = (name) => (v) => {
  if (v === '') throw new UsageError(`--${name} takes the path of ${name === 'dtrace' ? 'Oracle DTrace' : 'bpftrace'}`);
  return v;
};
const COMMANDS = {
  list: { options: { json: 'flag' }, max: Infinity },
  trace: {
    options: {
      count: positiveInt('count'),
      duration: positiveNumber('duration'),
      pretty: 'flag',
      json: 'flag',
      tracer: String,
      bpftrace: tracerPath('bpftrace'),
      dtrace: tracerPath('dtrace'),
      'dry-run': 'flag',
    },
    min: 1,
    max: 2,
  },
};

function parse(argv) {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') return { name: 'help' };
  const spec = COMMANDS[name];
  if (!spec) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  const positional = [];
  const options = {};
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '--help' || arg === '-h') return { name: 'help' };
    if (!arg.startsWith('--') || arg === '--') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const key = arg.slice(2, eq < 0 ? undefined : eq);
    const kind = spec.options[key];
    if (kind === undefined) throw new UsageError(`${name}: unknown option --${key}`);
    const camel = key.replace(/-(\w)/g, (_, c) => c.toUpperCase());
    if (kind === 'flag') {
      if (eq >= 0) throw new UsageError(`--${key} takes no value`);
      options[camel] = true;
    } else {
      const value = eq >= 0 ? arg.slice(eq + 1) : rest[++i];
      if (value === undefined) throw new UsageError(`--${key} needs a value`);
      options[camel] = kind(value);
    }
  }
  if (positional.length < (spec.min || 0)) throw new UsageError(`${name}: a process id is required`);
  if (positional.length > spec.max) throw new UsageError(`${name}: too many arguments: ${positional.join(' ')}`);
  // A tracer's path says which tracer, unless --tracer says another.
  if (options.bpftrace !== undefined && options.dtrace !== undefined) {
    throw new UsageError('--bpftrace and --dtrace each choose a tracer: give one of them');
  }
  const implied = options.bpftrace !== undefined ? 'bpftrace' : options.dtrace !== undefined ? 'dtrace' : undefined;
  if (implied !== undefined && options.tracer !== undefined && options.tracer !== implied) {
    throw new UsageError(`--${implied} chooses ${implied}, not --tracer ${options.tracer}`);
  }
  if (implied !== undefined) options.tracer = implied;
  return { name, positional, options };
}

async function run(argv) {
  const cmd = parse(argv);
  if (cmd.name === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (cmd.name === 'list') {
    const errors = require('./list').list(cmd.positional, cmd.options);
    for (const err of errors) report(err);
    return errors.length > 0 ? 1 : 0;
  }
  const [pid, pattern] = cmd.positional;
  return require('./trace').trace(pid, pattern, cmd.options);
}

// Messages may quote what a process wrote (names, paths): escaped.
function report(err) {
  process.stderr.write(`dynprobe: ${safeText(err.message)}\n`);
  if (err.hint) process.stderr.write(`dynprobe: ${safeText(err.hint)}\n`);
}

async function main(argv) {
  try {
    process.exitCode = await run(argv);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    report(err);
    process.exitCode = err.exitCode;
  }
}

module.exports = { main };
