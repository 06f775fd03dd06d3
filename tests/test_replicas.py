"""Scaling out: two HTTP replicas behind one Close, a key per request, shared secret.

Real processes: a sandbox served on loopback stands in for Close, and two `close-mcp serve
--transport http` replicas point at it. A token minted by one replica is accepted by the
other when they share CLOSE_MCP_SECRET, and refused when they do not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from close_mcp.sandbox import SANDBOX_API_KEY
from tests.processes import clean_env, free_port, running

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SHARED = "replica-secret-0123456789abcdef"
DOOMED = {"filter": {"lead_status": "Canceled"}}


@pytest.fixture(scope="module")
def close_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("close")
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1/"
    args = ["sandbox", "--port", str(port), "--leads", "60"]
    with running(args, env=clean_env(), health=base + "me/", log=tmp / "sandbox.log"):
        yield base


@asynccontextmanager
async def replica(close_api: str, tmp: Path, secret: str, name: str) -> AsyncIterator[str]:
    port = free_port()
    env = clean_env(CLOSE_API_BASE_URL=close_api, CLOSE_MCP_SECRET=secret)
    args = ["serve", "--transport", "http", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running(args, env=env, health=url + "/health", log=tmp / f"{name}.log"):
        yield url + "/mcp"


@asynccontextmanager
async def session(url: str, key: str | None = SANDBOX_API_KEY) -> AsyncIterator[Client]:
    headers = {"Close-API-Key": key} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def delete_jobs(close_api: str) -> list[dict[str, Any]]:
    answer = httpx.get(close_api + "bulk_action/delete/", auth=(SANDBOX_API_KEY, ""))
    jobs: list[dict[str, Any]] = answer.json()["data"]
    return jobs


async def test_token_minted_on_one_replica_confirms_on_the_other(
    close_api: str, tmp_path: Path
) -> None:
    before = len(delete_jobs(close_api))
    async with (
        replica(close_api, tmp_path, SHARED, "a") as first,
        replica(close_api, tmp_path, SHARED, "b") as second,
    ):
        async with session(first) as a:
            preview = await call(a, "create_bulk_delete", DOOMED)
        assert preview["status"] == "confirmation_required"
        async with session(second) as b:
            done = await call(
                b,
                "create_bulk_delete",
                {**DOOMED, "confirmation_token": preview["confirmation_token"]},
            )
            assert done["status"] == "submitted"
            # Replaying the token on the first replica finds the job it made: refused.
            async with session(first) as a:
                replay = await call(
                    a,
                    "create_bulk_delete",
                    {**DOOMED, "confirmation_token": preview["confirmation_token"]},
                )
            assert replay["status"] == "refused"
    jobs = delete_jobs(close_api)
    assert len(jobs) == before + 1
    assert jobs[0]["id"] == done["job"]["id"]


async def test_replicas_with_different_secrets_refuse_each_others_tokens(
    close_api: str, tmp_path: Path
) -> None:
    before = len(delete_jobs(close_api))
    async with (
        replica(close_api, tmp_path, SHARED, "c") as first,
        replica(close_api, tmp_path, "another-secret-0123456789abc", "d") as second,
    ):
        async with session(first) as a:
            preview = await call(a, "create_bulk_delete", {"filter": {"lead_status": "Bad Fit"}})
        async with session(second) as b:
            refused = await call(
                b,
                "create_bulk_delete",
                {
                    "filter": {"lead_status": "Bad Fit"},
                    "confirmation_token": preview["confirmation_token"],
                },
            )
    assert refused["status"] == "refused"
    assert refused["reason"].startswith("the confirmation token is not valid")
    assert len(delete_jobs(close_api)) == before


async def test_each_request_brings_its_own_key(close_api: str, tmp_path: Path) -> None:
    async with replica(close_api, tmp_path, SHARED, "e") as url:
        async with session(url) as ok:
            statuses = await call(ok, "lookup", {"kind": "lead_statuses"})
            assert statuses["total"] == 5
        async with session(url, key="api_wrong_key_000000000000") as wrong:
            result = await wrong.call_tool("lookup", {"kind": "lead_statuses"})
            assert result.is_error
            assert "Close did not accept the API key (401)" in str(result.content)
        async with session(url, key=None) as anonymous:
            result = await anonymous.call_tool("lookup", {"kind": "lead_statuses"})
            assert result.is_error
            assert "No Close API key" in str(result.content)
