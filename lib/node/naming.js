'use strict';
// How a diagnostics_channel name becomes a provider and probe names (pure;
// docs/channels.md). A channel `NS:OP`, or `NS.OP` when the name has no
// colon, belongs to provider NS, with `:`, `.` and `-` written `_`; OP names
// the probe, with each of them written `__`. A TracingChannel gets three
// probes, OP__start, OP__done and OP__error; a plain channel one, OP. Node's
// own channels (their namespace is one of Node's: `http2.server.stream.start`)
// join the `node` provider, the whole name naming the probe. Any other
// character a tracer cannot take in a name becomes `_`. A provider name
// that would end in a digit gets a final `_`: DTrace reads a provider's
// trailing digits as the process id (`mysql2$target` is `mysql2` + `1234`,
// which it reads as provider `mysql` of process 21234), so it could never
// name such a provider.
//
//   mysql2:pool:connect      mysql2_:pool__connect__start
//   node-redis:command       node_redis:command__done
//   fastify.request.handler  fastify:request__handler__start
//   http2.server.stream.start (Node's) node:http2__server__stream__start

// Namespaces of the channels Node itself publishes (the diagnostics_channel
// documentation's "Built-in channels").
const CORE_NAMESPACES = new Set([
  'console',
  'http',
  'http2',
  'module',
  'net',
  'udp',
  'process',
  'child_process',
  'worker_threads',
  'locks',
  'sqlite',
]);
const CORE_PROVIDER = 'node';
const TRACING_EVENTS = ['start', 'done', 'error'];
// The names' limits (crates/dynprobe-format: provider 54 bytes, probe 64).
const MAX_PROVIDER = 54;
const MAX_PROBE = 64;
const SEPARATORS = /[:.-]/g;
const OTHERS = /[^A-Za-z0-9_]/g;
// A TracingChannel in a list of channels: `tracing:NAME`, as Node names its
// sub-channels (`tracing:NAME:start`).
const TRACING_PREFIX = 'tracing:';

// NS and OP of a channel name, and whether it is Node's own.
function split(channel) {
  const colon = channel.indexOf(':');
  const cut = colon > 0 ? colon : channel.indexOf('.');
  const ns = cut > 0 ? channel.slice(0, cut) : channel;
  if (CORE_NAMESPACES.has(ns)) return { core: true, ns, op: channel };
  return { core: false, ns, op: cut > 0 ? channel.slice(cut + 1) : '' };
}

function providerName(ns) {
  const name = ns.replace(SEPARATORS, '_').replace(OTHERS, '_');
  const first = /^[0-9]/.test(name) ? `_${name}` : name;
  return /[0-9]$/.test(first) ? `${first}_` : first;
}

function probeBase(op) {
  return op.replace(SEPARATORS, '__').replace(OTHERS, '_');
}

// Why `channel` cannot be named, or null.
function channelProblem(channel) {
  if (typeof channel !== 'string') return 'a channel name must be a string';
  if (channel === '') return 'a channel name must not be empty';
  return null;
}

// Provider and probe names for a channel:
//   { provider, probes: [names], error: null } or { error: 'why' }.
// `tracing`: a TracingChannel (three probes) rather than a plain one.
function namesFor(channel, tracing) {
  const problem = channelProblem(channel);
  if (problem !== null) return { error: problem };
  const { core, ns, op } = split(channel);
  const provider = core ? CORE_PROVIDER : providerName(ns);
  // A plain channel with no OP (`myevents`) names its probe after itself.
  const base = probeBase(op === '' && !tracing ? ns : op);
  const probes = tracing ? TRACING_EVENTS.map((e) => (base === '' ? e : `${base}__${e}`)) : [base];
  if (Buffer.byteLength(provider) > MAX_PROVIDER) {
    return { error: `channel ${JSON.stringify(channel)}: its provider name ${provider} is longer than ${MAX_PROVIDER} bytes` };
  }
  const long = probes.find((p) => Buffer.byteLength(p) > MAX_PROBE);
  if (long !== undefined) {
    return { error: `channel ${JSON.stringify(channel)}: its probe name ${long} is longer than ${MAX_PROBE} bytes` };
  }
  return { provider, probes, error: null };
}

// A list of channels as DYNPROBE_CHANNELS and addChannels take it: names
// separated by commas or white space, `tracing:NAME` for a TracingChannel.
// Returns [{ channel, tracing }], each once, in order.
function parseChannelList(text) {
  const seen = new Set();
  const out = [];
  for (const word of String(text).split(/[\s,]+/)) {
    if (word === '' || seen.has(word)) continue;
    seen.add(word);
    out.push(parseChannel(word));
  }
  return out;
}

function parseChannel(word) {
  if (word.startsWith(TRACING_PREFIX) && word.length > TRACING_PREFIX.length) {
    return { channel: word.slice(TRACING_PREFIX.length), tracing: true };
  }
  return { channel: word, tracing: false };
}

module.exports = { namesFor, parseChannelList, parseChannel, split, CORE_NAMESPACES, CORE_PROVIDER, MAX_PROVIDER, MAX_PROBE };
