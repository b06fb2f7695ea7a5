// Types for dynprobe: the API of dtrace-provider.

/**
 * An argument type, matched by prefix as dtrace-provider did: `json...` is a
 * value passed through JSON.stringify, `char *...` a string, `int...` a signed
 * 64-bit integer; the exact C integer types keep their size and sign; anything
 * else is a string.
 */
export type ProbeArgType =
  | 'int'
  | 'char *'
  | 'json'
  | 'int8_t'
  | 'uint8_t'
  | 'int16_t'
  | 'uint16_t'
  | 'int32_t'
  | 'uint32_t'
  | 'int64_t'
  | 'uint64_t'
  | (string & {});

/**
 * Returns the probe's arguments. It runs only while a tracer has the probe
 * enabled, with the probe as `this` and the extra arguments given to `fire`.
 * Anything but an array: the probe does not fire.
 */
export type ProbeCallback = (this: DTraceProbe, ...extra: any[]) => unknown;

/**
 * dynprobe's extension (dtrace-provider has no such form): a probe whose
 * arguments have names. `name` of each argument: a C identifier
 * (`[A-Za-z_][A-Za-z0-9_]*`) of 1 to 64 bytes, each used once, and not one
 * of the tracers' own names for arguments (`arg0`, `arg1`, ..., `sarg0`,
 * ..., `args`); the generated library records it with the type, and
 * `dynprobe list` shows `probe(int32_t status, char *url)`.
 */
export interface ProbeSpec {
  name: string;
  args: ReadonlyArray<{ name: string; type: ProbeArgType }>;
}

export interface DTraceProbe {
  readonly name: string;
  readonly types: string[];
  /** The arguments' names, for a probe added as `addProbe({ name, args })`; null otherwise. */
  readonly argNames: string[] | null;
  /**
   * Fires the probe if a tracer watches it. Returns `true` when it fired,
   * `undefined` otherwise. Throws `TypeError` if `cb` is not a function.
   * `extra` values are passed to `cb`: a callback made once (at module
   * level) and given its values this way costs nothing on a disabled fire,
   * where a closure made at each call is allocated on every call once any
   * probe has been traced.
   */
  fire(cb: ProbeCallback, ...extra: any[]): true | undefined;
}

export declare class DTraceProvider {
  /**
   * `module` defaults to one unique to this provider object. Throws
   * `TypeError` for a non-string name or module, `RangeError` for an
   * invalid one.
   */
  constructor(name: string, module?: string);

  /**
   * Adds a probe (up to 32 arguments) and stores it as `provider[name]`.
   * Adding an existing name with the same types returns the existing probe.
   */
  addProbe(name: string, ...types: ProbeArgType[]): DTraceProbe;
  /**
   * dynprobe's extension: the same, with each argument named (see
   * {@link ProbeSpec}). Throws `TypeError` for a spec of the wrong shape,
   * `RangeError` for a name that is not a C identifier of 1 to 64 bytes, is
   * a tracer's own name for an argument (`arg0`, `args`, ...) or is
   * repeated, or more than 32 arguments.
   */
  addProbe(spec: ProbeSpec): DTraceProbe;

  /** Removes a probe (visible to tracers after `disable(); enable()`). */
  removeProbe(probe: DTraceProbe): true;

  /** Makes the probes visible to tracers. Throws if there are no probes. */
  enable(): void;

  /** Makes the probes invisible to tracers; their callbacks stop running. */
  disable(): void;

  /**
   * Fires the probe `name` if a tracer watches it. Returns `true` when the
   * probe exists, `undefined` otherwise.
   */
  fire(name: string, cb: ProbeCallback, ...extra: any[]): true | undefined;

  /** Probes, by name, as `addProbe` stored them. */
  [probe: string]: any;
}

export declare function createDTraceProvider(name: string, module?: string): DTraceProvider;
