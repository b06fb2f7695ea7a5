'use strict';
// Tracer cases for channels as probes (lib/node/channels.js), run by
// test/channels-tracers.test.js through the harness: each program performs
// every operation of its libraries against real servers (started by the
// test, their sockets in the environment) and one tracer session reads all
// of its probes. The tracer program itself checks that each __done or
// __error pairs with a __start of the same id (`paired=1`), that durations
// are sane (`sane=1`: more than 0, less than a minute) and that an
// operation meant to take 100 ms or more did (`long=1`); at the end it
// prints how many operations were left open (`open=0`).
//
// Lines are compared as a multiset (each tracer reads per-CPU buffers, so
// two firings close together may print in either order); an expected line
// is a string or a RegExp.

const path = require('node:path');

const NODE_JS = path.join(__dirname, '..', '..', '..', 'node.js');
const LONG_NS = 100000000;
const SANE_NS = 60000000000;

// The tracer programs for operations `ops`, each [provider, op, options]:
//   status   its __done carries a status (arg3)
//   headers  the probe (of the same provider) that reports its status early
//   only     print (and count) only operations whose text starts so
//   plain    not an operation: one probe, `op`, with arguments
//            (id, duration_ns, text) ('timed') or (json message) ('json')
function bpftraceFor(ops) {
  const clauses = ops.flatMap(([provider, op, o = {}]) => {
    const at = (event) => `usdt:*:${provider}:${op === '' ? event : `${op}__${event}`}`;
    const label = `${provider}:${op}`;
    const when = (arg) => (o.only ? `/strncmp(str(${arg}), "${o.only}", ${o.only.length}) == 0/ ` : '');
    if (o.plain === 'json') return [`usdt:*:${provider}:${op} { printf("${label} %s\\n", str(arg0)); }`];
    if (o.plain === 'timed') {
      return [`usdt:*:${provider}:${op} ${when('arg2')}{ printf("${label} %s id=%d sane=%d long=%d\\n", str(arg2), arg0 > 0, arg1 < ${SANE_NS}, arg1 >= ${LONG_NS}); }`];
    }
    const close = 'if (@opened[arg0] == 1) { @pending--; } delete(@opened[arg0]);';
    const status = o.status ? ' status=%d' : '';
    const statusArg = o.status ? ', arg3' : '';
    const out = [
      `${at('start')} ${when('arg1')}{ @opened[arg0] = 1; @pending++; printf("${label} start %s id=%d\\n", str(arg1), arg0 > 0); }`,
      `${at('done')} ${when('arg2')}{ printf("${label} done %s${status} paired=%d sane=%d long=%d\\n", str(arg2)${statusArg}, @opened[arg0], arg1 > 0 && arg1 < ${SANE_NS}, arg1 >= ${LONG_NS}); ${close} }`,
      `${at('error')} ${when('arg2')}{ printf("${label} error %s %s %s paired=%d sane=%d\\n", str(arg2), str(arg3), str(arg4), @opened[arg0], arg1 > 0 && arg1 < ${SANE_NS}); ${close} }`,
    ];
    if (o.headers) {
      out.push(`usdt:*:${provider}:${o.headers} { printf("${label} headers %s status=%d paired=%d sane=%d\\n", str(arg2), arg3, @opened[arg0], arg1 > 0 && arg1 < ${SANE_NS}); }`);
    }
    return out;
  });
  return `${clauses.join('\n')}\nEND { printf("open=%d\\n", @pending); clear(@pending); clear(@opened); }`;
}

