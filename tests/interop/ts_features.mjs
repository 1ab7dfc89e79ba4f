#!/usr/bin/env node
// Feature-level interop scenarios for mcp-bridge, using the official TypeScript
// SDK (Client + StreamableHTTPClientTransport) against
// @modelcontextprotocol/server-everything.
//
// Usage: node ts_features.mjs SCENARIO URL [N] [--allow-refused]
//   URL is the Streamable HTTP MCP endpoint (e.g. http://127.0.0.1:PORT/mcp)
//   fronting server-everything (behind mcp-bridge the child is
//   `node tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js stdio`).
//   N is only used by `mixed` and `mixed-elicit` (also accepted before URL:
//   `mixed 20 URL`). --allow-refused is only accepted by `mixed-elicit`.
//
// Every scenario taps the transport (every JSON-RPC message in and out, in wire
// order) in addition to using the SDK's own callbacks, so the checks are made
// on what actually crossed the wire, not only on what the SDK chose to surface.
//
// Scenarios and what each checks:
//
//   progress   Calls `trigger-long-running-operation` {duration: 1.5, steps: 5}
//              with an onprogress handler (the SDK sends _meta.progressToken =
//              the request id). Checks: exactly 5 notifications/progress carry
//              our token, progress values are 1..5 strictly increasing with
//              total = 5, all of them reached the wire before the tools/call
//              response and were all delivered to the onprogress handler before
//              the result resolved, none arrives after the result (waits 300 ms),
//              the result text names our duration/steps.
//
//   sampling   Client declares `sampling` and answers sampling/createMessage
//              with a canned assistant message containing a random marker.
//              Calls `trigger-sampling-request` {prompt, maxTokens: 50}. That
//              tool is only registered when the server saw a client with the
//              sampling capability at initialize (behind mcp-bridge: only when
//              the bridge runs with `--forward sampling`); if it is not listed
//              the scenario fails saying so. Checks: the handler ran exactly
//              once, the request it got carries our prompt, the tool result
//              contains the canned text.
//
//   elicitation  Client declares `elicitation: {form: {}}` and answers
//              elicitation/create with action "accept" + content (name, check,
//              email, integer, number). Calls `trigger-elicitation-request` (no
//              arguments; same conditional registration, `--forward elicitation`).
//              Checks: handler ran exactly once, the request is form mode with
//              a requestedSchema that has `name`, the tool result reports the
//              acceptance and echoes our name/email/integer/number.
//
//   subscribe  Two clients / two sessions, A and B, each with its standalone
//              GET SSE stream open (waited for via a fetch wrapper). A sends
//              resources/subscribe for demo://resource/dynamic/text/1, B does
//              not subscribe. A calls `toggle-subscriber-updates` (a toggle: if
//              it answers "Stopped..." the updates were already on - e.g. state
//              left in a shared stdio child - and it is called again). The
//              server then sends notifications/resources/updated for each
//              subscribed URI once immediately and every 5 s. Checks: A gets
//              >= 2 updates for the URI within 11 s; B gets none for it; after
//              A's resources/unsubscribe no further update for the URI reaches
//              A during 5.5 s (one full update period). Finally A toggles the
//              updates off again (also on failure, best effort).
//
//   cancel     Calls `trigger-long-running-operation` {duration: 3, steps: 3}
//              with an AbortSignal and onprogress, aborts after 500 ms.
//              Checks: the call promise rejects promptly (with our abort
//              reason) and long before the operation would end, the client
//              sent notifications/cancelled for that request id, and the
//              session still works afterwards (`echo`). It then waits until
//              the operation would have finished (+1.5 s) and reports what the
//              client can observe of the child side:
//                lateProgress   progress notifications for the cancelled token
//                               that arrived after the abort (server-everything's
//                               tool ignores the abort signal and keeps sending
//                               progress; a bridge may drop them),
//                lateResponse   whether a response for the cancelled id still
//                               arrived (it must not be surfaced as a result),
//                childObserved  = !lateResponse. The SDK server drops the result
//                               of a request it saw cancelled, and
//                               server-everything logs nothing on cancellation,
//                               so "no late response" is the only client-side
//                               evidence. Directly against server-everything it
//                               proves the server processed notifications/cancelled;
//                               behind a bridge it is also consistent with the
//                               bridge itself swallowing the late response
//                               (report only, not asserted).
//
//   mixed [N]  N (default 20) clients/sessions connect concurrently, then all
//              call `trigger-long-running-operation` concurrently with distinct
//              {duration, steps} (steps 2..10, duration 0.8..1.7 s) and an
//              onprogress handler. All SDK clients use the same request id and
//              hence the same progressToken value, so a multiplexer must keep
//              them apart. Checks per client: exactly `steps` progress
//              notifications with its own token, values 1..steps increasing,
//              total = steps, all before its result, all delivered to its
//              handler, its result names its own duration/steps; no progress
//              after the result. Prints totals.
//
//   mixed-elicit [N] [--allow-refused]
//              N (default 20) clients/sessions, each declaring
//              `elicitation: {form: {}}`, connect concurrently (and each waits
//              until `trigger-elicitation-request` is listed for it). Every
//              client then concurrently runs (a) the `mixed` progress call
//              (same distinct {duration, steps}, same checks) and (b), started
//              100..420 ms later so it overlaps the progress streams,
//              `trigger-elicitation-request`. Each client's elicitation handler
//              waits 0..150 ms (so many server-to-client requests are pending at
//              once) and answers action "accept" with client-unique content:
//              name `client-<i>-<run id>` (no name is a substring of another),
//              check, email, integer, number. Each client's elicitation call
//              ends as one of:
//                elicited   a normal result reporting the acceptance whose
//                           "- Name:" line is exactly this client's own name;
//                refused    the child's elicitation/create was answered with a
//                           JSON-RPC error, which is what a bridge in shared mode
//                           does when it cannot attribute a server-to-client
//                           request to exactly one session. Seen either as a
//                           JSON-RPC error response to our tools/call, or (what
//                           server-everything's McpServer does with the error)
//                           as an isError result whose text is the relayed
//                           "MCP error <code>: ...";
//                misrouted  the result or error names another client of this
//                           run: some client's answer reached the wrong session.
//              Checks: every client passes the progress checks; no client is
//              misrouted (fails loudly, listing who got whose answer); each
//              elicitation handler ran at most once, and exactly once with a
//              form-mode request with `name` in its schema for an elicited
//              client; any other outcome (rejection without a JSON-RPC error,
//              isError without a relayed JSON-RPC error, decline/other text)
//              fails; refused fails too unless --allow-refused is given.
//              Figures: clients, progress (total notifications), elicited,
//              refused, misrouted (always 0 on success), allowRefused,
//              handlerCalls (total handler runs), wallMs, and when any call was
//              refused refusedHow (["jsonrpc-error"|"tool-error"]) and
//              firstRefusal (its error text).
//
// Output contract:
//   success -> one JSON line on stdout: {"ok":true,"client":"ts","scenario":"...",...figures}, exit 0
//   failure -> a clear message on stderr, exit 1 (also after the overall timeout)
//   usage error -> exit 2
//
// INTEROP_TIMEOUT_MS overrides the overall timeout (default 30000); connecting (initialize) may
// take up to half of it, because in per-session mode initialize waits for a fresh child to start.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import {
  CheckFailed,
  ECHO_TOOL,
  LONG_TOOL,
  check,
  errMsg,
  fail,
  listAll,
  runMain,
  sleep,
  TIMEOUT_MS,
  tapTransport,
  textOf,
} from "./common.mjs";

