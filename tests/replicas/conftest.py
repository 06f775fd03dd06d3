"""Replicas as users deploy them: real `close-mcp serve --transport http` processes, sharing
CLOSE_MCP_SECRET and a state store, in front of one Close (the sandbox served on loopback).

`store` gives each test a fresh store of each kind: a SQLite file both replicas open, and a
Redis database on the real server from `redis_url`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import redis
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from close_mcp.sandbox import SANDBOX_API_KEY
from tests.processes import clean_env, free_port, running
from tests.redis_server import redis_url

__all__ = ["redis_url"]

SHARED = "replica-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def close_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("close")
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1/"
    args = ["sandbox", "--port", str(port), "--leads", "60"]
    with running(args, env=clean_env(), health=base + "me/", log=tmp / "sandbox.log"):
        yield base


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where both replicas keep their shared state (a fresh one for each test)."""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        # A database of its own, emptied: nothing from earlier tests. Each pytest-xdist worker
        # (gw0, gw1, ...) takes its own, so one worker's flush never empties another's test.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
        fresh = url.rpartition("/")[0] + f"/{1 + int(worker or 0) % 15}"
        redis.Redis.from_url(fresh).flushdb()
        return fresh
    return str(tmp_path / "state.sqlite3")


@asynccontextmanager
async def replica(
    close_api: str,
    tmp: Path,
    name: str,
    *,
    store: str | None = None,
    secret: str = SHARED,
    **env: str,
) -> AsyncIterator[str]:
    """One replica, up until the block ends; its /mcp URL."""
    port = free_port()
    settings = {"CLOSE_API_BASE_URL": close_api, "CLOSE_MCP_SECRET": secret, **env}
    settings["CLOSE_MCP_STORE"] = store or str(tmp / f"{name}-state.sqlite3")
    args = ["serve", "--transport", "http", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running(args, env=clean_env(**settings), health=url + "/health", log=tmp / f"{name}.log"):
        yield url + "/mcp"


@asynccontextmanager
async def session(url: str, key: str | None = SANDBOX_API_KEY) -> AsyncIterator[Client]:
    headers = {"Close-API-Key": key} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def jobs(close_api: str, kind: str) -> list[dict[str, Any]]:
    """Every job of a kind Close holds, read straight from it (all pages)."""
    found: list[dict[str, Any]] = []
    while True:
        answer = httpx.get(
            close_api + f"bulk_action/{kind}/",
            params={"_skip": len(found), "_limit": 100},
            auth=(SANDBOX_API_KEY, ""),
        )
        page = answer.json()
        found += page["data"]
        if not page.get("has_more"):
            return found
