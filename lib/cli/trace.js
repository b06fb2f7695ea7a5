'use strict';
// `dynprobe trace PID [PROVIDER[:PROBE]]`: attaches a tracer to the matching
// probes and prints every firing, decoded, until Ctrl-C, --count or --duration.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { CliError } = require('./errors');
const { inspectWithProviders, parsePid, alive, pathProblem } = require('./procs');
const { select } = require('./match');
const { choose, requireRoot } = require('./tracers');
const { build } = require('./program');
const { RecordReader, Assembler } = require('./records');
const { formatLine, formatJson } = require('./format');
const { signature } = require('./types');
const shell = require('./shell');
const { probeProblem, shown, safeText } = require('./names');

// Tracer chatter that says nothing to the user.
const NOISE = [/RLIMIT_MEMLOCK/, /available_filter_functions/, /^Attach(ing|ed) \d+ probes?/];
const quiet = (line) => line.trim() === '' || NOISE.some((re) => re.test(line));

function noMatch(pattern, pid, providers) {
  const existing = providers.flatMap((e) => e.probes.map((p) => `  ${shown(e.provider)}:${shown(signature(p))}`));
  return new CliError(`no probe matches ${pattern} in process ${pid}; its probes are:\n${existing.join('\n')}`);
}

// The tracer's argv; DTrace reads its program from `file`.
function tracerArgv(tracer, { text, byPath }, pid, file) {
  if (tracer.family === 'dtrace') {
    return [...tracer.command, '-q', `-xstrsize=${tracer.strlen}`, '-s', file, '-p', String(pid)];
  }
  return [...tracer.command, ...(byPath ? [] : ['-p', String(pid)]), '-e', text];
}

