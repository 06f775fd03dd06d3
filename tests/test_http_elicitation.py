"""Issue 16: over Streamable HTTP, every client that declared elicitation is asked, in both eras.

Real `close-mcp serve --transport http` processes in front of the sandbox Close served on
loopback (the fixtures of tests/replicas). A legacy-era client (the initialize handshake,
2025-11-25) and a new-era one (2026-07-28, stateless) each declare elicitation with a callback
and confirm a bulk delete with a valid token: the person is asked, the delete goes through only
if they agree, and with CLOSE_MCP_REQUIRE_HUMAN=1 such a client can still confirm.

A legacy client's capabilities and the reply to `elicitation/create` live in its HTTP session
(`Mcp-Session-Id`), so these tests talk to one replica per client, as a load balancer with
session affinity does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx2
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from close_mcp.sandbox import SANDBOX_API_KEY
from tests.processes import sandbox_close
from tests.replicas.conftest import call, jobs, replica

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MODES: Final = ["legacy", "auto"]
DOOMED: Final = {"filter": {"lead_status": "Canceled"}}

Answer = dict[str, Any] | None  # the content the person sends back; None: they decline


@pytest.fixture
def close_api(tmp_path: Path) -> Iterator[str]:
    """A fresh sandbox Close for each test: a delete in one does not empty the next's leads."""
    with sandbox_close(tmp_path) as base:
        yield base


@asynccontextmanager
async def asking_client(
    url: str, mode: str, answer: Answer, questions: list[str]
) -> AsyncIterator[Client]:
    """A client over HTTP that declared elicitation: each question is recorded and answered."""

    async def person(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        questions.append(params.message)
        if answer is None:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content=answer)

    async with (
        httpx2.AsyncClient(headers={"Close-API-Key": SANDBOX_API_KEY}, timeout=60) as http,
        Client(
            streamable_http_client(url, http_client=http), mode=mode, elicitation_callback=person
        ) as client,
    ):
        yield client


async def confirm_delete(url: str, mode: str, answer: Answer) -> tuple[dict[str, Any], list[str]]:
    """Preview a bulk delete, then confirm it with its token; the result and the questions."""
    questions: list[str] = []
    async with asking_client(url, mode, answer, questions) as client:
        preview = await call(client, "create_bulk_delete", DOOMED)
        assert preview["status"] == "confirmation_required"
        assert questions == []
        token = preview["confirmation_token"]
        done = await call(client, "create_bulk_delete", {**DOOMED, "confirmation_token": token})
    return done, questions


def _count(done: dict[str, Any]) -> dict[str, int]:
    return {"count": done["preview"]["matched"]}


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_that_declared_elicitation_is_asked_and_its_yes_sends(
    close_api: str, tmp_path: Path, mode: str
) -> None:
    before = len(jobs(close_api, "delete"))
    async with replica(close_api, tmp_path, "asks") as url:
        questions: list[str] = []
        async with asking_client(url, mode, None, questions) as client:
            preview = await call(client, "create_bulk_delete", DOOMED)
        matched = preview["preview"]["matched"]
        assert matched > 0
        done, questions = await confirm_delete(url, mode, {"count": matched})
    assert len(questions) == 1, questions
    assert f"To confirm, type the number of leads that will be deleted ({matched})" in questions[0]
    assert done["status"] == "submitted", done
    after = jobs(close_api, "delete")
    assert len(after) == before + 1
    assert after[0]["id"] == done["job"]["id"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_decline_over_http_is_honoured(close_api: str, tmp_path: Path, mode: str) -> None:
    before = len(jobs(close_api, "delete"))
    async with replica(close_api, tmp_path, "declines") as url:
        done, questions = await confirm_delete(url, mode, None)
    assert len(questions) == 1, questions
    assert (done["status"], done["reason"]) == ("refused", "the person declined the action")
    assert len(jobs(close_api, "delete")) == before


@pytest.mark.parametrize("mode", MODES)
async def test_with_require_human_a_client_that_declared_elicitation_can_confirm(
    close_api: str, tmp_path: Path, mode: str
) -> None:
    before = len(jobs(close_api, "delete"))
    async with replica(close_api, tmp_path, "human", CLOSE_MCP_REQUIRE_HUMAN="1") as url:
        questions: list[str] = []
        async with asking_client(url, mode, None, questions) as client:
            preview = await call(client, "create_bulk_delete", DOOMED)
        done, questions = await confirm_delete(url, mode, {"count": preview["preview"]["matched"]})
    assert len(questions) == 1, questions
    assert done["status"] == "submitted", done
    assert len(jobs(close_api, "delete")) == before + 1


async def test_a_legacy_client_without_elicitation_is_not_asked_and_require_human_refuses(
    close_api: str, tmp_path: Path
) -> None:
    """The other side: no capability declared, nobody to ask; REQUIRE_HUMAN then refuses."""
    before = len(jobs(close_api, "delete"))
    async with (
        replica(close_api, tmp_path, "mute", CLOSE_MCP_REQUIRE_HUMAN="1") as url,
        httpx2.AsyncClient(headers={"Close-API-Key": SANDBOX_API_KEY}, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        done = await call(client, "create_bulk_delete", DOOMED)
    # Said on the first call, with no token: one could never be confirmed here (issue 26).
    assert (done["status"], done["confirmation_token"]) == ("refused", None)
    assert done["reason"].startswith("CLOSE_MCP_REQUIRE_HUMAN is set and this client cannot ask")
    assert len(jobs(close_api, "delete")) == before
