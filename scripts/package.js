#!/usr/bin/env node
'use strict';
// `npm run package`: builds the addon for every published target and writes
// the publishable tarballs (`npm pack` output) to dist/:
//   dist/dynprobe-<version>.tgz                  the JavaScript package, whose
//                                                optionalDependencies are the four below
//   dist/dynprobe-linux-<arch>-<libc>-<version>.tgz   one per target (@dynprobe/<target>)
//
// Each target is built by scripts/build/<target>.sh, which writes a stripped
// build/prebuilt/<target>/dynprobe.node (installing its own toolchain) or
// exits non-zero naming what is missing. Every target is tried; a summary
// names each one that failed, and the exit status is then 1.
//
//   --host-build   package only this machine's target, from the local build
//                  (build/dynprobe.node, `npm run build`) stripped here: what
//                  the install and bundler tests use
//   --target T     only target T (repeatable), e.g. while working on one build
//   --no-build     package the addons that scripts/build/<target>.sh already
//                  wrote (scripts/setup.js runs the builds side by side first)
//   --out DIR      write the tarballs to DIR instead of dist/

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { TARGETS, currentTarget, packageName } = require('../lib/native');

const ROOT = path.join(__dirname, '..');
// A platform tarball must stay small: the addon stripped is ~0.7 MB.
const MAX_PLATFORM_TARBALL = 1000 * 1000;
const ELF_MACHINE = { x64: 62, arm64: 183 };

class PackageError extends Error {}

function parseArgs(argv) {
  const opts = { hostBuild: false, noBuild: false, targets: [], out: path.join(ROOT, 'dist') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--host-build') opts.hostBuild = true;
    else if (a === '--no-build') opts.noBuild = true;
    else if (a === '--out' && i + 1 < argv.length) opts.out = path.resolve(argv[++i]);
    else if (a === '--target' && i + 1 < argv.length) {
      const t = argv[++i];
      if (!TARGETS.includes(t)) throw new PackageError(`unknown target ${JSON.stringify(t)}: the targets are ${TARGETS.join(', ')}`);
      opts.targets.push(t);
    } else throw new PackageError(`unknown argument ${JSON.stringify(a)} (usage: package.js [--host-build | --no-build] [--target T]... [--out DIR])`);
  }
  return opts;
}

const say = (text) => process.stderr.write(`package: ${text}\n`);
const shown = (file) => (path.relative(process.cwd(), file).startsWith('..') ? file : path.relative(process.cwd(), file));

// npm without the settings of an enclosing `npm run`.
function npm(args, cwd) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  const r = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, env, encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new PackageError(`npm ${args.join(' ')} failed (${r.status}): ${r.error || ''}\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));

// The section names of an ELF file, and its machine: enough to refuse an
// addon built for the wrong architecture or left with its debug info.
function elfInfo(file) {
  const b = fs.readFileSync(file);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new PackageError(`${file} is not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new PackageError(`${file} is not a 64-bit little-endian ELF file`);
  const machine = b.readUInt16LE(18);
  const shoff = Number(b.readBigUInt64LE(40));
  const shentsize = b.readUInt16LE(58);
  const shnum = b.readUInt16LE(60);
  const shstrndx = b.readUInt16LE(62);
  const sections = [];
  if (shoff > 0 && shstrndx < shnum && shoff + shnum * shentsize <= b.length) {
    const strOff = Number(b.readBigUInt64LE(shoff + shstrndx * shentsize + 24));
    for (let i = 0; i < shnum; i++) {
      const nameOff = b.readUInt32LE(shoff + i * shentsize);
      const end = b.indexOf(0, strOff + nameOff);
      sections.push(b.toString('latin1', strOff + nameOff, end));
    }
  }
  return { machine, sections, size: b.length };
}

function checkAddon(target, file) {
  const arch = target.split('-')[1];
  const { machine, sections, size } = elfInfo(file);
  if (machine !== ELF_MACHINE[arch]) throw new PackageError(`${file} is for ELF machine ${machine}, not ${arch} (${ELF_MACHINE[arch]})`);
  const debug = sections.filter((s) => s === '.symtab' || s.startsWith('.debug_'));
  if (debug.length > 0) throw new PackageError(`${file} is not stripped (it has ${debug.join(', ')})`);
  return size;
}

// The host's own build, stripped: a stand-in for a target's build script.
function hostBuild(target) {
  const host = currentTarget();
  if (host !== target) throw new PackageError(`--host-build packages this machine's target (${host || 'none'}), not ${target}`);
  const built = path.join(ROOT, 'build', 'dynprobe.node');
  if (!fs.existsSync(built)) throw new PackageError(`${built} is missing: run \`npm run build\` first`);
  const dest = path.join(ROOT, 'build', 'prebuilt', `${target}-host`, 'dynprobe.node');
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const r = spawnSync('strip', ['--strip-unneeded', '-o', dest, built], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new PackageError(`strip (binutils) failed on ${built}: ${r.error && r.error.code === 'ENOENT' ? 'strip is not installed (apt-get install binutils)' : r.stderr || r.error}`);
  }
  return dest;
}

// The addon scripts/build/<target>.sh wrote (scripts/setup.js ran it).
function builtAddon(target) {
  const file = path.join(ROOT, 'build', 'prebuilt', target, 'dynprobe.node');
  if (!fs.existsSync(file)) throw new PackageError(`${path.relative(ROOT, file)} is missing: run bash scripts/build/${target}.sh`);
  return file;
}

