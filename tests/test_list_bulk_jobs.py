"""`list_bulk_jobs` through a real MCP client, in both protocol eras, against the sandbox:
newest first, by kind and status ("running" and each of Close's), paged, and a bounded scan."""

from __future__ import annotations

from typing import Any, get_args

import httpx
import pytest

from close_mcp.close.jobs import JobStatus
from close_mcp.sandbox import SANDBOX_API_KEY
from tests.harness import MODES, Harness, StartHarness
from tests.ids import status_id
from tests.read_tools import N_LEADS, NOTICE, ids_query, post_job, seed_jobs, summary

# Only the read toolsets: the same tools, a faster server build.
pytestmark = [pytest.mark.anyio, pytest.mark.harness(toolsets="search,jobs")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_list_bulk_jobs_newest_first_with_kind_status_and_paging(h: Harness) -> None:
    edit1, email, seqsub, edit2, delete = await seed_jobs(h)
    store = h.sandbox.store
    everything = await h.call("list_bulk_jobs", {})
    jobs = store.jobs
    assert [(j["id"], j["status"]) for j in everything["jobs"]] == [
        (delete, "created"),
        (edit2, "paused"),
        (seqsub, "done"),
        (email, "done"),
        (edit1, "done"),
    ]
    assert everything == {
        "jobs": [summary(store, jobs[i]) for i in (delete, edit2, seqsub, email, edit1)],
        "has_more": False,
        "complete": True,
        "crm_data_notice": NOTICE,
    }
    page = await h.call("list_bulk_jobs", {"limit": 2, "offset": 1})
    assert page == {
        "jobs": [summary(store, jobs[i]) for i in (edit2, seqsub)],
        "has_more": True,
        "complete": True,
        "crm_data_notice": NOTICE,
    }
    # A status edit holds ids only: no CRM text, no notice (the clear of "Industry" names one).
    last = await h.call("list_bulk_jobs", {"limit": 2, "offset": 4})
    assert last == {
        "jobs": [summary(store, jobs[edit1])],
        "has_more": False,
        "complete": True,
    }
    edits = await h.call("list_bulk_jobs", {"kind": "edit"})
    assert edits == {
        "jobs": [summary(store, jobs[i]) for i in (edit2, edit1)],
        "has_more": False,
        "complete": True,
        "crm_data_notice": NOTICE,
    }
    done = await h.call("list_bulk_jobs", {"status": "done", "limit": 2})
    assert done == {  # the email job names its sender
        "jobs": [summary(store, jobs[i]) for i in (seqsub, email)],
        "has_more": True,
        "complete": True,
        "crm_data_notice": NOTICE,
    }
    paused_emails = await h.call("list_bulk_jobs", {"kind": "email", "status": "paused"})
    assert paused_emails == {
        "jobs": [],
        "has_more": False,
        "complete": True,
    }
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS, sandbox_options={"job_speed": 1.0})
async def test_list_bulk_jobs_running_means_created_loading_processing_or_resuming(
    h: Harness,
) -> None:
    """Stop the running job: the job to find may not have started processing yet."""
    store = h.sandbox.store
    customer = status_id(store, "Customer")
    template = next(iter(store.templates))

    def edit(start: int, n: int) -> dict[str, Any]:
        body = {"type": "set_lead_status", "lead_status_id": customer}
        return {"s_query": ids_query(store, n, start), **body}

    done = await post_job(h.sandbox, "edit", edit(0, 1))
    h.clock.advance(5)
    processing = await post_job(h.sandbox, "edit", edit(10, 5))
    h.clock.advance(1.5)
    loading = await post_job(h.sandbox, "delete", {"s_query": ids_query(store, 2, 20)})
    h.clock.advance(0.7)
    email = {"s_query": ids_query(store, 2, 30), "template_id": template}
    paused = await post_job(h.sandbox, "email", email, pause=True)
    h.clock.advance(0.01)
    resuming = await post_job(h.sandbox, "edit", edit(40, 2), pause=True)
    async with httpx.AsyncClient(
        transport=h.sandbox.transport(),
        base_url="http://sandbox/api/v1/",
        auth=(SANDBOX_API_KEY, ""),
    ) as http:
        answer = await http.put(f"bulk_action/edit/{resuming}/", json={"status": "resuming"})
        assert answer.status_code == 200, answer.text
    h.clock.advance(0.01)
    created = await post_job(h.sandbox, "edit", edit(50, 2))
    h.clear()
    jobs = store.jobs
    assert [jobs[i].status for i in (done, processing, loading, paused, resuming, created)] == [
        "done",
        "processing",
        "loading",
        "paused",
        "resuming",
        "created",
    ]
    running = await h.call("list_bulk_jobs", {"status": "running"})
    assert running == {  # status edits: ids only, no CRM text
        "jobs": [summary(store, jobs[i]) for i in (created, resuming, loading, processing)],
        "has_more": False,
        "complete": True,
    }
    edits = await h.call("list_bulk_jobs", {"status": "running", "kind": "edit", "limit": 2})
    assert [j["id"] for j in edits["jobs"]] == [created, resuming]
    assert edits["has_more"] is True
    assert h.writes() == []


@pytest.mark.harness(n_leads=5)
async def test_list_bulk_jobs_status_is_one_enum_of_running_and_every_close_status(
    h: Harness,
) -> None:
    listed = {tool.name: tool for tool in (await h.client.list_tools()).tools}
    status = listed["list_bulk_jobs"].input_schema["properties"]["status"]
    # listed nullable (for strict clients): the enum and a null arm
    (values,) = [arm for arm in status["anyOf"] if arm != {"type": "null"}]
    assert values["type"] == "string"
    assert values["enum"] == ["running", *get_args(JobStatus)]


async def test_list_bulk_jobs_scans_at_most_max_scan_jobs_per_kind(
    monkeypatch: pytest.MonkeyPatch, start_harness: StartHarness
) -> None:
    monkeypatch.setattr("close_mcp.server.tools.job_reads.MAX_SCAN", 2)
    h = await start_harness(n_leads=N_LEADS)
    store = h.sandbox.store
    customer = status_id(store, "Customer")
    for i in range(5):
        h.clock.advance(10)
        body = {"s_query": ids_query(store, 2, 2 * i), "type": "set_lead_status"}
        await post_job(h.sandbox, "edit", {**body, "lead_status_id": customer})
    h.clear()
    listed = await h.call("list_bulk_jobs", {"kind": "edit", "limit": 5})
    assert (len(listed["jobs"]), listed["has_more"], listed["complete"]) == (2, False, False)
    read = [r for r in h.sandbox.requests if r.path.endswith("/bulk_action/edit/")]
    # MAX_SCAN and one more, to know whether there are more
    assert [r.query for r in read] == [{"_skip": "0", "_limit": "3"}]
