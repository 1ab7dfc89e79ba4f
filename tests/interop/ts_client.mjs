#!/usr/bin/env node
// Real-peer interop client for mcp-bridge, using the official TypeScript SDK.
//
// Usage: node ts_client.mjs URL
//   URL is the Streamable HTTP MCP endpoint (e.g. http://127.0.0.1:PORT/mcp)
//   fronting @modelcontextprotocol/server-everything.
//
// Checks: initialize, tools/list, resources/list, prompts/list, call `echo`,
// call `get-sum`, read the first resource, get `simple-prompt`, then
// DELETE the session (terminateSession) and close.
//
// Output contract:
//   success -> one JSON line on stdout: {"ok":true,"client":"ts","tools":N,"resources":N,"prompts":N}, exit 0
//   failure -> a clear message on stderr, exit 1 (also after the 30 s overall timeout)
//
// INTEROP_TIMEOUT_MS overrides the overall timeout (default 30000).

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const ECHO_TOOL = "echo";
const SUM_TOOL = "get-sum";
const SIMPLE_PROMPT = "simple-prompt";
const ECHO_MESSAGE = "hello from ts";
const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT_MS || 30000);
const MAX_PAGES = 50;

class CheckFailed extends Error {}

function fail(msg) {
  throw new CheckFailed(msg);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

function textOf(content) {
  return (content || [])
    .filter((c) => c && c.type === "text" && typeof c.text === "string")
    .map((c) => c.text)
    .join("\n");
}

// Collect every page of a paginated list call.
async function listAll(fn, key) {
  const items = [];
  let cursor;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await fn(cursor === undefined ? undefined : { cursor });
    check(Array.isArray(res?.[key]), `${key} list result has no '${key}' array: ${JSON.stringify(res)}`);
    items.push(...res[key]);
    if (!res.nextCursor) return items;
    cursor = res.nextCursor;
  }
  fail(`${key} list did not finish within ${MAX_PAGES} pages`);
}

async function main(url) {
  let endpoint;
  try {
    endpoint = new URL(url);
  } catch {
    fail(`invalid URL: ${url}`);
  }

  const client = new Client({ name: "mcp-bridge-interop-ts", version: "0.0.0" }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(endpoint);

  try {
    await client.connect(transport);
  } catch (e) {
    fail(`connect/initialize failed: ${e?.message ?? e}`);
  }

  const tools = await listAll((p) => client.listTools(p), "tools");
  const toolNames = tools.map((t) => t.name);
  check(toolNames.includes(ECHO_TOOL), `tool '${ECHO_TOOL}' not listed; tools: ${JSON.stringify(toolNames)}`);
  check(toolNames.includes(SUM_TOOL), `tool '${SUM_TOOL}' not listed; tools: ${JSON.stringify(toolNames)}`);

  const resources = await listAll((p) => client.listResources(p), "resources");
  check(resources.length > 0, "resources/list returned no resources");

  const prompts = await listAll((p) => client.listPrompts(p), "prompts");
  const promptNames = prompts.map((p) => p.name);
  check(
    promptNames.includes(SIMPLE_PROMPT),
    `prompt '${SIMPLE_PROMPT}' not listed; prompts: ${JSON.stringify(promptNames)}`,
  );

  const echo = await client.callTool({ name: ECHO_TOOL, arguments: { message: ECHO_MESSAGE } });
  check(!echo.isError, `${ECHO_TOOL} returned isError: ${JSON.stringify(echo)}`);
  const echoText = textOf(echo.content);
  check(
    echoText.includes(ECHO_MESSAGE),
    `${ECHO_TOOL} text ${JSON.stringify(echoText)} does not contain ${JSON.stringify(ECHO_MESSAGE)}`,
  );

  const sum = await client.callTool({ name: SUM_TOOL, arguments: { a: 2, b: 3 } });
  check(!sum.isError, `${SUM_TOOL} returned isError: ${JSON.stringify(sum)}`);
  const sumText = textOf(sum.content);
  check(/\b5\b/.test(sumText), `${SUM_TOOL}(2,3) text ${JSON.stringify(sumText)} does not contain 5`);

  const first = resources[0];
  const read = await client.readResource({ uri: first.uri });
  check(
    Array.isArray(read?.contents) && read.contents.length > 0,
    `resources/read ${first.uri} returned no contents: ${JSON.stringify(read)}`,
  );
  const c0 = read.contents[0];
  check(
    (typeof c0.text === "string" && c0.text.length > 0) || (typeof c0.blob === "string" && c0.blob.length > 0),
    `resources/read ${first.uri} first content is empty: ${JSON.stringify(c0).slice(0, 300)}`,
  );

  const prompt = await client.getPrompt({ name: SIMPLE_PROMPT });
  check(
    Array.isArray(prompt?.messages) && prompt.messages.length > 0,
    `prompts/get ${SIMPLE_PROMPT} returned no messages: ${JSON.stringify(prompt)}`,
  );

  try {
    await transport.terminateSession();
  } catch (e) {
    fail(`terminateSession (HTTP DELETE) failed: ${e?.message ?? e}`);
  }
  await client.close();

  return { tools: tools.length, resources: resources.length, prompts: prompts.length };
}

const url = process.argv[2];
if (!url || process.argv.length !== 3) {
  process.stderr.write("usage: node ts_client.mjs URL\n");
  process.exit(2);
}

const timer = setTimeout(() => {
  process.stderr.write(`ts_client: FAIL: overall timeout of ${TIMEOUT_MS} ms exceeded\n`);
  process.exit(1);
}, TIMEOUT_MS);

main(url).then(
  (counts) => {
    clearTimeout(timer);
    process.stdout.write(JSON.stringify({ ok: true, client: "ts", ...counts }) + "\n");
    process.exit(0);
  },
  (err) => {
    clearTimeout(timer);
    const msg = err instanceof CheckFailed ? err.message : `unexpected error: ${err?.stack ?? err}`;
    process.stderr.write(`ts_client: FAIL: ${msg}\n`);
    process.exit(1);
  },
);
