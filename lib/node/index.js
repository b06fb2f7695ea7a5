'use strict';
// `require('dynprobe/node')` (or `node -r dynprobe/node app.js`): gives the
// process a provider `node` with Node 18's built-in probes and newer ones,
// fed from diagnostics_channel and a few hooks, so that scripts written for
// Node 18's probes work unchanged; and probes for the channels of Node and
// of the libraries present, and for those the operator names (channels.js).
// Once per thread; workers get their own subscriptions and share the one
// provider library (same definition, same file).
//
// Nothing is subscribed, observed or wrapped while no tracer or subscriber
// has a probe enabled: an unref'd timer reads the probes' semaphores four
// times a second (tracers tell nobody when they attach) and turns each
// source on while one of its probes is wanted, off when none is; a
// subscription (in-process or through the endpoint) says so at once. A probe that fails to read a value fires with a defined one
// (values.js), and nothing here throws into the application.

// Modules the application may never load (child_process, perf_hooks' observer,
// worker_threads) are loaded only when a tracer asks for their probes.
const dc = require('node:diagnostics_channel');
const { setInterval: every } = require('node:timers');
const dynprobe = require('../..');
const { load } = require('../native');
const { registry } = require('../registry');
const { PROBES } = require('./probes');
const { createMemory } = require('./memory');
const { createChannels } = require('./channels');
const { applicationDirs, resolverFrom } = require('./presence');
const v = require('./values');

const INSTALLED = Symbol.for('dynprobe.node');
const PROVIDER = 'node';
const MODULE = 'node';
const POLL_MS = 250;

