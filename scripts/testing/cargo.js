'use strict';
// Counts a `cargo test` run from its output (stdout and stderr in one
// stream, in order): libtest's `test NAME ... ok|FAILED|ignored` line for
// each test and `test result:` line for each binary. A test that passed
// after printing `*** SKIP <its function's name>` (crates/*/tests/common:
// it could not run here, which fails it under CI=true) is counted as
// skipped, and so is an ignored one.

const RUNNING = /^\s*(?:Running|Doc-tests) /;
const TEST_LINE = /^test (\S+) \.\.\. (ok|FAILED|ignored)\b/;
// With one test thread libtest prints `test NAME ... ` as the test starts and
// the outcome when it ends, after whatever the test wrote to stderr.
const TEST_STARTS = /^test (\S+) \.\.\. $/;
const OUTCOME = /^(ok|FAILED|ignored)$/;
const RESULT = /^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/;
const SKIP = /^\*\*\* SKIP (\w+)/;

function countCargo(output) {
  const tally = { passed: 0, failed: 0, skipped: 0, todo: 0, failures: [], notes: [] };
  let passedHere = new Set();
  let skipsHere = new Set();
  const close = () => {
    // Skips name the test function; libtest names it by its module path.
    for (const name of skipsHere) {
      const test = [...passedHere].find((t) => t === name || t.endsWith(`::${name}`));
      if (test === undefined) {
        tally.notes.push(`a SKIP line names no test that passed: ${name}`);
        continue;
      }
      tally.passed--;
      tally.skipped++;
    }
    passedHere = new Set();
    skipsHere = new Set();
  };
  let started = null;
  const outcome = (name, result) => {
    if (result === 'ok') passedHere.add(name);
    if (result === 'FAILED') tally.failures.push(name);
  };
  for (const line of output.split('\n')) {
    if (RUNNING.test(line)) close();
    let m = TEST_LINE.exec(line);
    if (m) {
      outcome(m[1], m[2]);
      continue;
    }
    m = TEST_STARTS.exec(line);
    if (m) {
      started = m[1];
      continue;
    }
    m = OUTCOME.exec(line.trim());
    if (m && started !== null) {
      outcome(started, m[1]);
      started = null;
      continue;
    }
    m = SKIP.exec(line.trim());
    if (m) {
      skipsHere.add(m[1]);
      continue;
    }
    m = RESULT.exec(line);
    if (m) {
      tally.passed += Number(m[1]);
      tally.failed += Number(m[2]);
      tally.skipped += Number(m[3]);
    }
  }
  close();
  return tally;
}

module.exports = { countCargo };
