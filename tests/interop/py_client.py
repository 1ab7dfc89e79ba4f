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

import sys
import warnings

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
)

# `streamablehttp_client` is the entry point most deployed 1.x clients use; in
# mcp 1.29 it is a deprecated thin wrapper over `streamable_http_client`.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

SIMPLE_PROMPT = "simple-prompt"
ECHO_MESSAGE = "hello from py"


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
            check_tools_listed(tools, (ECHO_TOOL, SUM_TOOL))

            resources = await list_all(session.list_resources, "resources")
            check(len(resources) > 0, "resources/list returned no resources")

            prompts = await list_all(session.list_prompts, "prompts")
            prompt_names = [p.name for p in prompts]
            check(SIMPLE_PROMPT in prompt_names, f"prompt '{SIMPLE_PROMPT}' not listed; prompts: {prompt_names}")

            await check_echo(session, ECHO_MESSAGE)
            await check_sum(session)
            await check_read_first_resource(session, resources)

            prompt = await session.get_prompt(SIMPLE_PROMPT)
            check(len(prompt.messages) > 0, f"prompts/get {SIMPLE_PROMPT} returned no messages")

            counts = {"tools": len(tools), "resources": len(resources), "prompts": len(prompts)}
    # Leaving streamablehttp_client's context sent the DELETE for the session.
    return counts


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python py_client.py URL", file=sys.stderr)
        sys.exit(2)
    run_main("py_client", run, sys.argv[1])
