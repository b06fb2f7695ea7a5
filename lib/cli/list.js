'use strict';
// `dynprobe list [PID...] [--json]`: the processes that have dynprobe
// providers, their probes, and commands that trace them.

const { inspectWithProviders, scan, parsePid } = require('./procs');
const { forProbe } = require('./commands');
const { hostBpftraceMaxArgs } = require('./tracers');
const { kindOf, typeLabel, signature, AMBIGUOUS_NOTE } = require('./types');
const shell = require('./shell');

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
        args: probe.args.map((a) => ({ ...a, type: typeLabel(a) })),
        address: probe.address,
        semaphore: probe.semaphore,
        addressOffset: probe.addressOffset,
        semaphoreOffset: probe.semaphoreOffset,
        commands: forProbe(proc.pid, entry, probe, proc.providers, opts),
      })),
    })),
    warnings: proc.warnings,
  };
}

function renderText(procs) {
  const out = [];
  let ambiguous = false;
  for (const proc of procs) {
    out.push(`PID ${proc.pid}  ${proc.command}`);
    for (const entry of proc.providers) {
      out.push(`  provider ${entry.provider}  (module ${entry.module}, ${entry.storage})`);
      out.push(`    library  ${entry.path}`);
      if (entry.tracerPath !== null && entry.tracerPath !== entry.path) out.push(`    tracers  ${entry.tracerPath}`);
      out.push('    probes');
      for (const probe of entry.probes) {
        out.push(`      ${signature(probe)}`);
        ambiguous = ambiguous || probe.args.some((a) => kindOf(a) === 'strint');
      }
      if (entry.tracerPath === null) continue;
      const first = entry.probes[0];
      out.push(`    trace it (${first.name}; \`--json\` has the commands for every probe)`);
      out.push(`      ${shell.command(['dynprobe', 'trace', proc.pid, `${entry.provider}:*`])}`);
      out.push(`      ${first.commands.bpftrace}`);
      out.push(`      ${first.commands.dtrace}`);
      for (const line of first.commands.perf) out.push(`      ${line}`);
      out.push(`      ${first.commands.gdb}`);
    }
    for (const w of proc.warnings) out.push(`  warning: ${w}`);
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
    out.write(`${JSON.stringify(described, null, 2)}\n`);
  } else if (described.length > 0) {
    out.write(renderText(described));
  } else if (pids.length === 0) {
    const who = process.geteuid() === 0 ? '' : ' (as a user other than root, only your own processes are visible)';
    out.write(`no process has dynprobe providers${who}\n`);
  }
  return errors;
}

module.exports = { list };
