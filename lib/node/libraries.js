'use strict';
// The channels dynprobe/node knows, grouped by what publishes them: Node
// itself (provider `node`) and the libraries on npm that publish
// TracingChannels, each with the text its probes carry (docs/channels.md).
// Provider and probe names come from the channel names (naming.js).
//
// A channel is one of:
//   { tracing: NAME, text(ctx) }  a TracingChannel; optionally
//       status(ctx)   an int32 `status` after the text of __done (at the end)
//       settled(ctx)  at `end`: whether the operation is over (by default,
//                     when the context holds its `result` or `error`); if
//                     not, it is over at `asyncEnd`
//       key(ctx)      the object that stands for the operation, when its
//                     events do not share one context object (default: ctx)
//       begin         'asyncStart' when the operation's first event is that
//       errorEnds     the operation is over at `error` (nothing follows it)
//   { lifecycle: NAME, key(msg), begin, done, error, close, status, text(msg) }
//       plain channels around one operation on one object (a request, a
//       stream), probed as the TracingChannel NAME would be: `begin` starts
//       it, `done` or `error` ends it; `close` ends it too if it is still
//       open (cleanly, or with the stream's reset code as its error);
//       `status: { channel, read(msg), probe }` reads the int32 status there
//       and, with `probe`, fires that channel's own probe
//   { plain: NAME, args, values(msg, op) }  one probe for a plain channel
//
// Groups whose `packages` are given exist only where one of them can be
// resolved from the application (presence.js).
//
// Text functions read the messages as the published versions pass them; a
// field that is missing or of another type reads as '' or 0 (values.js), and
// a function that throws leaves the text empty (channels.js).

const v = require('./values');

const NO_STATUS = 0;

// `address[:port]`, as the libraries give their server.
function server(ctx) {
  const address = v.text(ctx.serverAddress);
  const port = ctx.serverPort;
  return typeof port === 'number' && Number.isFinite(port) ? `${address}:${port}` : address;
}

// `server/database` when there is a database.
function serverAndDatabase(ctx) {
  const db = v.text(ctx.database);
  return db === '' ? server(ctx) : `${server(ctx)}/${db}`;
}

const sql = (ctx) => v.bounded(ctx.query);

// A Redis command's name, upper case; with the operator's consent
// (DYNPROBE_REDIS_ARGS=1) followed by the arguments the library publishes,
// which it has already reduced (values of writes are `?`).
function redisCommand(withArgs, nameFirst) {
  return (ctx) => {
    const name = v.text(ctx.command).toUpperCase();
    if (!withArgs || !Array.isArray(ctx.args)) return name;
    const args = nameFirst ? ctx.args.slice(1) : ctx.args;
    return v.bounded([name, ...args.map((a) => (typeof a === 'string' ? a : String(a)))].join(' '));
  };
}

const batch = (ctx) => {
  const size = ctx.batchSize;
  return `${v.text(ctx.batchMode)} ${typeof size === 'number' ? size : 0}`;
};

// `query GetUser`, `mutation` (anonymous).
function operation(type, name) {
  const t = v.text(type);
  const n = v.text(name);
  return n === '' ? t : `${t} ${n}`;
}
const graphqlOperation = (ctx) => operation(ctx.operationType, ctx.operationName);

// The document's operations, `query A, mutation B`.
function documentOperations(ctx) {
  const defs = ctx.document && ctx.document.definitions;
  if (!Array.isArray(defs)) return '';
  const ops = [];
  for (const d of defs) {
    if (d && d.kind === 'OperationDefinition') ops.push(operation(d.operation, d.name && d.name.value));
  }
  return v.bounded(ops.join(', '));
}

function graphqlSource(ctx) {
  const source = ctx.source;
  return v.bounded(typeof source === 'string' ? source : source && source.body);
}

const graphqlField = (ctx) => `${v.text(ctx.parentType)}.${v.text(ctx.fieldName)}`;

// fastify: `GET /users/:id`, the route's pattern.
function fastifyRoute(ctx) {
  const raw = ctx.request && ctx.request.raw;
  const route = ctx.route || {};
  const method = v.text(raw && raw.method) || v.text(route.method);
  return `${method} ${v.text(route.url)}`;
}

function fastifyStatus(ctx) {
  const raw = ctx.reply && ctx.reply.raw;
  return v.int32(raw && raw.statusCode, NO_STATUS);
}

function undiciRequest(msg) {
  const r = msg.request || {};
  const path = v.text(r.path);
  let origin = r.origin === undefined || r.origin === null ? '' : String(r.origin);
  // (an origin given as a URL object reads with a final slash)
  if (origin.endsWith('/') && path.startsWith('/')) origin = origin.slice(0, -1);
  return v.bounded(`${v.text(r.method)} ${origin}${path}`);
}

function headerOf(msg, name) {
  const h = msg.headers;
  return h && typeof h === 'object' ? h[name] : undefined;
}

