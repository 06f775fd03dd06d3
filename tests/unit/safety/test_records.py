"""`close_mcp.safety.records`: the plan of a per-record run, what binds its token, the snapshot,
the undo, and sending one request per record (through the real CloseClient over
httpx.MockTransport, a real Sender, a real state store)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from close_mcp.clock import FakeClock
from close_mcp.errors import SafetyNetError
from close_mcp.safety.records import (
    RecordChange,
    RecordKind,
    RecordPlan,
    RecordSnapshot,
    plan_changes,
    plan_notes,
    plan_sender,
    plan_undo,
    same,
)
from close_mcp.safety.recreations import recreated_key
from close_mcp.store import Busy
from close_mcp.store.sqlite import MEMORY, SQLiteStore
from close_mcp.writes.audit import AuditLog
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.sender import Sender
from tests.recorder import Recorder, make, ok

pytestmark = pytest.mark.anyio

OPPS = RecordKind("opportunity", "opportunities", "update_opportunities", "oppupd_")
TASKS = RecordKind("task", "tasks", "update_tasks", "taskupd_", recreate=("lead_id", "text"))


def opp(i: str, confidence: int, lead: str = "lead_1") -> dict[str, Any]:
    return {"id": i, "lead_id": lead, "lead_name": "Acme", "confidence": confidence}


def sent(rec: Recorder) -> list[tuple[str, str, Any]]:
    return [
        (r.method, r.url.path, json.loads(r.content) if r.content else None) for r in rec.requests
    ]


def test_only_records_that_differ_get_a_request_with_their_old_values() -> None:
    plan = plan_changes(OPPS, [opp("o1", 50), opp("o2", 90), opp("o3", 10)], {"confidence": 90})
    assert [c.shown() for c in plan.changes] == [
        {"id": "o1", "method": "PUT", "before": {"confidence": 50}, "after": {"confidence": 90}},
        {"id": "o3", "method": "PUT", "before": {"confidence": 10}, "after": {"confidence": 90}},
    ]
    assert plan.already == 1


async def test_a_field_close_changes_along_is_saved_and_put_back_by_the_undo() -> None:
    kind = RecordKind(
        "opportunity", "opportunities", "t", "oppupd_", alongside={"status_id": ("date_won",)}
    )
    record = {"id": "o1", "status_id": "stat_active", "date_won": None}
    (change,) = plan_changes(kind, [record], {"status_id": "stat_won"}).changes
    assert change.before == {"status_id": "stat_active", "date_won": None}
    assert change.body() == {"status_id": "stat_won"}
    store = SQLiteStore(MEMORY, clock=FakeClock())
    run = plan_changes(kind, [record], {"status_id": "stat_won"})
    request = WriteRequest("t", "opportunities", "opportunity/", {}, 1, "x")
    await RecordSnapshot(store, FakeClock(), kind, "oppupd_ab", run).take(request)
    now = {"id": "o1", "status_id": "stat_won", "date_won": "2026-01-01"}
    client, _ = make(Recorder(ok(now)))
    (undo,) = (await plan_undo(client, store, kind, "oppupd_ab")).changes
    assert undo.body() == {"status_id": "stat_active", "date_won": None}


def test_a_delete_keeps_what_the_record_is_created_again_from() -> None:
    task = {"id": "t1", "lead_id": "lead_1", "text": "Call", "assigned_to": "user_1"}
    (change,) = plan_changes(TASKS, [task], None).changes
    assert change.method == "DELETE"
    assert change.before == {"lead_id": "lead_1", "text": "Call"}
    assert change.path(TASKS) == "task/t1/"


def test_the_digest_changes_with_a_value_now_or_a_record_added() -> None:
    target = {"confidence": 90}
    base = plan_changes(OPPS, [opp("o1", 50), opp("o2", 10)], target).sha256
    assert plan_changes(OPPS, [opp("o1", 50), opp("o2", 10)], target).sha256 == base
    assert plan_changes(OPPS, [opp("o1", 51), opp("o2", 10)], target).sha256 != base
    added = [opp("o1", 50), opp("o2", 10), opp("o3", 10)]
    assert plan_changes(OPPS, added, target).sha256 != base


def test_values_compare_empty_alike_and_date_times_as_moments() -> None:
    assert same(None, "")
    assert same([], None)
    assert same("2026-01-19T00:00:00+00:00", "2026-01-19T00:00:00.000000+00:00")
    assert not same("2026-01-19", "2026-01-19T00:00:00+00:00")
    assert not same("2026-01-19T00:00:00+00:00", "2026-01-19T01:00:00+00:00")


async def test_the_snapshot_holds_every_request_until_discarded() -> None:
    store = SQLiteStore(MEMORY, clock=FakeClock())
    plan = plan_changes(OPPS, [opp("o1", 50), opp("o2", 10)], {"confidence": 90})
    snapshot = RecordSnapshot(store, FakeClock(), OPPS, "oppupd_ab", plan)
    request = WriteRequest("update_opportunities", "opportunities", "opportunity/", {}, 2, "x")
    saved = await snapshot.take(request)
    assert saved == "store:records:oppupd_ab"
    header = json.loads(await store.get("records:oppupd_ab") or "")
    assert header["count"] == 2
    lines = await store.lines("records-lines:oppupd_ab")
    assert [RecordChange.from_line(line) for line in lines] == [
        RecordChange(c.id, c.method, c.before, c.after, c.lead_id) for c in plan.changes
    ]
    await snapshot.discard(saved)
    assert await store.get("records:oppupd_ab") is None
    assert await store.lines("records-lines:oppupd_ab") == []


async def test_the_undo_puts_back_only_what_still_holds_the_runs_values() -> None:
    store = SQLiteStore(MEMORY, clock=FakeClock())
    run = plan_changes(
        OPPS, [opp("o1", 50), opp("o2", 10), opp("o3", 20), opp("o4", 30)], {"confidence": 90}
    )
    request = WriteRequest("update_opportunities", "opportunities", "opportunity/", {}, 4, "x")
    await RecordSnapshot(store, FakeClock(), OPPS, "oppupd_ab", run).take(request)
    rec = Recorder(
        ok(opp("o1", 90)),  # still the run's value: goes back
        ok(opp("o2", 10)),  # already back
        ok(opp("o3", 77)),  # changed by someone since: left alone
        ok({"error": "Opportunity not found."}, 404),
    )
    client, _ = make(rec)
    plan = await plan_undo(client, store, OPPS, "oppupd_ab")
    assert [c.shown() for c in plan.changes] == [
        {"id": "o1", "method": "PUT", "before": {"confidence": 90}, "after": {"confidence": 50}}
    ]
    assert plan.already == 1
    assert plan.changed_since == [
        {"id": "o3", "value_now": {"confidence": 77}, "value_before": {"confidence": 20}}
    ]
    assert plan.not_found == ["o4"]


async def test_a_deleted_record_is_created_again_by_the_undo() -> None:
    store = SQLiteStore(MEMORY, clock=FakeClock())
    task = {"id": "t1", "lead_id": "lead_1", "text": "Call"}
    run = plan_changes(TASKS, [task], None)
    request = WriteRequest("update_tasks", "tasks", "task/", {}, 1, "x")
    await RecordSnapshot(store, FakeClock(), TASKS, "taskupd_ab", run).take(request)
    # The task is gone; its lead is one the caller's key sees.
    client, _ = make(Recorder(ok({"error": "Task not found."}, 404), ok({"id": "lead_1"})))
    (change,) = (await plan_undo(client, store, TASKS, "taskupd_ab")).changes
    assert (change.method, change.path(TASKS), change.body()) == (
        "POST",
        "task/",
        {"lead_id": "lead_1", "text": "Call"},
    )


async def test_an_undo_planned_before_another_undo_created_the_task_again_sends_nothing() -> None:
    """Two confirmed undos of one delete run, planned before either went: the second to get
    the undo lock finds the first's re-creation and refuses, so the task comes back once."""
    store = SQLiteStore(MEMORY, clock=FakeClock())
    run = plan_changes(TASKS, [{"id": "t1", "lead_id": "lead_1", "text": "Call"}], None)
    request = WriteRequest("update_tasks", "tasks", "task/", {}, 1, "x")
    await RecordSnapshot(store, FakeClock(), TASKS, "taskupd_ab", run).take(request)
    rec = Recorder(ok({"error": "Task not found."}, 404), ok({"id": "lead_1"}))
    client, clock = make(rec)
    plan = await plan_undo(client, store, TASKS, "taskupd_ab")
    assert [c.method for c in plan.changes] == ["POST"]
    await store.put(recreated_key("t1"), "t2")  # the other undo, meanwhile
    send = plan_sender(
        client, store, TASKS, "taskupd_cd", plan, clock=FakeClock(), undoing="taskupd_ab"
    )
    with pytest.raises(SafetyNetError) as refused:
        await send(Sender(AuditLog(None, clock), client, TASKS.tool), None)
    assert str(refused.value) == (
        "Another undo of taskupd_ab was sent after this plan was made, so it is out of date; "
        "nothing was sent. Call again: it plans only what is still to do."
    )
    assert len(rec.requests) == 2  # the undo's reads of t1 and its lead; nothing written