function dtraceFor(ops) {
  const clauses = ops.flatMap(([provider, op, o = {}]) => {
    const probe = (name) => `${provider}$target:::${name.replaceAll('__', '-')}`;
    const at = (event) => probe(op === '' ? event : `${op}__${event}`);
    const label = `${provider}:${op}`;
    const when = (arg) => (o.only ? `/substr(copyinstr(${arg}), 0, ${o.only.length}) == "${o.only}"/ ` : '');
    if (o.plain === 'json') return [`${probe(op)} { printf("${label} %s\\n", copyinstr(arg0)); }`];
    if (o.plain === 'timed') {
      return [`${probe(op)} ${when('arg2')}{ printf("${label} %s id=%d sane=%d long=%d\\n", copyinstr(arg2), arg0 > 0, arg1 < ${SANE_NS}, arg1 >= ${LONG_NS}); }`];
    }
    const close = 'pending -= opened[arg0]; opened[arg0] = 0;';
    const status = o.status ? ' status=%d' : '';
    const statusArg = o.status ? ', (int)arg3' : '';
    const out = [
      `${at('start')} ${when('arg1')}{ opened[arg0] = 1; pending++; printf("${label} start %s id=%d\\n", copyinstr(arg1), arg0 > 0); }`,
      `${at('done')} ${when('arg2')}{ printf("${label} done %s${status} paired=%d sane=%d long=%d\\n", copyinstr(arg2)${statusArg}, opened[arg0], arg1 > 0 && arg1 < ${SANE_NS}, arg1 >= ${LONG_NS}); ${close} }`,
      `${at('error')} ${when('arg2')}{ printf("${label} error %s %s %s paired=%d sane=%d\\n", copyinstr(arg2), copyinstr(arg3), copyinstr(arg4), opened[arg0], arg1 > 0 && arg1 < ${SANE_NS}); ${close} }`,
    ];
    if (o.headers) {
      out.push(`${probe(o.headers)} { printf("${label} headers %s status=%d paired=%d sane=%d\\n", copyinstr(arg2), (int)arg3, opened[arg0], arg1 > 0 && arg1 < ${SANE_NS}); }`);
    }
    return out;
  });
  return `int opened[uint64_t]; int pending;\n${clauses.join('\n')}\nEND { printf("open=%d\\n", pending); }`;
}

// Script prelude: waits until a tracer has enabled one probe of each of
// `providers` (the harness says go once the tracer has attached them all),
// then turns dynprobe/node's sources on at once rather than at its next
// semaphore check.
function prelude(providers) {
  return `
    const node = require(${JSON.stringify(NODE_JS)});
    await ready();
    for (const [provider, probe] of ${JSON.stringify(providers)}) {
      const p = node.providerOf(provider);
      if (p === undefined) throw new Error('no provider ' + provider);
      await untilTraced(p[probe]);
    }
    node.refresh();
  `;
}

// Operations: MariaDB through mysql2, Redis through ioredis and node-redis.
const DATABASES_OPS = [
  ['mysql2_', 'query'],
  ['mysql2_', 'execute'],
  ['mysql2_', 'connect'],
  ['mysql2_', 'pool__connect'],
  ['ioredis', 'command'],
  ['ioredis', 'connect'],
  ['ioredis', 'batch'],
  ['node_redis', 'command'],
  ['node_redis', 'connect'],
  ['node_redis', 'batch'],
];