const http2Server = (msg) => v.bounded(`${v.text(headerOf(msg, ':method'))} ${v.text(headerOf(msg, ':path'))}`);
function http2Client(msg) {
  const scheme = v.text(headerOf(msg, ':scheme'));
  const authority = v.text(headerOf(msg, ':authority'));
  return v.bounded(`${v.text(headerOf(msg, ':method'))} ${scheme === '' ? '' : `${scheme}://`}${authority}${v.text(headerOf(msg, ':path'))}`);
}
const http2Status = (msg) => v.int32(Number(headerOf(msg, ':status')), NO_STATUS);

function listenAddress(ctx) {
  const o = ctx.options;
  if (!o || typeof o !== 'object') return '';
  if (typeof o.path === 'string') return o.path;
  const port = typeof o.port === 'number' || typeof o.port === 'string' ? o.port : '';
  return `${v.text(o.host)}:${port}`;
}

function spawnCommand(ctx) {
  const o = ctx.options;
  if (!o || typeof o !== 'object') return '';
  return v.bounded(Array.isArray(o.args) ? o.args.map(v.text).join(' ') : v.text(o.file));
}

// Node's own channels (provider `node`): which Node releases publish them
// is in docs/channels.md. An HTTP/2 stream's operation runs from its start
// to its close: Node publishes `finish` when the response's headers are
// sent (server) or received (client), whose :status the __done carries.
const CORE = {
  core: true,
  channels: [
    {
      lifecycle: 'http2.server.stream',
      key: (msg) => msg.stream,
      begin: 'http2.server.stream.start',
      error: 'http2.server.stream.error',
      close: 'http2.server.stream.close',
      status: { channel: 'http2.server.stream.finish', read: http2Status },
      text: http2Server,
    },
    {
      lifecycle: 'http2.client.stream',
      key: (msg) => msg.stream,
      begin: 'http2.client.stream.start',
      error: 'http2.client.stream.error',
      close: 'http2.client.stream.close',
      status: { channel: 'http2.client.stream.finish', read: http2Status },
      text: http2Client,
    },
    { tracing: 'module.require', text: (ctx) => v.bounded(ctx.id) },
    { tracing: 'module.import', text: (ctx) => v.bounded(ctx.url) },
    { tracing: 'net.server.listen', key: (ctx) => ctx.server, begin: 'asyncStart', errorEnds: true, text: listenAddress },
    { tracing: 'child_process.spawn', key: (ctx) => ctx.process, settled: () => true, errorEnds: true, text: spawnCommand },
    {
      plain: 'sqlite.db.query',
      args: [['id', 'uint64_t'], ['duration_ns', 'uint64_t'], ['text', 'char *']],
      values: (msg, op) => [op.nextId(), Math.max(0, Number(msg.duration) || 0), v.bounded(msg.sql)],
    },
  ],
};

function libraries({ redisArgs = false } = {}) {
  return [
    {
      packages: ['mysql2'],
      channels: [
        { tracing: 'mysql2:query', text: sql },
        { tracing: 'mysql2:execute', text: sql },
        { tracing: 'mysql2:connect', text: serverAndDatabase },
        { tracing: 'mysql2:pool:connect', text: serverAndDatabase },
      ],
    },
    {
      packages: ['ioredis'],
      channels: [
        { tracing: 'ioredis:command', text: redisCommand(redisArgs, false) },
        { tracing: 'ioredis:connect', text: server },
        { tracing: 'ioredis:batch', text: batch },
      ],
    },
    {
      packages: ['@redis/client', 'redis'],
      channels: [
        { tracing: 'node-redis:command', text: redisCommand(redisArgs, true) },
        { tracing: 'node-redis:connect', text: server },
        { tracing: 'node-redis:batch', text: batch },
      ],
    },
    {
      packages: ['graphql'],
      channels: [
        { tracing: 'graphql:parse', text: graphqlSource },
        { tracing: 'graphql:validate', text: documentOperations },
        { tracing: 'graphql:execute', text: graphqlOperation },
        { tracing: 'graphql:execute:variableCoercion', text: graphqlOperation },
        { tracing: 'graphql:execute:rootSelectionSet', text: graphqlOperation },
        { tracing: 'graphql:subscribe', text: graphqlOperation },
        { tracing: 'graphql:resolve', text: graphqlField },
      ],
    },
    {
      packages: ['fastify'],
      channels: [
        // A synchronous handler's operation ends at `end`; fastify marks an
        // asynchronous one (`async: true`), which ends at `asyncEnd`.
        { tracing: 'fastify.request.handler', text: fastifyRoute, status: fastifyStatus, settled: (ctx) => ctx.async !== true },
      ],
    },
    {
      // Every Node has undici: its fetch().
      packages: null,
      channels: [
        {
          lifecycle: 'undici:request',
          key: (msg) => msg.request,
          begin: 'undici:request:create',
          done: 'undici:request:trailers',
          error: 'undici:request:error',
          status: { channel: 'undici:request:headers', read: (msg) => v.int32(msg.response && msg.response.statusCode, NO_STATUS), probe: true },
          text: undiciRequest,
        },
      ],
    },
  ];
}

// HTTP/2 stream reset codes (RFC 9113, section 7) by Node's constant names.
const HTTP2_CODES = [
  'NGHTTP2_NO_ERROR',
  'NGHTTP2_PROTOCOL_ERROR',
  'NGHTTP2_INTERNAL_ERROR',
  'NGHTTP2_FLOW_CONTROL_ERROR',
  'NGHTTP2_SETTINGS_TIMEOUT',
  'NGHTTP2_STREAM_CLOSED',
  'NGHTTP2_FRAME_SIZE_ERROR',
  'NGHTTP2_REFUSED_STREAM',
  'NGHTTP2_CANCEL',
  'NGHTTP2_COMPRESSION_ERROR',
  'NGHTTP2_CONNECT_ERROR',
  'NGHTTP2_ENHANCE_YOUR_CALM',
  'NGHTTP2_INADEQUATE_SECURITY',
  'NGHTTP2_HTTP_1_1_REQUIRED',
];

module.exports = { CORE, libraries, HTTP2_CODES };
