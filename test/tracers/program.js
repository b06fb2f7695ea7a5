'use strict';
// The process a tracer case runs: it evaluates the case's fire script (from
// DYNPROBE_CASE_SCRIPT) with a few helpers, then fires `dptest:done` so the
// tracer can exit.
//
//   ready()            print `READY <pid> <library paths>` and wait for `go`
//                      on stdin (the tracer has attached by then)
//   untilTraced(probe) poll until a tracer enables the probe (10 s at most)
//   gc()               full garbage collection (run with --expose-gc)

const fs = require('node:fs');
const path = require('node:path');
const dynprobe = require(process.env.DYNPROBE_PACKAGE || path.join(__dirname, '..', '..'));

const sync = dynprobe.createDTraceProvider('dptest');
const done = sync.addProbe('done');
sync.enable();

// The libraries this process maps, as tracers find them in /proc/PID/maps.
function libraryPaths() {
  const paths = new Set();
  for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const file = line.split(/\s+/).slice(5).join(' ');
    if (/\/dynprobe-[^/]+\/[0-9a-f]{40}\/|\/dynprobe\/[0-9a-f]{40}\//.test(file)) paths.add(file);
  }
  return [...paths];
}

function ready() {
  process.stdout.write(`READY ${process.pid} ${libraryPaths().join(' ')}\n`);
  return new Promise((resolve) => {
    let input = '';
    const onData = (chunk) => {
      input += chunk;
      if (input.includes('\n')) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        resolve();
      }
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function untilTraced(probe) {
  const start = Date.now();
  for (;;) {
    let traced = false;
    probe.fire(() => {
      traced = true;
      return null; // not an array: nothing fires
    });
    if (traced) return;
    if (Date.now() - start > 10000) throw new Error(`probe ${probe.name} was never traced`);
    await sleep(10);
  }
}

const AsyncFunction = (async () => {}).constructor;
const body = new AsyncFunction('dynprobe', 'ready', 'untilTraced', 'sleep', 'gc', 'require', process.env.DYNPROBE_CASE_SCRIPT);
body(dynprobe, ready, untilTraced, sleep, global.gc, require).then(
  () => {
    done.fire(() => []);
    sync.disable();
  },
  (err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(2);
  },
);