const DATABASES = `
  const env = process.env;
  const mysql = require('mysql2');
  const options = { socketPath: env.DYNPROBE_TEST_MARIADB, user: 'root', database: 'dynprobe' };
  // Before tracing: an empty table (the servers outlive one run).
  const setup = await require('mysql2/promise').createConnection(options);
  await setup.query('DELETE FROM items');
  await setup.end();
  ${prelude([['mysql2_', 'query__start'], ['ioredis', 'command__start'], ['node_redis', 'command__start']])}
  const c = mysql.createConnection(options);
  await new Promise((resolve, reject) => c.connect((err) => (err ? reject(err) : resolve())));
  const query = (sql, values) => new Promise((resolve) => c.query(sql, values, (err) => resolve(err)));
  const execute = (sql, values) => new Promise((resolve) => c.execute(sql, values, (err) => resolve(err)));
  for (let i = 1; i <= 3; i++) await query('INSERT INTO items VALUES (' + i + ", 'n" + i + "')");
  for (let i = 1; i <= 3; i++) await execute('SELECT name FROM items WHERE id = ?', [i]);
  if (!(await query('SELECT * FROM nope'))) throw new Error('a query of a missing table succeeded');
  if (!(await execute('SELECT * FROM nope WHERE id = ?', [1]))) throw new Error('an execute of a missing table succeeded');
  await query('SELECT SLEEP(0.1)');
  // The event-emitter form (published through tracePromise).
  await new Promise((resolve, reject) => c.query('SELECT COUNT(*) FROM items').on('end', resolve).on('error', reject));
  await new Promise((resolve) => c.end(resolve));
  const pool = mysql.createPool(options);
  const pooled = await new Promise((resolve, reject) => pool.getConnection((err, conn) => (err ? reject(err) : resolve(conn))));
  pooled.release();
  await new Promise((resolve) => pool.end(resolve));
  // A server that is not there: connect and pool connect fail.
  const nowhere = { ...options, socketPath: '/nonexistent/mysqld.sock' };
  const lost = mysql.createConnection(nowhere);
  if (!(await new Promise((resolve) => lost.connect(resolve)))) throw new Error('a connection to nowhere succeeded');
  const lostPool = mysql.createPool(nowhere);
  if (!(await new Promise((resolve) => lostPool.getConnection((err) => resolve(err))))) throw new Error('a pool connection to nowhere succeeded');
  await new Promise((resolve) => lostPool.end(resolve));

  const Redis = require('ioredis');
  const io = new Redis({ path: env.DYNPROBE_TEST_REDIS, lazyConnect: true, enableReadyCheck: false });
  await io.connect();
  for (let i = 1; i <= 3; i++) await io.set('io' + i, 'v' + i);
  for (let i = 1; i <= 3; i++) await io.get('io' + i);
  if (!(await io.incr('io1').then(() => null, (err) => err))) throw new Error('INCR of a string succeeded');
  await io.multi().set('io4', 'v4').get('io4').exec();
  if (!(await io.multi().call('NOSUCHCMD').exec().then(() => null, (err) => err))) throw new Error('a MULTI with an unknown command succeeded');
  await io.blpop('nolist', 0.1);
  io.disconnect();
  const ioLost = new Redis({ path: '/nonexistent/redis.sock', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  ioLost.on('error', () => {});
  if (!(await ioLost.connect().then(() => null, (err) => err))) throw new Error('a connection to nowhere succeeded');

  const { createClient } = require('redis');
  const nr = createClient({ socket: { path: env.DYNPROBE_TEST_REDIS } });
  await nr.connect();
  for (let i = 1; i <= 3; i++) await nr.set('nr' + i, 'v' + i);
  for (let i = 1; i <= 3; i++) await nr.get('nr' + i);
  if (!(await nr.incr('nr1').then(() => null, (err) => err))) throw new Error('INCR of a string succeeded');
  await nr.multi().set('nr4', 'v4').get('nr4').exec();
  if (!(await nr.multi().addCommand(['NOSUCHCMD']).exec().then(() => null, (err) => err))) throw new Error('a MULTI with an unknown command succeeded');
  await nr.blPop('nolist', 0.1);
  await nr.close();
  const nrLost = createClient({ socket: { path: '/nonexistent/redis.sock', reconnectStrategy: false } });
  nrLost.on('error', () => {});
  if (!(await nrLost.connect().then(() => null, (err) => err))) throw new Error('a connection to nowhere succeeded');
`;

// Operations: GraphQL, fastify, undici (its package and Node's fetch),
// Node's own channels where this Node publishes them (HTTP/2, module loads,
// listen, spawn, SQLite), channels named by DYNPROBE_CHANNELS and by
// addChannels, and crafted messages on known channels.
const MODULES = '/tmp/dynprobe-mods-';
const WEB_OPS = [
  ['graphql', 'parse'],
  ['graphql', 'validate'],
  ['graphql', 'execute'],
  ['graphql', 'execute__variableCoercion'],
  ['graphql', 'execute__rootSelectionSet'],
  ['graphql', 'resolve'],
  ['graphql', 'subscribe'],
  ['fastify', 'request__handler', { status: true }],
  ['undici', 'request', { status: true, headers: 'request__headers' }],
  ['node', 'http2__server__stream', { status: true }],
  ['node', 'http2__client__stream', { status: true }],
  ['node', 'module__require', { only: MODULES }],
  ['node', 'module__import', { only: 'file://' + MODULES }],
  ['node', 'net__server__listen'],
  ['node', 'child_process__spawn'],
  ['node', 'sqlite__db__query', { plain: 'timed' }],
  ['myapp', 'job'],
  ['myapp', 'api__call'],
  ['myapp', 'cache__miss', { plain: 'json' }],
];
// What the program names: DYNPROBE_CHANNELS, then addChannels.
const WEB_CHANNELS = 'tracing:myapp:job,myapp:cache:miss';
const WEB_ADDED = ['tracing:myapp:api.call'];

