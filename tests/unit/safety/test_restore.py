"""`safety.restore`: `restore_leads` journals lead by lead (a re-run skips what was restored and
holds back what has an unknown outcome until asked), and `run_restore` holds a backup's lock
so two restores of one backup at once create each lead once; a backup is known by its
content, wherever it is read from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest

from close_mcp.safety.restore import (
    Progress,
    Report,
    open_backup,
    progress_path,
    restore_leads,
    run_restore,
)
from close_mcp.safety.snapshot_reader import read_backup
from close_mcp.safety.snapshot_writer import snapshot_dir
from close_mcp.store import Busy
from tests.harness import Harness, StartHarness
from tests.safety_net import API, backup_file, delete_canceled, mode_of, restore_sender, sharing

pytestmark = pytest.mark.anyio


# The POST /lead/ that re-creates the first seeded lead (by id) of a 10-lead sandbox on the
# harness's clock, written out by hand: the empty custom values (Deal Size, Lead Source) are
# left out; each contact keeps its name, title, emails (none here) and phones.
VANDELAY_BODY = {
    "name": "Vandelay Systems",
    "status_id": "stat_rQlPZNqPe5fIiyzit1KMfd",  # Canceled
    "description": "Vandelay Systems is a demo lead.",
    "url": "https://vandelay.example",
    "date_created": "2025-09-12T19:00:59.945204+00:00",
    "custom.cf_SwThTKEyX7Epeo4ggJvsfZ": "Finance",  # Industry
    "custom.cf_58V0ZBasbwzWE9YK3AK6rG": ["Reporting", "CRM"],  # Products
    "custom.cf_M1KDN4y9IlvMLRgelEfnRJ": "2026-09-09",  # Renewal Date
    "custom.cf_w0LQ5xSVVUTALdgLZymdNF": "user_KCV7Qdle1m3yJ7OHaEQ1ke",  # Account Owner
    "contacts": [
        {
            "name": "Farid Rossi",
            "title": "Engineer",
            "emails": [],
            "phones": [{"phone": "+14155554619", "type": "office"}],
        },
        {
            "name": "Sam Silva",
            "title": "Buyer",
            "emails": [],
            "phones": [{"phone": "+14155552056", "type": "office"}],
        },
        {
            "name": "José Jones",
            "title": "Buyer",
            "emails": [],
            "phones": [{"phone": "+14155557481", "type": "office"}],
        },
    ],
}


@pytest.mark.harness(n_leads=10)
async def test_restore_again_skips_restored_leads_and_holds_back_unknown_ones(
    tmp_path: Path, h: Harness
) -> None:
    path = backup_file(tmp_path, h.sandbox, 4)
    backup = read_backup(path)
    old = [lead["id"] for lead in backup]
    journal = progress_path(path)
    assert journal == tmp_path / "bulkdelete_test.jsonl.restored.jsonl"
    # The first POST times out after Close created the lead: its outcome is unknown.
    h.sandbox.inject_faults("timeout_after_commit", path_prefix="lead/", method="POST")
    h.clear()
    first = await restore_leads(restore_sender(h), backup, progress=Progress.load(path))
    assert sorted(first.restored) == old[1:]
    assert list(first.outcome_unknown) == [old[0]]
    assert first.failed == {}
    assert first.already_restored == {}
    assert mode_of(journal) == 0o600
    assert len(h.writes()) == 4

    # A re-run resends nothing: three are recorded as restored, one is held back.
    h.clear()
    again = Progress.load(path)
    assert again.restored == first.restored
    second = await restore_leads(restore_sender(h), backup, progress=again)
    assert h.writes() == []
    assert second.restored == {}
    assert second.already_restored == first.restored
    assert list(second.outcome_unknown) == [old[0]]
    assert "--retry-unknown" in second.outcome_unknown[old[0]]

    # Asked to, it sends the unknown one again (once), and then it is recorded as done.
    h.clear()
    third = await restore_leads(
        restore_sender(h), backup, progress=Progress.load(path), retry_unknown=True
    )
    assert old[0] == "lead_2L2i8JYVcHllTGmWYzhSpp"  # the seeded Vandelay Systems
    assert [(r.method, r.path.removeprefix(API), r.json) for r in h.writes()] == [
        ("POST", "lead/", VANDELAY_BODY)
    ]
    assert list(third.restored) == [old[0]]
    assert third.outcome_unknown == {}
    h.clear()
    fourth = await restore_leads(restore_sender(h), backup, progress=Progress.load(path))
    assert h.writes() == []
    assert fourth.already_restored == {**first.restored, **third.restored}


@pytest.mark.harness(audited=True)
async def test_two_restores_of_one_backup_at_once_create_each_lead_once(
    tmp_path: Path, start_harness: StartHarness
) -> None:
    a, b = await sharing(start_harness, tmp_path)
    sb = a.sandbox
    job_id, before = await delete_canceled(a)
    doomed = sorted(before)
    a.clear()
    reports: list[Report | None] = []
    refusals: list[str] = []

    async def restore(h: Harness) -> None:
        # B reads the backup from the store A wrote it to, by the delete's job id.
        backup = await open_backup(h.runtime.store, job_id)

        async def approve(progress: Progress) -> bool:
            await anyio.sleep(0.05)  # a person reading the preview: the runs overlap
            return True

        try:
            reports.append(
                await run_restore(
                    h.runtime.store, backup, lambda: restore_sender(h), approve=approve
                )
            )
        except Busy as exc:
            refusals.append(str(exc))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(restore, a)
        tasks.start_soon(restore, b)
    posts = [r for r in sb.requests if r.method == "POST" and r.path.removeprefix(API) == "lead/"]
    assert len(posts) == len(doomed)
    [report] = reports
    assert report is not None
    assert sorted(report.restored) == doomed
    assert refusals == [
        f"another restore of store:backup:{job_id} is running (here or on a machine sharing "
        "the state store); nothing was sent. Let it finish, then run this again: it skips "
        "what that run restored."
    ]
    # Run again through either server: the journal in the store says all is done.
    a.clear()
    backup = await open_backup(b.runtime.store, job_id)
    again = await run_restore(b.runtime.store, backup, lambda: restore_sender(b), approve=_yes)
    assert again is not None
    assert again.restored == {}
    assert again.already_restored == report.restored
    assert a.writes() == []


async def _yes(progress: Progress) -> bool:
    return True


# A restore is journaled by the backup's identity (its content), wherever the backup is read
# from: restoring again from a copy of a backup file (another folder, another name), or from
# the file copy of a backup the store holds, re-creates nothing an earlier run restored, and
# two copies cannot be restored at once. The state store is a file, as `close-mcp restore`
# has by default.
LEAD_POST = "/api/v1/lead/"


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


@pytest.mark.harness(n_leads=10, store_file=True)
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


@pytest.mark.harness(n_leads=10, store_file=True)
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


@pytest.mark.harness(n_leads=10, store_file=True)
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
