#!/usr/bin/env node
'use strict';
// A small HTTP service instrumented with dynprobe (node:http only).
//
//   provider demoapp
//     request-start(method, route, id)
//     request-done(method, route, status, latency_us, id)
//
// `node demo/server.js [--port N]` listens on 127.0.0.1 (a free port by
// default) and prints `demoapp listening on http://127.0.0.1:PORT (pid PID)`.
// Some routes are slow on purpose: a tracer shows which.

const http = require('node:http');
const dynprobe = require('..');

const provider = dynprobe.createDTraceProvider('demoapp');
const requestStart = provider.addProbe('request-start', 'char *', 'char *', 'int');
const requestDone = provider.addProbe('request-done', 'char *', 'char *', 'int', 'int', 'int');
provider.enable();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const between = (lo, hi) => lo + Math.random() * (hi - lo);

// method, path pattern, route name (what the probes report), handler
const ROUTES = [
  ['GET', /^\/$/, '/', async () => [200, 'hello\n']],
  ['GET', /^\/api\/users\/\d+$/, '/api/users/:id', async () => {
    await sleep(between(0.5, 3)); // a cache lookup
    return [200, JSON.stringify({ name: 'ada' })];
  }],
  ['GET', /^\/api\/search$/, '/api/search', async () => {
    await sleep(between(5, 60)); // a query
    return [200, '[]'];
  }],
  ['POST', /^\/api\/orders$/, '/api/orders', async (body) => {
    await sleep(between(10, 30));
    return [201, JSON.stringify({ ok: true, bytes: body.length })];
  }],
  ['GET', /^\/api\/report$/, '/api/report', async () => {
    // Slow, and sometimes fails.
    await sleep(Math.random() < 0.2 ? between(250, 450) : between(60, 160));
    return Math.random() < 0.1 ? [500, 'report backend timed out\n'] : [200, 'report\n'];
  }],
];
const NOT_FOUND = async () => [404, 'not found\n'];

function route(method, url) {
  const pathname = url.split('?')[0];
  const hit = ROUTES.find(([m, re]) => m === method && re.test(pathname));
  return hit ? { name: hit[2], handler: hit[3] } : { name: '(none)', handler: NOT_FOUND };
}

let nextId = 0;

const server = http.createServer((req, res) => {
  const started = process.hrtime.bigint();
  const id = ++nextId;
  const { name, handler } = route(req.method, req.url);
  requestStart.fire(() => [req.method, name, id]);
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const [status, body] = await handler(Buffer.concat(chunks));
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(body);
    const latencyUs = Number((process.hrtime.bigint() - started) / 1000n);
    requestDone.fire(() => [req.method, name, status, latencyUs, id]);
  });
});

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`demoapp listening on http://127.0.0.1:${server.address().port} (pid ${process.pid})\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
