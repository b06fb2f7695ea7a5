#!/usr/bin/env node
'use strict';
// `npm run demo`: starts the instrumented service (demo/server.js), shows what
// `dynprobe list` finds in it, drives load at it for a few seconds while a
// real tracer (bpftrace) reads its probes and shows live per-route latency
// histograms and the slowest requests, and what `dynprobe trace` prints.
// Then stops everything it started. Needs root for the tracer; installs
// bpftrace with apt-get when it is missing.

const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { start, stop } = require('../test/tracers/harness');
const { drive } = require('./load');

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'bin', 'dynprobe.js');
const LOAD_SECONDS = 6;
const TTY = Boolean(process.stdout.isTTY);
const IS_ROOT = process.geteuid() === 0;

const print = (text = '') => process.stdout.write(`${text}\n`);
const heading = (text) => print(TTY ? `\n\x1b[1m== ${text}\x1b[0m` : `\n== ${text}`);
const indent = (text) => text.replace(/\n$/, '').replace(/^/gm, '    ');

// The tracer program: per-route latency histograms and counts, printed every
// second, and every request slower than 100 ms.
function histogramProgram(library) {
  const done = `usdt:${library}:demoapp:request-done`;
  return `BEGIN { printf("READY\\n"); }
${done} {
  @latency_us[str(arg1)] = hist(arg3);
  @requests[str(arg1), arg2] = count();
  @total = @total + 1;
  if (arg3 >= 100000) { printf("SLOW %d %s %s %d %d\\n", arg4, str(arg0), str(arg1), arg2, arg3); }
}
interval:s:1 { @seconds = @seconds + 1; printf("--- %d s: %d requests ---\\n", @seconds, @total); print(@latency_us); printf("---\\n"); }
END {
  printf("--- final: %d requests ---\\n", @total);
  print(@latency_us); print(@requests);
  clear(@latency_us); clear(@requests); clear(@total); clear(@seconds);
}`;
}

