#!/usr/bin/env node
// Real-peer interop client for mcp-bridge's legacy transports, using the
// official TypeScript SDK v1 client transports:
//   sse  SSEClientTransport        (HTTP+SSE, spec 2024-11-05: GET the SSE URL,
//                                   wait for `event: endpoint`, POST messages there)
//   ws   WebSocketClientTransport  (subprotocol `mcp`, one JSON-RPC message per text frame)
//
// Usage: node ts_transports.mjs sse|ws URL
//   sse: URL is the SSE endpoint, e.g. http://127.0.0.1:PORT/sse
//   ws:  URL is the WebSocket endpoint, e.g. ws://127.0.0.1:PORT/ws
//   fronting @modelcontextprotocol/server-everything.
//
// Checks: connect + initialize, tools/list (echo, get-sum and
// trigger-long-running-operation listed), call `echo` (text contains our
// message), call `get-sum` (2+3 -> 5), call `trigger-long-running-operation`
// {duration: 1, steps: 3} with an onprogress handler (exactly 3
// notifications/progress with our token, progress 1,2,3 strictly increasing,
// total 3, all on the wire before the tools/call response, none after it; each
// delivered to onprogress before the result resolved - except that the SDK v1
// race typescript-sdk#2580 may drop the last one(s) when they arrive in the
// same read as the response, which is tolerated only for notifications that
// sat right before the response on the wire and is reported as
// "progressDelivered" < "progress"), resources/list, read the first resource
// (non-empty text or blob); then close.
// sse checks that every message POST was answered 202 Accepted and reports the
// message endpoint the server announced ("endpoint") and the POST count;
// ws checks that the server selected the `mcp` subprotocol ("subprotocol").
//
// WebSocket implementation: the SDK's WebSocketClientTransport uses the global
// `WebSocket`. Node >= 22 has one; Node 20 does not (only behind
// --experimental-websocket), so when it is missing the `ws` package (pinned in
// package.json) is installed as globalThis.WebSocket. The summary says which
// one was used ("wsImpl": "native" | "ws").
//
// Output contract:
//   success -> one JSON line on stdout:
//     {"ok":true,"client":"ts","transport":"sse"|"ws",...,"progress":3,"progressDelivered":N,"tools":N,"resources":N}, exit 0
//   failure -> a clear message on stderr, exit 1 (also after the 30 s overall timeout)
//   usage error -> exit 2
//
// INTEROP_TIMEOUT_MS overrides the overall timeout (default 30000).

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { WebSocketClientTransport } from "@modelcontextprotocol/sdk/client/websocket.js";
import {
  ECHO_TOOL,
  LONG_TOOL,
  SUM_TOOL,
  check,
  checkEcho,
  checkReadFirstResource,
  checkSum,
  checkToolsListed,
  errMsg,
  fail,
  listAll,
  runMain,
  sleep,
  tapTransport,
  textOf,
} from "./common.mjs";

const LONG_DURATION = 1;
const LONG_STEPS = 3;

async function ensureWebSocket() {
  if (typeof globalThis.WebSocket === "function") return "native";
  let mod;
  try {
    mod = await import("ws");
  } catch (e) {
    fail(`no global WebSocket in Node ${process.version} and the 'ws' package could not be loaded (run scripts/setup-interop): ${errMsg(e)}`);
  }
  globalThis.WebSocket = mod.WebSocket ?? mod.default;
  return "ws";
}

const isResponseTo = (m, id) => m && m.method === undefined && m.id === id && ("result" in m || "error" in m);

