#!/usr/bin/env python3
"""Real-peer interop client for mcp-bridge, using the official Python SDK (`mcp`).

Usage: python py_client.py URL
  URL is the Streamable HTTP MCP endpoint (e.g. http://127.0.0.1:PORT/mcp)
  fronting @modelcontextprotocol/server-everything.

Checks: initialize, tools/list, resources/list, prompts/list, call `echo`,
call `get-sum`, read the first resource, get `simple-prompt`; leaving the
transport context sends the session DELETE (terminate_on_close=True).

Output contract:
  success -> one JSON line on stdout: {"ok":true,"client":"py","tools":N,"resources":N,"prompts":N}, exit 0
  failure -> a clear message on stderr, exit 1 (also after the 30 s overall timeout)

INTEROP_TIMEOUT_S overrides the overall timeout (default 30).
"""

import json
import os
import re
import sys
import threading
import warnings

import anyio

# `streamablehttp_client` is the entry point most deployed 1.x clients use; in
# mcp 1.29 it is a deprecated thin wrapper over `streamable_http_client`.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from mcp import ClientSession, types
    from mcp.client.streamable_http import streamablehttp_client

ECHO_TOOL = "echo"
SUM_TOOL = "get-sum"
SIMPLE_PROMPT = "simple-prompt"
ECHO_MESSAGE = "hello from py"
TIMEOUT_S = float(os.environ.get("INTEROP_TIMEOUT_S", "30"))
MAX_PAGES = 50


class CheckFailed(Exception):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def text_of(content) -> str:
    return "\n".join(
        c.text for c in (content or []) if getattr(c, "type", None) == "text" and isinstance(c.text, str)
    )


async def list_all(method, key: str) -> list:
    """Collect every page of session.list_tools / list_resources / list_prompts."""
    items: list = []
    cursor = None
    for _ in range(MAX_PAGES):
        if cursor is None:
            res = await method()
        else:
            res = await method(params=types.PaginatedRequestParams(cursor=cursor))
        page = getattr(res, key, None)
        check(isinstance(page, list), f"{key} list result has no '{key}' list: {res!r}")
        items.extend(page)
        cursor = getattr(res, "nextCursor", None)
        if not cursor:
            return items
    raise CheckFailed(f"{key} list did not finish within {MAX_PAGES} pages")


async def run(url: str) -> dict:
    counts: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        transport_cm = streamablehttp_client(url, timeout=TIMEOUT_S)
    async with transport_cm as (read, write, _get_session_id):
        async with ClientSession(read, write) as session:
            try:
                await session.initialize()
            except Exception as e:  # noqa: BLE001
                raise CheckFailed(f"initialize failed: {e!r}") from e

            tools = await list_all(session.list_tools, "tools")
            tool_names = [t.name for t in tools]
            check(ECHO_TOOL in tool_names, f"tool '{ECHO_TOOL}' not listed; tools: {tool_names}")
            check(SUM_TOOL in tool_names, f"tool '{SUM_TOOL}' not listed; tools: {tool_names}")

            resources = await list_all(session.list_resources, "resources")
            check(len(resources) > 0, "resources/list returned no resources")

            prompts = await list_all(session.list_prompts, "prompts")
            prompt_names = [p.name for p in prompts]
            check(SIMPLE_PROMPT in prompt_names, f"prompt '{SIMPLE_PROMPT}' not listed; prompts: {prompt_names}")

            echo = await session.call_tool(ECHO_TOOL, {"message": ECHO_MESSAGE})
            check(not echo.isError, f"{ECHO_TOOL} returned isError: {echo!r}")
            echo_text = text_of(echo.content)
            check(ECHO_MESSAGE in echo_text, f"{ECHO_TOOL} text {echo_text!r} does not contain {ECHO_MESSAGE!r}")

            total = await session.call_tool(SUM_TOOL, {"a": 2, "b": 3})
            check(not total.isError, f"{SUM_TOOL} returned isError: {total!r}")
            sum_text = text_of(total.content)
            check(re.search(r"\b5\b", sum_text) is not None, f"{SUM_TOOL}(2,3) text {sum_text!r} does not contain 5")

            first = resources[0]
            read_res = await session.read_resource(first.uri)
            check(len(read_res.contents) > 0, f"resources/read {first.uri} returned no contents")
            c0 = read_res.contents[0]
            body = getattr(c0, "text", None) or getattr(c0, "blob", None)
            check(bool(body), f"resources/read {first.uri} first content is empty: {c0!r}"[:400])

            prompt = await session.get_prompt(SIMPLE_PROMPT)
            check(len(prompt.messages) > 0, f"prompts/get {SIMPLE_PROMPT} returned no messages")

            counts = {"tools": len(tools), "resources": len(resources), "prompts": len(prompts)}
    # Leaving streamablehttp_client's context sent the DELETE for the session.
    return counts


def describe(exc: BaseException) -> str:
    """Unwrap anyio/asyncio ExceptionGroups into a readable message."""
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"unexpected error: {type(exc).__name__}: {exc}"


def on_timeout() -> None:
    # Hard watchdog: fires even if the event loop or transport teardown is stuck.
    print(f"py_client: FAIL: overall timeout of {TIMEOUT_S:g} s exceeded", file=sys.stderr, flush=True)
    os._exit(1)


async def main(url: str) -> int:
    result = await run(url)
    print(json.dumps({"ok": True, "client": "py", **result}, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python py_client.py URL", file=sys.stderr)
        sys.exit(2)
    watchdog = threading.Timer(TIMEOUT_S, on_timeout)
    watchdog.daemon = True
    watchdog.start()
    try:
        code = anyio.run(main, sys.argv[1])
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001  (includes ExceptionGroup)
        if isinstance(e, SystemExit):
            raise
        print(f"py_client: FAIL: {describe(e)}", file=sys.stderr, flush=True)
        os._exit(1)
    watchdog.cancel()
    sys.exit(code)
