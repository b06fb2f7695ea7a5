'use strict';
// test-needs: nothing
// test-tier: quick
// Channels as probes (lib/node/channels.js, naming.js, libraries.js,
// presence.js): the names by rule; the values read from messages, crafted
// ones included; the pairing and timing of operations as each publisher
// publishes them; which providers a process gets; that nothing is
// subscribed while untraced. That a real tracer turns a channel's
// subscriptions on and off, and the values under real tracers against real
// servers, are in channels-tracers.test.js.
//
// The engine tests give createChannels providers that record what their
// probes' callbacks return (the values a traced probe would fire): they
// test this JavaScript's logic, message by message; that these values reach
// tracers is what channels-tracers.test.js proves.

const test = require('node:test');
const assert = require('node:assert/strict');
const dc = require('node:diagnostics_channel');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { ROOT, gate } = require('./fixtures/helpers');
const { load } = require('../lib/native');
const { namesFor, parseChannelList } = require('../lib/node/naming');
const v = require('../lib/node/values');
const { CORE, libraries } = require('../lib/node/libraries');
const { createChannels, probesOf } = require('../lib/node/channels');
const { applicationDirs, resolverFrom } = require('../lib/node/presence');

const NODE_JS = path.join(ROOT, 'node.js');

test('names by rule: NS:OP or NS.OP, separators, Node core, plain channels', () => {
  const t = (name) => namesFor(name, true);
  assert.deepEqual(t('mysql2:pool:connect'), { provider: 'mysql2_', probes: ['pool__connect__start', 'pool__connect__done', 'pool__connect__error'], error: null });
  assert.deepEqual(t('node-redis:command').probes, ['command__start', 'command__done', 'command__error']);
  assert.equal(t('node-redis:command').provider, 'node_redis');
  assert.deepEqual(t('fastify.request.handler'), { provider: 'fastify', probes: ['request__handler__start', 'request__handler__done', 'request__handler__error'], error: null });
  assert.deepEqual(t('graphql:execute:variableCoercion').probes[0], 'execute__variableCoercion__start');
  assert.deepEqual(t('my-lib:do-thing').provider, 'my_lib');
  assert.deepEqual(t('my-lib:do-thing').probes[1], 'do__thing__done');
  // Node's own: provider node, the whole name.
  assert.deepEqual(t('module.require'), { provider: 'node', probes: ['module__require__start', 'module__require__done', 'module__require__error'], error: null });
  assert.deepEqual(t('child_process.spawn').probes[0], 'child_process__spawn__start');
  assert.deepEqual(namesFor('http2.server.stream.start', false), { provider: 'node', probes: ['http2__server__stream__start'], error: null });
  assert.deepEqual(namesFor('worker_threads', false), { provider: 'node', probes: ['worker_threads'], error: null });
  // Plain channels: one probe.
  assert.deepEqual(namesFor('undici:request:headers', false), { provider: 'undici', probes: ['request__headers'], error: null });
  assert.deepEqual(namesFor('myevents', false), { provider: 'myevents', probes: ['myevents'], error: null });
  assert.deepEqual(namesFor('myevents', true).probes, ['start', 'done', 'error']);
  // A provider never ends in a digit (DTrace reads those as the pid), nor starts with one.
  assert.equal(t('h2o:x').provider, 'h2o');
  assert.equal(t('v8:x').provider, 'v8_');
  assert.equal(t('2fa:check').provider, '_2fa');
  assert.equal(t('123:x').provider, '_123_');
  // Characters a tracer cannot take.
  assert.deepEqual(t('app/x:op é').probes[0], 'op____start');
  assert.equal(t('app/x:op é').provider, 'app_x');
});

test('names that cannot be made say why', () => {
  assert.match(namesFor('', true).error, /must not be empty/);
  assert.match(namesFor(7, true).error, /must be a string/);
  assert.match(namesFor(`${'p'.repeat(60)}:x`, true).error, /provider name .* longer than 54 bytes/);
  assert.match(namesFor(`p:${'o'.repeat(60)}`, true).error, /probe name .*__start is longer than 64 bytes/);
  assert.equal(namesFor(`p:${'o'.repeat(57)}`, true).error, null); // 57 + "__start" = 64
});

test('channel lists: commas or white space, tracing:NAME, each once', () => {
  assert.deepEqual(parseChannelList(' tracing:a:b, c:d\n\ttracing:a:b,,e '), [
    { channel: 'a:b', tracing: true },
    { channel: 'c:d', tracing: false },
    { channel: 'e', tracing: false },
  ]);
  assert.deepEqual(parseChannelList('tracing:'), [{ channel: 'tracing:', tracing: false }]);
  assert.deepEqual(parseChannelList(''), []);
});

