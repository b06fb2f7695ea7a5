'use strict';
// `node -r dynprobe/node app.js`, NODE_OPTIONS='-r dynprobe/node' or
// `require('dynprobe/node')`: the `node` provider (lib/node).

module.exports = require('./lib/node');
