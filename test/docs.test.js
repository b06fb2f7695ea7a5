'use strict';
// test-needs: nothing
// test-tier: quick
// The documentation a newcomer walks into: a README for users of at most 250
// lines, every relative link in README.md, CONTRIBUTING.md and docs/ leading
// to a file of the repository (and a heading there, when it names one), the
// LICENSE the manifests name, and no file of the repository referring to a
// path outside it.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const read = (rel) => fs.readFileSync(path.join(ROOT, rel), 'utf8');
const DOCS = ['README.md', 'CONTRIBUTING.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f))];

// GitHub's anchor for a heading.
const anchor = (heading) => heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-');

test('the README is for users: at most 250 lines, in the present tense of the package', () => {
  const readme = read('README.md');
  const lines = readme.split('\n').length - (readme.endsWith('\n') ? 1 : 0);
  assert.ok(lines <= 250, `README.md has ${lines} lines`);
  for (const phrase of [/this machine/i, /before this release/i]) assert.doesNotMatch(readme, phrase);
  for (const command of ['npm run demo', 'npm test']) assert.ok(readme.includes(command), command);
});

test('every relative link in the documentation leads to a file of the repository, and to a heading there', () => {
  const broken = [];
  for (const doc of DOCS) {
    for (const m of read(doc).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1];
      if (/^[a-z]+:/.test(target)) continue;
      const [file, hash] = target.split('#');
      const rel = file === '' ? doc : path.join(path.dirname(doc), file);
      if (!fs.existsSync(path.join(ROOT, rel))) {
        broken.push(`${doc}: ${target} (no ${rel})`);
        continue;
      }
      if (hash !== undefined && rel.endsWith('.md')) {
        const headings = [...read(rel).matchAll(/^#+ (.*)$/gm)].map((h) => anchor(h[1]));
        if (!headings.includes(hash)) broken.push(`${doc}: ${target} (no heading #${hash} in ${rel})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test('a LICENSE, the one both manifests name', () => {
  assert.match(read('LICENSE'), /^MIT License\n/);
  assert.equal(require('../package.json').license, 'MIT');
  assert.match(read('Cargo.toml'), /^license = "MIT"$/m);
});

test('no file of the repository refers to a path outside it', () => {
  const r = spawnSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, `git ls-files: ${r.stderr || r.error}`);
  // Spelled in pieces, so that this file does not match itself.
  const outside = new RegExp(['/wo', 'rk/'].join('') + '|' + ['\\.\\./sha', 'red'].join('') + '|' + ['shared', '/docs'].join(''));
  const found = r.stdout
    .split('\0')
    .filter((f) => f && fs.existsSync(path.join(ROOT, f)) && !f.endsWith('.lock') && f !== 'package-lock.json')
    .filter((f) => {
      const bytes = fs.readFileSync(path.join(ROOT, f));
      return !bytes.includes(0) && outside.test(bytes.toString('utf8'));
    });
  assert.deepEqual(found, []);
});
