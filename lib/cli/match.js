'use strict';
// `PROVIDER[:PROBE]` patterns with shell-style globs (`*`, `?`), e.g.
// `bunyan:log-*`, `restify`, `*:request-done`. A missing probe part means all.

function globToRegExp(glob) {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.');
  return new RegExp(`^${body}$`, 's'); // names from a process may hold newlines
}

function parsePattern(pattern) {
  const text = pattern === undefined || pattern === '' ? '*' : pattern;
  const colon = text.indexOf(':');
  const provider = colon < 0 ? text : text.slice(0, colon);
  const probe = colon < 0 ? '*' : text.slice(colon + 1) || '*';
  return { text, provider: globToRegExp(provider || '*'), probe: globToRegExp(probe) };
}

// The (provider entry, probe) pairs of a process that match.
function select(providers, pattern) {
  const p = parsePattern(pattern);
  const out = [];
  for (const entry of providers) {
    if (!p.provider.test(entry.provider)) continue;
    for (const probe of entry.probes) if (p.probe.test(probe.name)) out.push({ entry, probe });
  }
  return out;
}

module.exports = { select };