test('every channel dynprobe knows has names, one provider per library, and probes tracers can read', () => {
  for (const group of [CORE, ...libraries()]) {
    const providers = new Set();
    for (const spec of group.channels) {
      const made = probesOf(spec);
      assert.equal(made.error, undefined, made.error);
      providers.add(made.provider);
      // bpftrace 0.17 reads 6 arguments.
      for (const p of made.probes) assert.ok(p.args.length <= 6, `${made.provider}:${p.name}`);
    }
    assert.equal(providers.size, 1, [...providers].join());
    if (group === CORE) assert.deepEqual([...providers], ['node']);
  }
});

test('values: bounded text, first lines, error codes', () => {
  assert.equal(v.bounded('abc'), 'abc');
  assert.equal(v.bounded(5), '');
  assert.equal(v.bounded('x'.repeat(10000)).length, v.MAX_TEXT);
  // A surrogate pair at the bound is not cut in two.
  const pair = `${'x'.repeat(v.MAX_TEXT - 1)}\u{1F600}`;
  assert.equal(v.bounded(pair), 'x'.repeat(v.MAX_TEXT - 1));
  assert.equal(v.firstLine("Cannot find module 'x'\nRequire stack:\n- a"), "Cannot find module 'x'");
  assert.equal(v.errorCode({ code: 'ER_NO_SUCH_TABLE', name: 'Error' }), 'ER_NO_SUCH_TABLE');
  assert.equal(v.errorCode({ code: 1146, name: 'Error' }), '1146');
  assert.equal(v.errorCode({ code: '', name: 'ReplyError' }), 'ReplyError');
  assert.equal(v.errorCode('a string'), '');
  assert.equal(v.errorCode(null), '');
  assert.equal(v.errorCode(new Proxy({}, { get() { throw new Error('no'); } })), '');
});

test("values: a message's own primitive fields, bounded, getters never run", () => {
  let ran = false;
  const msg = { s: 'a', n: 1, b: false, z: null, big: 12n, obj: {}, arr: [1], f() {}, u: undefined, sym: Symbol('x') };
  Object.defineProperty(msg, 'getter', { enumerable: true, get: () => ((ran = true), 'no') });
  Object.defineProperty(msg, 'hidden', { enumerable: false, value: 'no' });
  assert.deepEqual(v.primitiveFields(msg), { s: 'a', n: 1, b: false, z: null, big: '12' });
  assert.equal(ran, false);
  // Bounded: long strings cut, fields past the bound left out, valid JSON.
  const big = v.primitiveFields({ a: 'x'.repeat(5000), b: 1 });
  assert.ok(JSON.stringify(big).length <= v.MAX_JSON);
  assert.ok(big.a.length > 900);
  assert.equal(big.b, undefined);
  const escapes = v.primitiveFields({ q: '"\\'.repeat(2000) });
  assert.ok(JSON.stringify(escapes).length <= v.MAX_JSON);
  const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, i]));
  assert.equal(Object.keys(v.primitiveFields(many)).length, 32);
  assert.deepEqual(v.primitiveFields(null), {});
  assert.deepEqual(v.primitiveFields('str'), {});
  assert.deepEqual(v.primitiveFields(new Proxy({}, { ownKeys() { throw new Error('no'); } })), {});
});

