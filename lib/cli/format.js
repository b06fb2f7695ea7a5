'use strict';
// One firing as one line (or, with --pretty, JSON arguments indented below
// it), or as one JSON object for scripts. The values come from the traced
// process: no control or formatting character of theirs reaches the
// terminal raw.

const { safeJson } = require('./names');

// A string of an argument with no declared type that holds a JSON object or
// array (dtrace-provider's `json` arguments, bunyan's records, in a library
// without the record): its parsed value, else undefined.
function parseJson(text) {
  const t = text.trim();
  if (!(t.startsWith('{') && t.endsWith('}')) && !(t.startsWith('[') && t.endsWith(']'))) return undefined;
  try {
    return JSON.parse(t);
  } catch {
    return undefined;
  }
}

function clock(ns) {
  const d = new Date(Number(ns / 1000000n));
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const micros = pad(Number((ns / 1000n) % 1000000n), 6);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${micros}`;
}

function indent(text, by) {
  return text.replace(/\n/g, `\n${by}`);
}

// A declared JSON argument: compact, or an object or array indented below
// the line.
function formatJsonArg(arg, pretty) {
  const v = arg.value;
  if (pretty && v !== null && typeof v === 'object') return `\n    ${indent(safeJson(v, null, 2), '    ')}`;
  return safeJson(v);
}

// A string argument quoted, so that spaces and newlines stay visible; one
// whose type is not known (no record) and that holds JSON shown as JSON
// (compact as it came, or indented). A declared `char *` is never parsed.
function formatString(arg, pretty) {
  const json = arg.guessed ? parseJson(arg.value) : undefined;
  const mark = arg.truncated ? '…' : '';
  if (json === undefined) return safeJson(arg.value) + mark;
  if (pretty) return `\n    ${indent(safeJson(json, null, 2), '    ')}`;
  // Compact JSON as it came, unless it has white space other than spaces
  // between its tokens (a CR could rewrite the line): then re-encoded.
  const text = arg.value.trim();
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  return (/[\0-\x1f]/.test(text) ? safeJson(json) : safeJson.raw(text)) + mark;
}

function formatLine(firing, { pretty = false, pid = null } = {}) {
  const who = pid !== null && firing.tid !== pid ? ` [tid ${firing.tid}]` : '';
  const args = firing.args.map((a) => {
    if (a.type === 'string') return formatString(a, pretty);
    return a.type === 'json' ? formatJsonArg(a, pretty) : a.value;
  });
  const omitted = firing.probe.omitted > 0 ? ` (+${firing.probe.omitted} not read)` : '';
  return `${clock(firing.time)} ${firing.probe.label}${who}${args.map((a) => (a.startsWith('\n') ? a : ` ${a}`)).join('')}${omitted}`;
}

function jsonValue(arg) {
  if (arg.type === 'string' || arg.type === 'json') return arg.value;
  const n = Number(arg.value);
  return Number.isSafeInteger(n) ? n : arg.value;
}

function formatJson(firing, pid) {
  const p = firing.probe;
  return safeJson({
    time: new Date(Number(firing.time / 1000000n)).toISOString(),
    timeNs: String(firing.time),
    pid,
    tid: firing.tid,
    provider: p.provider,
    module: p.module,
    probe: p.probe,
    args: firing.args.map(jsonValue),
    types: firing.args.map((a) => a.type),
    truncated: firing.args.flatMap((a, i) => (a.truncated ? [i] : [])),
    omitted: p.omitted,
  });
}

module.exports = { formatLine, formatJson };
