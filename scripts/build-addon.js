#!/usr/bin/env node
'use strict';
// Builds the native addon with cargo and puts it where lib/native.js looks.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const profile = process.env.DYNPROBE_PROFILE === 'debug' ? 'debug' : 'release';
const args = ['build', '-p', 'dynprobe-node', '--quiet'];
if (profile === 'release') args.push('--release');
execFileSync('cargo', args, { cwd: root, stdio: 'inherit' });

const built = path.join(root, 'target', profile, 'libdynprobe_node.so');
const dest = path.join(root, 'build', 'dynprobe.node');
fs.mkdirSync(path.dirname(dest), { recursive: true });
// Copy to a temporary name and rename: a process that has the old addon
// mapped keeps a consistent file.
const tmp = `${dest}.${process.pid}.tmp`;
fs.copyFileSync(built, tmp);
fs.renameSync(tmp, dest);
