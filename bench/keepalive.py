"""Answers on a kept-alive connection: `python -m bench.keepalive` (about 20 seconds).

Both servers `close-mcp` starts on a port (`serve --transport http` and `sandbox`) are uvicorn
on a socket from `close_mcp.cli.ports.listen`. Until that socket named IPPROTO_TCP, asyncio
left Nagle's algorithm on for its connections, and an answer written in two parts waited for
the client's delayed ACK: about 40 ms per answer on a reused connection, whatever the work.

Rows: the sandbox app served in this process on a `listen` socket and, as the baseline, on a
socket made the old way (no protocol named), each answering `GET me/` on one kept-alive
connection; then the real processes: `close-mcp sandbox` the same way, and `tools/list` on
`close-mcp serve --transport http` over one MCP session. Medians in milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `close_mcp` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio
import httpx

from bench.common import PYTHON, free_port, median, sandbox_process, stop, wait_for_port
from close_mcp.cli.ports import listen
from close_mcp.sandbox import SANDBOX_API_KEY, Sandbox


def _old_socket() -> socket.socket:
    """A listening socket as `listen` made it before: no protocol named."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(socket.SOMAXCONN)
    return sock


@contextlib.contextmanager
def _served(sock: socket.socket) -> Iterator[str]:
    """A sandbox app served by uvicorn on `sock`, on a thread; its API base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(Sandbox(n_leads=60).app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    port = sock.getsockname()[1]
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/api/v1/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _gets(base_url: str, n: int) -> float:
    """Median milliseconds of `GET me/`, each on the same kept-alive connection."""
    times: list[float] = []
    with httpx.Client(base_url=base_url, auth=(SANDBOX_API_KEY, "")) as client:
        client.get("me/").raise_for_status()  # the connection is open from here on
        for _ in range(n):
            start = time.perf_counter()
            client.get("me/").raise_for_status()
            times.append(time.perf_counter() - start)
    return median(times) * 1000


async def _tools_lists(url: str, n: int) -> float:
    """Median milliseconds of `tools/list` on one MCP session over Streamable HTTP."""
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    times: list[float] = []
    async with (
        httpx2.AsyncClient(headers={"Close-API-Key": SANDBOX_API_KEY}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        await client.list_tools()
        for _ in range(n):
            start = time.perf_counter()
            await client.list_tools()
            times.append(time.perf_counter() - start)
    return median(times) * 1000


def measure(n: int) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    with _served(_old_socket()) as base:
        rows.append(("sandbox app, socket without IPPROTO_TCP (before)", _gets(base, n)))
    with _served(listen("127.0.0.1", 0)) as base:
        rows.append(("sandbox app, cli.ports.listen socket", _gets(base, n)))
    with sandbox_process(leads=60) as sandbox:
        rows.append(("close-mcp sandbox process, GET me/", _gets(sandbox.base_url, n)))
        port = free_port()
        serve = subprocess.Popen(
            [PYTHON, "-m", "close_mcp", "serve", "--transport", "http", "--port", str(port)],
            env=sandbox.server_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            mcp_ms = anyio.run(_tools_lists, f"http://127.0.0.1:{port}/mcp", n)
            rows.append(("close-mcp serve --transport http, tools/list", mcp_ms))
        finally:
            stop(serve)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="per row (default 100)")
    args = parser.parse_args()
    for name, ms in measure(args.requests):
        print(f"{ms:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
