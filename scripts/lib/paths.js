'use strict';
// Where provisioning caches what it makes, for JavaScript (the tests): the
// same values the shell scripts get from scripts/lib/paths.sh, read from the
// one list, scripts/lib/paths.list. Each is an absolute path: the environment
// variable of the same name when set, else its default (relative defaults are
// under DYNPROBE_CACHE, /var/lib/dynprobe unless set).
//   const { DYNPROBE_SID_ROOT } = require('../scripts/lib/paths');

const fs = require('node:fs');
const path = require('node:path');

function cachePaths(env = process.env) {
  const paths = {};
  const list = fs.readFileSync(path.join(__dirname, 'paths.list'), 'utf8');
  for (const line of list.split('\n')) {
    const [name, fallback] = line.trim().split(/\s+/);
    if (!name || name.startsWith('#')) continue;
    const value = env[name] || (path.isAbsolute(fallback) ? fallback : path.join(paths.DYNPROBE_CACHE, fallback));
    if (!path.isAbsolute(value) || value === '/') throw new Error(`${name} must be an absolute path other than /, not ${JSON.stringify(value)}`);
    paths[name] = value;
  }
  return paths;
}

module.exports = { ...cachePaths(), cachePaths };
