'use strict';
// `PROVIDER[:PROBE]` patterns with shell-style globs (`*`, `?`), e.g.
// `bunyan:log-*`, `restify`, `*:request-done`: a missing or empty probe
// part means every probe, an empty pattern every provider. One definition
// for `dynprobe trace`, in-process subscriptions and the endpoint.
//
// Matching walks the name once per star at most (no regular expression):
// a pattern from a client of the endpoint must not be able to make the
// process backtrack for seconds.

// Whether `name` matches `glob` (`*`: any run, `?`: any one character,
// nothing escapes). O(len(glob) * len(name)) at worst.
function globMatch(glob, name) {
  let g = 0;
  let n = 0;
  let star = -1; // where in the glob the last star was
  let from = 0; // where in the name that star's run ends now
  while (n < name.length) {
    if (g < glob.length && (glob[g] === '?' || (glob[g] !== '*' && glob[g] === name[n]))) {
      g++;
      n++;
    } else if (g < glob.length && glob[g] === '*') {
      star = g++;
      from = n;
    } else if (star >= 0) {
      g = star + 1;
      n = ++from;
    } else {
      return false;
    }
  }
  while (g < glob.length && glob[g] === '*') g++;
  return g === glob.length;
}

// The parts of a pattern: { text, provider: glob, probe: glob }.
function parsePattern(pattern) {
  const text = pattern === undefined || pattern === null || pattern === '' ? '*' : String(pattern);
  const colon = text.indexOf(':');
  const provider = colon < 0 ? text : text.slice(0, colon);
  const probe = colon < 0 ? '*' : text.slice(colon + 1) || '*';
  return { text, provider: provider || '*', probe };
}

// A matcher for a pattern: { text, provider(name), probe(name) }.
function compile(pattern) {
  const p = parsePattern(pattern);
  return {
    text: p.text,
    provider: (name) => globMatch(p.provider, name),
    probe: (name) => globMatch(p.probe, name),
  };
}

module.exports = { globMatch, parsePattern, compile };
