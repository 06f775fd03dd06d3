"""Scaling out: two HTTP replicas behind one Close, a key per request, shared secret.

Real processes: a sandbox served on loopback stands in for Close, and two `close-mcp serve
--transport http` replicas point at it. A token minted by one replica is accepted by the
other when they share CLOSE_MCP_SECRET, and refused when they do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.replicas.conftest import call, jobs, replica, session

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DOOMED = {"filter": {"lead_status": "Canceled"}}


def delete_jobs(close_api: str) -> list[dict[str, Any]]:
    return jobs(close_api, "delete")


async def test_token_minted_on_one_replica_confirms_on_the_other(
    close_api: str, tmp_path: Path
) -> None:
    before = len(delete_jobs(close_api))
    async with (
        replica(close_api, tmp_path, "a") as first,
        replica(close_api, tmp_path, "b") as second,
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
    assert done["job"]["id"] in {job["id"] for job in jobs}  # Close's lists have no order


async def test_replicas_with_different_secrets_refuse_each_others_tokens(
    close_api: str, tmp_path: Path
) -> None:
    before = len(delete_jobs(close_api))
    async with (
        replica(close_api, tmp_path, "c") as first,
        replica(close_api, tmp_path, "d", secret="another-secret-0123456789abc") as second,
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
    async with replica(close_api, tmp_path, "e") as url:
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
