"""Fixtures for the outside-client tests: the pinned npm tools and a close-mcp HTTP server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.outside.toolcache import InstallFailed, NpmTools, Unavailable, npm_tools
from tests.processes import free_port, running


def need_npm() -> NpmTools:
    """The npm tools; if they cannot be installed, a failure in CI and a skip otherwise."""
    try:
        return npm_tools()
    except InstallFailed as exc:  # CI is set
        pytest.fail(f"outside MCP clients unavailable: {exc}", pytrace=False)
    except Unavailable as exc:
        pytest.skip(f"outside MCP clients unavailable: {exc}")


@pytest.fixture(scope="session")
def npm() -> NpmTools:
    return need_npm()


def server_env(tmp: Path) -> dict[str, str]:
    """The environment for a sandbox server: no key, no audit file, no Inspector catalog in HOME."""
    env = {k: v for k, v in os.environ.items() if k != "CLOSE_API_KEY"}
    env["CLOSE_MCP_AUDIT_LOG"] = "off"
    env["MCP_CATALOG_PATH"] = str(tmp / "inspector-catalog.json")
    return env


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`close-mcp serve --sandbox --transport http` on a free loopback port; yields the /mcp URL."""
    tmp = tmp_path_factory.mktemp("http-server")
    port = free_port()
    args = ["serve", "--sandbox", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(args, env=server_env(tmp), health=f"{base}/health", log=tmp / "server.log"):
        yield f"{base}/mcp"
