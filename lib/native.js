'use strict';
// Finds the native addon, or says why there is none.

const path = require('node:path');

const SUPPORTED = process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64');
const ADDON = path.join(__dirname, '..', 'build', 'dynprobe.node');

function load() {
  if (!SUPPORTED) {
    return { addon: null, reason: `dynprobe does not support ${process.platform}/${process.arch} yet` };
  }
  try {
    return { addon: require(ADDON), reason: null };
  } catch (err) {
    // Never fall back silently where we are supposed to work.
    const hint = err && err.code === 'MODULE_NOT_FOUND' ? ' (run `npm run build` in the package first)' : '';
    const wrapped = new Error(`dynprobe: cannot load its native addon ${ADDON}${hint}: ${err.message}`);
    wrapped.cause = err;
    throw wrapped;
  }
}

module.exports = { load, ADDON };
