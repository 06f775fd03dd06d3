"""Fixtures: a small sandbox on a FakeClock and an httpx client talking to it in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.sandbox import SANDBOX_API_KEY, Sandbox

BASE_URL = "http://sandbox/api/v1/"
LEAD_QUERY: dict[str, Any] = {"type": "object_type", "object_type": "lead"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sb(clock: FakeClock) -> Sandbox:
    return Sandbox(n_leads=100, clock=clock)


def client_for(sandbox: Sandbox, auth: tuple[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=sandbox.transport(),
        base_url=BASE_URL,
        auth=auth or (SANDBOX_API_KEY, ""),
    )


@pytest.fixture
async def http(sb: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(sb) as client:
        yield client


async def every(http: httpx.AsyncClient, path: str, params: dict[str, Any]) -> list[Any]:
    """Every item of a `_skip`/`_limit` list, page by page."""
    items: list[Any] = []
    while True:
        answer = (await http.get(path, params={**params, "_skip": len(items)})).json()
        items += answer["data"]
        if not answer["has_more"]:
            return items


def bad(response: httpx.Response) -> dict[str, Any]:
    """The body of a 400 (failing on any other status)."""
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    return body
