#!/usr/bin/env python3
"""Real-peer interop client for mcp-bridge's legacy HTTP+SSE transport (spec
2024-11-05), using the official Python SDK v1 (`mcp.client.sse.sse_client`).

Usage: python py_sse_client.py URL
  URL is the SSE endpoint (e.g. http://127.0.0.1:PORT/sse) fronting
  @modelcontextprotocol/server-everything. The client GETs it, waits for
  `event: endpoint` and POSTs every JSON-RPC message to the announced URI.

Checks: initialize, tools/list (echo, get-sum and trigger-long-running-operation
listed), call `echo` (text contains our message), call `get-sum` (2+3 -> 5),
call `trigger-long-running-operation` {duration: 1, steps: 3} with a
progress_callback (the SDK sends _meta.progressToken = the request id): exactly
3 notifications/progress with our token, progress 1,2,3 strictly increasing,
total 3, all handed to the callback before call_tool returned and none arriving
after the result (waits 300 ms), result names our duration/steps;
resources/list, read the first resource (non-empty text or blob); every POST to
the message endpoint was answered 202 Accepted. Leaving sse_client's context
closes the stream.

Output contract:
  success -> one JSON line on stdout:
    {"ok":true,"client":"py","transport":"sse","sessionId":...,"progress":3,"posts":N,"tools":N,"resources":N}, exit 0
  failure -> a clear message on stderr, exit 1 (also after the 30 s overall timeout)
  usage error -> exit 2

INTEROP_TIMEOUT_S overrides the overall timeout (default 30).
"""

import re
import secrets
import sys

import anyio
import httpx
from mcp import ClientSession, types
from mcp.client.sse import sse_client
from mcp.shared._httpx_utils import create_mcp_http_client

from common import (
    ECHO_TOOL,
    SUM_TOOL,
    TIMEOUT_S,
    CheckFailed,
    check,
    check_echo,
    check_read_first_resource,
    check_sum,
    check_tools_listed,
    list_all,
    run_main,
    text_of,
)

LONG_TOOL = "trigger-long-running-operation"
LONG_DURATION = 1
LONG_STEPS = 3


