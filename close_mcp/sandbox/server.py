"""Serving the sandbox on loopback with uvicorn, for agents and the official Close client."""

from __future__ import annotations

import socket
import sys
from typing import Any, TextIO

from close_mcp.sandbox.core import Sandbox


def banner(base_url: str, api_key: str) -> str:
    """What `close-mcp sandbox` prints first: where the API is and the key that opens it."""
    return (
        "Close sandbox: a local fake Close with a seeded organization; nothing leaves this "
        "machine.\n"
        f"  base URL: {base_url}\n"
        f"  API key:  {api_key} (the Basic auth user name, empty password)\n"
        f"  try:      CLOSE_API_BASE_URL={base_url} CLOSE_API_KEY={api_key} close-mcp serve\n"
    )


async def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    out: TextIO | None = None,
    sock: socket.socket | None = None,
    **sandbox_options: Any,
) -> None:
    """Run a fresh `Sandbox(**sandbox_options)` until cancelled; print its URL and key first
    (on stdout: this is not an MCP command, and uvicorn logs to stderr). `sock`, already bound
    to host and port, is what the command line passes, so the banner follows the bind."""
    sandbox = Sandbox(**{k: v for k, v in sandbox_options.items() if v is not None})
    shown = f"[{host}]" if ":" in host else host
    print(banner(f"http://{shown}:{port}/api/v1/", sandbox.api_key), file=out or sys.stdout)
    (out or sys.stdout).flush()
    import uvicorn  # only when serving: `serve --sandbox` runs the app in-process

    config = uvicorn.Config(sandbox.app, host=host, port=port, log_level="warning")
    await uvicorn.Server(config).serve(sockets=[sock] if sock is not None else None)
