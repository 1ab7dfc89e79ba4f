#!/usr/bin/env node
// Runs @modelcontextprotocol/server-everything in its own Streamable HTTP mode,
// bound to 127.0.0.1 only (upstream calls app.listen(PORT) with no host, which
// binds every interface). Used to validate the interop clients against the
// reference server directly, without mcp-bridge in between.
//
// Usage: node everything_http_loopback.mjs [PORT]
//   PORT defaults to $PORT, then 0 (an ephemeral port).
//   Once listening, prints exactly one line to stdout:
//     LISTENING http://127.0.0.1:<port>/mcp
//   (upstream's own log lines go to stdout/stderr as well and start differently.)

import net from "node:net";

const port = process.argv[2] ?? process.env.PORT ?? "0";
process.env.PORT = String(port);

const origListen = net.Server.prototype.listen;
let announced = false;
net.Server.prototype.listen = function (...args) {
  // Upstream calls listen(PORT, callback): insert the loopback host.
  if (args.length >= 1 && (typeof args[0] === "number" || typeof args[0] === "string") &&
      (args.length === 1 || typeof args[1] === "function")) {
    args.splice(1, 0, "127.0.0.1");
  }
  this.once("listening", () => {
    if (announced) return;
    const addr = this.address();
    if (addr && typeof addr === "object") {
      announced = true;
      process.stdout.write(`LISTENING http://127.0.0.1:${addr.port}/mcp\n`);
    }
  });
  return origListen.apply(this, args);
};

await import("@modelcontextprotocol/server-everything/dist/transports/streamableHttp.js");
