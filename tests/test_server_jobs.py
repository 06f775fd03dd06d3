"""A confirmed write whose reading would outlast a client's patience runs as a server job.

The preview says how long reading the leads takes; the confirmed call answers `accepted` with
a job id at once, and `wait_for_bulk_job` follows the reading, then Close's job. Nothing is
sent before the backup is whole and the leads are found to be the ones confirmed; a swap
refuses and sends nothing; a job whose server stopped reads as stopped. `LONG_READ_S` is
lowered so that a few dozen leads count as long.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.safety.snapshot_reader import stored_backup
from close_mcp.sandbox import Sandbox
from close_mcp.writes import background
from tests.harness import MODES, Harness, StartHarness
from tests.ids import status_id

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=60)]

QUALIFIED = {"filter": {"lead_status": "Qualified"}}


@pytest.fixture(autouse=True)
def _every_read_is_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "LONG_READ_S", 0.01)


def _qualified(h: Harness) -> list[str]:
    wanted = status_id(h, "Qualified")
    return sorted(lead.id for lead in h.sandbox.store.leads.values() if lead.status_id == wanted)


async def _accepted(h: Harness, args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    first = await h.call("create_bulk_delete", args)
    n = first["preview"]["matched"]
    assert (
        f"Reading the {n} leads before sending takes about 0 s at Close's 20 requests a "
        "second, longer than many clients wait for one call: once confirmed it runs as a job, "
        "to follow with wait_for_bulk_job."
    ) in first["preview"]["notes"]
    h.clear()
    done = await h.call(
        "create_bulk_delete", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "accepted", done
    return first, done


async def _ended(h: Harness, handle: str) -> dict[str, Any]:
    """Read the server job until it was sent or ended (each read lets it run; the fake clock
    stays put, so Close's job does not move and the job's state never looks stale)."""
    for _ in range(500):
        job = await h.call("get_bulk_job", {"job_id": handle})
        if job["id"] != handle or job["status"] == "error":
            return job
    raise AssertionError(f"{handle} did not end")


@pytest.mark.parametrize("mode", MODES)
async def test_a_long_delete_runs_as_a_job_sent_once_its_backup_is_whole(h: Harness) -> None:
    doomed = _qualified(h)
    _first, done = await _accepted(h, QUALIFIED)
    handle = done["job"]["id"]
    assert handle.startswith("bulkdelete_mcp")
    assert done["job"]["status"] == "loading"
    assert done["message"].startswith(
        f"Accepted: Bulk delete: permanently delete {len(doomed)} leads"
    )
    assert "nothing is sent to Close before its backup is whole" in done["message"]
    await _ended(h, handle)
    waited = await h.call("wait_for_bulk_job", {"job_id": handle, "timeout_s": 600})
    assert waited["finished"] is True
    close_job = waited["job"]["id"]
    assert close_job.startswith("bulkdelete_")
    assert not close_job.startswith("bulkdelete_mcp")
    assert waited["job"]["status"] == "done"
    assert not set(doomed) & set(h.sandbox.store.leads)
    # One POST, after every page of the backup was read.
    paths = [f"{r.method} {r.path.removeprefix('/api/v1/')}" for r in h.sandbox.requests]
    post = paths.index("POST bulk_action/delete/")
    assert paths.count("POST bulk_action/delete/") == 1
    assert "GET custom_field_schema/lead/" in paths[:post]
    assert "POST data/search/" in paths[:post]
    assert "POST data/search/" not in paths[post:]
    backup = await stored_backup(h.runtime.store, close_job)
    assert backup is not None
    assert sorted(lead["id"] for lead in backup) == doomed
    # get_bulk_job on the server job's id answers Close's job once it was sent.
    job = await h.call("get_bulk_job", {"job_id": handle})
    assert job["id"] == close_job


async def test_a_swap_found_by_the_job_refuses_and_sends_nothing(h: Harness) -> None:
    first = await h.call("create_bulk_delete", QUALIFIED)
    store = h.sandbox.store
    qualified, bad_fit = status_id(h, "Qualified"), status_id(h, "Bad Fit")
    leaving = _qualified(h)[0]
    joining = sorted(lead.id for lead in store.leads.values() if lead.status_id == bad_fit)[0]
    store.leads[leaving].status_id = bad_fit
    store.leads[joining].status_id = qualified
    done = await h.call(
        "create_bulk_delete", {**QUALIFIED, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "accepted"
    await _ended(h, done["job"]["id"])
    waited = await h.call("wait_for_bulk_job", {"job_id": done["job"]["id"], "timeout_s": 600})
    assert waited["finished"] is True
    assert waited["job"]["status"] == "error"
    assert waited["job"]["details"] == {
        "server_job": "refused",
        "reason": "Refused: what the preview showed has changed: 1 lead left the selection "
        f"({leaving}); 1 lead joined it ({joining}). Nothing was sent; call again for a "
        "fresh preview.",
    }
    assert h.writes() == []
    assert leaving in store.leads


async def test_a_job_whose_server_stopped_reads_as_stopped(h: Harness) -> None:
    handle = background.new_id("delete")
    jobs = background.ServerJobs(h.runtime.store, h.clock)
    await jobs.record(handle, "reading", read=400, total=1000, message="backup: 400 of 1000")
    job = await h.call("get_bulk_job", {"job_id": handle})
    assert (job["status"], job["n_objects_processed"], job["n_objects"]) == ("loading", 400, 1000)
    h.clock.advance(background.STALE_S + 1)
    job = await h.call("get_bulk_job", {"job_id": handle})
    assert job["status"] == "error"
    assert job["details"]["reason"] == (
        "the server carrying it out stopped while reading the leads; nothing was sent"
    )
    await jobs.record(handle, "sending")
    h.clock.advance(background.STALE_S + 1)
    waited = await h.call("wait_for_bulk_job", {"job_id": handle})
    assert waited["job"]["details"]["reason"].startswith(
        "the server carrying it out stopped while sending: whether Close got the request is unknown"
    )
    assert json.loads(await h.runtime.store.get(f"serverjob:{handle}") or "{}")["state"] == (
        "sending"
    )
    assert h.writes() == []


class HeldBackup(httpx.AsyncBaseTransport):
    """The sandbox, with the backup's search pages held until `release` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.release = anyio.Event()
        self.held = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/data/search/") and b'"contacts"' in request.content:
            self.held.set()
            await self.release.wait()
        return await self.inner.handle_async_request(request)


