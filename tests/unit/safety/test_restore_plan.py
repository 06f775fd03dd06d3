"""`close_mcp.safety.restore_plan`: the preview notes of a restore say what the journal and
`lead_ids` leave out, each in its own sentence, only when it is there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from close_mcp.clock import FakeClock
from close_mcp.safety.backups import Backup
from close_mcp.safety.restore_plan import WHAT_COMES_BACK, RestorePlan, restore_request
from close_mcp.store.sqlite import MEMORY, SQLiteStore


async def _no_leads() -> AsyncIterator[dict[str, Any]]:
    return
    yield


BACKUP = Backup("b1", "the backup of bulkdelete_1", _no_leads, 9, "ab" * 32)


def _notes(plan: RestorePlan) -> list[str]:
    clock = FakeClock()
    store = SQLiteStore(MEMORY, clock=clock)
    request = restore_request(store, clock, plan, sandbox=True, notes=["From the store."])
    return list(request.notes)


def test_the_notes_say_what_an_earlier_run_and_lead_ids_leave_out() -> None:
    plan = RestorePlan(BACKUP, ids=["lead_1"], done=2, unknown=1, missing=list("abcd"))
    assert _notes(plan) == [
        "From the store.",
        WHAT_COMES_BACK,
        "2 of its leads were restored by an earlier run: skipped.",
        "1 had an unknown outcome in an earlier run (Close may have created them): not sent "
        "again; check in Close whether they exist.",
        "4 of lead_ids are not in it: a, b, c ...",
    ]
    assert _notes(RestorePlan(BACKUP, ids=["lead_1"], missing=["x"])) == [
        "From the store.",
        WHAT_COMES_BACK,
        "1 of lead_ids are not in it: x",
    ]
