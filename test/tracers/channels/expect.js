'use strict';
// What the tracer programs of cases.js print for their programs' operations,
// and a comparison of printed lines with them as multisets.
//
// An expected line is a string in which `{PORT}` stands for a port number
// and `{MODS}` for the program's temporary module directory; a line's
// `long=` is asserted only for operations meant to take 100 ms or more (a
// quick one may take longer on a loaded machine).

const { MODULES } = require('./cases');

// Lines for one operation of `label` (`provider:op`) whose text is `text`.
function op(label, text, { long = false, status, error, headers } = {}) {
  const st = status === undefined ? '' : ` status=${status}`;
  const lines = [`${label} start ${text} id=1`];
  if (headers !== undefined) lines.push(`${label} headers ${text} status=${headers} paired=1 sane=1`);
  if (error !== undefined) lines.push(`${label} error ${text} ${error} paired=1 sane=1`);
  else lines.push(`${label} done ${text}${st} paired=1 sane=1 long=${long ? '1' : '{LONG}'}`);
  return lines;
}
const times = (n, lines) => Array.from({ length: n }, () => lines).flat();

function databases({ mariadb, redis }) {
  const m = 'mysql2_';
  const server = `${mariadb}/dynprobe`;
  const missing = "ER_NO_SUCH_TABLE Table 'dynprobe.nope' doesn't exist";
  const notInteger = 'ERR value is not an integer or out of range';
  const unknown = "ERR unknown command 'NOSUCHCMD', with args beginning with: ";
  const execAbort = 'EXECABORT Transaction discarded because of previous errors.';
  const nowhere = (server) => `/nonexistent/${server}.sock`;
  return [
    ...op(`${m}:connect`, server),
    ...[1, 2, 3].flatMap((i) => op(`${m}:query`, `INSERT INTO items VALUES (${i}, 'n${i}')`)),
    ...times(3, op(`${m}:execute`, 'SELECT name FROM items WHERE id = ?')),
    ...op(`${m}:query`, 'SELECT * FROM nope', { error: missing }),
    ...op(`${m}:execute`, 'SELECT * FROM nope WHERE id = ?', { error: missing }),
    ...op(`${m}:query`, 'SELECT SLEEP(0.1)', { long: true }),
    ...op(`${m}:query`, 'SELECT COUNT(*) FROM items'),
    ...op(`${m}:pool__connect`, server),
    ...op(`${m}:connect`, server),
    ...op(`${m}:connect`, `${nowhere('mysqld')}/dynprobe`, { error: `ENOENT connect ENOENT ${nowhere('mysqld')}` }),
    ...op(`${m}:pool__connect`, `${nowhere('mysqld')}/dynprobe`, { error: `ENOENT connect ENOENT ${nowhere('mysqld')}` }),
    ...op(`${m}:connect`, `${nowhere('mysqld')}/dynprobe`, { error: `ENOENT connect ENOENT ${nowhere('mysqld')}` }),

    ...op('ioredis:connect', redis),
    // ioredis's own commands at connect: HELLO, then CLIENT SETINFO twice and
    // CLIENT MAINT_NOTIFICATIONS, which Redis 7.0 refuses (7.2 and later
    // accept SETINFO).
    ...op('ioredis:command', 'HELLO'),
    ...times(3, ['ioredis:command start CLIENT id=1', '{CLIENT}']),
    ...times(3, op('ioredis:command', 'SET')),
    ...times(3, op('ioredis:command', 'GET')),
    ...op('ioredis:command', 'INCR', { error: `ReplyError ${notInteger}` }),
    ...op('ioredis:batch', 'MULTI 2'),
    ...['MULTI', 'SET', 'GET', 'EXEC'].flatMap((c) => op('ioredis:command', c)),
    // A MULTI with an unknown command: Redis discards it at EXEC.
    ...op('ioredis:batch', 'MULTI 1', { error: `ReplyError ${execAbort}` }),
    ...op('ioredis:command', 'MULTI'),
    ...op('ioredis:command', 'NOSUCHCMD', { error: `ReplyError ${unknown}` }),
    ...op('ioredis:command', 'EXEC', { error: `ReplyError ${execAbort}` }),
    ...op('ioredis:command', 'BLPOP', { long: true }),
    ...op('ioredis:connect', nowhere('redis'), { error: 'Error Connection is closed.' }),

    ...op('node_redis:connect', redis),
    ...times(3, op('node_redis:command', 'SET')),
    ...times(3, op('node_redis:command', 'GET')),
    ...op('node_redis:command', 'INCR', { error: `Error ${notInteger}` }),
    // node-redis traces a MULTI as its batch only.
    ...op('node_redis:batch', 'MULTI 2'),
    ...op('node_redis:batch', 'MULTI 1', { error: `Error ${unknown}` }),
    ...op('node_redis:command', 'BLPOP', { long: true }),
    ...op('node_redis:connect', nowhere('redis'), { error: `ENOENT connect ENOENT ${nowhere('redis')}` }),
    'open=0',
  ];
}

