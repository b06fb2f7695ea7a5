'use strict';
// Cases for the Rust core: a process built on the crate (test/drivers/src/bin/fire.rs)
// defines and fires probes; real tracers read them.

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));

const LIB = String.raw`/tmp/dynprobe-0/[0-9a-f]{40}/listp`;

module.exports = [
  {
    name: 'core: tracers list the probes',
    rust: `
      provider listp
      probe first int32_t char*
      probe second-probe uint8_t
      load
      ready
    `,
    list: {
      'bpftrace-0.17': ['-l', 'usdt:*', '-p', '$PID'],
      'bpftrace-0.27': ['-l', 'usdt:*', '-p', '$PID'],
      dtrace: ['-lP', 'listp$PID', '-p', '$PID'],
      gdb: ['-p', '$PID', '-batch', '-ex', 'info probes'],
    },
    expectMatch: {
      'bpftrace-0.17': [new RegExp(`^usdt:/proc/\\d+/root${LIB}:listp:first$`), /:listp:second-probe$/],
      'bpftrace-0.27': [new RegExp(`^usdt:/proc/\\d+/root${LIB}:listp:first$`), /:listp:second-probe$/],
      // DTrace shows the module (the library's file name) and the stub's symbol.
      dtrace: [/^\s*\d+\s+listp\d+\s+listp\s+listp__first\s+first$/, /listp__second-probe\s+second-probe$/],
      gdb: [new RegExp(`^stap\\s+listp\\s+first\\s+0x[0-9a-f]+\\s+0x[0-9a-f]+\\s+${LIB}\\s*$`), /^stap\s+listp\s+second-probe\s/],
    },
  },
  {
    name: 'core: integers of every size and sign, full 64-bit values',
    rust: `
      provider corep
      probe small int8_t uint8_t int16_t uint16_t int32_t uint32_t
      probe wide int64_t uint64_t int64_t
      load
      ready
      fire small -128 255 -32768 65535 -2147483648 4294967295
      fire wide -9223372036854775808 18446744073709551615 9223372036854775807
    `,
    bpftrace: `
      usdt:*:corep:small { printf("%ld %lu %ld %lu %ld %lu\\n", arg0, arg1, arg2, arg3, arg4, arg5); }
      usdt:*:corep:wide { printf("%ld %lu %ld\\n", arg0, arg1, arg2); }`,
    dtrace: `
      corep$target:::small { printf("%d %d %d %d %d %d\\n", arg0, arg1, arg2, arg3, arg4, arg5); }
      corep$target:::wide { printf("%d %u %d\\n", arg0, arg1, arg2); }`,
    expect: ['-128 255 -32768 65535 -2147483648 4294967295', '-9223372036854775808 18446744073709551615 9223372036854775807'],
  },
  {
    name: 'core: string arguments',
    rust: `
      provider corep
      probe strs char* int32_t char*
      load
      ready
      fire strs hello 7 world
    `,
    bpftrace: 'usdt:*:corep:strs { printf("%s %d %s\\n", str(arg0), arg1, str(arg2)); }',
    dtrace: 'corep$target:::strs { printf("%s %d %s\\n", copyinstr(arg0), arg1, copyinstr(arg2)); }',
    expect: ['hello 7 world'],
  },
  {
    name: 'core: arguments 7 to 12 (on the stack)',
    rust: `
      provider corep
      probe twelve ${range(12, (i) => (i % 2 ? 'int32_t' : 'int64_t')).join(' ')}
      probe mixed ${range(12, (i) => (i % 3 === 2 ? 'char*' : 'int16_t')).join(' ')}
      load
      ready
      fire twelve ${range(12, (i) => (i + 1) * (i % 2 ? -1 : 1)).join(' ')}
      fire mixed ${range(12, (i) => (i % 3 === 2 ? `s${i}` : -i)).join(' ')}
    `,
    // bpftrace 0.17 refuses arg6 and above on x86-64: it reads the first six.
    bpftrace: `
      usdt:*:corep:twelve { printf("%d %d %d %d %d %d\\n", arg0, arg1, arg2, arg3, arg4, arg5); }
      usdt:*:corep:mixed { printf("%d %d %s %d %d %s\\n", arg0, arg1, str(arg2), arg3, arg4, str(arg5)); }`,
    bpftrace027: `
      usdt:*:corep:twelve { printf("%d %d %d %d %d %d %d %d %d %d %d %d\\n", arg0, arg1, arg2, arg3, arg4, arg5, arg6, arg7, arg8, arg9, arg10, arg11); }
      usdt:*:corep:mixed { printf("%d %d %s %d %d %s %d %d %s %d %d %s\\n", arg0, arg1, str(arg2), arg3, arg4, str(arg5), arg6, arg7, str(arg8), arg9, arg10, str(arg11)); }`,
    // DTrace 2.0.7 keeps ten arguments (arg0..arg9); args[10] is an illegal operation there.
    dtrace: `
      corep$target:::twelve { printf("%d %d %d %d %d %d %d %d %d %d\\n", arg0, arg1, arg2, arg3, arg4, arg5, arg6, arg7, arg8, arg9); }
      corep$target:::mixed { printf("%d %d %s %d %d %s %d %d %s %d\\n", arg0, arg1, copyinstr(arg2), arg3, arg4, copyinstr(arg5), arg6, arg7, copyinstr(arg8), arg9); }`,
    expect: ['1 -2 3 -4 5 -6 7 -8 9 -10 11 -12', '0 -1 s2 -3 -4 s5 -6 -7 s8 -9 -10 s11'],
    expectBy: {
      'bpftrace-0.17': ['1 -2 3 -4 5 -6', '0 -1 s2 -3 -4 s5'],
      dtrace: ['1 -2 3 -4 5 -6 7 -8 9 -10', '0 -1 s2 -3 -4 s5 -6 -7 s8 -9'],
    },
  },
  {
    name: 'core: DTrace -Z sees a provider created after it started',
    rust: `
      ready
      provider latep
      probe hello int32_t char*
      load
      wait-traced hello
      fire-while-traced hello 5 late
    `,
    // As in the API's -Z case: fire until DTrace has printed once and exited.
    dtrace: 'latep$target:::hello /!seen/ { seen = 1; printf("%d %s %s\\n", arg0, copyinstr(arg1), probemod); exit(0); }',
    dtraceFlags: ['-Z'],
    expect: ['5 late latep'],
  },
  {
    name: 'core: a provider created by another user (nobody) is traced by root',
    user: 'nobody',
    rust: `
      provider userp
      probe who int32_t char*
      load
      ready
      fire who 65534 nobody
    `,
    bpftrace: 'usdt:*:userp:who { printf("%d %s\\n", arg0, str(arg1)); }',
    dtrace: 'userp$target:::who { printf("%d %s\\n", arg0, copyinstr(arg1)); }',
    expect: ['65534 nobody'],
  },
  {
    name: 'core: a tracer attached by library path before the process starts',
    byPath: true,
    rust: `
      provider pathp
      probe early int32_t char*
      load
      ready
      fire early 11 by-path
    `,
    bpftrace: 'usdt:$LIB:pathp:early { printf("%d %s\\n", arg0, str(arg1)); }',
    expect: ['11 by-path'],
  },
];
