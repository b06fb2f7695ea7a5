'use strict';
// Finds dynprobe providers in running processes, the way tracers do: from the
// files each process maps (/proc/PID/maps), reading their stapsdt notes.
//
// A dynprobe library is a mapped file at `DIR/<40 hex build-id>/<module>`
// (DIR: $DYNPROBE_DIR, $XDG_RUNTIME_DIR/dynprobe or /tmp/dynprobe-<uid>, as
// the mapping process saw it), or a memfd named after the module when no
// exec-capable directory existed. Only those whose notes hold stapsdt probes
// count. Reading needs no tracer and no root for the user's own processes.

const fs = require('node:fs');
const path = require('node:path');
const { CliError } = require('./errors');

const CACHE_LAYOUT = /\/[0-9a-f]{40}\/[^/]+$/;
const MEMFD = /^\/memfd:(.*) \(deleted\)$/;
const DELETED = ' (deleted)';

let readProbes = null;
function notesReader() {
  if (readProbes === null) {
    const { load } = require('../native');
    const { addon, reason } = load();
    if (addon === null) throw new CliError(reason);
    if (typeof addon.readProbes !== 'function') {
      throw new CliError(`dynprobe's native addon has no readProbes: rebuild it (npm run build)`);
    }
    readProbes = addon.readProbes;
  }
  return readProbes;
}

// /proc/PID/maps lines: start-end perms offset dev inode [path]
const MAPS_LINE = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)\s+\S+\s+(\S+)\s+(\d+)\s*(.*)$/;

function readMaps(pid) {
  const text = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
  const maps = [];
  for (const line of text.split('\n')) {
    const m = MAPS_LINE.exec(line);
    if (m) maps.push({ start: m[1], end: m[2], perms: m[3], dev: m[4], inode: m[5], path: m[6] });
  }
  return maps;
}

function commandLine(pid) {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    if (argv.length > 0) return argv.join(' ');
  } catch {
    // fall back to the short name
  }
  try {
    return `[${fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()}]`;
  } catch {
    return '?';
  }
}

// The mapped files that may be dynprobe libraries, one per file.
function candidates(maps) {
  const seen = new Map();
  for (const m of maps) {
    let storage = null;
    let module = null;
    const memfd = MEMFD.exec(m.path);
    if (memfd) {
      storage = 'memfd';
      module = memfd[1];
    } else if (m.path.endsWith(DELETED) && CACHE_LAYOUT.test(m.path.slice(0, -DELETED.length))) {
      storage = 'deleted';
      module = path.basename(m.path.slice(0, -DELETED.length));
    } else if (CACHE_LAYOUT.test(m.path)) {
      storage = 'file';
      module = path.basename(m.path);
    }
    if (storage === null) continue;
    const key = `${m.dev}:${m.inode}:${m.path}`;
    if (!seen.has(key)) seen.set(key, { ...m, storage, module });
  }
  return [...seen.values()];
}

// The memfd's descriptor in the process (/proc/PID/fd/N), which every tracer
// can open while it stays open; null when there is none (or it is not ours to read).
function memfdDescriptor(pid, lib) {
  let fds;
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return null;
  }
  for (const fd of fds) {
    const link = `/proc/${pid}/fd/${fd}`;
    try {
      if (fs.readlinkSync(link) === lib.path && String(fs.statSync(link).ino) === lib.inode) return link;
    } catch {
      // closed meanwhile
    }
  }
  return null;
}

// Where to read a library from, and the path a tracer should be given
// (null: no tracer can find it).
function locate(pid, lib) {
  if (lib.storage === 'file') {
    // Through the process's root, as tracers do (containers); else directly.
    return { readFrom: [`/proc/${pid}/root${lib.path}`, lib.path], tracerPath: lib.path };
  }
  const mapFile = `/proc/${pid}/map_files/${lib.start}-${lib.end}`; // root only
  if (lib.storage === 'memfd') {
    const fd = memfdDescriptor(pid, lib);
    if (fd !== null) return { readFrom: [fd], tracerPath: fd };
  }
  return { readFrom: [mapFile], tracerPath: null };
}