const SAMPLING_TOOL = "trigger-sampling-request";
const ELICITATION_TOOL = "trigger-elicitation-request";
const TOGGLE_UPDATES_TOOL = "toggle-subscriber-updates";
const SUBSCRIBE_URI = "demo://resource/dynamic/text/1";
const UPDATE_PERIOD_MS = 5000; // server-everything's fixed resource-update cadence
const SCENARIOS = ["progress", "sampling", "elicitation", "subscribe", "cancel", "mixed", "mixed-elicit"];
const N_SCENARIOS = ["mixed", "mixed-elicit"]; // scenarios taking a client count

const CONNECT_TIMEOUT_MS = Math.max(10000, TIMEOUT_MS / 2);
const now = () => Date.now();
const rnd = () => Math.random().toString(36).slice(2, 10);

// Resolve/reject with the promise, or reject after ms.
function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new CheckFailed(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function waitFor(cond, ms, what, pollMs = 25) {
  const deadline = now() + ms;
  while (!cond()) {
    if (now() >= deadline) fail(`${what} (waited ${ms} ms)`);
    await sleep(pollMs);
  }
}

const isResponse = (m) => m && m.id !== undefined && m.method === undefined && ("result" in m || "error" in m);
const isNotification = (m, method) => m && m.id === undefined && m.method === method;

// One client session with a wire tap.
//   events: [{dir: "in"|"out", msg, t}] in wire order
//   errors: messages reported through client.onerror (SDK / transport)
//   getStreams: number of standalone GET SSE streams the server accepted
async function makeClient(url, label, capabilities = {}) {
  const state = { label, events: [], errors: [], getStreams: 0 };
  const fetchWrap = async (input, init) => {
    const res = await fetch(input, init);
    const method = (init?.method ?? "GET").toUpperCase();
    if (method === "GET" && res.ok && (res.headers.get("content-type") || "").includes("text/event-stream")) {
      state.getStreams++;
    }
    return res;
  };
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: fetchWrap });

  tapTransport(
    transport,
    (msg) => state.events.push({ dir: "in", msg, t: now() }),
    (msg) => state.events.push({ dir: "out", msg, t: now() }),
  );

  const client = new Client({ name: `mcp-bridge-interop-ts-${label}`, version: "0.0.0" }, { capabilities });
  client.onerror = (e) => state.errors.push(errMsg(e));
  try {
    await withTimeout(client.connect(transport), CONNECT_TIMEOUT_MS, `${label}: connect/initialize`);
  } catch (e) {
    fail(`${label}: connect/initialize failed: ${errMsg(e)}`);
  }
  state.client = client;
  state.transport = transport;
  return state;
}