test('texts of crafted messages: missing fields and other types read as empty, never throw', () => {
  const texts = new Map();
  for (const group of [CORE, ...libraries({ redisArgs: true })]) {
    for (const spec of group.channels) if (spec.text) texts.set(spec.tracing ?? spec.lifecycle, spec.text);
  }
  for (const [name, text] of texts) {
    for (const msg of [{}, { query: 5, command: 7, args: 'x', source: 3, document: 4, route: 5, request: 6, headers: 7, options: 8, serverAddress: 9, serverPort: 'x' }]) {
      const out = text(msg);
      assert.equal(typeof out, 'string', name);
      assert.ok(/^[ a-z0-9:/.]*$/i.test(out), `${name}: ${JSON.stringify(out)}`);
    }
  }
  const t = (name) => texts.get(name);
  assert.equal(t('mysql2:query')({ query: 'SELECT 1' }), 'SELECT 1');
  assert.equal(t('mysql2:connect')({ serverAddress: 'db', serverPort: 3306, database: 'shop' }), 'db:3306/shop');
  assert.equal(t('mysql2:connect')({ serverAddress: '/run/m.sock', database: '' }), '/run/m.sock');
  assert.equal(t('ioredis:batch')({ batchMode: 'MULTI', batchSize: 3 }), 'MULTI 3');
  assert.equal(t('graphql:execute')({ operationType: 'query', operationName: 'GetUser' }), 'query GetUser');
  assert.equal(t('graphql:validate')({ document: { definitions: [{ kind: 'OperationDefinition', operation: 'query', name: { value: 'A' } }, { kind: 'OperationDefinition', operation: 'mutation' }] } }), 'query A, mutation');
  assert.equal(t('graphql:parse')({ source: { body: '{ a }' } }), '{ a }');
  assert.equal(t('graphql:resolve')({ parentType: 'Query', fieldName: 'user' }), 'Query.user');
  assert.equal(t('fastify.request.handler')({ request: { raw: { method: 'POST' } }, route: { url: '/u/:id', method: ['GET', 'POST'] } }), 'POST /u/:id');
  assert.equal(t('undici:request')({ request: { method: 'GET', origin: 'http://h:1', path: '/p' } }), 'GET http://h:1/p');
  // (an origin given as a URL ends with a slash)
  assert.equal(t('undici:request')({ request: { method: 'GET', origin: new URL('http://h:1'), path: '/p' } }), 'GET http://h:1/p');
  assert.equal(t('http2.client.stream')({ headers: { ':method': 'GET', ':scheme': 'https', ':authority': 'h', ':path': '/x' } }), 'GET https://h/x');
  assert.equal(t('net.server.listen')({ options: { path: '/s.sock' } }), '/s.sock');
  assert.equal(t('child_process.spawn')({ options: { file: 'ls', args: ['ls', '-l'] } }), 'ls -l');
});

test('Redis texts: the command name only, unless the operator opts in', () => {
  const text = (redisArgs, channel) => libraries({ redisArgs }).flatMap((g) => g.channels).find((c) => c.tracing === channel).text;
  assert.equal(text(false, 'ioredis:command')({ command: 'set', args: ['key', '?'] }), 'SET');
  assert.equal(text(false, 'node-redis:command')({ command: 'SET', args: ['SET', 'key', '?'] }), 'SET');
  assert.equal(text(true, 'ioredis:command')({ command: 'set', args: ['key', '?'] }), 'SET key ?');
  assert.equal(text(true, 'node-redis:command')({ command: 'SET', args: ['SET', 'key', '?'] }), 'SET key ?');
});

// Providers whose probes record the values their callbacks return: what a
// traced probe would fire.
function recording() {
  const fired = [];
  const providers = new Map();
  const createProvider = (name) => {
    const probes = {};
    const provider = {
      enabled: 0,
      rebuilt: 0,
      probes,
      addProbe(spec) {
        probes[spec.name] = {
          fire(cb, ...args) {
            const values = cb(...args);
            if (Array.isArray(values)) fired.push([`${name}:${spec.name}`, ...values]);
          },
        };
        return probes[spec.name];
      },
      enable() {
        this.enabled++;
      },
      disable() {
        this.rebuilt++;
      },
    };
    providers.set(name, provider);
    return provider;
  };
  return { fired, providers, createProvider };
}

