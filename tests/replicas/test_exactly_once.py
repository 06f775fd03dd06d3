"""One confirmation, one write: across two replicas, restarts and a failed send.

Two replica processes share CLOSE_MCP_SECRET and a state store (each kind in turn: one SQLite
file, one Redis database) in front of one Close. What a load balancer does to a slow
confirmed call, sending it to both replicas at once, must still make exactly one job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from close_mcp.sandbox import SANDBOX_API_KEY
from tests.queries import lead_ids_query
from tests.replicas.conftest import call, jobs, replica, session

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

EMAIL = {"filter": {"lead_status": "Qualified"}, "template": "Intro"}
TOKENS = 50
NOTHING = {"s_query": lead_ids_query(["lead_none"])}


async def _preview(url: str, tool: str, args: dict[str, Any]) -> str:
    async with session(url) as client:
        answer = await call(client, tool, args)
    assert answer["status"] == "confirmation_required", answer
    token: str = answer["confirmation_token"]
    return token


async def test_one_token_sent_to_both_replicas_at_once_makes_one_job(
    close_api: str, store: str, tmp_path: Path
) -> None:
    before = len(jobs(close_api, "email"))
    outcomes: list[str] = []
    async with (
        replica(close_api, tmp_path, "a", store=store) as a,
        replica(close_api, tmp_path, "b", store=store) as b,
        session(a) as on_a,
        session(b) as on_b,
    ):
        for _ in range(TOKENS):
            token = await _preview(a, "create_bulk_email", EMAIL)
            confirmed = {**EMAIL, "confirmation_token": token}

            async def confirm(client: Any, confirmed: dict[str, Any] = confirmed) -> None:
                answer = await call(client, "create_bulk_email", confirmed)
                outcomes.append(answer["status"])

            async with anyio.create_task_group() as tg:
                tg.start_soon(confirm, on_a)
                tg.start_soon(confirm, on_b)
    made = len(jobs(close_api, "email")) - before
    assert made == TOKENS
    assert sorted(outcomes) == sorted(["submitted", "refused"] * TOKENS)


async def test_a_spent_token_is_refused_after_newer_jobs_and_a_restart(
    close_api: str, store: str, tmp_path: Path
) -> None:
    delete = {"filter": {"lead_status": "Bad Fit"}, "results_limit": 1}
    async with replica(close_api, tmp_path, "a", store=store) as a:
        token = await _preview(a, "create_bulk_delete", delete)
        async with session(a) as client:
            done = await call(client, "create_bulk_delete", {**delete, "confirmation_token": token})
        assert done["status"] == "submitted"
    # 30 newer delete jobs, made straight in Close: the replay check alone would not see far.
    async with httpx.AsyncClient(auth=(SANDBOX_API_KEY, "")) as close:
        for _ in range(30):
            made = await close.post(close_api + "bulk_action/delete/", json=NOTHING)
            assert made.status_code == 200, made.text
    before = len(jobs(close_api, "delete"))
    posts_before = _posts(close_api)
    async with replica(close_api, tmp_path, "b", store=store) as b, session(b) as client:
        replay = await call(client, "create_bulk_delete", {**delete, "confirmation_token": token})
    assert replay["status"] == "refused"
    assert replay["reason"] == "the confirmation token was already used"
    assert len(jobs(close_api, "delete")) == before
    assert _posts(close_api) == posts_before


def _posts(close_api: str) -> int:
    """Bulk jobs of every kind Close holds: a refused call must add none."""
    return sum(
        len(jobs(close_api, kind)) for kind in ("edit", "email", "sequence_subscription", "delete")
    )