async function closeClient(c) {
  if (!c) return;
  try {
    await withTimeout(c.transport.terminateSession(), 3000, `${c.label}: DELETE`);
  } catch {
    // best effort: session teardown is covered by ts_client.mjs
  }
  try {
    await withTimeout(c.client.close(), 3000, `${c.label}: close`);
  } catch {
    // ignore
  }
}

async function listToolNames(c) {
  const tools = await listAll((p) => c.client.listTools(p), "tools", `${c.label}: tools/list`);
  return tools.map((t) => t.name);
}

// server-everything registers the capability-dependent tools in its
// `initialized` handler; allow a short grace period before declaring one absent.
async function requireTool(c, name, hint) {
  let names = [];
  for (let i = 0; i < 4; i++) {
    names = await listToolNames(c);
    if (names.includes(name)) return;
    await sleep(250);
  }
  fail(`${c.label}: tool '${name}' is not listed (${hint}); tools: ${JSON.stringify(names)}`);
}

// The tools/call request for `name` this client put on the wire (latest one).
function sentCall(c, name) {
  for (let i = c.events.length - 1; i >= 0; i--) {
    const { dir, msg } = c.events[i];
    if (dir === "out" && msg.method === "tools/call" && msg.params?.name === name) return msg;
  }
  return undefined;
}

// Wire-level view of one request: its progress notifications and its response.
function analyzeCall(c, req) {
  const token = req.params?._meta?.progressToken;
  const progress = [];
  let responseIndex = -1;
  let response;
  const foreignProgress = [];
  c.events.forEach(({ dir, msg, t }, i) => {
    if (dir !== "in") return;
    if (isNotification(msg, "notifications/progress")) {
      if (token !== undefined && msg.params?.progressToken === token) progress.push({ ...msg.params, index: i, t });
      else foreignProgress.push(msg.params);
    } else if (isResponse(msg) && msg.id === req.id && responseIndex < 0) {
      responseIndex = i;
      response = msg;
    }
  });
  const afterResponse = responseIndex < 0 ? 0 : progress.filter((p) => p.index > responseIndex).length;
  return { token, progress, responseIndex, response, afterResponse, foreignProgress };
}

function responseArrived(c, name) {
  const req = sentCall(c, name);
  if (!req) return false;
  return c.events.some(({ dir, msg }) => dir === "in" && isResponse(msg) && msg.id === req.id);
}

// Calls the long-running tool with an onprogress handler and checks everything
// about its progress stream. Returns figures.
async function runProgressCall(c, duration, steps) {
  const handled = [];
  const t0 = now();
  let result;
  try {
    result = await c.client.callTool({ name: LONG_TOOL, arguments: { duration, steps } }, undefined, {
      onprogress: (p) => handled.push({ ...p, resultAlreadyOnWire: responseArrived(c, LONG_TOOL) }),
    });
  } catch (e) {
    fail(`${c.label}: ${LONG_TOOL}(${duration}s, ${steps} steps) failed: ${errMsg(e)}`);
  }
  const elapsed = now() - t0;
  const handledAtResult = handled.length;
  await sleep(300); // anything still in flight after the result would show up now

  check(!result.isError, `${c.label}: ${LONG_TOOL} returned isError: ${JSON.stringify(result)}`);
  const text = textOf(result.content);
  const want = `Duration: ${duration} seconds, Steps: ${steps}.`;
  check(text.includes(want), `${c.label}: result ${JSON.stringify(text)} is not ours (expected it to contain ${JSON.stringify(want)})`);

  const req = sentCall(c, LONG_TOOL);
  check(req, `${c.label}: no tools/call request seen on the wire`);
  const a = analyzeCall(c, req);
  check(a.token !== undefined, `${c.label}: the SDK did not send a progressToken`);
  check(a.responseIndex >= 0, `${c.label}: no response for request id ${JSON.stringify(req.id)} seen on the wire`);
  check(
    a.foreignProgress.length === 0,
    `${c.label}: got ${a.foreignProgress.length} progress notification(s) with a token other than ours (${JSON.stringify(a.token)}): ${JSON.stringify(a.foreignProgress.slice(0, 3))}`,
  );
  const values = a.progress.map((p) => p.progress);
  check(
    a.progress.length === steps && a.afterResponse === 0,
    `${c.label}: expected ${steps} progress notifications for token ${JSON.stringify(a.token)} before the response, ` +
      `got ${a.progress.length - a.afterResponse} before and ${a.afterResponse} after it: ${JSON.stringify(values)}`,
  );
  for (let i = 0; i < values.length; i++) {
    check(typeof values[i] === "number", `${c.label}: non-numeric progress ${JSON.stringify(values[i])}`);
    if (i > 0) check(values[i] > values[i - 1], `${c.label}: progress not strictly increasing: ${JSON.stringify(values)}`);
  }
  check(
    values.every((v, i) => v === i + 1),
    `${c.label}: progress values ${JSON.stringify(values)} are not 1..${steps}`,
  );
  const totals = a.progress.map((p) => p.total);
  check(
    totals.every((t) => t === steps),
    `${c.label}: progress totals ${JSON.stringify(totals)} are not all ${steps} (someone else's progress?)`,
  );
  // SDK level: every progress was handed to onprogress, before the result resolved.
  check(
    handledAtResult === steps && handled.length === steps,
    `${c.label}: onprogress ran ${handledAtResult} time(s) before the result and ${handled.length} in total, expected ${steps}`,
  );
  check(
    handled.every((h) => !h.resultAlreadyOnWire),
    `${c.label}: onprogress ran after the tools/call response had already arrived`,
  );
  const sdkErrors = c.errors.filter((e) => /unknown token|unknown message id/i.test(e));
  check(sdkErrors.length === 0, `${c.label}: SDK reported stray messages: ${JSON.stringify(sdkErrors)}`);
  return { token: a.token, progress: a.progress.length, elapsedMs: elapsed };
}

