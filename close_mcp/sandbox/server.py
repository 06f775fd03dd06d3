"""Serving the sandbox on loopback with uvicorn, for agents and the official Close client."""

from __future__ import annotations

import sys
from typing import Any

from close_mcp.sandbox.core import Sandbox


async def serve(host: str = "127.0.0.1", port: int = 8765, **sandbox_options: Any) -> None:
    """Run a fresh `Sandbox(**sandbox_options)` until cancelled; print its URL and key."""
    sandbox = Sandbox(**{k: v for k, v in sandbox_options.items() if v is not None})
    print(f"Close sandbox at http://{host}:{port}/api/v1/", file=sys.stderr)
    print(f"API key: {sandbox.api_key} (Basic auth user name, empty password)", file=sys.stderr)
    import uvicorn  # only when serving: `serve --sandbox` runs the app in-process

    config = uvicorn.Config(sandbox.app, host=host, port=port, log_level="warning")
    await uvicorn.Server(config).serve()
