'use strict';
// Finds dynprobe providers in running processes, the way tracers do: from the
// files each process maps (/proc/PID/maps), reading their stapsdt notes.
//
// A dynprobe library is a mapped file at `DIR/<40 hex build-id>/<module>`
// (DIR: $DYNPROBE_DIR, $XDG_RUNTIME_DIR/dynprobe or /tmp/dynprobe-<uid>, as
// the mapping process saw it), or a memfd named after the module when no
// exec-capable directory existed. Only those whose notes hold stapsdt probes
// count. Reading needs no tracer and no root for the user's own processes.
// A library's record of its probes' declared types is checked like the rest
// of what it says (types.js) before anything uses it.

const fs = require('node:fs');
const path = require('node:path');
const { CliError } = require('./errors');
const { checkDeclared, checkArgNames } = require('./types');

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

// The memfd's descriptors in the process (/proc/PID/fd/N), which every
// tracer can open while it stays open. Only links are read here (nothing is
// opened or stat'ed, which a hostile file system could stall); the reader
// checks that what it opens is the mapped inode.
function memfdDescriptors(pid, lib) {
  let fds;
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const found = [];
  for (const fd of fds) {
    const link = `/proc/${pid}/fd/${fd}`;
    try {
      if (fs.readlinkSync(link) === lib.path && sameInode(pid, fd, lib.inode)) found.push(link);
    } catch {
      // closed meanwhile
    }
  }
  return found;
}

// Whether descriptor `fd` of the process is inode `inode`, as far as its
// fdinfo says (kernels before 5.14 do not say: the reader checks anyway).
function sameInode(pid, fd, inode) {
  try {
    const m = /^ino:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    return m === null || m[1] === inode;
  } catch {
    return false;
  }
}

// Where to read a library from (tried in order, each checked by the reader),
// and the path a tracer should be given (null: no tracer can find it).
//
// A path names what the process's mount namespace shows there now, which it
// may have hidden under a FIFO, a device or another file. Root reads the
// mapped inode itself through /proc/PID/map_files (which needs
// CAP_SYS_ADMIN); a path is read only if it is still the inode the maps
// line names (device and inode), and never followed if it is a link.
function locate(pid, lib) {
  const mapped = { path: `/proc/${pid}/map_files/${lib.start}-${lib.end}`, follow: true };
  const same = { device: lib.dev, inode: lib.inode };
  const byMap = process.geteuid() === 0 ? [mapped] : [];
  if (lib.storage === 'file') {
    // Through the process's root, as tracers do (containers); else directly.
    const byPath = [
      { path: `/proc/${pid}/root${lib.path}`, ...same },
      { path: lib.path, ...same },
    ];
    return { readFrom: [...byMap, ...byPath], tracerPath: lib.path };
  }
  if (lib.storage === 'memfd') {
    const fds = memfdDescriptors(pid, lib).map((fd) => ({ path: fd, follow: true, ...same }));
    if (fds.length > 0) return { readFrom: [...byMap, ...fds], tracerPath: null, tracerPathFrom: fds };
  }
  return { readFrom: byMap, tracerPath: null };
}

// What a read may cost: dynprobe libraries are a few KiB (a 5000-probe one
// about 1 MiB).
const MAX_LIBRARY_BYTES = 64 * 1024 * 1024;
const READ_TIMEOUT_MS = 5000;
// More probes than any application defines; a crafted file may claim
// millions, and every probe shown costs memory and output.
const MAX_PROBES_SHOWN = 20000;

// Notes per file identity, so that a library mapped by many processes is read
// once; devices whose file system did not answer in time, so that a scan pays
// the time limit once per file system, not once per file.
const notesCache = new Map();
const stalledDevices = new Set();