async def test_the_undo_of_a_re_creation_deletes_the_latest_one() -> None:
    store = SQLiteStore(MEMORY, clock=FakeClock())
    undo_run = RecordPlan(changes=[RecordChange("t1", "POST", {"text": "Call"}, None, "lead_1")])
    request = WriteRequest("update_tasks", "tasks", "task/", {}, 1, "x")
    await RecordSnapshot(store, FakeClock(), TASKS, "taskupd_cd", undo_run).take(request)
    await store.put(recreated_key("t1"), "t2")
    await store.put(recreated_key("t2"), "t3")  # t2 deleted and created again since
    rec = Recorder(ok({"id": "t3", "lead_id": "lead_1", "text": "Call"}))
    client, _ = make(rec)
    (change,) = (await plan_undo(client, store, TASKS, "taskupd_cd")).changes
    assert (change.id, change.method, change.before) == (
        "t3",
        "DELETE",
        {"lead_id": "lead_1", "text": "Call"},
    )
    assert [r.url.path for r in rec.requests] == ["/api/v1/task/t3/"]


async def test_a_record_close_refuses_is_reported_and_the_next_one_still_goes() -> None:
    store = SQLiteStore(MEMORY, clock=FakeClock())
    plan = plan_changes(OPPS, [opp("o1", 50), opp("o2", 10), opp("o3", 20)], {"confidence": 90})
    rec = Recorder(
        ok(opp("o1", 90)),
        ok({"errors": [], "field-errors": {"confidence": "Locked."}}, 400),
        ok(opp("o3", 90)),
    )
    client, clock = make(rec)
    send = plan_sender(client, store, OPPS, "oppupd_ab", plan, clock=FakeClock())
    answer = await send(Sender(AuditLog(None, clock), client, OPPS.tool), None)
    assert sent(rec) == [
        ("PUT", f"/api/v1/opportunity/{i}/", {"confidence": 90}) for i in ("o1", "o2", "o3")
    ]
    assert answer.result["done"] == ["o1", "o3"]
    assert answer.result["failed_count"] == 1
    assert answer.result["failed"][0]["id"] == "o2"
    assert "confidence" in answer.result["failed"][0]["error"]


