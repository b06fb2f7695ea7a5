'use strict';
// The process a tracer case runs: it evaluates the case's fire script (from
// DYNPROBE_CASE_SCRIPT) with a few helpers, then fires `dptest:done` so the
// tracer can exit.
//
//   ready()            print `READY <pid> <library paths>` and wait for `go`
//                      on stdin (the tracer has attached by then)
//   untilTraced(probe) poll until a tracer enables the probe
//   fireWhileTraced(probe, args)
//                      fire every 10 ms until the tracer lets the probe go
//   gc()               full garbage collection (run with --expose-gc)

const path = require('node:path');
const { libraryPaths, untilTraced, fireWhileTraced, sleep } = require('../fixtures/helpers');
const dynprobe = require(process.env.DYNPROBE_PACKAGE || path.join(__dirname, '..', '..'));

const sync = dynprobe.createDTraceProvider('dptest');
const done = sync.addProbe('done');
sync.enable();

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

const AsyncFunction = (async () => {}).constructor;
const body = new AsyncFunction('dynprobe', 'ready', 'untilTraced', 'fireWhileTraced', 'sleep', 'gc', 'require', process.env.DYNPROBE_CASE_SCRIPT);
body(dynprobe, ready, untilTraced, fireWhileTraced, sleep, global.gc, require).then(
  () => {
    done.fire(() => []);
    sync.disable();
  },
  (err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(2);
  },
);