// Which of Node's channels each Node major publishes (see docs/channels.md).
function coreChannels(major) {
  return {
    listen: major >= 20,
    http2: major >= 22,
    modules: major >= 22,
    spawn: major >= 24,
    sqlite: major >= 24,
  };
}

function web(major, { spawn = true } = {}) {
  const core = coreChannels(major);
  core.spawn = core.spawn && spawn;
  const g = 'graphql';
  const query = (source, operation, fields, { long = false, failing } = {}) => [
    ...op(`${g}:parse`, source),
    ...op(`${g}:validate`, operation),
    ...op(`${g}:execute`, operation, { long }),
    ...op(`${g}:execute__variableCoercion`, operation),
    ...op(`${g}:execute__rootSelectionSet`, operation, { long }),
    ...fields.flatMap((f) => op(`${g}:resolve`, f, f === failing ? { error: 'Error resolver failed' } : { long })),
  ];
  const url = (p) => `GET http://127.0.0.1:{PORT}${p}`;
  const request = (p, route, { status = 200, long = false, error } = {}) => [
    ...op('undici:request', url(p), { status, headers: status, long }),
    ...op('fastify:request__handler', `GET ${route}`, error ? { error } : { status, long }),
  ];
  const h2 = (method, p, status) => [
    ...op('node:http2__client__stream', `${method} http://127.0.0.1:{PORT}${p}`, { status }),
    ...op('node:http2__server__stream', `${method} ${p}`, { status }),
  ];
  return [
    ...[1, 2, 3].flatMap((i) => query(`{ user(id: ${i}) { name } }`, 'query', ['Query.user', 'User.name'])),
    ...query('query Slow { slow }', 'query Slow', ['Query.slow'], { long: true }),
    ...query('query Failing { fail }', 'query Failing', ['Query.fail'], { failing: 'Query.fail' }),
    ...op(`${g}:parse`, '{ user(', { error: 'GraphQLError Syntax Error: Expected Name, found <EOF>.' }),
    // A subscription: subscribe, then its event's execution.
    ...op(`${g}:parse`, 'subscription Ticks { tick }'),
    ...op(`${g}:subscribe`, 'subscription Ticks'),
    ...op(`${g}:execute__variableCoercion`, 'subscription Ticks'),
    ...op(`${g}:execute__rootSelectionSet`, 'subscription Ticks'),
    ...op(`${g}:resolve`, 'Subscription.tick'),
    // validate() with a schema that has no query type throws.
    ...op(`${g}:parse`, '{ a }'),
    ...op(`${g}:validate`, 'query', { error: 'Error Query root type must be provided.' }),

    ...[1, 2, 3].flatMap((i) => request(`/users/${i}`, '/users/:id')),
    ...request('/slow', '/slow', { long: true }),
    ...request('/boom', '/boom', { status: 500, error: 'E_BOOM handler failed' }),
    ...request('/users/9', '/users/:id'),
    ...op('undici:request', url('/none'), { error: 'ECONNREFUSED connect ECONNREFUSED 127.0.0.1:{PORT}' }),
    // A crafted request: no method, origin nor path; no response.
    ...op('undici:request', ' ', { status: 0, headers: 0 }),

    // fastify, the server that is closed at once, the one held, HTTP/2's.
    ...(core.listen
      ? [
          ...times(4, op('node:net__server__listen', '127.0.0.1:0')),
          ...op('node:net__server__listen', '127.0.0.1:{PORT}', { error: 'EADDRINUSE listen EADDRINUSE: address already in use 127.0.0.1:{PORT}' }),
        ]
      : []),
    ...(core.http2
      ? [
          ...[1, 2, 3].flatMap((i) => h2('GET', `/h2/${i}`, 200)),
          ...h2('POST', '/h2/post', 201),
          ...op('node:http2__client__stream', 'GET http://127.0.0.1:{PORT}/h2/cancel', { error: 'NGHTTP2_CANCEL stream closed with code 8' }),
          ...op('node:http2__server__stream', 'GET /h2/cancel', { error: 'NGHTTP2_CANCEL stream closed with code 8' }),
        ]
      : []),
    ...(core.modules
      ? [
          ...op('node:module__require', '{MODS}/m1.js'),
          ...op('node:module__require', '{MODS}/m2.js'),
          ...op('node:module__require', '{MODS}/missing.js', { error: "MODULE_NOT_FOUND Cannot find module '{MODS}/missing.js'" }),
          ...op('node:module__import', 'file://{MODS}/e.mjs'),
          // (bpftrace's strings stop at 63 bytes: the message's end is not compared)
          ...op('node:module__import', 'file://{MODS}/missing.mjs', { error: "ERR_MODULE_NOT_FOUND Cannot find module '{MODS}/missing.mjs'{ANY}" }),
        ]
      : []),
    ...(core.spawn
      ? [
          ...op('node:child_process__spawn', 'true a'),
          ...op('node:child_process__spawn', 'true b'),
          ...op('node:child_process__spawn', '/nonexistent/dynprobe', { error: 'ENOENT spawn ENOENT' }),
        ]
      : []),
    ...(core.sqlite
      ? [
          'node:sqlite__db__query CREATE TABLE t (a) id=1 sane=1 long={LONG}',
          'node:sqlite__db__query INSERT INTO t VALUES (1.0) id=1 sane=1 long={LONG}',
          'node:sqlite__db__query INSERT INTO t VALUES (2.0) id=1 sane=1 long={LONG}',
          // (bpftrace's strings stop at 63 bytes)
          '{SQLITE_SLOW} id=1 sane=1 long=1',
        ]
      : []),
    // A crafted message, on every Node: no SQL, a duration that is not a number.
    'node:sqlite__db__query  id=1 sane=1 long=0',

    ...op('myapp:job', '{"name":"nightly","n":1}'),
    ...op('myapp:job', '{"name":"nightly","n":2}'),
    ...op('myapp:job', '{"name":"broken"}', { error: 'E_JOB job failed' }),
    ...op('myapp:api__call', '{"path":"/v1"}'),
    'myapp:cache__miss {"key":"k1","size":12,"ok":true,"none":null}',

    // Crafted messages on known channels: defined values, never a throw.
    ...op('fastify:request__handler', ' ', { status: 0 }),
    ...op('fastify:request__handler', '', { status: 0 }),
    ...op('graphql:execute', '', { error: ' ' }),
    'open=0',
  ];
}

