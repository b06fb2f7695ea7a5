'use strict';
// A node --test reporter that counts, for scripts/test.js's summary: it
// writes one JSON object, { passed, failed, skipped, todo, failures }, to its
// destination when the run ends. It runs beside the spec reporter, which
// prints the run as usual.
//
// Every test is counted once, suites (describe) not, unless skipped whole
// (then its tests never run, and it counts as one skipped test): a skipped test is
// skipped; a todo test (whether it passed or failed: its result does not
// fail the run) is todo; otherwise it passed or failed, a test cancelled
// (its file ended first, or its parent failed) being a failure.

module.exports = async function* counts(source) {
  const tally = { passed: 0, failed: 0, skipped: 0, todo: 0, failures: [] };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    const skipped = data.skip !== undefined && data.skip !== false;
    // A skipped suite runs none of its tests: it counts as one skip.
    if (data.details && data.details.type === 'suite' && !skipped) continue;
    if (skipped) tally.skipped++;
    else if (data.todo !== undefined && data.todo !== false) tally.todo++;
    else if (event.type === 'test:pass') tally.passed++;
    else {
      tally.failed++;
      tally.failures.push(data.name);
    }
  }
  yield `${JSON.stringify(tally)}\n`;
};