// ---------------------------------------------------------------- scenarios

async function scenarioProgress(url) {
  const duration = 1.5;
  const steps = 5;
  const c = await makeClient(url, "progress");
  try {
    const r = await runProgressCall(c, duration, steps);
    return { tool: LONG_TOOL, duration, steps, progress: r.progress, token: r.token, elapsedMs: r.elapsedMs };
  } finally {
    await closeClient(c);
  }
}

async function scenarioSampling(url) {
  const canned = `CANNED-SAMPLING-REPLY-${rnd()}`;
  const prompt = `interop sampling prompt ${rnd()}`;
  const c = await makeClient(url, "sampling", { sampling: {} });
  const seen = [];
  c.client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    seen.push(request.params);
    return {
      model: "interop-canned-model",
      role: "assistant",
      content: { type: "text", text: canned },
      stopReason: "endTurn",
    };
  });
  try {
    await requireTool(
      c,
      SAMPLING_TOOL,
      "server-everything registers it only if its client declared `sampling` at initialize; behind mcp-bridge start it with --forward sampling",
    );
    let result;
    try {
      result = await c.client.callTool({ name: SAMPLING_TOOL, arguments: { prompt, maxTokens: 50 } });
    } catch (e) {
      fail(`${SAMPLING_TOOL} failed: ${errMsg(e)}`);
    }
    check(!result.isError, `${SAMPLING_TOOL} returned isError: ${JSON.stringify(result)}`);
    check(seen.length === 1, `sampling/createMessage handler ran ${seen.length} time(s), expected exactly 1`);
    const asked = JSON.stringify(seen[0]?.messages ?? []);
    check(asked.includes(prompt), `sampling request does not carry our prompt: ${asked.slice(0, 300)}`);
    const text = textOf(result.content);
    check(text.includes(canned), `tool result does not contain the canned reply ${canned}: ${JSON.stringify(text).slice(0, 400)}`);
    return { tool: SAMPLING_TOOL, handlerCalls: seen.length, maxTokens: seen[0]?.maxTokens ?? null, cannedInResult: true };
  } finally {
    await closeClient(c);
  }
}

async function scenarioElicitation(url) {
  const content = {
    name: `Interop Tester ${rnd()}`,
    check: true,
    email: "interop@example.com",
    integer: 7,
    number: 12.5,
  };
  const c = await makeClient(url, "elicitation", { elicitation: { form: {} } });
  const seen = [];
  c.client.setRequestHandler(ElicitRequestSchema, async (request) => {
    seen.push(request.params);
    return { action: "accept", content };
  });
  try {
    await requireTool(
      c,
      ELICITATION_TOOL,
      "server-everything registers it only if its client declared `elicitation` at initialize; behind mcp-bridge start it with --forward elicitation",
    );
    let result;
    try {
      result = await c.client.callTool({ name: ELICITATION_TOOL, arguments: {} });
    } catch (e) {
      fail(`${ELICITATION_TOOL} failed: ${errMsg(e)}`);
    }
    check(!result.isError, `${ELICITATION_TOOL} returned isError: ${JSON.stringify(result)}`);
    check(seen.length === 1, `elicitation/create handler ran ${seen.length} time(s), expected exactly 1`);
    const p = seen[0];
    check(p.mode === undefined || p.mode === "form", `elicitation request is not form mode: ${JSON.stringify(p.mode)}`);
    check(
      p.requestedSchema?.properties?.name !== undefined,
      `elicitation request has no requestedSchema with 'name': ${JSON.stringify(p).slice(0, 300)}`,
    );
    const text = textOf(result.content);
    const expect = [
      "User provided the requested information",
      `- Name: ${content.name}`,
      `- Email: ${content.email}`,
      `- Favorite Integer: ${content.integer}`,
      `- Favorite Number: ${content.number}`,
    ];
    for (const e of expect) {
      check(text.includes(e), `tool result does not reflect the accepted content (missing ${JSON.stringify(e)}): ${JSON.stringify(text).slice(0, 500)}`);
    }
    return { tool: ELICITATION_TOOL, handlerCalls: seen.length, mode: p.mode ?? "form", action: "accept", fields: Object.keys(content).length };
  } finally {
    await closeClient(c);
  }
}