// An engine with every library present and every source on; `off()` at the end.
function engine(env = {}) {
  const r = recording();
  const ch = createChannels({ createProvider: r.createProvider, env, present: () => true });
  const { sources } = ch.initial();
  sources.forEach((s) => s.on());
  return { ...r, ch, sources, off: () => sources.forEach((s) => s.off()) };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
// The fired values without ids and durations: [probe, ...other values].
const shape = (fired) => fired.map(([probe, id, ...rest]) => [probe, typeof id, ...rest.map((x) => (typeof x === 'number' && x > 1000 ? 'ns' : x))]);

test('TracingChannel operations: sync, promise, callback; done at asyncEnd, error with code and message', async () => {
  const e = engine();
  try {
    const query = dc.tracingChannel('mysql2:query');
    query.traceSync(() => 1, { query: 'SELECT 1' });
    await query.tracePromise(async () => 2, { query: 'SELECT 2' });
    await query.tracePromise(async () => {
      const err = new Error("Table 'x.nope' doesn't exist");
      err.code = 'ER_NO_SUCH_TABLE';
      throw err;
    }, { query: 'SELECT 3' }).catch(() => {});
    await new Promise((resolve) => query.traceCallback((cb) => setTimeout(() => cb(null, 4), 5), 0, { query: 'SELECT 4' }, null, resolve));
    // A callback called before the function returns: the operation ends then.
    query.traceCallback((cb) => cb(null, 5), 0, { query: 'SELECT 5' }, null, () => {});
    assert.throws(() => query.traceSync(() => { throw new TypeError('bad'); }, { query: 'SELECT 6' }), TypeError);
    assert.deepEqual(shape(e.fired), [
      ['mysql2_:query__start', 'number', 'SELECT 1'],
      ['mysql2_:query__done', 'number', 'ns', 'SELECT 1'],
      ['mysql2_:query__start', 'number', 'SELECT 2'],
      ['mysql2_:query__done', 'number', 'ns', 'SELECT 2'],
      ['mysql2_:query__start', 'number', 'SELECT 3'],
      ['mysql2_:query__error', 'number', 'ns', 'SELECT 3', 'ER_NO_SUCH_TABLE', "Table 'x.nope' doesn't exist"],
      ['mysql2_:query__start', 'number', 'SELECT 4'],
      ['mysql2_:query__done', 'number', 'ns', 'SELECT 4'],
      ['mysql2_:query__start', 'number', 'SELECT 5'],
      ['mysql2_:query__done', 'number', 0, 'SELECT 5'].map((x, i) => (i === 2 ? e.fired[9][2] > 1000 ? 'ns' : e.fired[9][2] : x)),
      ['mysql2_:query__start', 'number', 'SELECT 6'],
      ['mysql2_:query__error', 'number', e.fired[11][2] > 1000 ? 'ns' : e.fired[11][2], 'SELECT 6', 'TypeError', 'bad'],
    ]);
    // Ids pair each start with its end, and differ between operations.
    for (let i = 0; i < e.fired.length; i += 2) assert.equal(e.fired[i][1], e.fired[i + 1][1]);
    const ids = e.fired.filter((_, i) => i % 2 === 0).map((f) => f[1]);
    assert.equal(new Set(ids).size, ids.length);
    // The 5 ms callback's duration covers the wait.
    assert.ok(e.fired[7][2] >= 4e6, String(e.fired[7][2]));
  } finally {
    e.off();
  }
});

test('fastify: a synchronous handler ends at end, an asynchronous one at asyncEnd; the reply status', () => {
  const e = engine();
  try {
    const ch = dc.tracingChannel('fastify.request.handler');
    const ctx = (async) => ({ request: { raw: { method: 'GET' } }, reply: { raw: { statusCode: 201 } }, route: { url: '/u/:id' }, async });
    const sync = ctx(false);
    ch.start.publish(sync);
    ch.end.publish(sync);
    const later = ctx(true);
    ch.start.publish(later);
    ch.end.publish(later);
    assert.equal(e.fired.length, 3, 'the asynchronous one is still open');
    ch.asyncStart.publish(later);
    ch.asyncEnd.publish(later);
    assert.deepEqual(e.fired.map((f) => [f[0], f.at(-1)]), [
      ['fastify:request__handler__start', 'GET /u/:id'],
      ['fastify:request__handler__done', 201],
      ['fastify:request__handler__start', 'GET /u/:id'],
      ['fastify:request__handler__done', 201],
    ]);
  } finally {
    e.off();
  }
});

test("Node's channels with their own shapes: listen (asyncStart, by server), spawn (by process), HTTP/2 (close, reset codes), SQLite", async () => {
  const e = engine();
  try {
    const listen = dc.tracingChannel('net.server.listen');
    const server = {};
    listen.asyncStart.publish({ server, options: { host: '127.0.0.1', port: 0 } });
    listen.asyncEnd.publish({ server });
    const busy = {};
    listen.asyncStart.publish({ server: busy, options: { port: 80 } });
    listen.error.publish({ server: busy, error: Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }) });
    const spawn = dc.tracingChannel('child_process.spawn');
    const child = {};
    spawn.start.publish({ process: child, options: { args: ['true', 'x'] } });
    spawn.end.publish({ process: child });
    // HTTP/2: a clean close is done (with the status seen at finish); a reset
    // is an error: Node's own when it comes by the next turn, else the code.
    const stream = (rstCode) => ({ rstCode });
    const h2 = (side, s, path) => dc.channel(`http2.${side}.stream.start`).publish({ stream: s, headers: { ':method': 'GET', ':path': path } });
    const ok = stream(0);
    h2('server', ok, '/ok');
    dc.channel('http2.server.stream.finish').publish({ stream: ok, headers: { ':status': 204 } });
    dc.channel('http2.server.stream.close').publish({ stream: ok });
    const reset = stream(8);
    h2('server', reset, '/cancel');
    dc.channel('http2.server.stream.close').publish({ stream: reset });
    const failed = stream(2);
    h2('client', failed, '/boom');
    dc.channel('http2.client.stream.close').publish({ stream: failed });
    dc.channel('http2.client.stream.error').publish({ stream: failed, error: Object.assign(new Error('Stream closed with error code NGHTTP2_INTERNAL_ERROR'), { code: 'ERR_HTTP2_STREAM_ERROR' }) });
    await tick();
    dc.channel('sqlite.db.query').publish({ sql: 'SELECT 1', duration: 1500 });
    const got = e.fired.map(([probe, , ...rest]) => [probe, ...rest.filter((x) => typeof x !== 'number' || x < 1000 || probe.includes('sqlite'))]);
    assert.deepEqual(got, [
      ['node:net__server__listen__start', '127.0.0.1:0'],
      ['node:net__server__listen__done', '127.0.0.1:0'],
      ['node:net__server__listen__start', ':80'],
      ['node:net__server__listen__error', ':80', 'EADDRINUSE', 'listen EADDRINUSE'],
      ['node:child_process__spawn__start', 'true x'],
      ['node:child_process__spawn__done', 'true x'],
      ['node:http2__server__stream__start', 'GET /ok'],
      ['node:http2__server__stream__done', 'GET /ok', 204],
      ['node:http2__server__stream__start', 'GET /cancel'],
      ['node:http2__client__stream__start', 'GET /boom'],
      ['node:http2__client__stream__error', 'GET /boom', 'ERR_HTTP2_STREAM_ERROR', 'Stream closed with error code NGHTTP2_INTERNAL_ERROR'],
      ['node:http2__server__stream__error', 'GET /cancel', 'NGHTTP2_CANCEL', 'stream closed with code 8'],
      ['node:sqlite__db__query', 1500, 'SELECT 1'],
    ]);
  } finally {
    e.off();
  }
});

