// dynprobe/node is loaded for what loading it does: `node --import
// dynprobe/node app.js`, `node -r dynprobe/node app.js`, or
// `import 'dynprobe/node'` / `require('dynprobe/node')` first thing in the
// program gives the process the provider `node`, with Node's old built-in
// probes (docs/node-provider.md). It has nothing to import by name.
export {};
