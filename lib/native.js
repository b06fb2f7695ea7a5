'use strict';
// Finds the native addon, or says why there is none.
//
// The addons are published the napi-rs way: one package per target
// (@dynprobe/linux-x64-gnu ...), listed as optionalDependencies of dynprobe,
// so npm installs only the one that matches. Candidates, first found wins:
//   1. ../build/dynprobe.node        the local build of a checkout
//   2. ./dynprobe.<target>.node      a copy beside a bundle (see below)
//   3. @dynprobe/<target>            the platform package, by name
// A candidate that is not there is skipped; one that is there but does not
// load (corrupt, wrong libc) ends the search: its error is the reason.
//
// Bundlers: every lookup goes through Node's own `require`, hidden from
// bundlers' static analysis (a bundler that saw a `.node` file would fail the
// build without a loader configured). In a bundle that `require` belongs to
// the bundle's file, so names resolve from the node_modules beside the
// bundle and ./dynprobe.<target>.node means the file beside the bundle.

const TARGETS = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl'];
const PACKAGE_SCOPE = '@dynprobe';

// Node's own require, hidden from bundlers. In a webpack bundle,
// __non_webpack_require__ is the bundle's real require (webpack knows
// `typeof __webpack_require__` at build time, so it never looks at the other
// branch); elsewhere neither identifier exists. Using `require` as a value
// keeps esbuild from trying to bundle what it loads.
/* global __webpack_require__, __non_webpack_require__ */
const nodeRequire = typeof __webpack_require__ === 'function' ? __non_webpack_require__ : require;

// 'gnu' or 'musl' for the running process. Node's report header has the
// glibc version when Node runs on glibc; where there is no report (or it
// fails), the dynamic loader mapped into this process tells.
function libcFamily() {
  try {
    const report = process.report;
    if (report && typeof report.getReport === 'function') {
      // The network part of a report can take seconds on some hosts.
      const exclude = report.excludeNetwork;
      report.excludeNetwork = true;
      let header;
      try {
        header = report.getReport().header;
      } finally {
        report.excludeNetwork = exclude;
      }
      if (header && typeof header === 'object') return header.glibcVersionRuntime ? 'gnu' : 'musl';
    }
  } catch {
    // fall through to the loader check
  }
  return loaderFamily();
}

function loaderFamily() {
  try {
    const maps = require('node:fs').readFileSync('/proc/self/maps', 'utf8');
    if (/\/ld-musl-[^/\s]*\.so/.test(maps)) return 'musl';
    if (/\/ld-linux[^/\s]*\.so/.test(maps)) return 'gnu';
  } catch {
    // no /proc: say glibc, the common case
  }
  return 'gnu';
}

// The target this process needs, e.g. 'linux-x64-gnu', or null when dynprobe
// publishes no addon for this platform.
function currentTarget() {
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) return null;
  return `linux-${process.arch}-${libcFamily()}`;
}

function packageName(target) {
  return `${PACKAGE_SCOPE}/${target}`;
}

const HARD = 'NODE_DTRACE_PROVIDER_REQUIRE=hard';
// What works without the addon (lib/plain.js), said in every reason.
const STILL_WORKS =
  'no kernel tracer (bpftrace, DTrace, perf) sees its probes; dynprobe.subscribe() in the process and ' +
  '`dynprobe trace PID` by the same user (through the process\'s endpoint) still read them';

// Loads the addon, once per process: { addon, code, reason }. `addon` is null when there is
// none; then `code` is DYNPROBE_NO_ADDON (no addon for this platform),
// DYNPROBE_ADDON_MISSING (none installed) or DYNPROBE_ADDON_LOAD_FAILED (one
// is there and does not load), and `reason` says which file and why.
let loaded = null;
function load() {
  if (loaded === null) loaded = find();
  return loaded;
}

function find() {
  const target = currentTarget();
  if (target === null) {
    return {
      addon: null,
      code: 'DYNPROBE_NO_ADDON',
      reason: `dynprobe does not support ${process.platform}/${process.arch} yet: ${STILL_WORKS} (${HARD} makes this an error)`,
    };
  }
  if (typeof nodeRequire !== 'function' || typeof nodeRequire.resolve !== 'function') {
    return failed(target, packageName(target), new Error('there is no CommonJS require here to load a native addon with (an ES module bundle?)'));
  }
  const candidates = ['../build/dynprobe.node', `./dynprobe.${target}.node`, packageName(target)];
  for (const request of candidates) {
    let file;
    try {
      file = nodeRequire.resolve(request);
    } catch (err) {
      if (err && err.code === 'MODULE_NOT_FOUND') continue;
      return failed(target, request, err); // e.g. a broken package.json
    }
    try {
      return { addon: nodeRequire(file), code: null, reason: null, file };
    } catch (err) {
      return failed(target, file, err);
    }
  }
  return {
    addon: null,
    code: 'DYNPROBE_ADDON_MISSING',
    reason:
      `dynprobe: no native addon for ${target}: the package ${packageName(target)} is not installed ` +
      '(npm installs it as an optional dependency of dynprobe; an install with --omit=optional or --no-optional, ' +
      `or node_modules copied from another platform, lacks it); a bundle deployed without node_modules finds it ` +
      `as dynprobe.${target}.node beside the bundle; in a checkout run \`npm run build\`. ` +
      `Here ${STILL_WORKS} (${HARD} makes this an error)`,
  };
}

function failed(target, file, err) {
  const why = err && err.message ? err.message : String(err);
  return {
    addon: null,
    code: 'DYNPROBE_ADDON_LOAD_FAILED',
    reason: `dynprobe: cannot load its native addon ${file} (${target}): ${why}. Here ${STILL_WORKS} (${HARD} makes this an error)`,
    cause: err,
  };
}

module.exports = { load, currentTarget, libcFamily, loaderFamily, packageName, TARGETS, PACKAGE_SCOPE };