async function scenarioSubscribe(url) {
  let a;
  let b;
  let updatesOn = false;
  const toggles = [];
  const toggle = async () => {
    const r = await a.client.callTool({ name: TOGGLE_UPDATES_TOOL, arguments: {} });
    check(!r.isError, `${TOGGLE_UPDATES_TOOL} returned isError: ${JSON.stringify(r)}`);
    const text = textOf(r.content);
    const started = /^\s*Started/i.test(text);
    const stopped = /^\s*Stopped/i.test(text);
    check(started || stopped, `unexpected ${TOGGLE_UPDATES_TOOL} answer: ${JSON.stringify(text)}`);
    updatesOn = started;
    toggles.push(started ? "started" : "stopped");
    return started;
  };
  try {
    [a, b] = await Promise.all([makeClient(url, "A"), makeClient(url, "B")]);
    const aUpdates = [];
    const bUpdates = [];
    a.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => aUpdates.push({ uri: n.params.uri, t: now() }));
    b.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => bUpdates.push({ uri: n.params.uri, t: now() }));

    // Server-initiated notifications unrelated to a request travel on the standalone GET stream.
    await waitFor(() => a.getStreams > 0 && b.getStreams > 0, 5000,
      `standalone GET SSE stream not established (A: ${a.getStreams}, B: ${b.getStreams}); resource updates cannot be delivered`);

    try {
      await a.client.subscribeResource({ uri: SUBSCRIBE_URI });
    } catch (e) {
      fail(`A: resources/subscribe ${SUBSCRIBE_URI} failed: ${errMsg(e)}`);
    }

    const forUri = (list) => list.filter((u) => u.uri === SUBSCRIBE_URI);
    let tOn = now();
    if (!(await toggle())) {
      // Updates were already running (shared state, e.g. one stdio child behind a bridge): toggle again.
      tOn = now();
      check(await toggle(), `${TOGGLE_UPDATES_TOOL} did not start updates on the second call`);
    }

    await waitFor(() => forUri(aUpdates).length >= 2, 2 * UPDATE_PERIOD_MS + 1000,
      `A received ${forUri(aUpdates).length} notifications/resources/updated for ${SUBSCRIBE_URI}, expected >= 2`);
    await sleep(300); // let anything misrouted to B land
    const aGot = forUri(aUpdates);
    const bGotUri = forUri(bUpdates).length;
    check(bGotUri === 0, `B (not subscribed) received ${bGotUri} notifications/resources/updated for ${SUBSCRIBE_URI}`);
    const aWire = a.events.filter((e) => e.dir === "in" && isNotification(e.msg, "notifications/resources/updated")).length;

    try {
      await a.client.unsubscribeResource({ uri: SUBSCRIBE_URI });
    } catch (e) {
      fail(`A: resources/unsubscribe ${SUBSCRIBE_URI} failed: ${errMsg(e)}`);
    }
    const tUnsub = now();
    await sleep(UPDATE_PERIOD_MS + 500); // one full period: the next tick would have reached A
    const late = forUri(aUpdates).filter((u) => u.t > tUnsub + 250).length;
    check(late === 0, `A received ${late} update(s) for ${SUBSCRIBE_URI} more than 250 ms after unsubscribing`);
    const bGotUriFinal = forUri(bUpdates).length;
    check(bGotUriFinal === 0, `B (not subscribed) received ${bGotUriFinal} notifications/resources/updated for ${SUBSCRIBE_URI}`);

    check(!(await toggle()), `${TOGGLE_UPDATES_TOOL} did not stop the updates`);

    return {
      uri: SUBSCRIBE_URI,
      tool: TOGGLE_UPDATES_TOOL,
      aUpdates: aGot.length,
      aUpdatesWire: aWire,
      firstUpdateMs: aGot[0].t - tOn,
      secondUpdateMs: aGot[1].t - tOn,
      bUpdatesForUri: bGotUriFinal,
      bUpdatesOther: bUpdates.length - bGotUriFinal,
      aUpdatesAfterUnsubscribe: late,
      toggles,
    };
  } finally {
    if (updatesOn && a) {
      try {
        await withTimeout(toggle(), 3000, "cleanup toggle");
      } catch {
        // best effort
      }
    }
    await Promise.all([closeClient(a), closeClient(b)]);
  }
}

