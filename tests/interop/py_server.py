"""A real Python SDK (FastMCP) server for `mcp-bridge connect` interop tests.

Usage: python py_server.py streamable-http|sse

Binds 127.0.0.1 on a free port itself (a pre-bound socket handed to uvicorn, so
there is no race for the port) and prints "LISTENING <port>" on stdout once it
accepts connections. Serves FastMCP's own app: Streamable HTTP at /mcp, or
HTTP+SSE at /sse (messages at /messages/). Tools:
  add(a, b)          -> a + b as text
  count(n)           -> reports progress 1..n, then "counted n"
Runs until killed.
"""

import socket
import sys

import uvicorn
from mcp.server.fastmcp import Context, FastMCP

mcp = FastMCP("interop-py-server")


@mcp.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return f"sum={a + b}"


@mcp.tool()
async def count(n: int, ctx: Context) -> str:
    """Report progress 1..n, then finish."""
    for i in range(1, n + 1):
        await ctx.report_progress(i, n)
    return f"counted {n}"


def main() -> None:
    transport = sys.argv[1] if len(sys.argv) > 1 else ""
    if transport == "streamable-http":
        app = mcp.streamable_http_app()
    elif transport == "sse":
        app = mcp.sse_app()
    else:
        sys.stderr.write("usage: py_server.py streamable-http|sse\n")
        sys.exit(2)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