async def test_a_key_close_rejects_stops_the_run_saying_what_went() -> None:
    store = SQLiteStore(MEMORY, clock=FakeClock())
    plan = plan_changes(OPPS, [opp("o1", 50), opp("o2", 10), opp("o3", 20)], {"confidence": 90})
    rec = Recorder(ok(opp("o1", 90)), ok({"error": "Unauthorized"}, 401))
    client, clock = make(rec)
    send = plan_sender(client, store, OPPS, "oppupd_ab", plan, clock=FakeClock())
    with pytest.raises(SafetyNetError, match=r"stopped at opportunity 2 of 3 \(1 sent"):
        await send(Sender(AuditLog(None, clock), client, OPPS.tool), None)
    assert len(rec.requests) == 2


async def test_one_undo_of_a_run_at_a_time() -> None:
    store = SQLiteStore(MEMORY, clock=FakeClock())
    plan = plan_changes(OPPS, [opp("o1", 50)], {"confidence": 90})
    client, clock = make(Recorder())
    await store.add("lock:records-undo:oppupd_ab", "someone", ttl_s=60)
    send = plan_sender(
        client, store, OPPS, "oppupd_cd", plan, clock=FakeClock(), undoing="oppupd_ab"
    )
    with pytest.raises(Busy, match="Another undo of oppupd_ab"):
        await send(Sender(AuditLog(None, clock), client, OPPS.tool), None)


async def test_no_undo_is_planned_while_its_run_is_being_sent() -> None:
    store = SQLiteStore(MEMORY, clock=FakeClock())
    run = plan_changes(OPPS, [opp("o1", 50)], {"confidence": 90})
    request = WriteRequest("update_opportunities", "opportunities", "opportunity/", {}, 1, "x")
    await RecordSnapshot(store, FakeClock(), OPPS, "oppupd_ab", run).take(request)
    client, _ = make(Recorder())
    await store.add("lock:records-run:oppupd_ab", "a replica", ttl_s=60)
    with pytest.raises(Busy, match="still being sent"):
        await plan_undo(client, store, OPPS, "oppupd_ab")


def test_the_notes_say_each_part_of_a_plan_that_is_there_in_order() -> None:
    put = RecordChange("t1", "PUT", {"text": "a"}, {"text": "b"})
    post = RecordChange("t2", "POST", {"lead_id": "lead_1", "text": "Call"}, None)
    plan = RecordPlan(
        [put, post], already=2, changed_since=[{"id": "t3"}], not_found=["t4", "t5", "t6"]
    )
    sends = (
        "Sends 2 requests, one per task, paced at Close's rate limit; the old values are saved "
        "first, and the result names the run to undo."
    )
    assert plan_notes(TASKS, plan, undo=True) == [
        sends,
        "2 tasks have their old values: nothing to do.",
        "1 tasks were changed by someone else since the run and are left alone "
        "(left_alone.changed_since).",
        "3 tasks of the run no longer exist.",
        "Deleted tasks are created again from their backup, with new ids.",
    ]
    assert plan_notes(OPPS, RecordPlan([put], already=1)) == [
        "Sends 1 request, one per opportunity, paced at Close's rate limit; the old values are "
        "saved first, and the result names the run to undo.",
        "1 opportunities already have these values: nothing to do.",
    ]
