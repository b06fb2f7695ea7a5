'use strict';
// Whether the application has a package: it resolves from the application's
// directory (that of its main script, process.argv[1]) or from the working
// directory, as the application's own require would (node_modules up the
// tree, NODE_PATH, Yarn's PnP). Asked once per package at start-up, before
// the application has loaded anything, so that a library's provider exists
// before its first operation and a tracer can attach in time; a package that
// is installed but never loaded costs one provider (about a millisecond).

const path = require('node:path');
const fs = require('node:fs');
const { createRequire } = require('node:module');

// (process.cwd() throws when the working directory was removed: then the
// main script's directory only)
function workingDirectory() {
  try {
    return process.cwd();
  } catch {
    return null;
  }
}

function applicationDirs(argv = process.argv, cwd = workingDirectory()) {
  const dirs = [];
  const main = argv[1];
  if (typeof main === 'string' && main !== '' && !main.startsWith('-')) {
    try {
      dirs.push(path.dirname(fs.realpathSync(cwd === null ? main : path.resolve(cwd, main))));
    } catch {
      // not a file (node -e, a REPL): the working directory only
    }
  }
  if (cwd !== null && !dirs.includes(cwd)) dirs.push(cwd);
  return dirs;
}

// `present(name)` for packages resolvable from `dirs`.
function resolverFrom(dirs) {
  const requires = [];
  for (const dir of dirs) {
    try {
      requires.push(createRequire(path.join(dir, 'noop.js')));
    } catch {
      // a directory that cannot be a base: skipped
    }
  }
  const known = new Map();
  return (name) => {
    if (!known.has(name)) known.set(name, requires.some((r) => resolves(r, name)));
    return known.get(name);
  };
}

// The directories require would search (its `exports` may map even
// package.json elsewhere: graphql's do), then require's own resolution
// (for loaders that search no directories, such as Yarn's PnP).
function resolves(req, name) {
  for (const dir of req.resolve.paths(name) || []) {
    if (fs.existsSync(path.join(dir, name, 'package.json'))) return true;
  }
  try {
    req.resolve(name);
    return true;
  } catch (err) {
    // The package is there; its `exports` give require nothing.
    return Boolean(err) && err.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED';
  }
}

module.exports = { applicationDirs, resolverFrom };
