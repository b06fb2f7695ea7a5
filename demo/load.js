'use strict';
// Drives load at the demo service: a mix of fast, slow and missing routes,
// `concurrency` requests in flight, for `seconds`.

const http = require('node:http');

// path, method, weight
const MIX = [
  ['/', 'GET', 15],
  ['/api/users/42', 'GET', 30],
  ['/api/search?q=probes', 'GET', 25],
  ['/api/orders', 'POST', 12],
  ['/api/report', 'GET', 10],
  ['/favicon.ico', 'GET', 8],
];
const TOTAL = MIX.reduce((sum, m) => sum + m[2], 0);

function pick() {
  let r = Math.random() * TOTAL;
  for (const m of MIX) {
    r -= m[2];
    if (r < 0) return m;
  }
  return MIX[0];
}

function request(agent, port, [path, method]) {
  return new Promise((resolve) => {
    const body = method === 'POST' ? JSON.stringify({ item: 'probe', qty: 3 }) : null;
    const req = http.request({ host: '127.0.0.1', port, path, method, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

// Resolves with the number of requests answered once all have finished.
async function drive(port, { seconds = 5, concurrency = 8 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const until = Date.now() + seconds * 1000;
  let answered = 0;
  const worker = async () => {
    while (Date.now() < until) {
      if ((await request(agent, port, pick())) !== 0) answered++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return answered;
}

module.exports = { drive, MIX };
