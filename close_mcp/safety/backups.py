"""The backups a restore reads: a pre-delete backup in the state store or in a file (see
`close_mcp.safety.snapshot_writer`), each with an identity that is its content.

A backup's identity is the sha256 of its leads, one canonical JSON line each, in order
(`Backup.identity`, `sha256:<hex>`), the same whether it is read from the store, from its
file, or from a copy of that file in another folder or under another name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from close_mcp.close.client import CloseClient
from close_mcp.close.crm import iter_events, shown
from close_mcp.close.jobs import job_path
from close_mcp.errors import SafetyNetError
from close_mcp.safety.merge_journal import journal_key
from close_mcp.safety.snapshot_reader import find_backup, iter_backup_file
from close_mcp.safety.snapshot_writer import STORE_REF, backup_key, reference
from close_mcp.store import StateStore

DELETE_JOB = re.compile(r"^bulkdelete_[A-Za-z0-9]+$")
# What the store keeps a backup under: a bulk delete's job id, or a merge_leads run's id.
STORED_BACKUP = re.compile(r"^(bulkdelete|leadmerge)_[A-Za-z0-9]+$")
EVENT_LOG: Final = "event-log"  # the id of a "backup" read from Close's event log
SHOWN_CHECKS: Final = 20  # destination leads of a merge run asked of Close, at most


@dataclass(frozen=True)
class Backup:
    """A backup to restore: its id (locks and journals are named after it), where it was
    read (for messages and the audit), its file if it is one, how many leads it holds, and
    where its leads are read from, one at a time (a 100,000-lead backup is never held whole)."""

    id: str
    where: str
    source: LeadSource
    count: int
    digest: str  # sha256 of its leads (see `_survey`): the same for every copy of it
    path: Path | None = None
    in_store: bool = False

    def leads(self) -> AsyncIterator[dict[str, Any]]:
        return self.source()

    @property
    def identity(self) -> str:
        """What its journal and lock are named after: its content, wherever it is read from
        (the store, its file, a copy of that file under any name)."""
        return f"sha256:{self.digest}"

    @property
    def job_id(self) -> str | None:
        """The delete it backs up, when its id names one (older journals and locks used it)."""
        return self.id if DELETE_JOB.match(self.id) else None


LeadSource = Callable[[], AsyncIterator[dict[str, Any]]]


async def open_backup(store: StateStore, source: str) -> Backup:
    """The backup `source` names: a bulk delete job id (or its `store:backup:` reference),
    read from the store, or a backup file. Every line is read once here, so a malformed one
    is reported before anything is asked or sent. `SafetyNetError`/`OSError` when unreadable."""
    job_id = source.removeprefix(STORE_REF).removeprefix("backup:")
    if STORED_BACKUP.match(job_id) and not _is_file(source):
        return await open_stored_backup(
            store,
            job_id,
            hint="set CLOSE_MCP_STORE to the store of the server that ran the delete, or pass "
            "the backup file",
        )
    backup = await _read_file(Path(source))
    # The file copy of a backup the store holds too: one lock and one journal for both.
    if DELETE_JOB.match(backup.id) and await store.get(backup_key(backup.id)) is not None:
        return replace(backup, in_store=True)
    return backup


async def open_stored_backup(store: StateStore, job_id: str, *, hint: str) -> Backup:
    """The backup the store holds of the delete `job_id` (never a file: what a tool reads);
    `SafetyNetError` ending with `hint` when there is none."""
    found = await find_backup(store, job_id)
    if found is None:
        raise SafetyNetError(f"no backup of {job_id} in the state store ({store!r}); {hint}")
    stored = found

    def from_store() -> AsyncIterator[dict[str, Any]]:
        return stored.leads(store)

    count, digest = await _survey(from_store())
    return Backup(job_id, reference(backup_key(job_id)), from_store, count, digest, in_store=True)


async def open_callers_backup(
    store: StateStore, client: CloseClient, job_id: str, *, hint: str
) -> Backup:
    """The stored backup of `job_id`, for a tool's caller: the store holds every caller's
    backups (leads whole: names, contacts, emails), so one is opened only when Close shows
    this key where it came from: the delete job, or for a merge run one of its destination
    leads. Otherwise the caller is told there is none, in the words used for an unknown id."""
    backup = await open_stored_backup(store, job_id, hint=hint)
    none = SafetyNetError(f"no backup of {job_id} in the state store ({store!r}); {hint}")
    if DELETE_JOB.match(job_id):
        if await shown(client, job_path("delete", job_id)):
            return backup
        raise none
    looked = 0
    async for lead in backup.leads():
        entry = await store.get(journal_key(str(lead.get("id"))))
        pair = json.loads(entry) if entry is not None else {}
        if pair.get("run_id") == job_id and pair.get("destination"):
            if await shown(client, f"lead/{pair['destination']}/"):
                return backup
            looked += 1
            if looked >= SHOWN_CHECKS:
                break
    raise none


async def _survey(leads: AsyncIterator[dict[str, Any]]) -> tuple[int, str]:
    """How many leads, and the digest of their canonical JSON lines in order: the backup's
    identity, the same whether it is read from the store or from any copy of its file."""
    count = 0
    digest = hashlib.sha256()
    async for lead in leads:
        count += 1
        digest.update(json.dumps(lead, sort_keys=True, separators=(",", ":")).encode())
        digest.update(b"\n")
    return count, digest.hexdigest()


def _is_file(source: str) -> bool:
    return Path(source).exists()


async def _read_file(path: Path) -> Backup:
    """A backup file, named after its job when its name is one, else after its path."""

    async def from_file() -> AsyncIterator[dict[str, Any]]:
        for lead in iter_backup_file(path):
            yield lead

    count, digest = await _survey(from_file())
    return Backup(_file_backup_id(path), str(path), from_file, count, digest, path=path)


def _file_backup_id(path: Path) -> str:
    stem = path.name.removesuffix(".jsonl")
    if DELETE_JOB.match(stem):
        return stem
    return "file-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DeletedInClose:
    """Leads deleted in Close (anywhere: its UI, another integration, close-mcp) that its
    event log still shows, as a backup: each `deleted` event's `previous_data` is the lead
    as it was. `without_data` counts the deletions whose event kept none (not restorable)."""

    backup: Backup
    without_data: int


async def deleted_in_close(
    client: CloseClient, *, since: datetime, user_id: str | None = None
) -> DeletedInClose:
    """The leads deleted since `since` (by `user_id`, when given), newest first, read from
    `GET /event/` (`object_type=lead`, `action=deleted`; Close keeps 30 days of events)."""
    filters = {"object_type": "lead", "action": "deleted", "date_updated__gte": since.isoformat()}
    if user_id is not None:
        filters["user_id"] = user_id
    leads: list[dict[str, Any]] = []
    seen: set[str] = set()
    without = 0
    async for event in iter_events(client, filters):
        lead_id = str(event.get("object_id"))
        if lead_id in seen:
            continue
        seen.add(lead_id)
        data = event.get("previous_data")
        if isinstance(data, dict) and data.get("id") == lead_id:
            leads.append(data)
        else:
            without += 1

    async def from_events() -> AsyncIterator[dict[str, Any]]:
        for lead in leads:
            yield lead

    count, digest = await _survey(from_events())
    where = f"Close's event log (leads deleted since {since.isoformat()})"
    return DeletedInClose(Backup(EVENT_LOG, where, from_events, count, digest), without)