test('undici: a request from create to trailers, its status at headers (a probe of its own), errors', () => {
  const e = engine();
  try {
    const request = { method: 'GET', origin: 'http://h:1', path: '/x' };
    dc.channel('undici:request:create').publish({ request });
    dc.channel('undici:request:headers').publish({ request, response: { statusCode: 404 } });
    dc.channel('undici:request:trailers').publish({ request, trailers: [] });
    const failing = { method: 'POST', origin: 'http://h:2', path: '/' };
    dc.channel('undici:request:create').publish({ request: failing });
    dc.channel('undici:request:error').publish({ request: failing, error: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    assert.deepEqual(e.fired.map(([probe, , ...rest]) => [probe, ...rest.filter((x) => typeof x !== 'number' || x < 1000)]), [
      ['undici:request__start', 'GET http://h:1/x'],
      ['undici:request__headers', 'GET http://h:1/x', 404],
      ['undici:request__done', 'GET http://h:1/x', 404],
      ['undici:request__start', 'POST http://h:2/'],
      ['undici:request__error', 'POST http://h:2/', 'ECONNREFUSED', 'connect ECONNREFUSED'],
    ]);
  } finally {
    e.off();
  }
});

test('crafted messages: defined values or nothing, never a throw into the publisher', () => {
  const e = engine();
  const errors = [];
  const onError = (err) => errors.push(err);
  process.on('uncaughtException', onError);
  try {
    const throwing = new Proxy({}, { get() { throw new Error('boom'); }, has() { throw new Error('boom'); }, getOwnPropertyDescriptor() { throw new Error('boom'); } });
    for (const name of ['mysql2:query', 'fastify.request.handler', 'graphql:execute', 'net.server.listen', 'child_process.spawn']) {
      const ch = dc.tracingChannel(name);
      for (const msg of [{}, throwing, { server: throwing, process: throwing }]) {
        for (const event of ['start', 'asyncStart', 'error', 'end', 'asyncEnd']) ch[event].publish(msg);
      }
      for (const event of ['start', 'asyncStart', 'error', 'end', 'asyncEnd']) ch[event].publish(undefined);
    }
    for (const name of ['undici:request:create', 'undici:request:headers', 'undici:request:trailers', 'undici:request:error', 'http2.client.stream.start', 'http2.client.stream.close', 'sqlite.db.query']) {
      for (const msg of [undefined, null, 5, {}, throwing, { request: throwing, stream: throwing }]) dc.channel(name).publish(msg);
    }
    assert.deepEqual(errors, []);
    for (const [, ...values] of e.fired) {
      for (const x of values) assert.ok(typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x)), JSON.stringify(values));
    }
    // e.g. an empty message on mysql2:query fires with an empty text.
    assert.ok(e.fired.some((f) => f[0] === 'mysql2_:query__start' && f[2] === ''));
  } finally {
    process.off('uncaughtException', onError);
    e.off();
  }
});

