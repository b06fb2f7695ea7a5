// dynprobe/node is loaded for what loading it does: `node --import
// dynprobe/node app.js`, `node -r dynprobe/node app.js`, or
// `import 'dynprobe/node'` / `require('dynprobe/node')` first thing in the
// program gives the process the provider `node`, with Node's old built-in
// probes (docs/node-provider.md), and probes for the diagnostics_channel
// channels of Node and of the libraries present (docs/channels.md).
// Its one call names further channels; from an ES module it is a property of
// the default export (`import node from 'dynprobe/node'`).
declare const dynprobeNode: {
  /**
   * Further channels as probes, named as `DYNPROBE_CHANNELS` names them:
   * `tracing:NAME` for a TracingChannel, a plain name for a plain channel.
   * Best called at start-up: a provider that gains probes is rebuilt.
   * Returns the probes it added (`provider:probe`) and, for the channels
   * that got none, why (also said as `DYNPROBE_CHANNEL_REFUSED` warnings).
   * Throws a TypeError for anything but a string or an array of strings.
   */
  addChannels(names: string | readonly string[]): { probes: string[]; refused: string[] };
};
export = dynprobeNode;