function install() {
  const { addon } = load();
  const addressOf = addon !== null && typeof addon.addressOf === 'function' ? addon.addressOf : null;
  const memory = createMemory(addressOf);

  const provider = dynprobe.createDTraceProvider(PROVIDER, MODULE);
  const probes = {};
  for (const p of PROBES) probes[p.name] = provider.addProbe(p);
  // Channels' probes join this provider (Node's) or providers of their own;
  // all are enabled here.
  const channels = createChannels({
    createProvider: (name) => dynprobe.createDTraceProvider(name),
    providers: new Map([[PROVIDER, provider]]),
    present: resolverFrom(applicationDirs()),
  });
  let initial = { sources: [], refused: [] };
  try {
    initial = channels.initial();
  } catch (err) {
    // Unforeseen (the checks above refuse what they can foresee): Node 18's
    // probes go on without the channels'.
    initial.refused.push(`the channels get no probes: ${err && err.message}`);
    provider.enable();
  }
  warnRefused(initial.refused);

  // A probe's callback builds its values; the message is its extra
  // argument (callbacks made once cost nothing per call). Each returns null
  // (nothing fires) if something unforeseen throws.
  function connectionValues(socket) {
    const peer = v.peerOf(socket);
    const fd = v.fdOf(socket);
    const conn = memory.connection(fd, peer.port, peer.address, v.bufferedOf(socket));
    return [conn, peer.address, peer.port, fd];
  }

  function serverRequest(msg) {
    try {
      memory.begin();
      const req = msg.request;
      const socket = msg.socket;
      const url = v.text(req.url);
      const method = v.text(req.method);
      const reqStruct = memory.serverRequest(url, method, v.rawHeader(req.rawHeaders, 'x-forwarded-for'));
      const [conn, remote, port, fd] = connectionValues(socket);
      return [reqStruct, conn, remote, port, method, url, fd];
    } catch {
      return null;
    }
  }

  function socketOnly(socket) {
    try {
      memory.begin();
      return connectionValues(socket);
    } catch {
      return null;
    }
  }

  const serverResponse = (msg) => socketOnly(msg && msg.socket);
  const serverConnection = (msg) => socketOnly(msg && msg.socket);

  // An outgoing request's connection: the host and port asked for, the
  // socket's fd (Node 18 did the same).
  function clientConnection(request) {
    const target = v.clientTarget(request);
    const socket = request.socket;
    const fd = v.fdOf(socket);
    const conn = memory.connection(fd, target.port, target.host, v.bufferedOf(socket));
    return [conn, target.host, target.port, fd];
  }

  function clientRequest(msg) {
    try {
      memory.begin();
      const req = msg.request;
      const method = v.text(req.method);
      const url = v.text(req.path);
      const reqStruct = memory.clientRequest(url, method);
      const [conn, remote, port, fd] = clientConnection(req);
      return [reqStruct, conn, remote, port, method, url, fd];
    } catch {
      return null;
    }
  }

  function clientResponse(msg) {
    try {
      memory.begin();
      return clientConnection(msg.request);
    } catch {
      return null;
    }
  }

  function clientRequestError(msg) {
    try {
      const req = msg.request;
      const target = v.clientTarget(req);
      return [target.host, target.port, v.text(req.method), v.text(req.path), v.errorCode(msg.error), v.errorMessage(msg.error)];
    } catch {
      return null;
    }
  }

  function undiciRequest(request) {
    return [v.text(request.method), v.text(request.origin && String(request.origin)), v.text(request.path)];
  }

  function fetchStart(msg) {
    try {
      return undiciRequest(msg.request);
    } catch {
      return null;
    }
  }

  function fetchHeaders(msg) {
    try {
      return [...undiciRequest(msg.request), v.int32(msg.response && msg.response.statusCode, 0)];
    } catch {
      return null;
    }
  }

  function fetchError(msg) {
    try {
      return [...undiciRequest(msg.request), v.errorCode(msg.error), v.errorMessage(msg.error)];
    } catch {
      return null;
    }
  }

  function workerCreate(msg) {
    try {
      return [v.int32(msg.worker && msg.worker.threadId, -1), require('node:worker_threads').threadId];
    } catch {
      return null;
    }
  }

  function childSpawn(child) {
    try {
      const argv = Array.isArray(child.spawnargs) ? child.spawnargs.map(v.text) : [];
      return [v.int32(child.pid, -1), v.text(child.spawnfile), argv];
    } catch {
      return null;
    }
  }

  // CLOCK_MONOTONIC nanoseconds at performance's time origin (process.hrtime
  // and performance.now read the same clock); set when GC probes are first
  // traced.
  let originNs = 0n;
  function gcValues(entry) {
    try {
      const detail = entry.detail || {};
      return [
        v.int32(detail.kind, 0) >>> 0,
        v.int32(detail.flags, 0) >>> 0,
        memory.id,
        originNs + BigInt(Math.round(entry.startTime * 1e6)),
        Math.round(entry.duration * 1e6),
      ];
    } catch {
      return null;
    }
  }

  // Sources: each feeds some probes and is on only while one is traced.
  function channelSource(name, probe, build) {
    // Kept referenced: before Node 18.7 a channel nobody references loses
    // its subscribers.
    const channel = dc.channel(name);
    const onMessage = (msg) => {
      try {
        probe.fire(build, msg);
      } catch {
        // never into the publisher (it would reach uncaughtException)
      }
    };
    return {
      probes: [probe],
      channel,
      on: () => channel.subscribe(onMessage),
      off: () => channel.unsubscribe(onMessage),
    };
  }

  // Wraps `ownerOf()[key]` (a method) while on, so that `after(this, result)`
  // runs after each call; restored when off unless someone wrapped it since
  // (then ours stays, firing nothing while untraced).
  function methodSource(ownerOf, key, probes, after) {
    let owner = null;
    let original = null;
    let inChain = false;
    const wrapper = {
      [key]: function () {
        const result = Reflect.apply(original, this, arguments);
        try {
          after(this, result);
        } catch {
          // never into the caller
        }
        return result;
      },
    }[key];
    return {
      probes,
      on() {
        if (inChain) return;
        owner = ownerOf();
        original = owner[key];
        if (typeof original !== 'function') return;
        Object.defineProperty(wrapper, 'length', { value: original.length });
        owner[key] = wrapper;
        inChain = true;
      },
      off() {
        if (inChain && owner[key] === wrapper) {
          owner[key] = original;
          inChain = false;
        }
      },
    };
  }

  let observer = null;
  const gcSource = {
    probes: [probes.gc__start, probes.gc__done],
    on() {
      const { PerformanceObserver, performance } = require('node:perf_hooks');
      if (originNs === 0n) originNs = process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6));
      observer = new PerformanceObserver((list) => {
        try {
          for (const entry of list.getEntries()) {
            probes.gc__start.fire(gcValues, entry);
            probes.gc__done.fire(gcValues, entry);
          }
        } catch {
          // never into the application
        }
      });
      observer.observe({ entryTypes: ['gc'] });
    },
    off() {
      observer.disconnect();
      observer = null;
    },
  };

  const sources = [
    channelSource('http.server.request.start', probes.http__server__request, serverRequest),
    channelSource('http.server.response.finish', probes.http__server__response, serverResponse),
    channelSource('http.client.request.start', probes.http__client__request, clientRequest),
    channelSource('http.client.response.finish', probes.http__client__response, clientResponse),
    channelSource('net.server.socket', probes.net__server__connection, serverConnection),
    methodSource(() => require('node:net').Socket.prototype, 'end', [probes.net__stream__end], (socket) => {
      probes.net__stream__end.fire(socketOnly, socket);
    }),
    gcSource,
    channelSource('http.client.request.error', probes.http__client__request__error, clientRequestError),
    channelSource('undici:request:create', probes.fetch__request__start, fetchStart),
    channelSource('undici:request:headers', probes.fetch__response__headers, fetchHeaders),
    channelSource('undici:request:error', probes.fetch__request__error, fetchError),
    methodSource(() => require('node:child_process').ChildProcess.prototype, 'spawn', [probes.child__process__spawn], (child) => {
      probes.child__process__spawn.fire(childSpawn, child);
    }),
    channelSource('worker_threads', probes.worker__create, workerCreate),
    ...initial.sources,
  ];
  const active = new Array(sources.length).fill(false);

  let traced = false;
  const markTraced = () => {
    traced = true;
    return null; // not an array: nothing fires
  };
  function isTraced(probe) {
    traced = false;
    probe.fire(markTraced);
    return traced;
  }

  // Turns each source on or off by whether a tracer has one of its probes.
  function refresh() {
    for (let i = 0; i < sources.length; i++) {
      try {
        const want = sources[i].probes.some(isTraced);
        if (want !== active[i]) {
          if (want) sources[i].on();
          else sources[i].off();
          active[i] = want;
        }
      } catch {
        // a source that cannot be turned on stays off
      }
    }
  }

  // More channels as probes, e.g. addChannels(['tracing:myapp:job',
  // 'myapp:cache:miss']) (DYNPROBE_CHANNELS' syntax). Best called at
  // start-up: a provider that gains probes is rebuilt, and a tracer attached
  // to it then must attach again. Returns { probes: ['provider:probe', ...]
  // (those it added), refused: [why, ...] (also said as warnings) }.
  function addChannels(names) {
    const added = channels.addNamed(names);
    warnRefused(added.refused);
    for (const s of added.sources) {
      sources.push(s);
      active.push(false);
    }
    refresh();
    return { probes: added.probes, refused: added.refused };
  }

  refresh();
  // Only with the addon: no kernel tracer sees the plain providers.
  if (addon !== null) every(refresh, POLL_MS).unref();
  let pending = false;
  registry().onChange(() => {
    if (pending) return;
    pending = true;
    queueMicrotask(() => {
      pending = false;
      refresh();
    });
  });
  // A provider by name (`node`, `mysql2_`, ...), as dtrace-provider's API
  // gives it (its probes are its properties), or undefined.
  const providerOf = (name) => (channels.registry.has(name) ? channels.registry.get(name).provider : undefined);
  return { provider, probes, refresh, addChannels, providerOf, PROBES };
}

// Channels that get no probes are said, one warning each; never thrown.
function warnRefused(refused) {
  for (const why of refused) process.emitWarning(`dynprobe/node: ${why}`, { code: 'DYNPROBE_CHANNEL_REFUSED' });
}

module.exports = globalThis[INSTALLED] || (globalThis[INSTALLED] = install());