async function scenarioCancel(url) {
  const duration = 3;
  const steps = 3;
  const abortAfterMs = 500;
  const reason = `interop-cancel-${rnd()}`;
  const c = await makeClient(url, "cancel");
  try {
    const ac = new AbortController();
    const handled = [];
    const t0 = now();
    let tAbort;
    const timer = setTimeout(() => {
      tAbort = now();
      ac.abort(reason);
    }, abortAfterMs);
    let outcome;
    try {
      const r = await c.client.callTool({ name: LONG_TOOL, arguments: { duration, steps } }, undefined, {
        signal: ac.signal,
        onprogress: (p) => handled.push(p),
      });
      outcome = { resolved: r };
    } catch (e) {
      outcome = { rejected: e };
    } finally {
      clearTimeout(timer);
    }
    const tReject = now();
    check(!outcome.resolved, `${LONG_TOOL} resolved despite the abort: ${String(JSON.stringify(outcome.resolved)).slice(0, 300)}`);
    check(tAbort !== undefined, `${LONG_TOOL} failed before the abort: ${errMsg(outcome.rejected)}`);
    check(
      errMsg(outcome.rejected).includes(reason),
      `${LONG_TOOL} rejected with ${JSON.stringify(errMsg(outcome.rejected))}, not with our abort reason ${reason}`,
    );
    const rejectDelay = tReject - tAbort;
    check(rejectDelay < 1000, `the abort took ${rejectDelay} ms to reject the call`);

    const req = sentCall(c, LONG_TOOL);
    check(req, "no tools/call request seen on the wire");
    await waitFor(
      () => c.events.some(({ dir, msg }) => dir === "out" && isNotification(msg, "notifications/cancelled") && msg.params?.requestId === req.id),
      2000,
      `the client did not send notifications/cancelled for request ${JSON.stringify(req.id)}`,
    );
    const cancelErrors = c.errors.filter((e) => /failed to send cancellation/i.test(e));
    check(cancelErrors.length === 0, `sending notifications/cancelled failed: ${JSON.stringify(cancelErrors)}`);

    // The session must still be usable.
    const msg = `still alive ${rnd()}`;
    let echo;
    try {
      echo = await c.client.callTool({ name: ECHO_TOOL, arguments: { message: msg } });
    } catch (e) {
      fail(`${ECHO_TOOL} after cancellation failed: ${errMsg(e)}`);
    }
    check(!echo.isError && textOf(echo.content).includes(msg), `${ECHO_TOOL} after cancellation returned ${JSON.stringify(echo)}`);

    // Wait until the cancelled operation would have completed, then look at what arrived.
    const until = t0 + duration * 1000 + 1500;
    if (until > now()) await sleep(until - now());
    const a = analyzeCall(c, req);
    const lateProgress = a.progress.filter((p) => p.t >= tAbort).length;
    const lateResponse = a.responseIndex >= 0;
    return {
      tool: LONG_TOOL,
      duration,
      steps,
      abortAfterMs,
      rejectDelayMs: rejectDelay,
      rejection: errMsg(outcome.rejected),
      progressBeforeAbort: a.progress.length - lateProgress,
      onprogressCalls: handled.length,
      cancelledSent: true,
      echoAfterCancel: true,
      lateProgress,
      lateResponse,
      childObserved: !lateResponse,
    };
  } finally {
    await closeClient(c);
  }
}

async function scenarioMixed(url, n) {
  const specs = Array.from({ length: n }, (_, i) => ({
    label: `mixed-${i}`,
    steps: 2 + (i % 9),
    duration: Math.round((0.8 + 0.15 * (i % 7)) * 100) / 100,
  }));
  const clients = [];
  try {
    const made = await Promise.allSettled(specs.map((s) => makeClient(url, s.label)));
    for (const m of made) if (m.status === "fulfilled") clients.push(m.value);
    const bad = made.find((m) => m.status === "rejected");
    if (bad) throw bad.reason;

    const t0 = now();
    const results = await Promise.allSettled(clients.map((c, i) => runProgressCall(c, specs[i].duration, specs[i].steps)));
    const elapsed = now() - t0;
    const failures = results
      .map((r, i) => (r.status === "rejected" ? `${specs[i].label}: ${errMsg(r.reason)}` : null))
      .filter(Boolean);
    check(failures.length === 0, `${failures.length}/${n} clients failed:\n  ${failures.join("\n  ")}`);
    const ok = results.map((r) => r.value);
    const totalProgress = ok.reduce((s, r) => s + r.progress, 0);
    const expected = specs.reduce((s, x) => s + x.steps, 0);
    check(totalProgress === expected, `total progress ${totalProgress} != expected ${expected}`);
    return {
      clients: n,
      tool: LONG_TOOL,
      totalProgress,
      expectedProgress: expected,
      distinctTokenValues: new Set(ok.map((r) => JSON.stringify(r.token))).size,
      maxCallMs: Math.max(...ok.map((r) => r.elapsedMs)),
      wallMs: elapsed,
    };
  } finally {
    await Promise.all(clients.map((c) => closeClient(c)));
  }
}

