"""The safety net across replicas: a snapshot in the shared store, one revert at a time.

Two `close-mcp serve --transport http` processes share a state store (a SQLite file, then a
Redis database) in front of one Close. A bulk edit made through replica A is reverted through
replica B, whose disk never saw the snapshot; three reverts confirmed at once across both
replicas send one revert job.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client import Client

from close_mcp.sandbox import SANDBOX_API_KEY
from tests.replicas.conftest import call, jobs, replica, session

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CONFIRM = {"CLOSE_MCP_CONFIRM": "edit,email,sequences,send,delete"}


def machine(tmp: Path, name: str) -> dict[str, str]:
    """A replica's own disk, as on its own machine: the store is all they share."""
    return {**CONFIRM, "XDG_STATE_HOME": str(tmp / f"{name}-state")}


EDIT = {
    "filter": {"lead_status": "Qualified"},
    "edit": {"type": "set_lead_status", "lead_status": "Customer"},
}


def statuses(close_api: str) -> dict[str, str]:
    """Every lead's status id, read straight from Close."""
    found: dict[str, str] = {}
    while True:
        answer = httpx.get(
            close_api + "lead/",
            params={"_skip": len(found), "_limit": 100},
            auth=(SANDBOX_API_KEY, ""),
        )
        page = answer.json()
        found.update({lead["id"]: lead["status_id"] for lead in page["data"]})
        if not page.get("has_more"):
            return found


async def confirmed(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Preview (a token), then confirm with it."""
    preview = await call(client, tool, args)
    assert preview["status"] == "confirmation_required", preview
    done = await call(client, tool, {**args, "confirmation_token": preview["confirmation_token"]})
    assert done["status"] == "submitted", done
    return done


async def wait(client: Client, job_id: str) -> None:
    waited = await call(client, "wait_for_bulk_job", {"job_id": job_id, "timeout_s": 120})
    assert waited["finished"], waited


async def test_an_edit_made_through_one_replica_is_reverted_through_the_other(
    close_api: str, store: str, tmp_path: Path
) -> None:
    before = statuses(close_api)
    async with (
        replica(close_api, tmp_path, "a", store=store, **machine(tmp_path, "a")) as a,
        replica(close_api, tmp_path, "b", store=store, **machine(tmp_path, "b")) as b,
        session(a) as on_a,
        session(b) as on_b,
    ):
        done = await confirmed(on_a, "create_bulk_edit", EDIT)
        job_id = done["job"]["id"]
        assert done["snapshot"] == f"store:snapshot:{job_id}"
        await wait(on_a, job_id)
        edited = statuses(close_api)
        changed = sorted(i for i in before if edited[i] != before[i])
        assert changed
        reverted = await confirmed(on_b, "revert_bulk_edit", {"job_id": job_id})
        assert reverted["preview"]["matched"] == len(changed)
        [revert_job] = reverted["result"]["jobs"]
        assert reverted["job"]["id"] == revert_job
        await wait(on_b, revert_job)
    assert statuses(close_api) == before
    # Nothing of the snapshot on either disk: it came to B through the store.
    assert not glob.glob(str(tmp_path / "*-state" / "close-mcp" / "snapshots" / "*"))


async def test_three_reverts_confirmed_at_once_across_replicas_send_one_job(
    close_api: str, store: str, tmp_path: Path
) -> None:
    before = statuses(close_api)
    async with (
        replica(close_api, tmp_path, "a", store=store, **machine(tmp_path, "a")) as a,
        replica(close_api, tmp_path, "b", store=store, **machine(tmp_path, "b")) as b,
        session(a) as on_a,
        session(b) as on_b,
    ):
        done = await confirmed(on_a, "create_bulk_edit", EDIT)
        job_id = done["job"]["id"]
        await wait(on_a, job_id)
        edits_before = {j["id"] for j in jobs(close_api, "edit")}
        tokens = []
        for client in (on_a, on_b, on_b):
            preview = await call(client, "revert_bulk_edit", {"job_id": job_id})
            assert preview["status"] == "confirmation_required", preview
            tokens.append((client, preview["confirmation_token"]))
        outcomes: list[tuple[str, Any]] = []

        async def confirm(client: Client, token: str) -> None:
            args = {"job_id": job_id, "confirmation_token": token}
            result = await client.call_tool("revert_bulk_edit", args)
            if result.is_error:
                outcomes.append(("error", str(result.content)))
            else:
                assert result.structured_content is not None
                outcomes.append((result.structured_content["status"], result.structured_content))

        async with anyio.create_task_group() as tasks:
            for client, token in tokens:
                tasks.start_soon(confirm, client, token)
        made = [j for j in jobs(close_api, "edit") if j["id"] not in edits_before]  # no order
        assert len(made) == 1
        assert sorted(kind for kind, _ in outcomes) == ["error", "error", "submitted"]
        for kind, text in outcomes:
            if kind == "error":
                # Refused naming the revert job sent, or as being sent right now.
                assert made[0]["id"] in text or (job_id in text and "nothing was sent" in text)
        await wait(on_a, made[0]["id"])
    assert statuses(close_api) == before
