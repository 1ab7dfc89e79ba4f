#!/usr/bin/env node
// Stdio MCP server implementing every fixture the official conformance suite
// (@modelcontextprotocol/conformance, pinned in package.json) expects from a
// server under test: the test_* tools, resources, prompts, completions,
// logging and resource subscriptions.
//
// mcp-bridge serves this process over Streamable HTTP and the suite runs
// against the bridge (see scripts/conformance). The module also exports
// createFixtureServer() so a throwaway harness can host the very same logic
// behind the SDK's own Streamable HTTP transport, to tell fixture bugs from
// bridge bugs.
//
// Run:  node tests/conformance/fixture-server.mjs      (speaks MCP on stdio)
// Works on Node 20 and 22. Diagnostics go to stderr only.

import { fileURLToPath } from "node:url";
import { realpathSync } from "node:fs";
import { deflateSync } from "node:zlib";
import * as z from "zod";
import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { completable } from "@modelcontextprotocol/sdk/server/completable.js";
import {
  CreateMessageResultSchema,
  ElicitResultSchema,
  ListToolsRequestSchema,
  LoggingLevelSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

export const FIXTURE_NAME = "mcp-bridge-conformance-fixture";
export const FIXTURE_VERSION = "0.1.0";

// ---------------------------------------------------------------------------
// Binary payloads, built at start-up (no opaque blobs in the source).
// ---------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData));
  return Buffer.concat([len, typeAndData, crc]);
}

/** A 1x1 PNG of the given RGB colour. */
function onePixelPng(r, g, b) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(1, 0); // width
  ihdr.writeUInt32BE(1, 4); // height
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour RGB
  // compression, filter, interlace: 0
  const scanline = Buffer.from([0, r, g, b]); // filter byte + one pixel
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(scanline)),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

/** A short mono 16-bit PCM WAV: 0.01 s of a 440 Hz tone at 8 kHz. */
function shortWav() {
  const rate = 8000;
  const samples = 80;
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) {
    data.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), i * 2);
  }
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVE", 8, "ascii");
  header.write("fmt ", 12, "ascii");
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // channels
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28); // byte rate
  header.writeUInt16LE(2, 32); // block align
  header.writeUInt16LE(16, 34); // bits per sample
  header.write("data", 36, "ascii");
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

const RED_PNG_B64 = onePixelPng(255, 0, 0).toString("base64");
const BLUE_PNG_B64 = onePixelPng(0, 0, 255).toString("base64");
const WAV_B64 = shortWav().toString("base64");

// ---------------------------------------------------------------------------
// Fixture data
// ---------------------------------------------------------------------------

const STATIC_TEXT_URI = "test://static-text";
const STATIC_TEXT = "This is the content of the static text resource.";
const STATIC_BINARY_URI = "test://static-binary";
const WATCHED_URI = "test://watched-resource";
const TEMPLATE_URI = "test://template/{id}/data";

// The JSON Schema 2020-12 document that json_schema_2020_12_tool advertises,
// verbatim (the suite checks that $schema, $defs and additionalProperties
// survive into tools/list).
const JSON_SCHEMA_2020_12_TOOL = "json_schema_2020_12_tool";
const JSON_SCHEMA_2020_12_INPUT = Object.freeze({
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  $defs: {
    address: {
      type: "object",
      properties: {
        street: { type: "string" },
        city: { type: "string" },
      },
    },
  },
  properties: {
    name: { type: "string" },
    address: { $ref: "#/$defs/address" },
  },
  additionalProperties: false,
});

const LOG_SEVERITY = new Map(LoggingLevelSchema.options.map((level, i) => [level, i]));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const text = (t) => ({ type: "text", text: t });

// ---------------------------------------------------------------------------
// Server factory
// ---------------------------------------------------------------------------

/**
 * Builds one McpServer with all conformance fixtures registered. Connect it to
 * exactly one transport (stdio in main(), or one Streamable HTTP session in a
 * test harness).
 *
 * options.updateIntervalMs: period of notifications/resources/updated for a
 * subscribed test://watched-resource (default 2000; 0 disables the timer).
 */