test('operations begun before a source is on fire nothing; turned on again, it forgets earlier ones', async () => {
  const e = engine();
  e.off();
  const query = dc.tracingChannel('mysql2:query');
  const before = { query: 'early' };
  query.start.publish(before);
  e.sources.forEach((s) => s.on());
  try {
    query.end.publish(before);
    query.asyncEnd.publish(before);
    assert.deepEqual(e.fired, []);
    const pending = { query: 'open across' };
    query.start.publish(pending);
    e.sources.forEach((s) => s.off());
    e.sources.forEach((s) => s.on());
    query.asyncEnd.publish(pending);
    assert.deepEqual(e.fired.map((f) => f[0]), ['mysql2_:query__start']);
  } finally {
    e.off();
  }
});

test('ids: one counter per thread above the thread id, unique across providers', async () => {
  const e = engine();
  try {
    dc.tracingChannel('mysql2:query').traceSync(() => 1, { query: 'a' });
    dc.tracingChannel('ioredis:command').traceSync(() => 1, { command: 'get' });
    const ids = e.fired.map((f) => f[1]);
    assert.equal(ids[0], ids[1]);
    assert.equal(ids[2], ids[3]);
    assert.ok(ids[2] > ids[0]);
    assert.ok(ids[0] < 2 ** 40, 'the main thread (id 0) counts from 1');
    const { Worker } = require('node:worker_threads');
    const inWorker = await new Promise((resolve, reject) => {
      const w = new Worker(
        `const { createChannels } = require(${JSON.stringify(path.join(ROOT, 'lib', 'node', 'channels.js'))});
         const dc = require('node:diagnostics_channel');
         const { parentPort, threadId } = require('node:worker_threads');
         const ids = [];
         const createProvider = () => ({ addProbe: () => ({ fire: (cb, a) => { const x = cb(a); if (Array.isArray(x)) ids.push(x[0]); } }), enable() {} });
         const { sources } = createChannels({ createProvider, env: {}, present: () => false }).initial();
         sources.forEach((s) => s.on());
         dc.tracingChannel('module.require').traceSync(() => 1, { id: 'x' });
         parentPort.postMessage({ ids, threadId });`,
        { eval: true },
      );
      w.once('message', resolve);
      w.once('error', reject);
    });
    assert.equal(inWorker.ids[0], inWorker.threadId * 2 ** 40 + 1);
  } finally {
    e.off();
  }
});

test('generic channels: JSON of the primitive fields; clashes and bad names refused, never thrown; addChannels checks its input', () => {
  const e = engine({ DYNPROBE_CHANNELS: 'tracing:app:job app:evt:x tracing:app:evt,tracing:mysql2:query' });
  try {
    dc.tracingChannel('app:job').traceSync(() => 1, { name: 'n', nested: { a: 1 } });
    dc.channel('app:evt:x').publish({ k: 'v' });
    // (a plain channel's probe has one argument, the message)
    assert.deepEqual(e.fired.map(([probe, ...values]) => [probe, ...values.filter((x) => typeof x !== 'number')]), [
      ['app:job__start', { name: 'n' }],
      ['app:job__done', { name: 'n' }],
      ['app:evt__x', { k: 'v' }],
    ]);
    // `tracing:app:evt` would make app:evt__start..., which do not clash
    // with app:evt__x; naming mysql2:query brings mysql2's own texts (once).
    assert.ok(e.providers.get('app').probes.evt__start);
    const again = e.ch.addNamed(['app:evt:x', 'tracing:mysql2:query']);
    assert.deepEqual(again, { sources: [], probes: [], refused: [] });
    const clash = e.ch.addNamed('app:job:start');
    assert.equal(clash.sources.length, 0);
    assert.match(clash.refused[0], /probe app:job__start belongs to channel "app:job"/);
    assert.match(e.ch.addNamed(`tracing:${'x'.repeat(60)}:y`).refused[0], /longer than 54 bytes/);
    assert.throws(() => e.ch.addNamed(5), TypeError);
    assert.throws(() => e.ch.addNamed(['a', 5]), TypeError);
    // A provider that gains probes is rebuilt: disabled, then enabled again.
    const app = e.providers.get('app');
    const enabled = app.enabled;
    const added = e.ch.addNamed('app:other');
    assert.deepEqual(added.probes, ['app:other']);
    assert.equal(app.rebuilt, 1);
    assert.equal(app.enabled, enabled + 1);
    added.sources.forEach((s) => s.off());
  } finally {
    e.off();
  }
});

