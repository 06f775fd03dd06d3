"""The safety net's documents, read back: the snapshot of a bulk edit (`load_edit_snapshot`,
its leads a batch at a time with `snapshot_leads`) for `revert_bulk_edit`, the backup of a
bulk delete (`find_backup`, or a backup file with `iter_backup_file`) for a restore.

The formats are `snapshot_writer`'s; a malformed document or line is a `SafetyNetError`
naming where it is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from close_mcp.config import Settings
from close_mcp.errors import SafetyNetError
from close_mcp.safety.snapshot_writer import (
    JOB_ID,
    backup_key,
    reference,
    reverts_key,
    snapshot_key,
)
from close_mcp.store import StateStore


@dataclass(frozen=True)
class EditSnapshot:
    where: str  # the store reference
    job_id: str
    created_at: str
    request: dict[str, Any]
    field: str
    leads_key: str  # the list of `[lead_id, old value]` lines
    leads_count: int = 0
    reverts: tuple[dict[str, Any], ...] = ()
    stored_reverts: int = 0  # how many of `reverts` the store held when this was read

    @property
    def revert_jobs(self) -> list[str]:
        """The bulk edit jobs earlier reverts sent, in order."""
        return [str(r["job_id"]) for r in self.reverts if r.get("job_id")]


def check_job_id(job_id: str) -> None:
    if not JOB_ID.match(job_id):
        raise SafetyNetError(f"job_id {job_id!r} is not a bulk job id (bulkedit_...)")


async def load_edit_snapshot(settings: Settings, store: StateStore, job_id: str) -> EditSnapshot:
    """The header of the snapshot of the edit `job_id` with every revert recorded so far
    (its leads are read with `snapshot_leads`)."""
    check_job_id(job_id)
    if not job_id.startswith("bulkedit_"):
        raise SafetyNetError(f"job_id {job_id!r} is not a bulk edit; only edits can be reverted")
    key = snapshot_key(job_id)
    where = reference(key)
    text = await store.get(key)
    if text is None:
        raise SafetyNetError(
            f"No snapshot for {job_id} in the state store ({store!r}): only edits sent "
            f"with CLOSE_MCP_SNAPSHOT on (up to {settings.snapshot_limit} leads) by a "
            "server sharing this store (CLOSE_MCP_STORE) can be reverted."
        )
    try:
        data = json.loads(text)
        recorded = [json.loads(line) for line in await store.lines(reverts_key(job_id))]
        return EditSnapshot(
            where=where,
            job_id=str(data["job_id"]),
            created_at=str(data["created_at"]),
            request=dict(data["request"]),
            field=str(data["field"]),
            leads_key=str(data["leads_key"]),
            leads_count=int(data["leads_count"]),
            reverts=tuple(dict(r) for r in recorded),
            stored_reverts=len(recorded),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SafetyNetError(f"The snapshot {where} cannot be read: {exc}") from exc


async def snapshot_leads(
    store: StateStore, snapshot: EditSnapshot, *, batch: int = 1000
) -> AsyncIterator[list[tuple[str, Any]]]:
    """The snapshot's `(lead_id, old value)` pairs in the order they were saved, `batch` at
    a time; a malformed line is an error naming it."""
    number = 0
    async for lines in store.iter_lines(snapshot.leads_key, batch=batch):
        chunk: list[tuple[str, Any]] = []
        for line in lines:
            number += 1
            try:
                lead_id, value = json.loads(line)
            except ValueError as exc:
                raise SafetyNetError(
                    f"The snapshot {snapshot.where} cannot be read: lead {number}: {exc}"
                ) from exc
            if not isinstance(lead_id, str):
                raise SafetyNetError(
                    f"The snapshot {snapshot.where} cannot be read: lead {number} has no id"
                )
            chunk.append((lead_id, value))
        yield chunk


async def read_document(store: StateStore, key: str) -> dict[str, Any] | None:
    """The snapshot or backup under `key` as one document, its leads put back in (`leads`:
    `{lead_id: old value}` for a snapshot, the records for a backup); for looking at a small
    one whole (tests, support), never on the way of a write."""
    if key.startswith("backup:"):
        found = await _backup_at(store, key)
        if found is None:
            return None
        document = dict(found.header)
        document.pop("leads_key", None)
        document.pop("leads_count", None)
        return {**document, "leads": [lead async for lead in found.leads(store)]}
    text = await store.get(key)
    if text is None:
        return None
    data: dict[str, Any] = json.loads(text)
    lines = await store.lines(data.pop("leads_key"))
    data.pop("leads_count", None)
    data["leads"] = {lead_id: value for lead_id, value in map(json.loads, lines)}
    return data


@dataclass(frozen=True)
class StoredBackup:
    """A backup the store holds: a header naming its list of leads."""

    where: str
    leads_key: str
    header: dict[str, Any] = field(default_factory=dict)

    async def leads(self, store: StateStore) -> AsyncIterator[dict[str, Any]]:
        """The backed-up leads in order, a batch at a time from the store, but those its
        `skip_key` list names (a merge run's sources Close did not merge: they still exist)."""
        skip_key = self.header.get("skip_key")
        skipped = set(await store.lines(skip_key)) if isinstance(skip_key, str) else set()
        number = 0
        async for lines in store.iter_lines(self.leads_key):
            for line in lines:
                number += 1
                lead = parse_lead(line, self.where, number)
                if lead["id"] not in skipped:
                    yield lead


async def find_backup(store: StateStore, job_id: str) -> StoredBackup | None:
    """The backup of the delete `job_id` in the store; None if it has none."""
    return await _backup_at(store, backup_key(job_id))


async def _backup_at(store: StateStore, key: str) -> StoredBackup | None:
    text = await store.get(key)
    if text is None:
        return None
    where = reference(key)
    header = _loads(text, f"The backup {where} cannot be read")
    if not isinstance(header, dict) or not isinstance(header.get("leads_key"), str):
        raise SafetyNetError(f"The backup {where} cannot be read: it names no list of leads")
    return StoredBackup(where, header["leads_key"], header=header)


async def stored_backup(store: StateStore, job_id: str) -> list[dict[str, Any]] | None:
    """The leads of the backup of the delete `job_id` in the store, in a list (for a small
    one); None if it has none."""
    found = await find_backup(store, job_id)
    return None if found is None else [lead async for lead in found.leads(store)]


def iter_backup_file(path: Path) -> Iterator[dict[str, Any]]:
    """The leads of a backup file, in order, read line by line; a malformed line is an
    error naming it."""
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield parse_lead(line, str(path), number)
    except UnicodeDecodeError as exc:
        raise SafetyNetError(f"{path} is not UTF-8 text: {exc}") from exc


def read_backup(path: Path) -> list[dict[str, Any]]:
    """The leads of a backup file, in a list (for a small one)."""
    return list(iter_backup_file(path))


def parse_lead(line: str, where: str, number: int) -> dict[str, Any]:
    """One line of a backup: a lead record with an id."""
    lead = _loads(line, f"{where}:{number} is not JSON")
    if not isinstance(lead, dict) or not isinstance(lead.get("id"), str):
        raise SafetyNetError(f"{where}:{number} is not a lead record")
    return lead


def _loads(text: str, problem: str) -> Any:
    """`text` as JSON, or a `SafetyNetError` saying `problem` and why."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SafetyNetError(f"{problem}: {exc}") from exc