// A temporary file holding the program, for DTrace; removed by `cleanup`.
function programFile(tracer, text) {
  if (tracer.family !== 'dtrace') return { file: null, cleanup: () => {} };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-trace-'));
  const file = path.join(dir, 'trace.d');
  fs.writeFileSync(file, text);
  return { file, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

// The selected probes whose names may go into a program for `tracer`
// (a bpftrace program also names the library's path), and the others,
// each with the reason it is left out.
function traceable(selected, tracer) {
  const ok = [];
  const refused = [];
  for (const s of selected) {
    const problem = probeProblem(s.entry, s.probe, { needsPath: tracer === null || tracer.family !== 'dtrace' });
    if (problem === null) ok.push(s);
    else refused.push(`probe ${shown(s.entry.provider)}:${shown(s.probe.name)} is not traced: ${problem}`);
  }
  return { ok, refused };
}

function plan(pidText, pattern, opts) {
  const pid = parsePid(pidText);
  requireRoot();
  const info = inspectWithProviders(pid);
  const attachable = info.providers.filter((e) => e.tracerPath !== null);
  const selected = select(attachable, pattern);
  if (selected.length === 0) throw noMatch(pattern || '*', pid, info.providers);
  // Names every tracer refuses go before a tracer is chosen for the rest.
  const named = selected.filter((s) => probeProblem(s.entry, s.probe) === null);
  const neededArgs = Math.max(0, ...named.map((s) => s.probe.args.length));
  const tracer = choose(opts.tracer, neededArgs, { bpftrace: opts.bpftrace, dtrace: opts.dtrace });
  const { ok: wellNamed, refused } = traceable(selected, tracer);
  // Each library's path, as the tracer will open it, must still be the
  // mapped file (checked once per library).
  const problems = new Map();
  const ok = [];
  for (const s of wellNamed) {
    if (!problems.has(s.entry)) problems.set(s.entry, pathProblem(pid, s.entry));
    const problem = problems.get(s.entry);
    if (problem === null) ok.push(s);
    else refused.push(`probe ${shown(s.entry.provider)}:${shown(s.probe.name)} is not traced: ${problem}`);
  }
  if (ok.length === 0) {
    throw new CliError(`no probe matching ${pattern || '*'} in process ${pid} can be traced:\n${refused.join('\n')}`);
  }
  const program = build(ok, tracer, info.providers, pid);
  return { pid, info, tracer, program, refused };
}

function describeDryRun(tracer, program, pid) {
  const env = Object.entries(tracer.env).map(([k, v]) => `${k}=${v} `).join('');
  const dtrace = tracer.family === 'dtrace' ? `# trace.d:\n${program.text}` : '';
  return `# ${tracer.label}\n${env}${shell.command(tracerArgv(tracer, program, pid, 'trace.d'))}\n${dtrace}`;
}

function trace(pidText, pattern, opts = {}) {
  const { pid, info, tracer, program, refused } = plan(pidText, pattern, opts);
  const out = opts.out || process.stdout;
  // Lines may quote the process or its tracer: escaped.
  const say = (line) => (opts.err || process.stderr).write(`dynprobe: ${safeText(line)}\n`);
  for (const line of refused) say(line);
  if (opts.dryRun) {
    out.write(describeDryRun(tracer, program, pid));
    return Promise.resolve(0);
  }
  if (program.byPath) {
    say(`${tracer.label} cannot attach with -p to probes whose names another library of the process also has: ` +
      'attached by library path; other processes that map the same libraries fire these probes too while this runs');
  }
  for (const p of program.plan.probes) {
    if (p.omitted > 0) say(`${tracer.label} reads ${p.kinds.length} arguments: the last ${p.omitted} of ${p.label} are not shown`);
  }
  return run({ pid, info, tracer, program, opts, out, say });
}

// Runs the tracer until it is stopped (--count, --duration, a signal) or ends
// (the process exited); resolves with the exit code.
function run({ pid, info, tracer, program, opts, out, say }) {
  const { file, cleanup } = programFile(tracer, program.text);
  const argv = tracerArgv(tracer, program, pid, file);
  const probes = program.plan.probes;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...tracer.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const assembler = new Assembler(program.plan, { pid, strlen: tracer.strlen });
    const count = opts.count === undefined ? Infinity : opts.count;
    let ready = false;
    let printed = 0;
    let stopping = false;
    let stderr = '';
    let timer = null;
    const forward = (line) => quiet(line) || say(`${tracer.id}: ${line}`);

    let again = null;
    const running = () => child.exitCode === null && child.signalCode === null;
    const stop = () => {
      if (stopping || !running()) return;
      stopping = true;
      // SIGINT: the tracer detaches cleanly (DTrace killed harder leaves uprobes behind).
      child.kill('SIGINT');
      // bpftrace 0.17 ends on SIGINT only if the signal interrupts its wait
      // for events; one that arrives while it reads them (as it does when
      // --count is reached) is lost. It gets one again until it ends. DTrace
      // gets one: a second makes it exit without printing its aggregations.
      if (tracer.family === 'bpftrace') again = setInterval(() => running() && child.kill('SIGINT'), 250);
      setTimeout(() => running() && child.kill('SIGKILL'), 20000).unref();
    };
    // Without -p the tracer does not end with the process: watch it.
    const watch = program.byPath ? setInterval(() => alive(pid) || stop(), 500) : null;
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const s of signals) process.on(s, stop);
    if (out.on) out.on('error', stop); // a closed pipe (`| head`)

    const reader = new RecordReader({
      onRecord(fields) {
        if (fields[0] === 'ready') {
          ready = true;
          say(`tracing ${probes.length} probe${probes.length === 1 ? '' : 's'} in process ${pid} (${info.command}) with ${tracer.label}; Ctrl-C to stop`);
          if (opts.duration !== undefined) timer = setTimeout(stop, opts.duration * 1000);
          return;
        }
        for (const firing of assembler.add(fields)) {
          if (printed >= count) return;
          printed++;
          out.write(`${opts.json ? formatJson(firing, pid) : formatLine(firing, { pretty: opts.pretty, pid })}\n`);
          if (printed >= count) stop();
        }
      },
      onText: forward,
    });
    child.stdout.on('data', (chunk) => reader.push(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (ready) chunk.split('\n').forEach(forward);
    });
    child.on('error', (e) => {
      stderr += String(e);
    });
    child.on('close', (code, signal) => {
      reader.end();
      clearInterval(again);
      clearTimeout(timer);
      clearInterval(watch);
      for (const s of signals) process.off(s, stop);
      cleanup();
      if (!ready && !stopping) {
        const why = stderr.split('\n').filter((l) => !quiet(l)).join('\n');
        reject(new CliError(`${tracer.label} failed (${signal || `exit code ${code}`}):\n${why}`, { hint: 'see the program with --dry-run' }));
        return;
      }
      if (!stopping && !alive(pid)) say(`process ${pid} exited`);
      resolve(0);
    });
  });
}

module.exports = { trace };
