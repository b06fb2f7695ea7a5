'use strict';
// How a probe argument is shown and read, from what its stapsdt note says
// (size, sign, location). A note does not record the declared type: an
// unsigned 8-byte argument is a string (`char *`, which is also how `json`
// arguments travel) or a `uint64_t`. Listings say so; `dynprobe trace` reads
// both forms and decides per firing (see records.js).

// int: signed integer; uint: unsigned integer; strint: char * or uint64_t;
// float: floating point (tracers read the raw bits); unknown: no size.
function kindOf(arg) {
  if (arg.float) return 'float';
  if (!arg.size) return 'unknown';
  if (arg.size === 8 && !arg.signed) return 'strint';
  return arg.signed ? 'int' : 'uint';
}

// `int32_t`, `char *|uint64_t`, or the raw token when nothing better is known.
function typeLabel(arg) {
  return arg.types.length > 0 ? arg.types.join('|') : `? (${arg.spec})`;
}

function signature(probe) {
  const more = probe.omittedArgs > 0 ? [`... ${probe.omittedArgs} more`] : [];
  return `${probe.name}(${[...probe.args.map(typeLabel), ...more].join(', ')})`;
}

const AMBIGUOUS_NOTE =
  'char *|uint64_t: the probe note records an unsigned 8-byte value, which is a string ' +
  '(char *, json) or a uint64_t; the commands above read it as a string, ' +
  '`dynprobe trace` decides per firing.';

module.exports = { kindOf, typeLabel, signature, AMBIGUOUS_NOTE };
