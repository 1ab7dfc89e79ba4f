#!/usr/bin/env node
// Runs one of the TypeScript SDK's own example servers
// (@modelcontextprotocol/sdk/dist/esm/examples/server/NAME.js) on loopback:
// the examples listen on a fixed port on every interface, so this wrapper
// makes every server listen on 127.0.0.1 port 0 instead and prints
// "LISTENING <port>" on stderr once it does. The example's own stdout logging
// is left alone.
//
// Usage: node ts_example_server.mjs NAME   (e.g. simpleStreamableHttp, ssePollingExample)

import net from "node:net";

const name = process.argv[2];
if (!name || !/^[A-Za-z]+$/.test(name)) {
  process.stderr.write("usage: node ts_example_server.mjs NAME\n");
  process.exit(2);
}
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const callback = args.find((a) => typeof a === "function");
  this.once("listening", () => process.stderr.write(`LISTENING ${this.address().port}\n`));
  return listen.call(this, 0, "127.0.0.1", callback);
};
process.argv.splice(2, 1);
await import(`@modelcontextprotocol/sdk/examples/server/${name}.js`);
