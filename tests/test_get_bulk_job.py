"""`get_bulk_job` through a real MCP client, in both protocol eras, against the sandbox: one job
with its query, made over Close's API or by create_bulk_edit."""

from __future__ import annotations

import pytest

from tests.harness import MODES, Harness
from tests.read_tools import N_LEADS, NOTICE, seed_jobs, summary

# Only the read toolsets: the same tools, a faster server build.
pytestmark = [pytest.mark.anyio, pytest.mark.harness(toolsets="search,jobs")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_get_bulk_job_reads_one_job_with_its_query(h: Harness) -> None:
    ids = await seed_jobs(h)
    store = h.sandbox.store
    for job_id in ids:
        got = await h.call("get_bulk_job", {"job_id": job_id})
        assert got == {
            **summary(store, store.jobs[job_id], with_query=True),
            "crm_data_notice": NOTICE,
        }
    assert (got["kind"], got["status"]) == ("delete", "created")
    missing = await h.error("get_bulk_job", {"job_id": "bulkemail_doesnotexist"})
    assert "Bulk action 'bulkemail_doesnotexist' not found" in missing
    malformed = await h.error("get_bulk_job", {"job_id": "lead_abc"})
    assert "job_id" in malformed
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(toolsets=None, n_leads=N_LEADS)  # every toolset
async def test_get_bulk_job_of_a_job_created_through_create_bulk_edit(h: Harness) -> None:
    args = {
        "filter": {"lead_status": "Bad Fit"},
        "edit": {"type": "set_lead_status", "lead_status": "Canceled"},
    }
    first = await h.call("create_bulk_edit", args)  # edit is confirmed by default
    token = first["confirmation_token"]
    submitted = await h.call("create_bulk_edit", {**args, "confirmation_token": token})
    assert submitted["status"] == "submitted"
    job_id = submitted["job"]["id"]
    h.clock.advance(30)
    store = h.sandbox.store
    got = await h.call("get_bulk_job", {"job_id": job_id})
    assert got == {
        **summary(store, store.jobs[job_id], with_query=True),
        "crm_data_notice": NOTICE,
    }
    assert (got["status"], got["s_query"]) == ("done", submitted["preview"]["request"]["s_query"])
