'use strict';
// `PROVIDER[:PROBE]` patterns with shell-style globs (`*`, `?`), e.g.
// `bunyan:log-*`, `restify`, `*:request-done` (see lib/pattern.js). A missing
// probe part means all.

const { compile } = require('../pattern');

// The (provider entry, probe) pairs of a process that match.
function select(providers, pattern) {
  const p = compile(pattern);
  const out = [];
  for (const entry of providers) {
    if (!p.provider(entry.provider)) continue;
    for (const probe of entry.probes) if (p.probe(probe.name)) out.push({ entry, probe });
  }
  return out;
}

module.exports = { select };
