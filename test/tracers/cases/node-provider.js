'use strict';
// Cases for the `node` provider (dynprobe/node): Node 18's one-liners,
// unchanged, against a real HTTP server driven by a real client; the struct
// pointers; GC under a forced gc(); the probes Node 18 never had; workers.
// The program preloads dynprobe/node with -r, as an application would.

const path = require('node:path');

const NODE_JS = path.join(__dirname, '..', '..', '..', 'node.js');
const PRELOAD = ['-r', NODE_JS];
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

// Script prelude: waits until a tracer has `probe` enabled and dynprobe/node
// has seen it (its timer reads the semaphores four times a second), and a
// server that answers every request with 200 (or destroys the socket for
// /boom), listening on 127.0.0.1.
const PRELUDE = `
  const http = require('node:http');
  const node = require(${JSON.stringify(NODE_JS)});
  const traced = async (probe) => { await untilTraced(node.probes[probe]); await sleep(700); };
  const listen = () => new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      // The probes read the peer without leaving it cached on the socket
      // (socket.remoteAddress would), which the program could see.
      if (req.socket._peername !== undefined) { console.error('the peer name was cached on the socket'); process.exit(3); }
      if (req.url === '/boom') { req.socket.destroy(); return; }
      req.resume();
      req.on('end', () => res.end('ok\\n'));
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
  const get = (port, p, options = {}) => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, agent: false, ...options }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(options.body);
  });
`;

const SERVER_REQUESTS = `${PRELUDE}
  await ready();
  await traced('http__server__request');
  const server = await listen();
  const port = server.address().port;
  await get(port, '/one');
  await get(port, '/two?x=1', { method: 'POST', body: 'hi', headers: { 'x-forwarded-for': '203.0.113.9' } });
  if (process.env.DYNPROBE_LONG_REQUEST) {
    // Past the byte-by-byte copy: a long URL, a header that is not ASCII.
    await get(port, '/' + 'x'.repeat(100), { headers: { 'x-forwarded-for': 'caf\u00e9' } });
  }
  server.close();
`;

// Node 18's structs. bpftrace reads them by offset (the harness puts its
// BEGIN first, and bpftrace takes struct definitions only before any
// probe); D declares them.
//   connection { int32 fd @0; int32 port @4; char *remote @8; int32 buffered @16 }
//   server request { uint32 version @0 (8-byte union); char *url @8; char *method @16; char *forwardedFor @24 }
//   client request { char *url @0; char *method @8 }
const D_STRUCTS = `
  struct node_conn { int fd; int port; uintptr_t remote; int buffered; };
  struct node_server_req { uint32_t version; uint32_t unused; uintptr_t url; uintptr_t method; uintptr_t forwardedFor; };
  struct node_client_req { uintptr_t url; uintptr_t method; };`;

