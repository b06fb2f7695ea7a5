'use strict';
// test-needs: tracer
// Every tracer case under every tracer it names. Tracers need root; without
// them each test is skipped with the reason, and under CI=true it fails.

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { TRACERS, runCase, unavailable, scriptFor } = require('./tracers/harness');

const CASES_DIR = path.join(__dirname, 'tracers', 'cases');
const cases = fs
  .readdirSync(CASES_DIR)
  .filter((f) => f.endsWith('.js'))
  .sort()
  .flatMap((f) => require(path.join(CASES_DIR, f)));
const only = process.env.DYNPROBE_CASES ? new RegExp(process.env.DYNPROBE_CASES) : null;
const onlyTracer = process.env.DYNPROBE_TRACERS ? new RegExp(process.env.DYNPROBE_TRACERS) : null;

const reasons = {};
for (const tracer of Object.keys(TRACERS)) {
  if (onlyTracer && !onlyTracer.test(tracer)) continue;
  reasons[tracer] = unavailable(tracer);
  if (reasons[tracer]) {
    const loud = `\n*** ${tracer} tests ${process.env.CI === 'true' ? 'FAIL' : 'SKIPPED'}: ${reasons[tracer]} ***\n`;
    process.stderr.write(loud);
  }
}

for (const c of cases) {
  if (only && !only.test(c.name)) continue;
  for (const tracer of Object.keys(reasons)) {
    if (scriptFor(c, tracer) === undefined) continue;
    const reason = reasons[tracer];
    const skip = reason && process.env.CI !== 'true' ? reason : false;
    test(`${c.name} [${tracer}]`, { skip, timeout: 180000 }, async () => {
      assert.ok(!reason, `${tracer} is required when CI=true: ${reason}`);
      const result = await runCase(c, tracer);
      if (result.patterns) {
        for (const re of result.patterns) {
          assert.ok(result.lines.some((l) => re.test(l)), `no line matches ${re} in:\n${result.lines.join('\n')}\n${result.diagnostics}`);
        }
      } else {
        assert.deepStrictEqual(result.lines, result.expected, result.diagnostics);
      }
    });
  }
}