export function createFixtureServer(options = {}) {
  const updateIntervalMs = options.updateIntervalMs ?? 2000;

  const server = new McpServer(
    { name: FIXTURE_NAME, version: FIXTURE_VERSION },
    {
      // tools and prompts are declared by McpServer as they get registered
      // (declaring tools here would install its tools/list handler before
      // the wrapper below is in place).
      capabilities: {
        logging: {},
        completions: {},
        resources: { subscribe: true, listChanged: true },
      },
      instructions: "Conformance fixture for mcp-bridge: test_* tools, test:// resources, test_* prompts.",
    },
  );
  const lowLevel = server.server;

  // Tools whose advertised inputSchema is a hand-written JSON Schema document
  // rather than the SDK's rendering of the zod schema used for validation.
  // McpServer installs its tools/list handler when the first tool is
  // registered; wrap it (by schema identity) so those entries are replaced.
  const verbatimInputSchemas = new Map([[JSON_SCHEMA_2020_12_TOOL, JSON_SCHEMA_2020_12_INPUT]]);
  const setRequestHandler = lowLevel.setRequestHandler.bind(lowLevel);
  let toolsListWrapped = false;
  lowLevel.setRequestHandler = (schema, handler) => {
    if (schema !== ListToolsRequestSchema) return setRequestHandler(schema, handler);
    toolsListWrapped = true;
    return setRequestHandler(schema, async (request, extra) => {
      const result = await handler(request, extra);
      return {
        ...result,
        tools: result.tools.map((tool) =>
          verbatimInputSchemas.has(tool.name)
            ? { ...tool, inputSchema: structuredClone(verbatimInputSchemas.get(tool.name)) }
            : tool,
        ),
      };
    });
  };

  // --- logging --------------------------------------------------------------
  // Level per session (stdio: a single undefined session). Messages below the
  // level are dropped; messages are sent as notifications related to the
  // request that caused them, so an HTTP host can put them on that request's
  // stream.
  const logLevels = new Map();
  lowLevel.setRequestHandler(SetLevelRequestSchema, async (request, extra) => {
    logLevels.set(extra.sessionId, request.params.level);
    return {};
  });
  const log = async (extra, level, data) => {
    const min = logLevels.get(extra.sessionId);
    if (min !== undefined && LOG_SEVERITY.get(level) < LOG_SEVERITY.get(min)) return;
    await extra.sendNotification({
      method: "notifications/message",
      params: { level, logger: "conformance-fixture", data },
    });
  };

  // --- tools: content types ---------------------------------------------------
  server.registerTool(
    "test_simple_text",
    { description: "Returns a single text content item." },
    async () => ({ content: [text("This is a simple text response for testing.")] }),
  );

  server.registerTool(
    "test_image_content",
    { description: "Returns a 1x1 red PNG as image content." },
    async () => ({ content: [{ type: "image", data: RED_PNG_B64, mimeType: "image/png" }] }),
  );

  server.registerTool(
    "test_audio_content",
    { description: "Returns a short WAV tone as audio content." },
    async () => ({ content: [{ type: "audio", data: WAV_B64, mimeType: "audio/wav" }] }),
  );

  server.registerTool(
    "test_embedded_resource",
    { description: "Returns an embedded text resource." },
    async () => ({
      content: [
        {
          type: "resource",
          resource: {
            uri: "test://embedded-resource",
            mimeType: "text/plain",
            text: "This is an embedded resource content.",
          },
        },
      ],
    }),
  );

  server.registerTool(
    "test_multiple_content_types",
    { description: "Returns text, image and embedded resource content together." },
    async () => ({
      content: [
        text("Multiple content types test:"),
        { type: "image", data: RED_PNG_B64, mimeType: "image/png" },
        {
          type: "resource",
          resource: {
            uri: "test://mixed-content-resource",
            mimeType: "application/json",
            text: JSON.stringify({ test: "data", value: 123 }),
          },
        },
      ],
    }),
  );

  server.registerTool(
    "test_error_handling",
    { description: "Always fails; the result carries isError: true." },
    async () => {
      throw new Error("This tool intentionally returns an error for testing");
    },
  );

  // --- tools: notifications during a call -------------------------------------
  server.registerTool(
    "test_tool_with_logging",
    { description: "Sends three info log notifications about 50 ms apart while it runs." },
    async (extra) => {
      await log(extra, "info", "Tool execution started");
      await sleep(50);
      await log(extra, "info", "Tool processing data");
      await sleep(50);
      await log(extra, "info", "Tool execution completed");
      return { content: [text("Tool with logging executed successfully (3 log messages sent)")] };
    },
  );

  server.registerTool(
    "test_tool_with_progress",
    { description: "Reports progress 0/100, 50/100, 100/100 when the request has a progress token." },
    async (extra) => {
      const progressToken = extra._meta?.progressToken;
      for (const [i, progress] of [0, 50, 100].entries()) {
        if (i > 0) await sleep(50);
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: "notifications/progress",
            params: { progressToken, progress, total: 100, message: `step ${i + 1} of 3` },
          });
        }
      }
      return {
        content: [
          text(
            progressToken !== undefined
              ? `Progress reported for token ${JSON.stringify(progressToken)}: 0, 50, 100 of 100`
              : "Completed without a progress token",
          ),
        ],
      };
    },
  );

  // --- tools: server -> client requests ---------------------------------------
  const clientCan = (capability) => Boolean(lowLevel.getClientCapabilities()?.[capability]);
  const errorResult = (message) => ({ isError: true, content: [text(message)] });

  server.registerTool(
    "test_sampling",
    {
      description: "Asks the client for an LLM completion (sampling/createMessage) of the prompt.",
      inputSchema: { prompt: z.string().describe("The prompt to send to the LLM") },
    },
    async ({ prompt }, extra) => {
      if (!clientCan("sampling")) return errorResult("Client does not support sampling");
      const result = await extra.sendRequest(
        {
          method: "sampling/createMessage",
          params: {
            messages: [{ role: "user", content: { type: "text", text: prompt } }],
            maxTokens: 100,
          },
        },
        CreateMessageResultSchema,
      );
      const reply =
        result.content?.type === "text" ? result.content.text : JSON.stringify(result.content);
      return { content: [text(`LLM response: ${reply}`)] };
    },
  );

  const elicit = async (extra, message, requestedSchema) =>
    extra.sendRequest(
      { method: "elicitation/create", params: { message, requestedSchema } },
      ElicitResultSchema,
    );
  const elicitationSummary = (result) =>
    `Elicitation completed: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`;

  server.registerTool(
    "test_elicitation",
    {
      description: "Asks the user (elicitation/create) for a username and an email address.",
      inputSchema: { message: z.string().describe("The message to show the user") },
    },
    async ({ message }, extra) => {
      if (!clientCan("elicitation")) return errorResult("Client does not support elicitation");
      const result = await elicit(extra, message, {
        type: "object",
        properties: {
          username: { type: "string", description: "User's response" },
          email: { type: "string", description: "User's email address" },
        },
        required: ["username", "email"],
      });
      return {
        content: [
          text(`User response: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`),
        ],
      };
    },
  );

  server.registerTool(
    "test_elicitation_sep1034_defaults",
    { description: "Elicitation whose schema gives a default for every primitive type (SEP-1034)." },
    async (extra) => {
      if (!clientCan("elicitation")) return errorResult("Client does not support elicitation");
      const result = await elicit(extra, "Please review and update the form fields with defaults", {
        type: "object",
        properties: {
          name: { type: "string", description: "User name", default: "John Doe" },
          age: { type: "integer", description: "User age", default: 30 },
          score: { type: "number", description: "User score", default: 95.5 },
          status: {
            type: "string",
            description: "User status",
            enum: ["active", "inactive", "pending"],
            default: "active",
          },
          verified: { type: "boolean", description: "Verification status", default: true },
        },
        required: [],
      });
      return { content: [text(elicitationSummary(result))] };
    },
  );

  server.registerTool(
    "test_elicitation_sep1330_enums",
    { description: "Elicitation whose schema uses all five enum shapes (SEP-1330)." },
    async (extra) => {
      if (!clientCan("elicitation")) return errorResult("Client does not support elicitation");
      const result = await elicit(extra, "Please pick from the enum fields", {
        type: "object",
        properties: {
          untitledSingle: {
            type: "string",
            description: "Untitled single-select",
            enum: ["option1", "option2", "option3"],
          },
          titledSingle: {
            type: "string",
            description: "Titled single-select",
            oneOf: [
              { const: "value1", title: "First Option" },
              { const: "value2", title: "Second Option" },
              { const: "value3", title: "Third Option" },
            ],
          },
          legacyEnum: {
            type: "string",
            description: "Legacy titled single-select (enumNames, deprecated)",
            enum: ["opt1", "opt2", "opt3"],
            enumNames: ["Option One", "Option Two", "Option Three"],
          },
          untitledMulti: {
            type: "array",
            description: "Untitled multi-select",
            items: { type: "string", enum: ["option1", "option2", "option3"] },
          },
          titledMulti: {
            type: "array",
            description: "Titled multi-select",
            items: {
              anyOf: [
                { const: "value1", title: "First Choice" },
                { const: "value2", title: "Second Choice" },
                { const: "value3", title: "Third Choice" },
              ],
            },
          },
        },
        required: [],
      });
      return { content: [text(elicitationSummary(result))] };
    },
  );

  // --- tools: schema preservation, SSE polling --------------------------------
  server.registerTool(
    JSON_SCHEMA_2020_12_TOOL,
    {
      description: "Tool with JSON Schema 2020-12 features ($schema, $defs, additionalProperties)",
      // Validation of the arguments; the advertised schema is the verbatim
      // 2020-12 document above.
      inputSchema: z
        .object({
          name: z.string().optional(),
          address: z.object({ street: z.string().optional(), city: z.string().optional() }).optional(),
        })
        .strict(),
    },
    async (args) => ({ content: [text(`json_schema_2020_12_tool called with ${JSON.stringify(args)}`)] }),
  );

  server.registerTool(
    "test_reconnection",
    {
      description:
        "SSE polling test (SEP-1699): when the host can, closes the request's SSE stream before answering, so the client must reconnect with Last-Event-ID.",
    },
    async (extra) => {
      // Only a Streamable HTTP host with an event store provides this; over
      // stdio the tool simply answers after a short delay.
      if (typeof extra.closeSSEStream === "function") extra.closeSSEStream();
      await sleep(100);
      return { content: [text("Reconnection test completed")] };
    },
  );

  // --- resources ----------------------------------------------------------------
  server.registerResource(
    "static-text",
    STATIC_TEXT_URI,
    { title: "Static text", description: "A static text resource", mimeType: "text/plain" },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: "text/plain", text: STATIC_TEXT }] }),
  );

  server.registerResource(
    "static-binary",
    STATIC_BINARY_URI,
    { title: "Static binary", description: "A static binary resource (1x1 blue PNG)", mimeType: "image/png" },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: "image/png", blob: BLUE_PNG_B64 }] }),
  );

  let watchedRevision = 0;
  server.registerResource(
    "watched-resource",
    WATCHED_URI,
    {
      title: "Watched resource",
      description: "A resource whose content changes while it has subscribers",
      mimeType: "text/plain",
    },
    async (uri) => ({
      contents: [{ uri: uri.href, mimeType: "text/plain", text: `Watched resource revision ${watchedRevision}` }],
    }),
  );

  server.registerResource(
    "template-data",
    new ResourceTemplate(TEMPLATE_URI, {
      list: undefined,
      complete: {
        id: (value) => ["1", "42", "123", "999"].filter((id) => id.startsWith(value)),
      },
    }),
    { title: "Template data", description: "JSON data for the id in the URI", mimeType: "application/json" },
    async (uri, { id }) => ({
      contents: [
        {
          uri: uri.href,
          mimeType: "application/json",
          text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
        },
      ],
    }),
  );

  // Subscriptions: McpServer does not handle resources/(un)subscribe itself.
  // While test://watched-resource has a subscriber, its revision is bumped and
  // notifications/resources/updated is sent every updateIntervalMs.
  const subscriptions = new Set();
  let updateTimer;
  const syncUpdateTimer = () => {
    const want = subscriptions.has(WATCHED_URI) && updateIntervalMs > 0;
    if (want && !updateTimer) {
      updateTimer = setInterval(() => {
        watchedRevision += 1;
        lowLevel.sendResourceUpdated({ uri: WATCHED_URI }).catch(() => {});
      }, updateIntervalMs);
      updateTimer.unref();
    } else if (!want && updateTimer) {
      clearInterval(updateTimer);
      updateTimer = undefined;
    }
  };
  lowLevel.setRequestHandler(SubscribeRequestSchema, async (request) => {
    subscriptions.add(request.params.uri);
    syncUpdateTimer();
    return {};
  });
  lowLevel.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
    subscriptions.delete(request.params.uri);
    syncUpdateTimer();
    return {};
  });
  const previousOnClose = lowLevel.onclose;
  lowLevel.onclose = () => {
    subscriptions.clear();
    syncUpdateTimer();
    previousOnClose?.();
  };

  // --- prompts -------------------------------------------------------------------
  server.registerPrompt(
    "test_simple_prompt",
    { title: "Simple prompt", description: "A prompt without arguments" },
    async () => ({
      messages: [{ role: "user", content: text("This is a simple prompt for testing.") }],
    }),
  );

  const ARG_SUGGESTIONS = ["paris", "park", "party", "test", "testing", "testValue1", "testValue2"];
  server.registerPrompt(
    "test_prompt_with_arguments",
    {
      title: "Prompt with arguments",
      description: "A prompt that substitutes two arguments",
      argsSchema: {
        arg1: completable(z.string().describe("First test argument"), (value) =>
          ARG_SUGGESTIONS.filter((s) => s.startsWith(value ?? "")),
        ),
        arg2: z.string().describe("Second test argument"),
      },
    },
    async ({ arg1, arg2 }) => ({
      messages: [{ role: "user", content: text(`Prompt with arguments: arg1='${arg1}', arg2='${arg2}'`) }],
    }),
  );

  server.registerPrompt(
    "test_prompt_with_embedded_resource",
    {
      title: "Prompt with embedded resource",
      description: "A prompt that embeds the resource named by resourceUri",
      argsSchema: { resourceUri: z.string().describe("URI of the resource to embed") },
    },
    async ({ resourceUri }) => ({
      messages: [
        {
          role: "user",
          content: {
            type: "resource",
            resource: { uri: resourceUri, mimeType: "text/plain", text: "Embedded resource content for testing." },
          },
        },
        { role: "user", content: text("Please process the embedded resource above.") },
      ],
    }),
  );

  server.registerPrompt(
    "test_prompt_with_image",
    { title: "Prompt with image", description: "A prompt that carries an image" },
    async () => ({
      messages: [
        { role: "user", content: { type: "image", data: RED_PNG_B64, mimeType: "image/png" } },
        { role: "user", content: text("Please analyze the image above.") },
      ],
    }),
  );

  if (!toolsListWrapped) {
    throw new Error("fixture: McpServer's tools/list handler was installed before it could be wrapped");
  }
  return server;
}

// ---------------------------------------------------------------------------
// stdio entry point
// ---------------------------------------------------------------------------

async function main() {
  const server = createFixtureServer();
  const transport = new StdioServerTransport();
  const shutdown = async (code) => {
    try {
      await server.close();
    } catch {
      // already closed
    }
    process.exit(code);
  };
  // When stdin ends nothing keeps the event loop alive except requests still
  // being handled (the subscription timer is unref'd): the process exits by
  // itself once their responses are written.
  process.on("SIGTERM", () => shutdown(0));
  process.on("SIGINT", () => shutdown(0));
  await server.connect(transport);
  process.stderr.write(`${FIXTURE_NAME} ${FIXTURE_VERSION}: serving on stdio (node ${process.version})\n`);
}

const isMain = (() => {
  try {
    return realpathSync(process.argv[1] ?? "") === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (isMain) {
  main().catch((err) => {
    process.stderr.write(`${FIXTURE_NAME}: fatal: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
