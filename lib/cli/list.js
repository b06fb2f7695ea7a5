'use strict';
// `dynprobe list [PID...] [--json]`: the processes that have dynprobe
// providers, their probes, and commands that trace them.

const { inspectWithProviders, scan, parsePid } = require('./procs');
const { forProbe } = require('./commands');
const { hostBpftraceMaxArgs } = require('./tracers');
const { argKinds, declaredAt, argNameAt, typeLabel, signature, AMBIGUOUS_NOTE } = require('./types');
const shell = require('./shell');
const { probeProblem, visible, safeText, shown, safeJson } = require('./names');

// The processes to show and the errors for PIDs that could not be shown.
function gather(pids) {
  if (pids.length === 0) return { processes: scan(), errors: [] };
  const processes = [];
  const errors = [];
  for (const pid of pids.map(parsePid)) {
    try {
      processes.push(inspectWithProviders(pid));
    } catch (err) {
      if (err.name === 'CliError') errors.push(err);
      else throw err;
    }
  }
  return { processes, errors };
}

// A probe's commands, or why it has none: its names come from the process,
// and one odd probe must not stop the listing.
function commandsFor(proc, entry, probe, opts) {
  const problem = probeProblem(entry, probe);
  if (problem !== null) return { commands: null, refused: `cannot be traced by name: ${problem}` };
  try {
    return { commands: forProbe(proc.pid, entry, probe, proc.providers, opts), refused: null };
  } catch (err) {
    return { commands: null, refused: `no commands: ${err.message}` };
  }
}

function describe(proc, opts) {
  return {
    pid: proc.pid,
    command: proc.command,
    providers: proc.providers.map((entry) => ({
      provider: entry.provider,
      module: entry.module,
      path: entry.path,
      tracerPath: entry.tracerPath,
      storage: entry.storage,
      probes: entry.probes.map((probe) => ({
        name: probe.name,
        argSpec: probe.argSpec,
        args: probe.args.map((a, i) => ({
          ...a,
          name: argNameAt(probe, i),
          type: typeLabel(a, declaredAt(probe, i)),
          declared: declaredAt(probe, i),
        })),
        // The types the library records as declared (null: none, or not usable).
        declared: probe.declared,
        declaredProblem: probe.declaredProblem,
        // The arguments' names it records (null: none, or not usable).
        argNames: probe.argNames ?? null,
        argNamesProblem: probe.argNamesProblem ?? null,
        omittedArgs: probe.omittedArgs || 0,
        address: probe.address,
        semaphore: probe.semaphore,
        addressOffset: probe.addressOffset,
        semaphoreOffset: probe.semaphoreOffset,
        ...commandsFor(proc, entry, probe, opts),
      })),
    })),
    warnings: proc.warnings,
  };
}

// Everything here came from the process: names are shown escaped (and
// cut when absurdly long), commands only for names that fit the grammar.
function renderText(procs) {
  const out = [];
  let ambiguous = false;
  for (const proc of procs) {
    out.push(`PID ${proc.pid}  ${visible(proc.command)}`);
    for (const entry of proc.providers) {
      out.push(`  provider ${shown(entry.provider)}  (module ${shown(entry.module)}, ${entry.storage})`);
      out.push(`    library  ${visible(entry.path)}`);
      if (entry.tracerPath !== null && entry.tracerPath !== entry.path) out.push(`    tracers  ${visible(entry.tracerPath)}`);
      out.push('    probes');
      for (const probe of entry.probes) {
        out.push(`      ${shown(signature(probe))}`);
        if (probe.refused !== null) out.push(`        ${safeText(probe.refused)}`);
        if (probe.declaredProblem !== null) out.push(`        declared types not used: ${safeText(probe.declaredProblem)}`);
        if (probe.argNamesProblem !== null) out.push(`        argument names not used: ${safeText(probe.argNamesProblem)}`);
        ambiguous = ambiguous || argKinds(probe).includes('strint');
      }
      if (entry.tracerPath === null) continue;
      const first = entry.probes.find((p) => p.commands !== null);
      if (first === undefined) continue;
      out.push(`    trace it (${first.name}; \`--json\` has the commands for every probe)`);
      out.push(`      ${shell.command(['dynprobe', 'trace', proc.pid, `${entry.provider}:*`])}`);
      out.push(`      ${first.commands.bpftrace}`);
      out.push(`      ${first.commands.dtrace}`);
      for (const line of first.commands.perf) out.push(`      ${line}`);
      out.push(`      ${first.commands.gdb}`);
    }
    for (const w of proc.warnings) out.push(`  warning: ${safeText(w)}`);
    out.push('');
  }
  if (ambiguous) out.push(AMBIGUOUS_NOTE, '');
  return out.join('\n');
}

function list(pids, { json = false, out = process.stdout } = {}) {
  const { processes, errors } = gather(pids);
  const opts = { bpftraceMaxArgs: hostBpftraceMaxArgs() };
  const described = processes.map((p) => describe(p, opts));
  if (json) {
    out.write(`${safeJson(described, null, 2)}\n`);
  } else if (described.length > 0) {
    out.write(renderText(described));
  } else if (pids.length === 0) {
    const who = process.geteuid() === 0 ? '' : ' (as a user other than root, only your own processes are visible)';
    out.write(`no process has dynprobe providers${who}\n`);
  }
  return errors;
}

module.exports = { list, gather, describe, renderText };
