'use strict';
// Which path `dynprobe list` and `dynprobe trace` take (`--via`):
//   kernel   the process's probe libraries and a kernel tracer (bpftrace,
//            DTrace): root, a tracer, the addon in the process
//   process  the process's own endpoint (lib/endpoint): its own user or
//            root, no kernel tracer, any platform dynprobe loads on
// Without --via, the kernel path where it can be taken (as before), else the
// process's endpoint, saying why; a tracer named on the command line means
// the kernel path.

const { CliError, UsageError } = require('./errors');
const { parsePid, inspectWithProviders } = require('./procs');
const processPath = require('./process');

const VIAS = ['kernel', 'process'];

function parseVia(value) {
  if (!VIAS.includes(value)) throw new UsageError(`--via takes ${VIAS.join(' or ')}, not ${JSON.stringify(value)}`);
  return value;
}

// Whether the command line names a tracer (the kernel path's options).
function namesTracer(opts) {
  return ['tracer', 'bpftrace', 'dtrace'].some((k) => opts[k] !== undefined);
}

// Why the kernel path cannot trace process `pid`, or null when it can.
// Throws what no path can get past (no such process).
function kernelUnusable(pid) {
  if (process.geteuid() !== 0) return 'kernel tracers need root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)';
  try {
    inspectWithProviders(pid);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    if (/^no such process/.test(err.message)) throw err;
    return err.message;
  }
  try {
    require('./tracers').choose(undefined, 0);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    return err.message;
  }
  return null;
}

async function trace(pidText, pattern, opts) {
  const pid = parsePid(pidText);
  if (opts.via === 'process' && namesTracer(opts)) throw new UsageError('--via process reads the process itself: it takes no tracer');
  if (opts.via === 'kernel' || (opts.via === undefined && namesTracer(opts))) return require('./trace').trace(pidText, pattern, opts);
  if (opts.via === 'process') return processPath.trace(pid, pattern, opts, null);
  const why = kernelUnusable(pid);
  if (why === null) return require('./trace').trace(pidText, pattern, opts);
  try {
    return await processPath.trace(pid, pattern, opts, why);
  } catch (err) {
    if (!(err instanceof CliError) || /^no probe matches/.test(err.message)) throw err;
    throw new CliError(`cannot trace process ${pid}: not through the kernel (${why}), nor through the process (${err.message})`, { hint: err.hint });
  }
}

// The kernel path's errors after which the process's endpoint is worth
// asking: the process has no probe libraries (dynprobe without its addon
// there), or this dynprobe cannot read them (no addon here).
function worthAskingTheProcess(err) {
  return !/^(no such process|cannot read the memory map)/.test(err.message);
}

// The process's description through its endpoint: { described }, or
// { error } (a CliError) when it cannot give one.
async function askProcess(pid) {
  try {
    return { described: await processPath.describeProcess(pid), error: null };
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    return { described: null, error: err };
  }
}

// `dynprobe list`: resolves with the errors to report (as list.js does).
async function list(pidTexts, opts) {
  const out = opts.out || process.stdout;
  const kernelList = require('./list');
  if (opts.via === 'kernel') return kernelList.list(pidTexts, opts);
  const pids = pidTexts.map(parsePid);
  const kernel = [];
  const viaProcess = [];
  const errors = [];
  if (pids.length === 0) {
    if (opts.via !== 'process') kernel.push(...kernelList.gather([]).processes);
    const seen = new Set(kernel.map((p) => p.pid));
    for (const pid of processPath.processesWithEndpoints()) {
      if (seen.has(pid)) continue;
      // (gone meanwhile, or not answering: a listing goes on)
      const { described } = await askProcess(pid);
      if (described) viaProcess.push(described);
    }
  }
  for (const pid of pids) {
    // The kernel path's error, reported when the process cannot say more.
    let kernelError = null;
    if (opts.via !== 'process') {
      try {
        kernel.push(inspectWithProviders(pid));
        continue;
      } catch (err) {
        if (!(err instanceof CliError)) throw err;
        if (!worthAskingTheProcess(err)) {
          errors.push(err);
          continue;
        }
        kernelError = err;
      }
    }
    const { described, error } = await askProcess(pid);
    if (described) viaProcess.push(described);
    else errors.push(kernelError || error);
  }
  render(kernel, viaProcess, pids, opts, out);
  return errors;
}

function render(kernel, viaProcess, pids, opts, out) {
  const kernelList = require('./list');
  const { safeJson } = require('./names');
  const { hostBpftraceMaxArgs } = require('./tracers');
  const described = kernel.length > 0 ? kernel.map((p) => ({ ...kernelList.describe(p, { bpftraceMaxArgs: hostBpftraceMaxArgs() }), via: 'kernel' })) : [];
  if (opts.json) {
    const all = [...described, ...viaProcess.map(processPath.listingJson)].sort((a, b) => a.pid - b.pid);
    out.write(`${safeJson(all, null, 2)}\n`);
    return;
  }
  if (described.length > 0) out.write(kernelList.renderText(described));
  for (const proc of viaProcess) out.write(processPath.listingText(proc));
  if (described.length === 0 && viaProcess.length === 0 && pids.length === 0) {
    const who = process.geteuid() === 0 ? '' : ' (as a user other than root, only your own processes are visible)';
    out.write(`no process has dynprobe providers${who}\n`);
  }
}

module.exports = { trace, list, parseVia, VIAS };