const TOKENS = {
  '{PORT}': '\\d+',
  '{MODS}': `${MODULES}[A-Za-z0-9]+`,
  '{LONG}': '[01]',
  '{ANY}': '.*',
  '{CLIENT}': "ioredis:command (done CLIENT paired=1 sane=1 long=[01]|error CLIENT ReplyError ERR .* paired=1 sane=1)",
  '{SQLITE_SLOW}': 'node:sqlite__db__query WITH RECURSIVE c\\(x\\) AS \\(SELECT 1 UNION ALL SELECT x \\+ 1 FROM c.*',
};

function pattern(line) {
  let re = line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const [token, value] of Object.entries(TOKENS)) re = re.replaceAll(token.replace(/[{}]/g, '\\$&'), value);
  return new RegExp(`^${re}$`);
}

// Compares printed lines with expected ones as multisets: null when they
// match, else what is missing and what is extra.
function compare(lines, expected) {
  const left = [...lines];
  const missing = [];
  for (const e of expected) {
    const re = pattern(e);
    const i = left.findIndex((l) => re.test(l));
    if (i < 0) missing.push(e);
    else left.splice(i, 1);
  }
  if (missing.length === 0 && left.length === 0) return null;
  return `missing (${missing.length}):\n  ${missing.join('\n  ')}\nunexpected (${left.length}):\n  ${left.join('\n  ')}`;
}

module.exports = { databases, web, coreChannels, compare, pattern };
