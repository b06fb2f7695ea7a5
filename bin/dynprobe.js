#!/usr/bin/env node
'use strict';
// dynprobe: list the USDT providers of running Node.js processes and trace them.

require('../lib/cli/main').main(process.argv.slice(2));