test('presence: the application directory (its main script) and the working directory', () => {
  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-presence-'));
  try {
    fs.writeFileSync(path.join(app, 'main.js'), '');
    assert.deepEqual(applicationDirs(['node', 'main.js'], app), [app]);
    assert.deepEqual(applicationDirs(['node'], app), [app]);
    assert.deepEqual(applicationDirs(['node', path.join(app, 'missing.js')], ROOT), [ROOT]);
    // A working directory that was removed (process.cwd() throws): the main script's only.
    assert.deepEqual(applicationDirs(['node', path.join(app, 'main.js')], null), [app]);
    assert.deepEqual(applicationDirs(['node'], null), []);
    const fromRoot = resolverFrom([ROOT]);
    // graphql's exports map even package.json elsewhere.
    for (const p of ['mysql2', 'ioredis', 'redis', '@redis/client', 'graphql', 'fastify', 'undici']) assert.equal(fromRoot(p), true, p);
    assert.equal(fromRoot('dynprobe-no-such-package'), false);
    assert.equal(resolverFrom([app])('mysql2'), false);
  } finally {
    fs.rmSync(app, { recursive: true, force: true });
  }
});

const noAddon = load().addon === null ? 'the addon is not built (node scripts/build-addon.js)' : null;
const addonGate = gate('channel provider tests', noAddon);

// The providers a process started with -r dynprobe/node maps, by module name.
const MAPPED = `
  const fs = require('node:fs');
  const mods = fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/).slice(5).join(' '))
    .filter((f) => /\\/[0-9a-f]{40}\\/[^/]+$/.test(f)).map((f) => f.split('/').pop());
  console.log(JSON.stringify([...new Set(mods)].sort()));
`;

test('libraries not installed get no provider; installed ones, or named ones, do', { skip: addonGate.skip }, () => {
  const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-bare-'));
  const withModules = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-app-'));
  try {
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(withModules, 'node_modules'), 'dir');
    for (const dir of [bare, withModules]) fs.writeFileSync(path.join(dir, 'app.js'), MAPPED);
    const run = (cwd, env = {}) => {
      const r = spawnSync(process.execPath, ['-r', NODE_JS, 'app.js'], { cwd, encoding: 'utf8', env: { ...process.env, ...env } });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '', 'no warning of any kind');
      return JSON.parse(r.stdout);
    };
    assert.deepEqual(run(bare), ['node', 'undici']);
    assert.deepEqual(run(withModules), ['fastify', 'graphql', 'ioredis', 'mysql2_', 'node', 'node_redis', 'undici']);
    // A bundle without node_modules: naming one of a library's channels brings its provider.
    assert.deepEqual(run(bare, { DYNPROBE_CHANNELS: 'tracing:mysql2:query' }), ['mysql2_', 'node', 'undici']);
    // A channel name refused: said once as a warning, the process unharmed.
    const r = spawnSync(process.execPath, ['-r', NODE_JS, 'app.js'], { cwd: bare, encoding: 'utf8', env: { ...process.env, DYNPROBE_CHANNELS: `${'x'.repeat(60)}:y` } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /DYNPROBE_CHANNEL_REFUSED.*longer than 54 bytes/);
  } finally {
    fs.rmSync(bare, { recursive: true, force: true });
    fs.rmSync(withModules, { recursive: true, force: true });
  }
});

// Every sub-channel of every channel dynprobe/node knows, and the libraries'
// own TracingChannel objects, as their publishers check them.
const UNTRACED = `
  const dc = require('node:diagnostics_channel');
  const { CORE, libraries } = require(${JSON.stringify(path.join(ROOT, 'lib', 'node', 'libraries.js'))});
  const names = [];
  for (const g of [CORE, ...libraries()]) for (const c of g.channels) {
    if (c.tracing) for (const e of ['start', 'end', 'asyncStart', 'asyncEnd', 'error']) names.push('tracing:' + c.tracing + ':' + e);
    else if (c.plain) names.push(c.plain);
    else names.push(...[c.begin, c.done, c.error, c.close, c.status && c.status.channel].filter(Boolean));
  }
  const subscribed = () => names.filter((n) => dc.channel(n).hasSubscribers);
  const node = require(${JSON.stringify(NODE_JS)});
  node.refresh();
  // (before the libraries, which load some of these themselves)
  const modules = process.moduleLoadList.filter((m) => /^NativeModule (perf_hooks|worker_threads)$/.test(m));
  require('mysql2'); require('ioredis'); require('redis'); require('graphql'); require('fastify'); require('undici');
  node.refresh();
  // What mysql2, ioredis, node-redis and graphql check before publishing.
  const publishers = ['mysql2:query', 'ioredis:command', 'node-redis:command', 'graphql:execute', 'fastify.request.handler'];
  console.log(JSON.stringify({
    names: names.length,
    subscribed: subscribed(),
    publishersSee: publishers.some((n) => dc.tracingChannel(n).hasSubscribers !== false),
    modules,
  }));
`;