async def test_pausing_a_job_still_reading_stops_it_and_nothing_is_sent(
    start_harness: StartHarness,
) -> None:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=60, clock=clock)
    gate = HeldBackup(sandbox.transport())
    h = await start_harness(sandbox=sandbox, clock=clock, transport=gate)
    _first, done = await _accepted(h, QUALIFIED)
    handle = done["job"]["id"]
    await gate.held.wait()  # the job is reading its backup
    paused = await h.call("pause_bulk_job", {"job_id": handle})
    assert paused["message"].startswith(f"Stopped job {handle} before anything was sent")
    assert paused["job"]["status"] == "error"
    again = await h.call("pause_bulk_job", {"job_id": handle})  # a repeat: the same answer
    assert again["message"] == paused["message"]
    gate.release.set()
    await _ended(h, handle)
    waited = await h.call("wait_for_bulk_job", {"job_id": handle, "timeout_s": 600})
    assert waited["job"]["details"] == {"server_job": "refused", "reason": background.STOPPED}
    assert h.writes() == []
    assert h.sandbox.store.leads.keys() >= set(_qualified(h))


async def test_pausing_a_job_once_sent_pauses_closes_job(h: Harness) -> None:
    _first, done = await _accepted(h, QUALIFIED)
    handle = done["job"]["id"]
    job = await _ended(h, handle)
    assert not job["id"].startswith("bulkdelete_mcp")
    paused = await h.call("pause_bulk_job", {"job_id": handle})
    assert paused["job"]["id"] == job["id"]
    assert paused["job"]["status"] == "paused"
    assert [r.method for r in h.writes()] == ["POST", "PUT"]
