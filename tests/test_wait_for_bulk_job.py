"""`wait_for_bulk_job` through a real MCP client, in both protocol eras, against the sandbox on
a fake clock: progress until done, the state at the timeout, and at once for a finished or
paused job."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from close_mcp.clock import FakeClock
from close_mcp.sandbox import Sandbox
from tests.harness import MODES, Harness, StartHarness
from tests.ids import status_id
from tests.read_tools import N_LEADS, NOTICE, ids_query, post_job, seed_jobs, summary

# Only the read toolsets: the same tools, a faster server build.
pytestmark = [pytest.mark.anyio, pytest.mark.harness(toolsets="search,jobs")]


@dataclass
class Progress:
    seen: list[tuple[float, float | None, str | None]]

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, total, message))


async def _slow_harness_job(h: Harness, n: int) -> str:
    job_id = await post_job(
        h.sandbox,
        "edit",
        {
            "s_query": ids_query(h.sandbox.store, n),
            "type": "set_lead_status",
            "lead_status_id": status_id(h.sandbox.store, "Customer"),
        },
    )
    h.clear()
    return job_id


@pytest.mark.parametrize("mode", MODES)
async def test_wait_for_bulk_job_reports_progress_until_done(start_harness: StartHarness) -> None:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=N_LEADS, clock=clock, job_speed=5)
    h = await start_harness(sandbox=sandbox, clock=clock)
    job_id = await _slow_harness_job(h, 10)
    progress = Progress([])
    raw = await h.client.call_tool(
        "wait_for_bulk_job", {"job_id": job_id}, progress_callback=progress
    )
    assert not raw.is_error
    job = h.sandbox.store.jobs[job_id]
    assert raw.structured_content == {
        "job": summary(h.sandbox.store, job),
        "finished": True,
        "timed_out": False,
        "waited_s": 3.0,
    }
    assert (job.status, job.n_objects_processed) == ("done", 10)
    assert progress.seen == [
        (0, 10, f"processing: {job_id}"),
        (5, 10, f"processing: {job_id}"),
        (10, 10, f"done: {job_id}"),
    ]
    assert h.clock.sleeps == [1.0, 1.0, 1.0]
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
async def test_wait_for_bulk_job_timeout_returns_the_current_state(
    start_harness: StartHarness,
) -> None:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=N_LEADS, clock=clock, job_speed=1)
    h = await start_harness(sandbox=sandbox, clock=clock)
    job_id = await _slow_harness_job(h, 10)
    progress = Progress([])
    raw = await h.client.call_tool(
        "wait_for_bulk_job", {"job_id": job_id, "timeout_s": 2.5}, progress_callback=progress
    )
    assert not raw.is_error
    job = h.sandbox.store.jobs[job_id]
    assert raw.structured_content == {
        "job": summary(h.sandbox.store, job),
        "finished": False,
        "timed_out": True,
        "waited_s": 2.0,
    }
    assert (job.status, job.n_objects_processed) == ("processing", 1)
    assert progress.seen == [
        (0, 10, f"processing: {job_id}"),
        (1, 10, f"processing: {job_id}"),
    ]
    zero = await h.call("wait_for_bulk_job", {"job_id": job_id, "timeout_s": 0})
    assert (zero["timed_out"], zero["finished"], zero["waited_s"]) == (True, False, 0.0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_wait_for_bulk_job_returns_at_once_for_done_and_paused_jobs(h: Harness) -> None:
    edit1, _email, _seqsub, edit2, _delete = await seed_jobs(h)
    store = h.sandbox.store
    done = await h.call("wait_for_bulk_job", {"job_id": edit1})
    assert done == {
        "job": summary(store, store.jobs[edit1]),
        "finished": True,
        "timed_out": False,
        "waited_s": 0.0,
    }
    paused = await h.call("wait_for_bulk_job", {"job_id": edit2})
    assert paused == {
        "job": summary(store, store.jobs[edit2]),
        "finished": False,
        "timed_out": False,
        "waited_s": 0.0,
        "crm_data_notice": NOTICE,
    }
    assert h.clock.sleeps == []
    assert h.writes() == []