// One client's `trigger-elicitation-request` call in mixed-elicit, classified as
// {outcome: "elicited" | "refused" | "misrouted", ...}. Any other outcome fails.
// `names` are the content names of every client of the run; `i` is this client's.
async function runElicitCall(c, names, i) {
  const own = names[i];
  let result;
  let error;
  try {
    result = await c.client.callTool({ name: ELICITATION_TOOL, arguments: {} });
  } catch (e) {
    error = e;
  }
  const req = sentCall(c, ELICITATION_TOOL);
  check(req, `${c.label}: no ${ELICITATION_TOOL} tools/call request seen on the wire`);
  const resp = c.events.find(({ dir, msg }) => dir === "in" && isResponse(msg) && msg.id === req.id)?.msg;
  const text = error ? `${errMsg(error)}\n${resp?.error?.message ?? ""}` : textOf(result.content);
  const others = names.filter((nm, j) => j !== i && text.includes(nm));
  if (others.length > 0) {
    return { outcome: "misrouted", others, text: text.slice(0, 300) };
  }
  if (error) {
    check(
      resp?.error !== undefined,
      `${c.label}: ${ELICITATION_TOOL} failed without a JSON-RPC error response on the wire: ${errMsg(error)}`,
    );
    return { outcome: "refused", how: "jsonrpc-error", reason: `${resp.error.code}: ${resp.error.message}` };
  }
  if (result.isError) {
    // McpServer turns the JSON-RPC error its elicitation/create got into an isError result.
    check(
      /MCP error -?\d+:/.test(text),
      `${c.label}: ${ELICITATION_TOOL} returned isError without a relayed JSON-RPC error: ${JSON.stringify(text).slice(0, 400)}`,
    );
    return { outcome: "refused", how: "tool-error", reason: text.split("\n")[0].slice(0, 300) };
  }
  check(
    text.includes("User provided the requested information"),
    `${c.label}: ${ELICITATION_TOOL} result does not report an acceptance: ${JSON.stringify(text).slice(0, 400)}`,
  );
  const nameLine = /^- Name: (.*)$/m.exec(text)?.[1];
  check(
    nameLine === own,
    `${c.label}: ${ELICITATION_TOOL} result names ${JSON.stringify(nameLine)}, not our own ${JSON.stringify(own)}: ${JSON.stringify(text).slice(0, 400)}`,
  );
  return { outcome: "elicited" };
}

