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
import {
  ECHO_TOOL,
  SUM_TOOL,
  check,
  checkEcho,
  checkReadFirstResource,
  checkSum,
  checkToolsListed,
  fail,
  listAll,
  runMain,
} from "./common.mjs";

const SIMPLE_PROMPT = "simple-prompt";
const ECHO_MESSAGE = "hello from ts";

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
  checkToolsListed(tools, [ECHO_TOOL, SUM_TOOL]);

  const resources = await listAll((p) => client.listResources(p), "resources");
  check(resources.length > 0, "resources/list returned no resources");

  const prompts = await listAll((p) => client.listPrompts(p), "prompts");
  const promptNames = prompts.map((p) => p.name);
  check(
    promptNames.includes(SIMPLE_PROMPT),
    `prompt '${SIMPLE_PROMPT}' not listed; prompts: ${JSON.stringify(promptNames)}`,
  );

  await checkEcho(client, ECHO_MESSAGE);
  await checkSum(client);
  await checkReadFirstResource(client, resources);

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

runMain("ts_client", () => main(url));