// Reads `file` as the reader checks it; `refused` says the file is not what
// it should be, rather than not readable from there.
function readOne(file) {
  const read = notesReader();
  const { path: where, ...checks } = file;
  try {
    const limits = { ...checks, maxBytes: MAX_LIBRARY_BYTES, timeoutMs: READ_TIMEOUT_MS, maxProbes: MAX_PROBES_SHOWN };
    const { probes, total } = read(where, limits);
    return { notes: probes, total, error: null };
  } catch (err) {
    // The reader names the file it opened; callers name the library.
    const message = err.message.startsWith(`${where}: `) ? err.message.slice(where.length + 2) : err.message;
    return { notes: null, error: message, refused: err.code === 'Cancelled', stalled: /no answer within/.test(err.message) };
  }
}

function notesOf(lib, files) {
  const key = `${lib.dev}:${lib.inode}`;
  if (notesCache.has(key)) return notesCache.get(key);
  if (stalledDevices.has(lib.dev)) {
    return { notes: null, error: `skipped: its file system (device ${lib.dev}) did not answer in time before`, refused: true };
  }
  let result = { notes: null, error: 'nothing to read it from', refused: false, from: null };
  for (const file of files) {
    result = { ...readOne(file), from: file.path };
    if (result.notes !== null) break;
    if (result.stalled) stalledDevices.add(lib.dev);
    // A refused file is not tried elsewhere: it is what the process shows.
    if (result.refused) break;
  }
  if (result.notes !== null) {
    // Notes from a hostile process: no field may be missing or odd.
    result.notes = result.notes.map((note) => {
      const declared = checkDeclared(note);
      return {
        ...note,
        addressOffset: note.addressOffset ?? null,
        semaphoreOffset: note.semaphoreOffset ?? null,
        ...declared,
        ...checkArgNames(note, declared.declared),
      };
    });
    notesCache.set(key, result);
  }
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
    const place = locate(pid, lib);
    const { notes, total, error, refused, from } = notesOf(lib, place.readFrom);
    if (notes === null) {
      // A file in the cache layout that we cannot read, or one refused: say
      // so; an unreadable deleted mapping or memfd may not even be ours.
      if (refused) warnings.push(`${lib.path}: ${error}`);
      else if (lib.storage === 'file') warnings.push(`cannot read ${lib.path}: ${error}`);
      else if (process.geteuid() !== 0) warnings.push(`cannot read ${lib.path} without root`);
      continue;
    }
    // A memfd's tracer path: a descriptor that is the mapped inode (the one
    // read, or the first, when root read it through map_files).
    let tracerPath = place.tracerPath;
    if (place.tracerPathFrom) tracerPath = (place.tracerPathFrom.find((f) => f.path === from) || place.tracerPathFrom[0]).path;
    if (total > notes.length) warnings.push(`${lib.path}: ${total} probes; only the first ${notes.length} are shown`);
    const byProvider = new Map();
    for (const note of notes) {
      if (!byProvider.has(note.provider)) byProvider.set(note.provider, []);
      byProvider.get(note.provider).push(note);
    }
    for (const [provider, probes] of byProvider) {
      providers.push({ provider, module: lib.module, path: lib.path, tracerPath, storage: lib.storage, probes, device: lib.dev, inode: lib.inode });
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

// Why a tracer must not be given `entry`'s path, or null: tracers open it
// themselves, through the process's root, and what it shows there must be
// the file that is mapped (not a FIFO or a device a mount put over it).
// Root read the mapped file through map_files; others by that path, checked.
function pathProblem(pid, entry) {
  if (entry.storage !== 'file' || process.geteuid() !== 0) return null;
  const { error, refused } = readOne({ path: `/proc/${pid}/root${entry.path}`, device: entry.device, inode: entry.inode });
  if (error === null) return null;
  return `its library ${entry.path} ${refused ? 'no longer shows the mapped file' : 'cannot be read by path'} (${error})`;
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
    const skipped = info.warnings.map((w) => `\n  warning: ${w}`).join('');
    throw new CliError(`no dynprobe providers in process ${pid} (${info.command})${skipped}`, {
      hint: 'a process has providers once it has enabled one (provider.enable()); `dynprobe list` shows every process that has',
    });
  }
  return info;
}

module.exports = { inspectWithProviders, scan, parsePid, alive, commandLine, pathProblem };