async function scenarioMixedElicit(url, n, allowRefused) {
  const runId = rnd();
  const specs = Array.from({ length: n }, (_, i) => ({
    label: `mixed-elicit-${i}`,
    steps: 2 + (i % 9),
    duration: Math.round((0.8 + 0.15 * (i % 7)) * 100) / 100,
    elicitDelayMs: 100 + 80 * (i % 5),
    answerDelayMs: 50 * (i % 4),
    content: {
      name: `client-${i}-${runId}`,
      check: true,
      email: `client-${i}@example.com`,
      integer: 1 + (i % 100),
      number: (i % 1000) + 0.5,
    },
  }));
  const names = specs.map((s) => s.content.name);
  const seen = specs.map(() => []);
  const clients = [];
  try {
    const made = await Promise.allSettled(
      specs.map(async (s, i) => {
        const c = await makeClient(url, s.label, { elicitation: { form: {} } });
        c.client.setRequestHandler(ElicitRequestSchema, async (request) => {
          seen[i].push(request.params);
          await sleep(s.answerDelayMs);
          return { action: "accept", content: s.content };
        });
        return c;
      }),
    );
    for (const m of made) if (m.status === "fulfilled") clients.push(m.value);
    const bad = made.find((m) => m.status === "rejected");
    if (bad) throw bad.reason;
    await Promise.all(
      clients.map((c) =>
        requireTool(
          c,
          ELICITATION_TOOL,
          "server-everything registers it only if its client declared `elicitation` at initialize; behind mcp-bridge use --isolation session or --forward elicitation",
        ),
      ),
    );

    const t0 = now();
    const results = await Promise.all(
      clients.map((c, i) =>
        Promise.allSettled([
          runProgressCall(c, specs[i].duration, specs[i].steps),
          sleep(specs[i].elicitDelayMs).then(() => runElicitCall(c, names, i)),
        ]),
      ),
    );
    const elapsed = now() - t0;
    await sleep(300); // a late (misrouted or duplicated) elicitation/create would reach a handler now

    const misrouted = results
      .map(([, e], i) =>
        e.status === "fulfilled" && e.value.outcome === "misrouted"
          ? `${specs[i].label} (own name ${names[i]}) got an answer naming ${e.value.others.join(", ")}: ${JSON.stringify(e.value.text)}`
          : null,
      )
      .filter(Boolean);
    check(
      misrouted.length === 0,
      `MISROUTED: ${misrouted.length}/${n} clients got another client's elicitation answer:\n  ${misrouted.join("\n  ")}`,
    );
    const failures = [];
    results.forEach(([p, e], i) => {
      if (p.status === "rejected") failures.push(`${specs[i].label} progress: ${errMsg(p.reason)}`);
      if (e.status === "rejected") failures.push(`${specs[i].label} elicitation: ${errMsg(e.reason)}`);
      const calls = seen[i].length;
      if (calls > 1) {
        failures.push(`${specs[i].label}: elicitation handler ran ${calls} times (someone else's elicitation/create reached this session?)`);
      } else if (e.status === "fulfilled" && e.value.outcome === "elicited") {
        const q = seen[i][0];
        if (calls !== 1) failures.push(`${specs[i].label}: elicited, but its handler ran ${calls} time(s)`);
        else if (!(q.mode === undefined || q.mode === "form") || q.requestedSchema?.properties?.name === undefined) {
          failures.push(`${specs[i].label}: elicitation request is not form mode with 'name': ${JSON.stringify(q).slice(0, 300)}`);
        }
      }
    });
    check(failures.length === 0, `${failures.length} failure(s) among ${n} clients:\n  ${failures.join("\n  ")}`);

    const outcomes = results.map(([, e]) => e.value);
    const refusedList = outcomes.filter((o) => o.outcome === "refused");
    const elicited = outcomes.filter((o) => o.outcome === "elicited").length;
    check(
      allowRefused || refusedList.length === 0,
      `${refusedList.length}/${n} elicitation calls were refused (pass --allow-refused to accept that): ${refusedList[0]?.reason}`,
    );
    const totalProgress = results.reduce((s, [p]) => s + p.value.progress, 0);
    const expected = specs.reduce((s, x) => s + x.steps, 0);
    check(totalProgress === expected, `total progress ${totalProgress} != expected ${expected}`);
    check(elicited + refusedList.length === n, `elicited ${elicited} + refused ${refusedList.length} != ${n} clients`);
    const figures = {
      clients: n,
      progress: totalProgress,
      elicited,
      refused: refusedList.length,
      misrouted: misrouted.length,
      allowRefused,
      handlerCalls: seen.reduce((s, x) => s + x.length, 0),
      wallMs: elapsed,
    };
    if (refusedList.length > 0) {
      figures.refusedHow = [...new Set(refusedList.map((r) => r.how))];
      figures.firstRefusal = refusedList[0].reason;
    }
    return figures;
  } finally {
    await Promise.all(clients.map((c) => closeClient(c)));
  }
}

// ---------------------------------------------------------------- main

function usage() {
  process.stderr.write(
    `usage: node ts_features.mjs SCENARIO URL [N] [--allow-refused]\n  SCENARIO: ${SCENARIOS.join(" | ")}\n` +
      `  N: clients for mixed / mixed-elicit (default 20); --allow-refused: mixed-elicit only\n`,
  );
  process.exit(2);
}

const args = process.argv.slice(2);
const scenario = args.shift();
if (!SCENARIOS.includes(scenario)) usage();
let url;
let n = 20;
let allowRefused = false;
for (const a of args) {
  if (/^\d+$/.test(a) && N_SCENARIOS.includes(scenario)) n = Number(a);
  else if (a === "--allow-refused" && scenario === "mixed-elicit") allowRefused = true;
  else if (url === undefined) url = a;
  else usage();
}
if (!url || n < 1) usage();
try {
  const u = new URL(url);
  if (!/^https?:$/.test(u.protocol)) throw new Error("not http");
} catch {
  process.stderr.write(`ts_features: FAIL: invalid URL: ${url}\n`);
  process.exit(1);
}

const run = {
  progress: () => scenarioProgress(url),
  sampling: () => scenarioSampling(url),
  elicitation: () => scenarioElicitation(url),
  subscribe: () => scenarioSubscribe(url),
  cancel: () => scenarioCancel(url),
  mixed: () => scenarioMixed(url, n),
  "mixed-elicit": () => scenarioMixedElicit(url, n, allowRefused),
}[scenario];

runMain(`ts_features ${scenario}`, async () => ({ scenario, ...(await run()) }));
