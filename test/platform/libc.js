'use strict';
// Which C library this process runs on, from the loader it has mapped: this
// holds under any runtime (Bun has no glibcVersionRuntime in its report) and
// under qemu-user, whose /proc/self/maps shows the guest's mappings.

const fs = require('node:fs');

function libcFamily() {
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  return /\/ld-musl-[^/\s]*$|-linux-musl\/libc\.so$/m.test(maps) ? 'musl' : 'glibc';
}

// musl's dlclose never unmaps a library: a disabled provider's library
// stays mapped (inert: dynprobe detaches its views), and a new enable() of
// the same provider maps nothing more.
const dlcloseUnmaps = () => libcFamily() !== 'musl';

module.exports = { libcFamily, dlcloseUnmaps };
