"""A catalog over a small sandbox (`sandbox_catalog`); the one over a fake Close that counts its
listings (`catalog`) is in tests/unit/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from close_mcp.close.catalog import Catalog
from close_mcp.close.client import CloseClient
from close_mcp.sandbox import Sandbox
from close_mcp.server.runtime import SANDBOX_BASE_URL


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(n_leads=20)


@pytest.fixture
async def sandbox_catalog(sandbox: Sandbox) -> AsyncIterator[Catalog]:
    client = CloseClient(sandbox.api_key, SANDBOX_BASE_URL, transport=sandbox.transport())
    async with client:
        yield Catalog(client)
