"""`safety.snapshot_reader`: the one format `snapshot_writer` writes is read back; a document
that is not it (a header naming no list of leads, a malformed line) is an error naming where,
never read as something else."""

from __future__ import annotations

import json

import pytest

from close_mcp.config import Settings
from close_mcp.errors import SafetyNetError
from close_mcp.safety.snapshot_reader import find_backup, load_edit_snapshot, snapshot_leads
from close_mcp.store.sqlite import MEMORY, SQLiteStore

pytestmark = pytest.mark.anyio

JOB = "bulkedit_abc"
HEADER = {
    "version": 2,
    "job_id": JOB,
    "created_at": "2026-12-07T00:00:00+00:00",
    "tool": "create_bulk_edit",
    "request": {"type": "set_lead_status", "lead_status_id": "stat_won"},
    "field": "status_id",
    "leads_key": "snapshot-leads:k",
    "leads_count": 3,
}


async def test_a_snapshot_reads_back_batch_by_batch_with_its_reverts() -> None:
    store = SQLiteStore(MEMORY)
    await store.extend(
        "snapshot-leads:k", ['["lead_1","stat_a"]', '["lead_2",null]', '["lead_3","stat_b"]']
    )
    await store.put(f"snapshot:{JOB}", json.dumps(HEADER))
    await store.extend(f"reverts:{JOB}", ['{"sent_at":"t","job_id":"bulkedit_r1"}'])
    snapshot = await load_edit_snapshot(Settings(api_key=None), store, JOB)
    assert (snapshot.where, snapshot.field, snapshot.leads_count) == (
        f"store:snapshot:{JOB}",
        "status_id",
        3,
    )
    assert snapshot.revert_jobs == ["bulkedit_r1"]
    assert snapshot.stored_reverts == 1
    batches = [b async for b in snapshot_leads(store, snapshot, batch=2)]
    assert batches == [[("lead_1", "stat_a"), ("lead_2", None)], [("lead_3", "stat_b")]]


async def test_a_snapshot_with_its_leads_inline_is_refused_by_name() -> None:
    """Only unreleased commits wrote leads inline (version 1); such a document is an error,
    not a revert of nothing."""
    store = SQLiteStore(MEMORY)
    inline = {k: v for k, v in HEADER.items() if k not in ("leads_key", "leads_count")}
    await store.put(
        f"snapshot:{JOB}", json.dumps({**inline, "version": 1, "leads": {"lead_1": "a"}})
    )
    with pytest.raises(
        SafetyNetError, match=rf"^The snapshot store:snapshot:{JOB} cannot be read: 'leads_key'$"
    ):
        await load_edit_snapshot(Settings(api_key=None), store, JOB)


async def test_a_malformed_snapshot_line_names_the_lead() -> None:
    store = SQLiteStore(MEMORY)
    await store.extend("snapshot-leads:k", ['["lead_1","a"]', '[7,"b"]'])
    await store.put(f"snapshot:{JOB}", json.dumps(HEADER))
    snapshot = await load_edit_snapshot(Settings(api_key=None), store, JOB)
    with pytest.raises(SafetyNetError, match=r"cannot be read: lead 2 has no id$"):
        [b async for b in snapshot_leads(store, snapshot)]


async def test_a_backup_stored_as_whole_text_is_refused_by_name() -> None:
    """Only unreleased commits stored a backup as one JSON-lines text; it is an error, never
    read as a header (nor its first lead as the whole backup)."""
    store = SQLiteStore(MEMORY)
    await store.put("backup:bulkdelete_a", '{"id": "lead_1"}\n{"id": "lead_2"}\n')
    with pytest.raises(
        SafetyNetError, match=r"^The backup store:backup:bulkdelete_a cannot be read: Extra data"
    ):
        await find_backup(store, "bulkdelete_a")
    await store.put("backup:bulkdelete_b", '{"id": "lead_1"}')
    with pytest.raises(
        SafetyNetError,
        match=r"^The backup store:backup:bulkdelete_b cannot be read: it names no list of leads$",
    ):
        await find_backup(store, "bulkdelete_b")
    assert await find_backup(store, "bulkdelete_c") is None


async def test_a_backup_reads_its_leads_in_order() -> None:
    store = SQLiteStore(MEMORY)
    await store.extend("backup-leads:k", ['{"id": "lead_1", "name": "A"}', '{"id": "lead_2"}'])
    await store.put(
        "backup:bulkdelete_a", json.dumps({"version": 2, "leads_key": "backup-leads:k"})
    )
    found = await find_backup(store, "bulkdelete_a")
    assert found is not None
    assert [lead async for lead in found.leads(store)] == [
        {"id": "lead_1", "name": "A"},
        {"id": "lead_2"},
    ]
    await store.extend("backup-leads:k", ['["not a lead"]'])
    with pytest.raises(SafetyNetError, match=r"^store:backup:bulkdelete_a:3 is not a lead record$"):
        [lead async for lead in found.leads(store)]