module.exports = [
  {
    name: 'node provider: the old one-liners, unchanged, see a real server',
    nodeArgs: PRELOAD,
    node: SERVER_REQUESTS,
    bpftrace: 'usdt:*:node:http__server__request { printf("%s %s %s\\n", str(arg2), str(arg4), str(arg5)); }',
    dtrace: 'node$target:::http-server-request { printf("%s %s\\n", copyinstr(arg4), copyinstr(arg5)); }',
    expect: ['127.0.0.1 GET /one', '127.0.0.1 POST /two?x=1'],
    expectBy: { dtrace: ['GET /one', 'POST /two?x=1'] },
  },
  {
    name: 'node provider: arg0 and arg1 point at structs with Node 18 layout',
    nodeArgs: PRELOAD,
    node: `process.env.DYNPROBE_LONG_REQUEST = '1'; ${SERVER_REQUESTS}`,
    env: { BPFTRACE_STRLEN: '128' },
    bpftrace: `
      usdt:*:node:http__server__request {
        // Two printfs: one with four 128-byte strings exceeds bpftrace 0.17's BPF stack.
        printf("v%d %s %s ", *(uint32 *)arg0, str(*(uint64 *)(arg0 + 16)), str(*(uint64 *)(arg0 + 8)));
        printf("[%s] %s port-matches=%d fd-set=%d\\n", str(*(uint64 *)(arg0 + 24)), str(*(uint64 *)(arg1 + 8)),
          *(int32 *)(arg1 + 4) == (int32)arg3, *(int32 *)arg1 > 2);
      }`,
    dtrace: `${D_STRUCTS}
      node$target:::http-server-request {
        this->r = (struct node_server_req *)copyin(arg0, sizeof(struct node_server_req));
        this->c = (struct node_conn *)copyin(arg1, sizeof(struct node_conn));
        printf("v%d %s %s [%s] %s port-matches=%d fd-set=%d\\n", *(uint32_t *)copyin(arg0, 4), copyinstr(this->r->method),
          copyinstr(this->r->url), copyinstr(this->r->forwardedFor), copyinstr(this->c->remote),
          this->c->port == arg3, this->c->fd == arg6);
      }`,
    expect: [
      'v1 GET /one [] 127.0.0.1 port-matches=1 fd-set=1',
      'v1 POST /two?x=1 [203.0.113.9] 127.0.0.1 port-matches=1 fd-set=1',
      `v1 GET /${'x'.repeat(100)} [caf\u00e9] 127.0.0.1 port-matches=1 fd-set=1`,
    ],
  },
  {
    name: 'node provider: responses, connections, stream ends and the client side',
    nodeArgs: PRELOAD,
    node: `${PRELUDE}
      await ready();
      await traced('http__client__response');
      const server = await listen();
      const port = server.address().port;
      await get(port, '/c1');
      server.close();
    `,
    // Each probe once per request, in the order Node 18 fired them; the
    // client side reports the host and port it asked for.
    bpftrace: `
      usdt:*:node:http__client__request {
        printf("client-request %s %s %s %s %s ok=%d\\n", str(arg2), str(arg4), str(arg5), str(*(uint64 *)(arg0 + 8)),
          str(*(uint64 *)arg0), *(int32 *)(arg1 + 4) == (int32)arg3); }
      usdt:*:node:net__server__connection { printf("connection %s fd-ok=%d\\n", str(arg1), arg3 > 2); }
      usdt:*:node:http__server__response { printf("server-response %s fd-ok=%d\\n", str(arg1), arg3 > 2); }
      usdt:*:node:http__client__response {
        printf("client-response %s %s same=%d\\n", str(arg1), str(*(uint64 *)(arg0 + 8)), *(int32 *)(arg0 + 4) == (int32)arg2); }
      usdt:*:node:net__stream__end { @ends = @ends + 1; }
      END { printf("stream-ends>=1 %d\\n", @ends >= 1); clear(@ends); }`,
    dtrace: `${D_STRUCTS}
      node$target:::http-client-request { this->q = (struct node_client_req *)copyin(arg0, sizeof(struct node_client_req));
        this->c = (struct node_conn *)copyin(arg1, sizeof(struct node_conn));
        printf("client-request %s %s %s %s %s ok=%d\\n", copyinstr(arg2), copyinstr(arg4), copyinstr(arg5),
          copyinstr(this->q->method), copyinstr(this->q->url), this->c->port == arg3); }
      node$target:::net-server-connection { printf("connection %s fd-ok=%d\\n", copyinstr(arg1), arg3 > 2); }
      node$target:::http-server-response { printf("server-response %s fd-ok=%d\\n", copyinstr(arg1), arg3 > 2); }
      node$target:::http-client-response { this->c = (struct node_conn *)copyin(arg0, sizeof(struct node_conn));
        printf("client-response %s %s same=%d\\n", copyinstr(arg1), copyinstr(this->c->remote), this->c->port == arg2); }
      node$target:::net-stream-end { ends++; }
      END { printf("stream-ends>=1 %d\\n", ends >= 1); }`,
    expect: [
      'client-request 127.0.0.1 GET /c1 GET /c1 ok=1',
      'connection 127.0.0.1 fd-ok=1',
      'server-response 127.0.0.1 fd-ok=1',
      'client-response 127.0.0.1 127.0.0.1 same=1',
      'stream-ends>=1 1',
    ],
  },
  {
    name: 'node provider: gc__start and gc__done under a forced gc(), with real start time and duration',
    nodeArgs: [...PRELOAD, '--expose-gc'],
    node: `${PRELUDE}
      await ready();
      await traced('gc__done');
      gc();
      // The 'gc' performance entries arrive a turn or more after the collection.
      await sleep(300);
    `,
    // Forced full collections only (V8 may collect on its own meanwhile):
    // type kGCTypeMarkSweepCompact (4), flags with kGCCallbackFlagForced (4).
    bpftrace: `
      usdt:*:node:gc__start /arg0 == 4 && (arg1 & 4)/ { printf("start %d %d isolate=%d began-before-now=%d\\n", arg0, arg1 & 4, arg2 != 0, arg3 < nsecs && arg3 > nsecs - 5000000000); }
      usdt:*:node:gc__done /arg0 == 4 && (arg1 & 4)/ { printf("done %d took-time=%d\\n", arg0, arg4 > 0 && arg4 < 5000000000); }`,
    dtrace: `
      node$target:::gc-start /arg0 == 4 && (arg1 & 4)/ { printf("start %d %d isolate=%d began-before-now=%d\\n", arg0, arg1 & 4, arg2 != 0, arg3 < timestamp && arg3 > timestamp - 5000000000); }
      node$target:::gc-done /arg0 == 4 && (arg1 & 4)/ { printf("done %d took-time=%d\\n", arg0, arg4 > 0 && arg4 < 5000000000); }`,
    expect: ['start 4 4 isolate=1 began-before-now=1', 'done 4 took-time=1'],
  },
  {
    name: 'node provider: fetch, client errors and workers',
    nodeArgs: PRELOAD,
    node: `${PRELUDE}
      await ready();
      await traced('worker__create');
      const server = await listen();
      const port = server.address().port;
      await (await fetch('http://127.0.0.1:' + port + '/f?x=1')).text();
      await fetch('http://127.0.0.1:' + port + '/boom').catch(() => {});
      const closed = await listen();
      const closedPort = closed.address().port;
      await new Promise((resolve) => closed.close(resolve));
      await get(closedPort, '/nothing').catch(() => {});
      const { Worker } = require('node:worker_threads');
      await new Promise((resolve) => new Worker('0', { eval: true }).on('exit', resolve));
      server.close();
    `,
    bpftrace: `
      usdt:*:node:fetch__request__start { printf("fetch-start %s %s origin-ok=%d\\n", str(arg0), str(arg2), strncmp(str(arg1), "http://127.0.0.1:", 17) == 0); }
      usdt:*:node:fetch__response__headers { printf("fetch-headers %s %s %d\\n", str(arg0), str(arg2), arg3); }
      usdt:*:node:fetch__request__error { printf("fetch-error %s %s %s\\n", str(arg0), str(arg2), str(arg3)); }
      usdt:*:node:http__client__request__error { printf("client-error %s %s %s %s\\n", str(arg0), str(arg2), str(arg3), str(arg4)); }
      usdt:*:node:worker__create { printf("worker %d %d\\n", arg0 > 0, arg1); }`,
    dtrace: `
      node$target:::fetch-request-start { printf("fetch-start %s %s origin-ok=%d\\n", copyinstr(arg0), copyinstr(arg2), strstr(copyinstr(arg1), "http://127.0.0.1:") == copyinstr(arg1)); }
      node$target:::fetch-response-headers { printf("fetch-headers %s %s %d\\n", copyinstr(arg0), copyinstr(arg2), arg3); }
      node$target:::fetch-request-error { printf("fetch-error %s %s %s\\n", copyinstr(arg0), copyinstr(arg2), copyinstr(arg3)); }
      node$target:::http-client-request-error { printf("client-error %s %s %s %s\\n", copyinstr(arg0), copyinstr(arg2), copyinstr(arg3), copyinstr(arg4)); }
      node$target:::worker-create { printf("worker %d %d\\n", arg0 > 0, arg1); }`,
    expect: [
      'fetch-start GET /f?x=1 origin-ok=1',
      'fetch-headers GET /f?x=1 200',
      'fetch-start GET /boom origin-ok=1',
      'fetch-error GET /boom UND_ERR_SOCKET',
      // Node 18 has no http.client.request.error nor worker_threads channel
      // (20 has both); the program runs on this Node.
      ...(NODE_MAJOR >= 20 ? ['client-error 127.0.0.1 GET /nothing ECONNREFUSED', 'worker 1 0'] : []),
    ],
  },
  {
    // bpftrace only: the children of a process that DTrace holds with -p may
    // stay stopped until it lets go (docs/testing.md: one spawn in ten
    // waited 58 s, and in a whole run one never returned).
    name: 'node provider: child processes',
    nodeArgs: PRELOAD,
    node: `${PRELUDE}
      await ready();
      await traced('child__process__spawn');
      await new Promise((resolve) => require('node:child_process').spawn('true', ['x']).on('exit', resolve));
    `,
    bpftrace: `
      usdt:*:node:child__process__spawn { printf("spawn %s %s pid-ok=%d\\n", str(arg1), str(arg2), arg0 > 0); }`,
    expect: ['spawn true ["true","x"] pid-ok=1'],
  },
  {
    name: 'node provider: requests served by a worker thread, and by the main thread',
    nodeArgs: PRELOAD,
    // Each thread that loads dynprobe/node has its own library (module node,
    // node-2, ...); a tracer attaching by process sees the libraries mapped
    // when it attaches, so the worker starts first.
    node: `${PRELUDE}
      const { Worker } = require('node:worker_threads');
      // The worker preloads dynprobe/node too (-r applies to workers).
      const worker = new Worker(\`
        const http = require('node:http');
        const { parentPort } = require('node:worker_threads');
        const node = require(${JSON.stringify(NODE_JS)});
        const server = http.createServer((req, res) => res.end('w')).listen(0, '127.0.0.1', () => {
          parentPort.postMessage(server.address().port);
        });
        parentPort.on('message', (m) => {
          if (m !== 'traced?') { server.close(); parentPort.close(); return; }
          // Until this thread's timer has seen the tracer.
          const wait = () => { let t = false; node.probes.http__server__request.fire(() => { t = true; return null; });
            if (t) setTimeout(() => parentPort.postMessage('traced'), 700); else setTimeout(wait, 10); };
          wait();
        });
      \`, { eval: true });
      const workerPort = await new Promise((resolve) => worker.once('message', resolve));
      await ready();
      // bpftrace 0.17 attaches to one library per probe name (the worker's,
      // here): wait until either thread is traced.
      let workerTraced = false;
      worker.on('message', (m) => { if (m === 'traced') workerTraced = true; });
      worker.postMessage('traced?');
      const isTraced = (p) => { let t = false; p.fire(() => { t = true; return null; }); return t; };
      while (!workerTraced && !isTraced(node.probes.http__server__request)) await sleep(10);
      await sleep(700);
      const server = await listen();
      await get(server.address().port, '/from-main');
      await get(workerPort, '/from-worker');
      server.close();
      worker.postMessage('stop');
      await new Promise((resolve) => worker.on('exit', resolve));
    `,
    bpftrace: 'usdt:*:node:http__server__request { printf("%s %s %s\\n", str(arg2), str(arg4), str(arg5)); }',
    dtrace: 'node$target:::http-server-request { printf("%s %s\\n", copyinstr(arg4), copyinstr(arg5)); }',
    expect: ['127.0.0.1 GET /from-main', '127.0.0.1 GET /from-worker'],
    // bpftrace 0.17 resolves every library that names the probe (node and
    // node-2) to the first it finds, the worker's: it attaches there twice
    // ("Attaching 2 probes"), so each of the worker's firings prints twice
    // and the main thread's none.
    expectBy: {
      dtrace: ['GET /from-main', 'GET /from-worker'],
      'bpftrace-0.17': ['127.0.0.1 GET /from-worker', '127.0.0.1 GET /from-worker'],
    },
  },
  {
    name: 'node provider: junk on the channels fires defined values or nothing, never throws, never warns',
    nodeArgs: PRELOAD,
    node: `${PRELUDE}
      await ready();
      await traced('http__server__request');
      const dc = require('node:diagnostics_channel');
      const net = require('node:net');
      let warnings = 0;
      process.on('warning', (w) => { warnings++; console.error(String(w)); });
      const throwing = new Proxy({}, { get() { throw new Error('boom'); } });
      // Not strings where strings belong, a handle whose fd is not a number
      // and whose getpeername throws: defined values.
      dc.channel('http.server.request.start').publish({
        request: { url: 42, method: null, rawHeaders: ['X-Forwarded-For', 7, 'x-forwarded-for', 'b'] },
        socket: { _handle: { fd: 'x', getpeername() { throw new Error('no'); } } },
      });
      // Every property access throws: nothing fires.
      dc.channel('http.server.request.start').publish({ request: throwing, socket: throwing });
      dc.channel('http.server.response.finish').publish({ socket: null });
      // A socket that never connected: no fd, no peer.
      new net.Socket().end();
      if (warnings !== 0) throw new Error(warnings + ' warnings');
    `,
    bpftrace: `
      usdt:*:node:http__server__request { printf("req [%s] %d [%s] [%s] fwd=[%s]\\n", str(arg2), arg3, str(arg4), str(arg5), str(*(uint64 *)(arg0 + 24))); }
      usdt:*:node:http__server__response { printf("resp [%s] %d %d\\n", str(arg1), arg2, arg3); }
      usdt:*:node:net__stream__end { printf("end [%s] %d %d\\n", str(arg1), arg2, arg3); }`,
    dtrace: `
      node$target:::http-server-request { printf("req [%s] %d [%s] [%s] fwd=[%s]\\n", copyinstr(arg2), arg3, copyinstr(arg4), copyinstr(arg5), copyinstr(*(uintptr_t *)copyin(arg0 + 24, 8))); }
      node$target:::http-server-response { printf("resp [%s] %d %d\\n", copyinstr(arg1), arg2, arg3); }
      node$target:::net-stream-end { printf("end [%s] %d %d\\n", copyinstr(arg1), arg2, arg3); }`,
    expect: ['req [] 0 [] [] fwd=[b]', 'resp [] 0 -1', 'end [] 0 -1'],
  },
  {
    // Where old scripts named the node binary (usdt:/usr/bin/node:node:...),
    // the library's path does the same: the same for every process of this
    // dynprobe version and cache directory, so a tracer attached by path sees
    // processes that start later.
    name: 'node provider: attached by library path before the process starts, as usdt:/usr/bin/node once was',
    nodeArgs: PRELOAD,
    byPath: true,
    node: SERVER_REQUESTS,
    bpftrace: 'usdt:$LIB:node:http__server__request { printf("%s %s %s\\n", str(arg2), str(arg4), str(arg5)); }',
    expect: ['127.0.0.1 GET /one', '127.0.0.1 POST /two?x=1'],
  },
  {
    name: 'node provider: HTTPS, server and client, report addresses and file descriptors like HTTP',
    nodeArgs: PRELOAD,
    node: `${PRELUDE}
      const https = require('node:https');
      const fs = require('node:fs');
      const os = require('node:os');
      const path = require('node:path');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynprobe-tls-'));
      const made = require('node:child_process').spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost']);
      if (made.status !== 0) throw new Error('openssl could not make a certificate: ' + made.stderr);
      const options = { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) };
      fs.rmSync(dir, { recursive: true, force: true });
      await ready();
      await traced('http__server__request');
      const server = https.createServer(options, (req, res) => res.end('ok'));
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
      await new Promise((resolve, reject) => https.get({ host: '127.0.0.1', port: server.address().port, path: '/tls',
        rejectUnauthorized: false, agent: false }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject));
      server.close();
    `,
    bpftrace: `
      usdt:*:node:http__client__request { printf("client %s %s %s fd-ok=%d\\n", str(arg2), str(arg4), str(arg5), *(int32 *)arg1 > 2); }
      usdt:*:node:http__server__request { printf("server %s %s %s fd-ok=%d\\n", str(arg2), str(arg4), str(arg5), *(int32 *)arg1 > 2); }`,
    dtrace: `
      node$target:::http-client-request { printf("client %s %s %s fd-ok=%d\\n", copyinstr(arg2), copyinstr(arg4), copyinstr(arg5), arg6 > 2); }
      node$target:::http-server-request { printf("server %s %s %s fd-ok=%d\\n", copyinstr(arg2), copyinstr(arg4), copyinstr(arg5), arg6 > 2); }`,
    expect: ['client 127.0.0.1 GET /tls fd-ok=1', 'server 127.0.0.1 GET /tls fd-ok=1'],
  },
];
