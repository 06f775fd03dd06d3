"""A restore is journaled by the backup's identity (its content), wherever the backup is read
from: restoring again from a copy of a backup file (another folder, another name), or from
the file copy of a backup the store holds, re-creates nothing an earlier run restored, and
two copies cannot be restored at once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest

from close_mcp.safety.restore import Progress, Report, open_backup, run_restore
from close_mcp.safety.snapshot_writer import snapshot_dir
from close_mcp.store import Busy
from tests.harness import Harness, StartHarness
from tests.safety_net import delete_canceled, restore_sender

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=10)]
LEAD_POST = "/api/v1/lead/"


@pytest.fixture
async def h(start_harness: StartHarness, tmp_path: Path) -> Harness:
    """A server whose state store is a file, as `close-mcp restore` has by default."""
    return await start_harness(env={"CLOSE_MCP_STORE": str(tmp_path / "state.sqlite3")})


async def _yes(progress: Progress) -> bool:
    return True


def _posts(h: Harness) -> int:
    return sum(1 for r in h.sandbox.requests if r.method == "POST" and r.path == LEAD_POST)


async def _restore(h: Harness, source: Path | str) -> Report:
    backup = await open_backup(h.runtime.store, str(source))
    report = await run_restore(h.runtime.store, backup, lambda: restore_sender(h), approve=_yes)
    assert report is not None
    return report


def _backup_file(h: Harness, folder: Path) -> Path:
    """A backup file of three leads (as a replica that ran a delete keeps it), which the
    store does not hold."""
    leads = sorted(h.sandbox.store.leads.values(), key=lambda lead: lead.id)[:3]
    rows = [{"id": lead.id, "name": lead.name, "status_id": lead.status_id} for lead in leads]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bulkdelete_abc123.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_a_copy_of_a_backup_file_restores_nothing_again(tmp_path: Path, h: Harness) -> None:
    original = _backup_file(h, tmp_path / "here")
    first = await _restore(h, original)
    assert len(first.restored) == 3
    assert _posts(h) == 3
    # The same file copied elsewhere, under its name and under another one.
    same_name = tmp_path / "elsewhere" / original.name
    same_name.parent.mkdir()
    shutil.copy(original, same_name)
    renamed = tmp_path / "elsewhere" / "leads-backup.jsonl"
    shutil.copy(original, renamed)
    for copy in (same_name, renamed):
        again = await _restore(h, copy)
        assert again.restored == {}, copy
        assert again.already_restored == first.restored, copy
    assert _posts(h) == 3


async def test_the_file_copy_of_a_stored_backup_under_another_name_restores_nothing_again(
    tmp_path: Path, h: Harness
) -> None:
    job_id, _ = await delete_canceled(h)
    restored = await _restore(h, job_id)  # from the store, by the delete's id
    assert restored.restored
    posts = _posts(h)
    kept = snapshot_dir(h.runtime.settings) / f"{job_id}.jsonl"
    renamed = tmp_path / "copy-of-the-backup.jsonl"
    shutil.copy(kept, renamed)
    again = await _restore(h, renamed)
    assert again.restored == {}
    assert again.already_restored == restored.restored
    assert _posts(h) == posts


async def test_two_copies_of_one_backup_are_not_restored_at_once(
    tmp_path: Path, h: Harness
) -> None:
    original = _backup_file(h, tmp_path / "here")
    renamed = tmp_path / "other-name.jsonl"
    shutil.copy(original, renamed)
    both = [await open_backup(h.runtime.store, str(p)) for p in (original, renamed)]
    reports: list[Report | None] = []
    refusals: list[str] = []
    started = anyio.Event()
    go_on = anyio.Event()

    async def slow_yes(progress: Progress) -> bool:
        started.set()
        await go_on.wait()  # a person reading the preview while the other copy starts
        return True

    async def first() -> None:
        reports.append(
            await run_restore(h.runtime.store, both[0], lambda: restore_sender(h), approve=slow_yes)
        )

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first)
        await started.wait()
        try:
            await run_restore(h.runtime.store, both[1], lambda: restore_sender(h), approve=_yes)
        except Busy as exc:
            refusals.append(str(exc))
        go_on.set()
    assert len(refusals) == 1, refusals
    assert refusals[0].startswith(f"another restore of {renamed} is running")
    assert _posts(h) == 3