function bpftraceInstalled() {
  const r = spawnSync('bpftrace', ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

// bpftrace, installed with apt-get if it is missing and we may; else why not.
function ensureBpftrace() {
  if (!IS_ROOT) return 'the tracer part of the demo needs root: run `sudo npm run demo`';
  if (bpftraceInstalled()) return null;
  print('bpftrace is not installed: installing it with apt-get ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', 'bpftrace'], { stdio: 'inherit', env });
  const r = install();
  if (r.error || r.status !== 0) {
    spawnSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
    install();
  }
  if (bpftraceInstalled()) return null;
  return 'could not install bpftrace; install it (`apt-get install bpftrace`, or `sudo bash scripts/provision-tracers.sh`) and run the demo again';
}

function cli(args) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) throw new Error(`dynprobe ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

// Shows the tracer's output as it arrives: each snapshot redrawn in place on
// a terminal, progress lines otherwise; the final snapshot in full.
class Screen {
  constructor(traced) {
    this.traced = traced;
    this.cursor = 0;
    this.snapshot = [];
    this.drawn = 0;
    this.final = null;
    this.slow = [];
  }

  pump() {
    while (this.cursor < this.traced.lines.length) this.line(this.traced.lines[this.cursor++]);
  }

  line(line) {
    if (line === 'READY' || /^Attaching \d+ probe/.test(line)) return;
    const slow = /^SLOW (\d+) (\S+) (.+) (\d+) (\d+)$/.exec(line);
    if (slow) {
      this.slow.push({ id: +slow[1], method: slow[2], route: slow[3], status: +slow[4], us: +slow[5] });
    } else if (line === '---') {
      this.flush();
    } else if (line.startsWith('--- final')) {
      this.flush();
      this.final = [line];
    } else if (this.final !== null) {
      this.final.push(line);
    } else if (line.startsWith('--- ')) {
      this.flush();
      this.snapshot = [line];
    } else {
      this.snapshot.push(line);
    }
  }

  // A complete snapshot (the next one has begun).
  flush() {
    if (this.snapshot.length === 0) return;
    const rows = process.stdout.rows || 0;
    if (TTY && this.snapshot.length < rows - 2) {
      if (this.drawn > 0) process.stdout.write(`\x1b[${this.drawn}F\x1b[J`);
      print(this.snapshot.join('\n'));
      this.drawn = this.snapshot.length;
    } else {
      print(this.snapshot[0]); // progress only; the final histograms follow
    }
    this.snapshot = [];
  }

  finish() {
    this.pump();
    if (TTY && this.drawn > 0) process.stdout.write(`\x1b[${this.drawn}F\x1b[J`);
    print((this.final || this.snapshot).join('\n').trimEnd());
  }
}

function slowest(requests, n = 5) {
  const top = [...requests].sort((a, b) => b.us - a.us).slice(0, n);
  const rows = top.map((r) => `    #${String(r.id).padEnd(6)} ${r.method.padEnd(5)} ${r.route.padEnd(16)} ${r.status}  ${(r.us / 1000).toFixed(1).padStart(7)} ms`);
  return rows.length > 0 ? rows.join('\n') : '    (none over 100 ms)';
}

function nextSteps() {
  return [
    'Run the service yourself and point the tools at it:',
    "    node -r ./node.js demo/server.js --port 8080 & PID=$!   # ./node.js is dynprobe/node: Node's own probes",
    '    npx dynprobe list $PID                     # providers, probes, tracer commands (no root needed)',
    "    sudo npx dynprobe trace $PID 'demoapp:*'    # every request, decoded; add --count N, --duration S",
    '    curl http://127.0.0.1:8080/api/report',
    "    sudo bpftrace -p $PID -e 'usdt:*:demoapp:request-done { @[str(arg1)] = hist(arg3); }'",
    "    sudo bpftrace -p $PID -e 'usdt:*:node:http__server__request { printf(\"%s %s\\n\", str(arg4), str(arg5)); }'",
    '    kill $PID',
    "Your own code: require('dynprobe') (or keep require('dtrace-provider')); bunyan and restify",
    'light up unchanged: see "Using it with bunyan and restify" in the README.',
  ].join('\n');
}

async function main() {
  const children = [];
  const cleanup = () => Promise.all(children.map((c) => stop(c, 0)));
  let interrupted = false;
  process.on('SIGINT', () => {
    interrupted = true;
    print('\ninterrupted: stopping everything the demo started');
    cleanup().then(() => process.exit(130));
  });

  try {
    heading('1. An HTTP service instrumented with dynprobe (demo/server.js)');
    // Preloading dynprobe/node adds Node's own `node` provider (step 6).
    const server = start([process.execPath, '-r', path.join(ROOT, 'node.js'), path.join(__dirname, 'server.js')], {});
    children.push(server);
    const listening = await server.waitFor(/^demoapp listening on http:\/\/127\.0\.0\.1:(\d+) \(pid (\d+)\)$/, 30000, 'demo server');
    const [, port, pid] = /:(\d+) \(pid (\d+)\)$/.exec(listening);
    print(`    ${listening}`);
    print('    probes: request-start(method, route, id), request-done(method, route, status, latency_us, id)');

    heading(`2. What \`dynprobe list ${pid}\` finds in it (no tracer, no root needed)`);
    print(indent(cli(['list', pid])));

    const missing = ensureBpftrace();
    if (missing) {
      heading('3. Tracing');
      print(`    ${missing}`);
      print();
      print(nextSteps());
      return;
    }
    const library = JSON.parse(cli(['list', pid, '--json']))[0].providers.find((p) => p.provider === 'demoapp').tracerPath;
    const program = histogramProgram(library);

    heading(`3. bpftrace reads the probes while load runs for ${LOAD_SECONDS} s: latency (µs) per route`);
    print(indent(`bpftrace -p ${pid} -e '${program}'`));
    print();
    const traced = start(['bpftrace', '-p', pid, '-e', program], {});
    children.push(traced);
    await traced.waitFor(/^READY$/, 60000, 'bpftrace');
    const traceCmd = ['trace', pid, 'demoapp:request-done', '--count', '5'];
    const tracing = start([process.execPath, CLI, ...traceCmd], {});
    children.push(tracing);

    const screen = new Screen(traced);
    const pumping = setInterval(() => screen.pump(), 100);
    const answered = await drive(Number(port), { seconds: LOAD_SECONDS });
    clearInterval(pumping);
    await stop(traced, 0); // SIGINT: END prints the final histograms
    screen.finish();
    const total = /^--- final: (\d+) requests/.exec((screen.final || [''])[0]);
    print(`\n    The load generator got ${answered} responses; bpftrace saw ${total ? total[1] : '?'} request-done firings.`);

    heading('4. The slowest requests (bpftrace printed every request over 100 ms)');
    print(slowest(screen.slow));

    heading(`5. \`dynprobe ${traceCmd.join(' ')}\`: firings decoded by type`);
    await stop(tracing, 15000); // it stops by itself after 5 firings
    print(indent(tracing.lines.join('\n') || tracing.stderr));

    heading("6. Node's own probes, with no change to its code (node -r dynprobe/node): Node 18's one-liner, unchanged");
    const oneLiner = 'usdt:*:node:http__server__request { printf("%s %s %s\\n", str(arg2), str(arg4), str(arg5)); }';
    print(indent(`bpftrace -p ${pid} -e '${oneLiner}'`));
    const nodeTraced = start(['bpftrace', '-p', pid, '-e', `BEGIN { printf("READY\\n"); } ${oneLiner}`], {});
    children.push(nodeTraced);
    await nodeTraced.waitFor(/^READY$/, 60000, 'bpftrace');
    // dynprobe/node turns its channels on within a quarter of a second.
    await new Promise((resolve) => setTimeout(resolve, 600));
    const sent = await drive(Number(port), { seconds: 2 });
    await stop(nodeTraced, 0);
    const seen = nodeTraced.lines.filter((l) => /^127\.0\.0\.1 [A-Z]+ \//.test(l));
    print(indent(seen.slice(0, 5).join('\n')));
    print(`    ... bpftrace saw ${seen.length} http__server__request firings for ${sent} requests.`);

    heading('What to try next');
    print(nextSteps());
  } finally {
    if (!interrupted) await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
