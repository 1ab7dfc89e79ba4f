// Helpers shared by the TypeScript-SDK interop scripts (ts_client.mjs,
// ts_transports.mjs, ts_features.mjs): check/fail, text extraction, paginated
// lists, a wire tap, the basic echo / get-sum / resource-read checks against
// server-everything, and runMain (overall timeout, the one JSON summary line on
// stdout, "NAME: FAIL: ..." on stderr, exit codes 0/1).
//
// INTEROP_TIMEOUT_MS overrides the overall timeout (default 30000).

export const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT_MS || 30000);
export const MAX_PAGES = 50;
export const ECHO_TOOL = "echo";
export const SUM_TOOL = "get-sum";
export const LONG_TOOL = "trigger-long-running-operation";

export class CheckFailed extends Error {}

export function fail(msg) {
  throw new CheckFailed(msg);
}

export function check(cond, msg) {
  if (!cond) fail(msg);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function textOf(content) {
  return (content || [])
    .filter((c) => c && c.type === "text" && typeof c.text === "string")
    .map((c) => c.text)
    .join("\n");
}

export function errMsg(e) {
  return e?.message ?? String(e);
}

// Collect every page of a paginated list call. `what` names the call in failures.
export async function listAll(fn, key, what = `${key} list`) {
  const items = [];
  let cursor;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await fn(cursor === undefined ? undefined : { cursor });
    check(Array.isArray(res?.[key]), `${what} result has no '${key}' array: ${JSON.stringify(res)}`);
    items.push(...res[key]);
    if (!res.nextCursor) return items;
    cursor = res.nextCursor;
  }
  fail(`${what} did not finish within ${MAX_PAGES} pages`);
}

// Record every message on `transport`: onIn(msg) for inbound ones (before the
// SDK's handler sees them), onOut(msg) for outbound ones, in wire order.
export function tapTransport(transport, onIn, onOut) {
  let inner;
  Object.defineProperty(transport, "onmessage", {
    configurable: true,
    get: () => inner,
    set: (h) => {
      inner =
        typeof h === "function"
          ? (msg, extra) => {
              onIn(msg);
              return h(msg, extra);
            }
          : h;
    },
  });
  const origSend = transport.send.bind(transport);
  transport.send = (msg, opts) => {
    onOut(msg);
    return origSend(msg, opts);
  };
}

export function checkToolsListed(tools, names) {
  const toolNames = tools.map((t) => t.name);
  for (const name of names) {
    check(toolNames.includes(name), `tool '${name}' not listed; tools: ${JSON.stringify(toolNames)}`);
  }
}

export async function checkEcho(client, message) {
  const echo = await client.callTool({ name: ECHO_TOOL, arguments: { message } });
  check(!echo.isError, `${ECHO_TOOL} returned isError: ${JSON.stringify(echo)}`);
  const echoText = textOf(echo.content);
  check(
    echoText.includes(message),
    `${ECHO_TOOL} text ${JSON.stringify(echoText)} does not contain ${JSON.stringify(message)}`,
  );
}

export async function checkSum(client) {
  const sum = await client.callTool({ name: SUM_TOOL, arguments: { a: 2, b: 3 } });
  check(!sum.isError, `${SUM_TOOL} returned isError: ${JSON.stringify(sum)}`);
  const sumText = textOf(sum.content);
  check(/\b5\b/.test(sumText), `${SUM_TOOL}(2,3) text ${JSON.stringify(sumText)} does not contain 5`);
}

// Read the first listed resource: non-empty text or blob.
export async function checkReadFirstResource(client, resources) {
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
}

// Run main() under the overall timeout; print {"ok":true,"client":"ts",...figures}
// and exit 0, or "NAME: FAIL: ..." on stderr and exit 1.
export function runMain(name, main) {
  const timer = setTimeout(() => {
    process.stderr.write(`${name}: FAIL: overall timeout of ${TIMEOUT_MS} ms exceeded\n`);
    process.exit(1);
  }, TIMEOUT_MS);

  main().then(
    (figures) => {
      clearTimeout(timer);
      process.stdout.write(JSON.stringify({ ok: true, client: "ts", ...figures }) + "\n");
      process.exit(0);
    },
    (err) => {
      clearTimeout(timer);
      const msg = err instanceof CheckFailed ? err.message : `unexpected error: ${err?.stack ?? err}`;
      process.stderr.write(`${name}: FAIL: ${msg}\n`);
      process.exit(1);
    },
  );
}