// Notes per file identity, so that a library mapped by many processes is read once.
const notesCache = new Map();

function notesOf(lib, readFrom) {
  const key = `${lib.dev}:${lib.inode}`;
  if (notesCache.has(key)) return notesCache.get(key);
  const read = notesReader();
  let result = { notes: null, error: null };
  for (const file of readFrom) {
    try {
      result = { notes: read(file), error: null };
      break;
    } catch (err) {
      result = { notes: null, error: err.message };
    }
  }
  if (result.notes !== null) notesCache.set(key, result);
  return result;
}

function osError(err, pid) {
  if (err.code === 'ENOENT' || err.code === 'ESRCH') return new CliError(`no such process: ${pid}`);
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    const why = process.geteuid() === 0 ? 'the kernel refuses it even to root' : 'only its owner and root may read it';
    return new CliError(`cannot read the memory map of process ${pid} (${commandLine(pid)}): permission denied; ${why}`, {
      hint: process.geteuid() === 0 ? null : "run as root (sudo) to inspect other users' processes",
    });
  }
  return new CliError(`cannot inspect process ${pid}: ${err.message}`);
}

// One process: its providers, and warnings about libraries that could not be
// read or that no tracer can see. Throws CliError when the process does not
// exist or cannot be read.
function inspect(pid) {
  let maps;
  try {
    maps = readMaps(pid);
  } catch (err) {
    throw osError(err, pid);
  }
  const providers = [];
  const warnings = [];
  for (const lib of candidates(maps)) {
    const { readFrom, tracerPath } = locate(pid, lib);
    const { notes, error } = notesOf(lib, readFrom);
    if (notes === null) {
      // A file in the cache layout that we cannot read: say so; an
      // unreadable deleted mapping or memfd may not even be ours.
      if (lib.storage === 'file') warnings.push(`cannot read ${lib.path}: ${error}`);
      else if (process.geteuid() !== 0) warnings.push(`cannot read ${lib.path} without root`);
      continue;
    }
    const byProvider = new Map();
    for (const note of notes) {
      if (!byProvider.has(note.provider)) byProvider.set(note.provider, []);
      byProvider.get(note.provider).push(note);
    }
    for (const [provider, probes] of byProvider) {
      providers.push({ provider, module: lib.module, path: lib.path, tracerPath, storage: lib.storage, probes });
    }
    if (byProvider.size > 0 && tracerPath === null) {
      warnings.push(
        `${lib.path}: ${lib.storage === 'memfd' ? 'its memfd is closed' : 'the file was deleted'}; no tracer can attach to it`,
      );
    }
  }
  return { pid, command: commandLine(pid), providers, warnings };
}

function allPids() {
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .sort((a, b) => a - b);
}

// Every process we can read that has providers (others are skipped quietly).
function scan() {
  const found = [];
  for (const pid of allPids()) {
    if (pid === process.pid) continue;
    try {
      const info = inspect(pid);
      if (info.providers.length > 0) found.push(info);
    } catch {
      // gone meanwhile, or another user's
    }
  }
  return found;
}

// Whether the process still runs (a zombie has /proc/PID but no memory).
function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

// A PID argument as a number; the CLI's errors name what is wrong.
function parsePid(text) {
  if (!/^[1-9]\d*$/.test(String(text))) throw new CliError(`not a process id: ${text}`, { code: 2 });
  return Number(text);
}

// One process that must have providers.
function inspectWithProviders(pid) {
  const info = inspect(pid);
  if (info.providers.length === 0) {
    throw new CliError(`no dynprobe providers in process ${pid} (${info.command})`, {
      hint: 'a process has providers once it has enabled one (provider.enable()); `dynprobe list` shows every process that has',
    });
  }
  return info;
}

module.exports = { inspectWithProviders, scan, parsePid, alive };
