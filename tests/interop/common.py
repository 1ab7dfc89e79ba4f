"""Helpers shared by the Python-SDK interop scripts (py_client.py, py_sse_client.py).

check / CheckFailed, text extraction, paginated lists, the basic echo / get-sum /
resource-read checks against server-everything, and run_main (hard watchdog for
the overall timeout, the one JSON summary line on stdout, "NAME: FAIL: ..." on
stderr, exit codes 0/1).

INTEROP_TIMEOUT_S overrides the overall timeout (default 30).
"""

import json
import os
import re
import sys
import threading

import anyio
from mcp import types

TIMEOUT_S = float(os.environ.get("INTEROP_TIMEOUT_S", "30"))
MAX_PAGES = 50
ECHO_TOOL = "echo"
SUM_TOOL = "get-sum"


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


def check_tools_listed(tools: list, names) -> None:
    tool_names = [t.name for t in tools]
    for name in names:
        check(name in tool_names, f"tool '{name}' not listed; tools: {tool_names}")


async def check_echo(session, message: str) -> None:
    echo = await session.call_tool(ECHO_TOOL, {"message": message})
    check(not echo.isError, f"{ECHO_TOOL} returned isError: {echo!r}")
    echo_text = text_of(echo.content)
    check(message in echo_text, f"{ECHO_TOOL} text {echo_text!r} does not contain {message!r}")


async def check_sum(session) -> None:
    total = await session.call_tool(SUM_TOOL, {"a": 2, "b": 3})
    check(not total.isError, f"{SUM_TOOL} returned isError: {total!r}")
    sum_text = text_of(total.content)
    check(re.search(r"\b5\b", sum_text) is not None, f"{SUM_TOOL}(2,3) text {sum_text!r} does not contain 5")


async def check_read_first_resource(session, resources: list) -> None:
    """Read the first listed resource: non-empty text or blob."""
    first = resources[0]
    read_res = await session.read_resource(first.uri)
    check(len(read_res.contents) > 0, f"resources/read {first.uri} returned no contents")
    c0 = read_res.contents[0]
    body = getattr(c0, "text", None) or getattr(c0, "blob", None)
    check(bool(body), f"resources/read {first.uri} first content is empty: {c0!r}"[:400])


def describe(exc: BaseException, detail=None) -> str:
    """Unwrap anyio/asyncio ExceptionGroups into a readable message.

    detail(exc) may return a script-specific message for other exceptions (or None).
    """
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e, detail) for e in exc.exceptions)
    msg = detail(exc) if detail else None
    return msg or f"unexpected error: {type(exc).__name__}: {exc}"


def run_main(name: str, run, url: str, detail=None) -> None:
    """Run `await run(url)` under a hard watchdog and exit the process.

    Success: prints {"ok":true,"client":"py",...figures} and exits 0. Failure or
    overall timeout: "NAME: FAIL: ..." on stderr and exit 1.
    """

    def on_timeout() -> None:
        # Fires even if the event loop or transport teardown is stuck (e.g.
        # sse_client only logs a failed POST; the pending request then never completes).
        print(f"{name}: FAIL: overall timeout of {TIMEOUT_S:g} s exceeded", file=sys.stderr, flush=True)
        os._exit(1)

    async def main() -> int:
        result = await run(url)
        print(json.dumps({"ok": True, "client": "py", **result}, separators=(",", ":")), flush=True)
        return 0

    watchdog = threading.Timer(TIMEOUT_S, on_timeout)
    watchdog.daemon = True
    watchdog.start()
    try:
        code = anyio.run(main)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001  (includes ExceptionGroup)
        if isinstance(e, SystemExit):
            raise
        print(f"{name}: FAIL: {describe(e, detail)}", file=sys.stderr, flush=True)
        os._exit(1)
    watchdog.cancel()
    sys.exit(code)