async def run(url: str) -> dict:
    post_statuses: list[int] = []
    posts_started: list[str] = []
    session_ids: list[str] = []
    # Every progress notification the session saw, in arrival order (also late ones,
    # which no longer reach a progress_callback).
    progress_seen: list[types.ProgressNotificationParams] = []

    async def record_request(request: httpx.Request) -> None:
        if request.method == "POST":
            posts_started.append(str(request.url))

    async def record_response(response: httpx.Response) -> None:
        if response.request.method == "POST":
            post_statuses.append(response.status_code)

    def client_factory(headers=None, timeout=None, auth=None) -> httpx.AsyncClient:
        client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
        client.event_hooks["request"].append(record_request)
        client.event_hooks["response"].append(record_response)
        return client

    async def message_handler(message) -> None:
        if isinstance(message, types.ServerNotification) and isinstance(message.root, types.ProgressNotification):
            progress_seen.append(message.root.params)

    figures: dict = {}
    async with sse_client(
        url,
        timeout=TIMEOUT_S,
        sse_read_timeout=TIMEOUT_S,
        httpx_client_factory=client_factory,
        on_session_created=session_ids.append,
    ) as (read, write):
        async with ClientSession(read, write, message_handler=message_handler) as session:
            try:
                await session.initialize()
            except Exception as e:  # noqa: BLE001
                raise CheckFailed(f"initialize failed: {e!r}") from e

            tools = await list_all(session.list_tools, "tools")
            check_tools_listed(tools, (ECHO_TOOL, SUM_TOOL, LONG_TOOL))

            echo_message = f"hello from py over sse {secrets.token_hex(4)}"
            await check_echo(session, echo_message)
            await check_sum(session)

            handled: list[tuple[float, float | None]] = []

            async def on_progress(progress: float, total_: float | None, _message: str | None) -> None:
                handled.append((progress, total_))

            seen_before = len(progress_seen)
            long = await session.call_tool(
                LONG_TOOL, {"duration": LONG_DURATION, "steps": LONG_STEPS}, progress_callback=on_progress
            )
            handled_at_result = list(handled)
            seen_at_result = len(progress_seen) - seen_before
            await anyio.sleep(0.3)  # anything still in flight after the result would show up now
            check(not long.isError, f"{LONG_TOOL} returned isError: {long!r}")
            want = f"Duration: {LONG_DURATION} seconds, Steps: {LONG_STEPS}."
            long_text = text_of(long.content)
            check(want in long_text, f"{LONG_TOOL} result {long_text!r} does not contain {want!r}")
            seen = progress_seen[seen_before:]
            late = len(seen) - seen_at_result
            check(
                late == 0,
                f"{LONG_TOOL}: {late} progress notification(s) arrived after the result: "
                f"{[p.progress for p in seen[seen_at_result:]]}",
            )
            tokens = {p.progressToken for p in seen}
            check(len(tokens) <= 1, f"{LONG_TOOL}: progress notifications carry several tokens: {sorted(map(str, tokens))}")
            values = [p for p, _ in handled_at_result]
            check(
                len(handled_at_result) == LONG_STEPS and len(handled) == LONG_STEPS,
                f"{LONG_TOOL}: progress_callback ran {len(handled_at_result)} time(s) before the result "
                f"(values {values}), {len(handled)} in total, expected {LONG_STEPS}",
            )
            check(
                all(values[i] > values[i - 1] for i in range(1, len(values))),
                f"{LONG_TOOL}: progress not strictly increasing: {values}",
            )
            check(values == list(range(1, LONG_STEPS + 1)), f"{LONG_TOOL}: progress values {values} are not 1..{LONG_STEPS}")
            totals = [t for _, t in handled_at_result]
            check(all(t == LONG_STEPS for t in totals), f"{LONG_TOOL}: progress totals {totals} are not all {LONG_STEPS}")

            resources = await list_all(session.list_resources, "resources")
            check(len(resources) > 0, "resources/list returned no resources")
            await check_read_first_resource(session, resources)

            # A server may answer a POST only after it has sent the response on the
            # stream: wait (bounded) until every POST that went out has its status.
            with anyio.move_on_after(5):
                while len(post_statuses) < len(posts_started):
                    await anyio.sleep(0.02)
            check(
                len(post_statuses) == len(posts_started),
                f"{len(posts_started) - len(post_statuses)} of {len(posts_started)} message POST(s) got no answer within 5 s",
            )
            check(len(post_statuses) > 0, "no POST to the message endpoint was seen")
            check(
                all(s == 202 for s in post_statuses),
                f"message POSTs must be answered 202 Accepted, got {post_statuses}",
            )

            figures = {
                "transport": "sse",
                "sessionId": session_ids[0] if session_ids else None,
                "progress": len(handled_at_result),
                "posts": len(post_statuses),
                "tools": len(tools),
                "resources": len(resources),
            }
    return figures


def describe_httpx(exc: BaseException) -> str | None:
    """Readable messages for HTTP errors (other exceptions: common.describe)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {exc.request.method} {exc.request.url}"
    if isinstance(exc, httpx.TransportError):
        where = f" ({exc.request.method} {exc.request.url})" if getattr(exc, "_request", None) else ""
        return f"connection failed{where}: {type(exc).__name__}: {exc}"
    return None


if __name__ == "__main__":
    if len(sys.argv) != 2 or not re.match(r"^https?://", sys.argv[1]):
        print("usage: python py_sse_client.py http://HOST:PORT/sse", file=sys.stderr)
        sys.exit(2)
    run_main("py_sse_client", run, sys.argv[1], detail=describe_httpx)