// Runs scripts/build/<target>.sh; the addon it wrote.
function scriptBuild(target) {
  const script = path.join('scripts', 'build', `${target}.sh`);
  if (!fs.existsSync(path.join(ROOT, script))) throw new PackageError(`${script} does not exist: nothing builds ${target}`);
  say(`building ${target}: bash ${script}`);
  const started = Date.now();
  const r = spawnSync('bash', [script], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) throw new PackageError(`bash ${script}: ${r.error.message}`);
  if (r.status !== 0) throw new PackageError(`bash ${script} failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}): see its message above`);
  const file = path.join(ROOT, 'build', 'prebuilt', target, 'dynprobe.node');
  if (!fs.existsSync(file)) throw new PackageError(`bash ${script} succeeded but wrote no ${path.relative(ROOT, file)}`);
  say(`built ${target} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return file;
}

function pack(dir, out) {
  const [info] = JSON.parse(npm(['pack', dir, '--json', '--pack-destination', out], out));
  const file = path.join(out, info.filename);
  return { file, size: fs.statSync(file).size, files: info.files.map((f) => f.path) };
}

// One platform package: npm/<target>/ plus its addon, packed.
function packTarget(target, addon, version, stageRoot, out) {
  const manifest = readJson(path.join(ROOT, 'npm', target, 'package.json'));
  const stage = path.join(stageRoot, target);
  fs.mkdirSync(stage, { recursive: true });
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify({ ...manifest, version }, null, 2)}\n`);
  fs.copyFileSync(path.join(ROOT, 'npm', target, 'README.md'), path.join(stage, 'README.md'));
  fs.copyFileSync(path.join(ROOT, 'LICENSE'), path.join(stage, 'LICENSE'));
  fs.copyFileSync(addon, path.join(stage, manifest.main));
  const packed = pack(stage, out);
  if (packed.size >= MAX_PLATFORM_TARBALL) {
    fs.rmSync(packed.file);
    throw new PackageError(`${path.basename(packed.file)} is ${packed.size} bytes: a platform tarball must stay under ${MAX_PLATFORM_TARBALL} (is the addon stripped?)`);
  }
  return packed;
}

// The JavaScript package: the checkout's files, its manifest without what
// only the checkout needs, and the platform packages as optionalDependencies
// at exactly its version.
function packMain(root, version, stageRoot, out) {
  const stage = path.join(stageRoot, 'dynprobe');
  fs.mkdirSync(stage, { recursive: true });
  const manifest = { ...root };
  for (const key of ['devDependencies', 'scripts', 'overrides', 'private']) delete manifest[key];
  manifest.optionalDependencies = Object.fromEntries(TARGETS.map((t) => [packageName(t), version]));
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  for (const entry of [...root.files, 'README.md', 'LICENSE']) {
    const from = path.join(ROOT, entry);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(stage, entry), { recursive: true });
  }
  return pack(stage, out);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const root = readJson(path.join(ROOT, 'package.json'));
  const { version } = root;
  for (const target of TARGETS) {
    const m = readJson(path.join(ROOT, 'npm', target, 'package.json'));
    if (m.name !== packageName(target)) throw new PackageError(`npm/${target}/package.json is named ${m.name}, not ${packageName(target)}`);
    if (m.version !== version) throw new PackageError(`npm/${target}/package.json has version ${m.version}, dynprobe ${version}: make them equal`);
  }
  fs.mkdirSync(opts.out, { recursive: true });
  // No tarball of an earlier run may pass for one of this run.
  const ours = new Set([`dynprobe-${version}.tgz`, ...TARGETS.map((t) => `dynprobe-${t}-${version}.tgz`)]);
  for (const f of fs.readdirSync(opts.out)) if (ours.has(f)) fs.rmSync(path.join(opts.out, f));
  const stageRoot = fs.mkdtempSync(path.join(opts.out, '.stage-'));
  if (opts.hostBuild && opts.noBuild) throw new PackageError('--host-build and --no-build: one or the other');
  if (opts.hostBuild && opts.targets.length > 0) throw new PackageError('--host-build packages this machine\'s target: no --target with it');
  const targets = opts.hostBuild ? [currentTarget()] : opts.targets.length > 0 ? opts.targets : TARGETS;
  const buildDir = path.join(ROOT, 'scripts', 'build');
  const others = fs.existsSync(buildDir) ? fs.readdirSync(buildDir).filter((f) => f.endsWith('.sh') && !TARGETS.includes(f.slice(0, -3))) : [];
  if (others.length > 0) say(`not run: ${others.map((f) => `scripts/build/${f}`).join(', ')} (the targets are ${TARGETS.join(', ')})`);
  const failures = [];
  const written = [];
  try {
    for (const target of targets) {
      try {
        const addon = opts.hostBuild ? hostBuild(target) : opts.noBuild ? builtAddon(target) : scriptBuild(target);
        const addonSize = checkAddon(target, addon);
        const packed = packTarget(target, addon, version, stageRoot, opts.out);
        written.push(`${shown(packed.file)} (${packed.size} bytes; addon ${addonSize} bytes)`);
      } catch (err) {
        if (!(err instanceof PackageError)) throw err;
        failures.push(`${target}: ${err.message}`);
      }
    }
    const packed = packMain(root, version, stageRoot, opts.out);
    written.unshift(`${shown(packed.file)} (${packed.size} bytes)`);
  } finally {
    fs.rmSync(stageRoot, { recursive: true, force: true });
  }
  say(`wrote:\n  ${written.join('\n  ')}`);
  if (failures.length > 0) {
    say(`FAILED, ${failures.length} of ${targets.length} targets not packaged:\n  ${failures.join('\n  ')}`);
    process.exitCode = 1;
  }
}

try {
  main();
} catch (err) {
  if (!(err instanceof PackageError)) throw err;
  say(`FAILED: ${err.message}`);
  process.exitCode = 1;
}