test('untraced: no channel has a subscriber (publishers see none), and no module is loaded for it', { skip: addonGate.skip }, () => {
  const r = spawnSync(process.execPath, ['-e', UNTRACED], { cwd: ROOT, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  assert.ok(got.names > 60, String(got.names));
  assert.deepEqual({ ...got, names: 0 }, { names: 0, subscribed: [], publishersSee: false, modules: [] });
});

// An in-process subscription (dynprobe.subscribe) wants a channel's probes as
// a tracer does: its source subscribes to the channel at once, the firings
// arrive decoded, and closing it lets the channel go.
const SUBSCRIBED = `
  const dc = require('node:diagnostics_channel');
  const { subscribe } = require(${JSON.stringify(ROOT)});
  require(${JSON.stringify(NODE_JS)});
  const query = dc.tracingChannel('mysql2:query');
  const got = [];
  (async () => {
    const miss = subscribe('mysql2:*', () => got.push('wrong name'));
    const sub = subscribe('mysql2_:query__*', (f) => got.push([f.probe, f.args]));
    await new Promise((r) => setImmediate(r));
    const before = query.hasSubscribers;
    query.traceSync(() => 1, { query: 'SELECT 1' });
    await query.tracePromise(async () => { throw Object.assign(new Error('no table'), { code: 'ER_NO_SUCH_TABLE' }); }, { query: 'SELECT * FROM gone' }).catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    sub.close(); miss.close();
    await new Promise((r) => setImmediate(r));
    console.log(JSON.stringify({ before, after: query.hasSubscribers, got }));
  })();
`;

test('an in-process subscription turns a channel source on, gets its firings decoded, and lets it go', { skip: addonGate.skip }, () => {
  const r = spawnSync(process.execPath, ['-e', SUBSCRIBED], { cwd: ROOT, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  const { before, after, got } = JSON.parse(r.stdout);
  assert.equal(before, true, 'subscribed to mysql2:query while wanted');
  assert.equal(after, false, 'no subscriber once the subscription is closed');
  assert.equal(got.length, 4, JSON.stringify(got));
  const [[p0, [id0, sql0]], [p1, [id1, ns1, sql1]], [p2, [id2]], [p3, [id3, ns3, sql3, code, message]]] = got;
  assert.deepEqual([p0, p1, p2, p3], ['query__start', 'query__done', 'query__start', 'query__error']);
  assert.equal(id0, id1);
  assert.equal(id2, id3);
  assert.notEqual(id0, id2);
  assert.deepEqual([sql0, sql1, sql3, code, message], ['SELECT 1', 'SELECT 1', 'SELECT * FROM gone', 'ER_NO_SUCH_TABLE', 'no table']);
  for (const ns of [ns1, ns3]) assert.ok(typeof ns === 'bigint' || typeof ns === 'number' || typeof ns === 'string', typeof ns);
});

test('README and docs/channels.md list every provider and operation dynprobe knows', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const docs = fs.readFileSync(path.join(ROOT, 'docs', 'channels.md'), 'utf8');
  for (const group of [CORE, ...libraries()]) {
    for (const spec of group.channels) {
      const { provider, probes } = probesOf(spec);
      // The operation: the probes' common base (a plain channel's probe is its own).
      const op = spec.plain ? probes[0].name : probes[0].name.replace(/__start$/, '');
      for (const [file, text] of [['README.md', readme], ['docs/channels.md', docs]]) {
        assert.ok(text.includes(`\`${provider}\``), `${file} names provider ${provider}`);
        assert.ok(new RegExp(`\`${op}[\`(]`).test(text), `${file} names ${provider}:${op}`);
      }
      const channel = spec.tracing ?? spec.plain ?? spec.lifecycle;
      assert.ok(docs.includes(`\`${channel}`), `docs/channels.md names channel ${channel}`);
    }
  }
});
