"""`restore_leads` on two replicas sharing a store: one confirmation restores each lead once.

A load balancer may send the confirmed call to both replicas at once; a later preview on the
other replica finds nothing left to restore (the journal is in the shared store).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from close_mcp.sandbox import SANDBOX_API_KEY
from tests.replicas.conftest import call, replica, session

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DELETE = {"filter": {"lead_status": "Bad Fit"}, "results_limit": 3}


def names(close_api: str) -> Counter[str]:
    """How many leads of each name Close holds, read straight from it."""
    found: list[dict[str, Any]] = []
    while True:
        page = httpx.get(
            close_api + "lead/",
            params={"_skip": len(found), "_limit": 100, "_fields": "id,display_name"},
            auth=(SANDBOX_API_KEY, ""),
        ).json()
        found += page["data"]
        if not page.get("has_more"):
            return Counter(lead["display_name"] for lead in found)


async def test_one_restore_token_sent_to_both_replicas_restores_each_lead_once(
    close_api: str, store: str, tmp_path: Path
) -> None:
    before = names(close_api)
    async with (
        replica(close_api, tmp_path, "a", store=store) as a,
        replica(close_api, tmp_path, "b", store=store) as b,
        session(a) as on_a,
        session(b) as on_b,
    ):
        first = await call(on_a, "create_bulk_delete", DELETE)
        doomed = [s["display_name"] for s in first["preview"]["sample"]]
        assert len(doomed) == 3
        done = await call(
            on_a,
            "create_bulk_delete",
            {**DELETE, "confirmation_token": first["confirmation_token"]},
        )
        job_id = done["job"]["id"]
        waited = await call(on_b, "wait_for_bulk_job", {"job_id": job_id, "timeout_s": 60})
        assert waited["job"]["status"] == "done"
        assert names(close_api) == before - Counter(doomed)

        # The backup a took is b's to restore too: one store.
        preview = await call(on_b, "restore_leads", {"backup": job_id})
        assert preview["status"] == "confirmation_required", preview
        assert preview["preview"]["matched"] == 3
        confirmed = {"backup": job_id, "confirmation_token": preview["confirmation_token"]}
        outcomes: list[str] = []

        async def confirm(client: Any) -> None:
            outcomes.append((await call(client, "restore_leads", confirmed))["status"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(confirm, on_a)
            tg.start_soon(confirm, on_b)
        assert sorted(outcomes) == ["refused", "submitted"]
        assert names(close_api) == before

        again = await call(on_a, "restore_leads", {"backup": job_id})
        assert again["status"] == "refused"
        assert again["confirmation_token"] is None
        assert again["reason"] == (
            f"nothing to restore from store:backup:{job_id}: every lead of it was restored already"
        )
    assert names(close_api) == before
