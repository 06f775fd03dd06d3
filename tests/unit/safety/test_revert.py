"""`close_mcp.safety.revert.plan_sender`: a revert plan is sent only while it is current.

Two confirmed reverts of one edit can both pass their token check before either holds the
revert lock; the second to get it must find the first's records and send nothing (its plan
was made before them). Through a real Sender, CloseClient over httpx.MockTransport and store.
"""

from __future__ import annotations

import json

import pytest

from close_mcp.clock import FakeClock
from close_mcp.errors import SafetyNetError
from close_mcp.safety.revert import plan_sender
from close_mcp.safety.revert_plan import PlannedRequest
from close_mcp.safety.snapshot_reader import EditSnapshot
from close_mcp.safety.snapshot_writer import reverts_key
from close_mcp.store.sqlite import MEMORY, SQLiteStore
from close_mcp.writes.audit import AuditLog
from close_mcp.writes.sender import Sender
from tests.recorder import Recorder, make, ok

pytestmark = pytest.mark.anyio

JOB = "bulkedit_x"


def snapshot(stored_reverts: int) -> EditSnapshot:
    return EditSnapshot(
        where=f"store:snapshot:{JOB}",
        job_id=JOB,
        created_at="2026-12-07T00:00:00+00:00",
        request={"type": "set_lead_status", "lead_status_id": "stat_won"},
        field="status_id",
        leads_key="snapshot-leads:x",
        leads_count=1,
        stored_reverts=stored_reverts,
    )


PUT_BACK = PlannedRequest.put_lead("status_id", "lead_1", "stat_old")


async def test_a_revert_recorded_after_the_plan_was_made_stops_it_before_anything_is_sent() -> None:
    clock = FakeClock()
    store = SQLiteStore(MEMORY, clock=clock)
    # The plan was made with no revert recorded; another call then sent one.
    await store.append(reverts_key(JOB), json.dumps({"sent_at": "t", "job_id": "bulkedit_r1"}))
    await store.append(reverts_key(JOB), json.dumps({"sent_at": "t", "lead_id": "lead_9"}))
    rec = Recorder()
    client, _ = make(rec, clock)
    send = plan_sender(clock, store, snapshot(stored_reverts=0), [PUT_BACK], matched=1)
    with pytest.raises(SafetyNetError) as caught:
        await send(Sender(AuditLog(None, clock), client, "revert_bulk_edit"), None)
    assert str(caught.value) == (
        f"Another revert_bulk_edit of {JOB} sent the revert job bulkedit_r1 and 1 lead update "
        "after this plan was made, so this plan is out of date; nothing was sent. Wait for "
        "that job (wait_for_bulk_job), then call again: it plans only what is still to do."
    )
    assert rec.requests == []
    assert len(await store.lines(reverts_key(JOB))) == 2


async def test_a_plan_made_with_every_record_so_far_is_sent_and_recorded() -> None:
    clock = FakeClock()
    store = SQLiteStore(MEMORY, clock=clock)
    await store.append(reverts_key(JOB), json.dumps({"sent_at": "t", "job_id": "bulkedit_r1"}))
    rec = Recorder(ok({"id": "lead_1", "status_id": "stat_old"}))
    client, _ = make(rec, clock)
    send = plan_sender(clock, store, snapshot(stored_reverts=1), [PUT_BACK], matched=1)
    answer = await send(Sender(AuditLog(None, clock), client, "revert_bulk_edit"), None)
    assert [(r.method, r.url.path, json.loads(r.content)) for r in rec.requests] == [
        ("PUT", "/api/v1/lead/lead_1/", {"status_id": "stat_old"})
    ]
    assert answer.jobs == []
    recorded = [json.loads(line) for line in await store.lines(reverts_key(JOB))]
    assert [r.get("job_id") or r.get("lead_id") for r in recorded] == ["bulkedit_r1", "lead_1"]