async function main(mode, url) {
  let endpoint;
  try {
    endpoint = new URL(url);
  } catch {
    fail(`invalid URL: ${url}`);
  }
  const summary = { transport: mode };
  const posts = [];

  let transport;
  if (mode === "sse") {
    check(/^https?:$/.test(endpoint.protocol), `sse mode needs an http(s):// URL, got ${url}`);
    // Keep every POST to the message endpoint, to check their statuses (202
    // Accepted) at the end: a server may answer a POST only after it has sent
    // the response on the stream, so they are awaited before the check.
    const fetchTap = (input, init) => {
      const p = fetch(input, init);
      if ((init?.method ?? "GET").toUpperCase() === "POST") {
        posts.push(p.then((res) => res.status, (e) => `error: ${errMsg(e)}`));
      }
      return p;
    };
    transport = new SSEClientTransport(endpoint, { fetch: fetchTap });
  } else {
    check(/^wss?:$/.test(endpoint.protocol), `ws mode needs a ws(s):// URL, got ${url}`);
    summary.wsImpl = await ensureWebSocket();
    transport = new WebSocketClientTransport(endpoint);
  }

  // Record every message in wire order, inbound ones before the SDK handles them.
  const inbound = [];
  const sent = [];
  const transportErrors = [];
  tapTransport(transport, (msg) => inbound.push(msg), (msg) => sent.push(msg));

  const client = new Client({ name: "mcp-bridge-interop-ts-transports", version: "0.0.0" }, { capabilities: {} });
  client.onerror = (e) => transportErrors.push(errMsg(e));
  try {
    await client.connect(transport);
  } catch (e) {
    fail(`${mode}: connect/initialize failed: ${errMsg(e)}`);
  }

  if (mode === "sse") {
    // The URI the server announced in `event: endpoint` (resolved by the SDK).
    const ep = transport._endpoint;
    if (ep instanceof URL) summary.endpoint = ep.pathname + ep.search;
  } else {
    const proto = transport._socket?.protocol;
    check(proto === "mcp", `ws: server did not select the 'mcp' subprotocol (got ${JSON.stringify(proto)})`);
    summary.subprotocol = proto;
  }

  const tools = await listAll((p) => client.listTools(p), "tools");
  checkToolsListed(tools, [ECHO_TOOL, SUM_TOOL, LONG_TOOL]);

  const echoMessage = `hello from ts over ${mode} ${Math.random().toString(36).slice(2, 10)}`;
  await checkEcho(client, echoMessage);
  await checkSum(client);

  // Progress: the SDK puts _meta.progressToken (= the request id) on the call.
  const handled = [];
  const sentBefore = sent.length;
  const inboundBefore = inbound.length;
  let callId;
  const long = await client.callTool(
    { name: LONG_TOOL, arguments: { duration: LONG_DURATION, steps: LONG_STEPS } },
    undefined,
    {
      onprogress: (p) => {
        if (callId === undefined) {
          callId = sent.slice(sentBefore).find((m) => m.method === "tools/call")?.id;
        }
        handled.push({ ...p, responseAlreadyIn: inbound.some((m) => isResponseTo(m, callId)) });
      },
    },
  );
  const handledAtResult = handled.length;
  await sleep(300); // anything still in flight after the result would show up now
  check(!long.isError, `${LONG_TOOL} returned isError: ${JSON.stringify(long)}`);
  const want = `Duration: ${LONG_DURATION} seconds, Steps: ${LONG_STEPS}.`;
  const longText = textOf(long.content);
  check(longText.includes(want), `${LONG_TOOL} result ${JSON.stringify(longText)} does not contain ${JSON.stringify(want)}`);

  const req = sent.slice(sentBefore).find((m) => m.method === "tools/call" && m.params?.name === LONG_TOOL);
  check(req, `${LONG_TOOL}: no tools/call request seen going out`);
  const token = req.params?._meta?.progressToken;
  check(token !== undefined, `${LONG_TOOL}: the SDK did not send a progressToken`);
  const wire = inbound.slice(inboundBefore);
  const respIdx = wire.findIndex((m) => isResponseTo(m, req.id));
  check(respIdx >= 0, `${LONG_TOOL}: no response for request id ${JSON.stringify(req.id)} seen on the wire`);
  const progressOnWire = wire
    .map((m, i) => ({ m, i }))
    .filter(({ m }) => m.method === "notifications/progress" && m.params?.progressToken === token);
  const values = progressOnWire.map(({ m }) => m.params.progress);
  const after = progressOnWire.filter(({ i }) => i > respIdx).length;
  check(
    progressOnWire.length === LONG_STEPS && after === 0,
    `${LONG_TOOL}: expected ${LONG_STEPS} progress notifications for token ${JSON.stringify(token)} before the response, ` +
      `got ${progressOnWire.length - after} before and ${after} after it: ${JSON.stringify(values)}`,
  );
  for (let i = 1; i < values.length; i++) {
    check(values[i] > values[i - 1], `${LONG_TOOL}: progress not strictly increasing: ${JSON.stringify(values)}`);
  }
  check(
    values.every((v, i) => v === i + 1),
    `${LONG_TOOL}: progress values ${JSON.stringify(values)} are not 1..${LONG_STEPS}`,
  );
  const totals = progressOnWire.map(({ m }) => m.params.total);
  check(totals.every((t) => t === LONG_STEPS), `${LONG_TOOL}: progress totals ${JSON.stringify(totals)} are not all ${LONG_STEPS}`);
  // SDK level. Every notification must have reached onprogress before the
  // result resolved, except for a known SDK v1 race (typescript-sdk#2580):
  // Protocol defers notification dispatch to a microtask but handles responses
  // synchronously, so when the last progress notification and the response
  // arrive in one read (SSEClientTransport's EventSource parser dispatches
  // them back to back) the response retires the progress handler first and
  // the SDK reports the notification through onerror as "unknown token".
  // Tolerated only for a suffix of the notifications that sat immediately
  // before the response on the wire; everything else must be delivered.
  const droppedBySdk = transportErrors
    .filter((e) => /progress notification for an unknown token/i.test(e))
    .map((e) => {
      try {
        return JSON.parse(e.slice(e.indexOf("{")));
      } catch {
        return undefined;
      }
    })
    .filter((m) => m?.params?.progressToken === token);
  const delivered = handled.map((h) => h.progress);
  check(
    handledAtResult === handled.length,
    `${LONG_TOOL}: onprogress ran ${handled.length - handledAtResult} time(s) after the result resolved`,
  );
  check(
    handled.every((h) => !h.responseAlreadyIn),
    `${LONG_TOOL}: onprogress ran after the tools/call response had already arrived`,
  );
  check(
    delivered.length + droppedBySdk.length === LONG_STEPS &&
      delivered.every((v, i) => v === values[i]) &&
      droppedBySdk.every((m, j) => m.params.progress === values[delivered.length + j]),
    `${LONG_TOOL}: onprogress got ${JSON.stringify(delivered)} and the SDK dropped ` +
      `${JSON.stringify(droppedBySdk.map((m) => m.params.progress))}, expected all of ${JSON.stringify(values)}`,
  );
  const firstDropped = progressOnWire.length - droppedBySdk.length;
  check(
    progressOnWire.slice(firstDropped).every(({ i }, j) => i === respIdx - (droppedBySdk.length - j)),
    `${LONG_TOOL}: the SDK dropped progress ${JSON.stringify(droppedBySdk.map((m) => m.params.progress))} ` +
      `that did not arrive right before the response (not the known SDK race)`,
  );
  summary.progress = progressOnWire.length;
  summary.progressDelivered = delivered.length;

  const resources = await listAll((p) => client.listResources(p), "resources");
  check(resources.length > 0, "resources/list returned no resources");
  await checkReadFirstResource(client, resources);

  const stray = transportErrors.filter(
    (e) => /unknown message id/i.test(e) || (/unknown token/i.test(e) && !e.includes(`"progressToken":${JSON.stringify(token)}`)),
  );
  check(stray.length === 0, `SDK reported stray messages: ${JSON.stringify(stray)}`);

  if (mode === "sse") {
    const postStatuses = await Promise.all(posts);
    check(postStatuses.length > 0, "sse: no POST to the message endpoint was seen");
    const bad = postStatuses.filter((st) => st !== 202);
    check(bad.length === 0, `sse: message POSTs must be answered 202 Accepted, got ${JSON.stringify(postStatuses)}`);
    summary.posts = postStatuses.length;
  }

  await client.close();
  return { ...summary, tools: tools.length, resources: resources.length };
}

const [mode, url] = process.argv.slice(2);
if (process.argv.length !== 4 || (mode !== "sse" && mode !== "ws")) {
  process.stderr.write("usage: node ts_transports.mjs sse|ws URL\n");
  process.exit(2);
}

runMain(`ts_transports(${mode})`, () => main(mode, url));
