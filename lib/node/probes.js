'use strict';
// The probes of the `node` provider: Node 18's eight (names, argument order
// and sizes as in its ELF notes) and the ones today's Node publishes that it
// never had. Each argument is [name, type]; `uint64_t` arguments named
// `*_struct` point at a struct with Node 18's layout (see memory.js), valid
// while the probe fires.

const PROBES = [
  // Node 18's probes.
  ['http__server__request', [['request_struct', 'uint64_t'], ['connection_struct', 'uint64_t'], ['remote', 'char *'], ['port', 'int32_t'], ['method', 'char *'], ['url', 'char *'], ['fd', 'int32_t']]],
  ['http__server__response', [['connection_struct', 'uint64_t'], ['remote', 'char *'], ['port', 'int32_t'], ['fd', 'int32_t']]],
  ['http__client__request', [['request_struct', 'uint64_t'], ['connection_struct', 'uint64_t'], ['remote', 'char *'], ['port', 'int32_t'], ['method', 'char *'], ['url', 'char *'], ['fd', 'int32_t']]],
  ['http__client__response', [['connection_struct', 'uint64_t'], ['remote', 'char *'], ['port', 'int32_t'], ['fd', 'int32_t']]],
  ['net__server__connection', [['connection_struct', 'uint64_t'], ['remote', 'char *'], ['port', 'int32_t'], ['fd', 'int32_t']]],
  ['net__stream__end', [['connection_struct', 'uint64_t'], ['remote', 'char *'], ['port', 'int32_t'], ['fd', 'int32_t']]],
  // GC: V8's GCType and GCCallbackFlags, an address unique to the isolate,
  // then (new) when the collection began (CLOCK_MONOTONIC ns, bpftrace's
  // `nsecs`) and how long it took (ns): JavaScript learns of a collection
  // after it is over.
  ['gc__start', [['type', 'uint32_t'], ['flags', 'uint32_t'], ['isolate', 'uint64_t'], ['start_ns', 'uint64_t'], ['duration_ns', 'uint64_t']]],
  ['gc__done', [['type', 'uint32_t'], ['flags', 'uint32_t'], ['isolate', 'uint64_t'], ['start_ns', 'uint64_t'], ['duration_ns', 'uint64_t']]],
  // Beyond Node 18.
  ['http__client__request__error', [['remote', 'char *'], ['port', 'int32_t'], ['method', 'char *'], ['url', 'char *'], ['error_code', 'char *'], ['error_message', 'char *']]],
  ['fetch__request__start', [['method', 'char *'], ['origin', 'char *'], ['path', 'char *']]],
  ['fetch__response__headers', [['method', 'char *'], ['origin', 'char *'], ['path', 'char *'], ['status', 'int32_t']]],
  ['fetch__request__error', [['method', 'char *'], ['origin', 'char *'], ['path', 'char *'], ['error_code', 'char *'], ['error_message', 'char *']]],
  ['child__process__spawn', [['pid', 'int32_t'], ['file', 'char *'], ['argv', 'json']]],
  ['worker__create', [['thread_id', 'int32_t'], ['parent_thread_id', 'int32_t']]],
].map(([name, args]) => ({ name, args: args.map(([argName, type]) => ({ name: argName, type })) }));

module.exports = { PROBES };