const WEB = `
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dc = require('node:diagnostics_channel');
  const major = Number(process.versions.node.split('.')[0]);
  const nodeApi = require(${JSON.stringify(NODE_JS)});
  nodeApi.addChannels(${JSON.stringify(WEB_ADDED)});
  const mods = fs.mkdtempSync(${JSON.stringify(MODULES)});
  for (let i = 1; i <= 2; i++) fs.writeFileSync(path.join(mods, 'm' + i + '.js'), 'module.exports = ' + i + ';');
  fs.writeFileSync(path.join(mods, 'e.mjs'), 'export default 1;');
  ${prelude([['graphql', 'execute__start'], ['fastify', 'request__handler__start'], ['undici', 'request__start'], ['node', 'module__require__start'], ['myapp', 'job__start']])}
  try {
    // GraphQL: a named query three times, a slow one, one whose resolver fails, a syntax error.
    const g = require('graphql');
    const User = new g.GraphQLObjectType({ name: 'User', fields: { name: { type: g.GraphQLString } } });
    const schema = new g.GraphQLSchema({ query: new g.GraphQLObjectType({ name: 'Query', fields: {
      user: { type: User, args: { id: { type: g.GraphQLID } }, resolve: (_, a) => ({ name: 'u' + a.id }) },
      slow: { type: g.GraphQLString, resolve: () => new Promise((r) => setTimeout(() => r('z'), 120)) },
      fail: { type: g.GraphQLString, resolve: () => { throw new Error('resolver failed'); } },
    } }), subscription: new g.GraphQLObjectType({ name: 'Subscription', fields: {
      tick: { type: g.GraphQLString, subscribe: async function* () { yield { tick: 't' }; }, resolve: (x) => x.tick },
    } }) });
    for (let i = 1; i <= 3; i++) await g.graphql({ schema, source: '{ user(id: ' + i + ') { name } }' });
    await g.graphql({ schema, source: 'query Slow { slow }' });
    await g.graphql({ schema, source: 'query Failing { fail }' });
    await g.graphql({ schema, source: '{ user(' });
    const ticks = await g.subscribe({ schema, document: g.parse('subscription Ticks { tick }') });
    for await (const t of ticks) if (t.errors) throw new Error(String(t.errors));
    // A schema with no query type: validate throws.
    try { g.validate(new g.GraphQLSchema({}), g.parse('{ a }')); } catch {}

    // fastify, driven by undici's request() and by fetch().
    const app = require('fastify')();
    app.get('/users/:id', (req, reply) => { reply.send({ id: req.params.id }); });
    app.get('/slow', async () => { await new Promise((r) => setTimeout(r, 120)); return 'slow'; });
    app.get('/boom', async () => { const e = new Error('handler failed'); e.code = 'E_BOOM'; throw e; });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = 'http://127.0.0.1:' + app.server.address().port;
    const undici = require('undici');
    for (let i = 1; i <= 3; i++) await (await undici.request(base + '/users/' + i)).body.text();
    await (await undici.request(base + '/slow')).body.text();
    await (await undici.request(base + '/boom')).body.text();
    await (await fetch(base + '/users/9')).text();
    await app.close();
    const closed = require('node:net').createServer();
    await new Promise((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = closed.address().port;
    await new Promise((r) => closed.close(r));
    await undici.request('http://127.0.0.1:' + closedPort + '/none').catch(() => {});

    // A second listen on a port in use fails.
    const held = require('node:net').createServer();
    await new Promise((r) => held.listen(0, '127.0.0.1', r));
    const twice = require('node:net').createServer();
    await new Promise((r) => { twice.on('error', r); twice.listen(held.address().port, '127.0.0.1'); });
    await new Promise((r) => held.close(r));

    // HTTP/2: three GETs, a POST, and a stream the client cancels.
    const http2 = require('node:http2');
    const h2 = http2.createServer((req, res) => {
      if (req.url === '/h2/cancel') { res.writeHead(200); res.write('x'); return; }
      res.statusCode = req.method === 'POST' ? 201 : 200;
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    await new Promise((r) => h2.listen(0, '127.0.0.1', r));
    const session = http2.connect('http://127.0.0.1:' + h2.address().port);
    const h2req = (p, method = 'GET') => new Promise((resolve, reject) => {
      const s = session.request({ ':path': p, ':method': method });
      s.on('error', reject);
      s.resume();
      s.on('end', resolve);
      s.end(method === 'POST' ? 'body' : undefined);
    });
    for (let i = 1; i <= 3; i++) await h2req('/h2/' + i);
    await h2req('/h2/post', 'POST');
    await new Promise((resolve) => {
      const s = session.request({ ':path': '/h2/cancel' });
      s.on('error', () => {});
      s.once('data', () => s.close(http2.constants.NGHTTP2_CANCEL));
      s.on('close', () => setTimeout(resolve, 50));
      s.end();
    });
    session.close();
    await new Promise((r) => h2.close(r));

    // Module loads: two files, one missing, one ES module.
    require(path.join(mods, 'm1.js'));
    require(path.join(mods, 'm2.js'));
    try { require(path.join(mods, 'missing.js')); } catch {}
    await import(require('node:url').pathToFileURL(path.join(mods, 'e.mjs')).href);
    await import(require('node:url').pathToFileURL(path.join(mods, 'missing.mjs')).href).catch(() => {});

    // Child processes: two that run, one that cannot. (Not under DTrace: the
    // children of a process it holds (-p) may stay stopped until it lets go,
    // and spawn() waits for the child's exec: one spawn was seen to block
    // 58 s under load. Waiting for 'spawn', not 'exit', for the same reason.)
    if (!process.env.DYNPROBE_CASE_NO_SPAWN) {
      const { spawn } = require('node:child_process');
      for (const arg of ['a', 'b']) await new Promise((r) => spawn('true', [arg], { stdio: 'ignore' }).on('spawn', r));
      await new Promise((r) => spawn('/nonexistent/dynprobe').on('error', r));
    }

    if (major >= 24) {
      const { DatabaseSync } = require('node:sqlite');
      const db = new DatabaseSync(':memory:');
      db.exec('CREATE TABLE t (a)');
      for (let i = 1; i <= 2; i++) db.prepare('INSERT INTO t VALUES (?)').run(i);
      db.prepare('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT COUNT(*) FROM c').get();
      db.close();
    }

    // Channels named by DYNPROBE_CHANNELS and addChannels.
    const job = dc.tracingChannel('myapp:job');
    for (const n of [1, 2]) await job.tracePromise(async () => n, { name: 'nightly', n, nested: { x: 1 } });
    await job.tracePromise(async () => { const e = new Error('job failed'); e.code = 'E_JOB'; throw e; }, { name: 'broken' }).catch(() => {});
    dc.tracingChannel('myapp:api.call').traceSync(() => 1, { path: '/v1' });
    dc.channel('myapp:cache:miss').publish({ key: 'k1', size: 12, ok: true, none: null, obj: {} });

    // Crafted messages: fields missing or of other types, getters that throw.
    const throwing = new Proxy({}, { get() { throw new Error('boom'); } });
    dc.tracingChannel('fastify.request.handler').traceSync(() => {}, { route: 7, request: null, reply: { raw: { statusCode: 'x' } } });
    dc.tracingChannel('fastify.request.handler').traceSync(() => {}, throwing);
    try { dc.tracingChannel('graphql:execute').traceSync(() => { throw 'not an error'; }, { operationType: 5 }); } catch {}
    const request = {};
    dc.channel('undici:request:create').publish({ request });
    dc.channel('undici:request:headers').publish({ request, response: null });
    dc.channel('undici:request:trailers').publish({ request });
    dc.channel('undici:request:create').publish({ request: 5 });
    dc.channel('sqlite.db.query').publish({ sql: 5, duration: 'x' });
  } finally {
    fs.rmSync(mods, { recursive: true, force: true });
  }
`;

module.exports = { bpftraceFor, dtraceFor, prelude, DATABASES, DATABASES_OPS, WEB, WEB_OPS, WEB_CHANNELS, WEB_ADDED, MODULES, NODE_JS };
