"""Fixtures for the outside-client tests: the pinned npm tools and a close-mcp HTTP server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.outside.toolcache import NpmTools, Unavailable, npm_tools

STARTUP_TIMEOUT_S = 30.0


@pytest.fixture(scope="session")
def npm() -> NpmTools:
    try:
        return npm_tools()
    except Unavailable as exc:
        pytest.skip(f"outside MCP clients unavailable: {exc}")


def server_env(tmp: Path) -> dict[str, str]:
    """The environment for a sandbox server: no key, no audit file, no Inspector catalog in HOME."""
    env = {k: v for k, v in os.environ.items() if k != "CLOSE_API_KEY"}
    env["CLOSE_MCP_AUDIT_LOG"] = "off"
    env["MCP_CATALOG_PATH"] = str(tmp / "inspector-catalog.json")
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`close-mcp serve --sandbox --transport http` on a free loopback port; yields the /mcp URL."""
    tmp = tmp_path_factory.mktemp("http-server")
    port = free_port()
    log = (tmp / "server.log").open("w")
    argv = [sys.executable, "-m", "close_mcp", "serve", "--sandbox", "--transport", "http"]
    proc = subprocess.Popen(
        [*argv, "--host", "127.0.0.1", "--port", str(port)],
        env=server_env(tmp),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:  # bounded polling of /health until the server answers
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(tmp / 'server.log').read_text()}")
            try:
                if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up in {STARTUP_TIMEOUT_S}s")
            time.sleep(0.1)
        yield f"{base}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
