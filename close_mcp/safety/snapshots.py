"""The safety net's documents: a snapshot before a bulk edit, a backup before a bulk delete.

Close can undo neither a bulk edit nor a bulk delete, so just before such a job is POSTed
(after confirmation, only on the path that really sends) the server reads what the job is
about to overwrite and writes it down, in the state store (`close_mcp.store`) that every
replica sharing `CLOSE_MCP_STORE` sees, so a revert or a restore works from any of them:

- edit: `snapshot:<job_id>`, a small JSON header `{version: 2, job_id, created_at, tool,
  request, field, leads_key, leads_count}`, where `field` is `status_id` or
  `custom.<cf_id>`; its leads are the list `leads_key` (`snapshot-leads:<random>`), one
  line `[lead_id, old value]` per lead (an absent custom value is `null`).
  `revert_bulk_edit` reads it back a batch at a time. What each revert sent goes to its own
  list, `reverts:<job_id>`: one JSON line `{sent_at, job_id}` per bulk edit job, as soon as
  Close answers, and `{sent_at, lead_id}` per lead updated one by one (`record_revert`:
  appended, never a rewrite).
- delete: `backup:<job_id>`, the same header without `request`/`field`; its leads are the
  list `backup-leads:<random>`, one lead per line as `/data/search/` returned it (fields,
  `custom.<cf_id>` values, contacts with emails and phones). `close-mcp restore <job_id>`
  reads it. The replica that ran the delete also keeps a copy on its disk,
  `<snapshot_dir>/<job_id>.jsonl` (folder 0700, file 0600, written to a private temporary
  name and renamed), so the leads survive the loss of the store (a Redis without
  persistence); `close-mcp restore <that file>` reads it.

Both are streamed: each page of leads Close returns (200) is appended to the list (and the
file) before the next is read, so the server holds one page (and, past 10,000 leads, the
ids seen, to skip a lead read twice), never the leads of the selection; the header is
written only once the list is complete; a walk that fails removes its list and
nothing is sent. Documents written whole by earlier versions (a snapshot with its `leads`
inline, version 1; a backup as one JSON-lines text) are still read.

The job id is only known once Close answers the POST, so a header is first written as
`snapshot:pending-<random>` / `backup:pending-<random>` and `attach` (the pipeline calls it
with the job id) writes it under the job id and removes the pending one (the list of leads
stays where it is: nothing of size is rewritten); a pending document
that stays belongs to a POST that failed or whose outcome is unknown (the audit line names
it). Documents have no expiry: they are kept until deleted from the store.

The `snapshot` field of a result and of its audit line is the store reference,
`store:snapshot:<job_id>` or `store:backup:<job_id>` (`store:...:pending-<random>` when the
POST failed). Snapshots written by earlier versions as files (`<snapshot_dir>/<job_id>.json`)
are still read, their reverts recorded in the store.

Cost, counted in the preview notes: ceil(n / 200) search requests for n leads (at least
one); a backup adds one `GET /custom_field_schema/lead/` to learn which custom fields to
read (regular and shared: `/custom_field/lead/` lists only the regular ones).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import anyio

from close_mcp.clock import Clock
from close_mcp.close import lead_walk as walking
from close_mcp.close.client import CloseClient
from close_mcp.close.lead_walk import iter_leads, pages
from close_mcp.config import Settings, default_audit_path
from close_mcp.errors import SafetyNetError
from close_mcp.store import StateStore
from close_mcp.writes.progress import Progress

if TYPE_CHECKING:
    from close_mcp.writes.request import WriteRequest

SNAPSHOT_VERSION: Final = 1  # one document with every lead inline (still read)
STREAMED_VERSION: Final = 2  # a header naming the list of its leads
EDIT_SUFFIX: Final = ".json"
BACKUP_SUFFIX: Final = ".jsonl"
PENDING: Final = "pending-"
BACKUP_FIELDS: Final = (
    "id",
    "name",
    "display_name",
    "status_id",
    "status_label",
    "description",
    "url",
    "date_created",
    "date_updated",
    "contacts",
)
STORE_REF: Final = "store:"
# `json.dumps(x, ensure_ascii=False)` without building an encoder per call (one per lead).
_to_json: Final = json.JSONEncoder(ensure_ascii=False).encode
log = logging.getLogger(__name__)
_JOB_ID = re.compile(r"^bulk[a-z]+_[A-Za-z0-9]+$")
# Hears each page of leads a snapshot or backup walks (the binding check folds them in).
Observe = Callable[[list[dict[str, Any]]], None] | None


def snapshot_dir(settings: Settings) -> Path:
    """The folder for snapshots and backups (see the module docstring)."""
    if settings.snapshot_dir is not None:
        return settings.snapshot_dir
    audit = settings.audit_log or default_audit_path(os.environ)
    return audit.parent / "snapshots"


def search_cost(n_leads: int) -> int:
    """Search requests to read n leads (`close.lead_walk.read_cost`)."""
    return walking.read_cost(n_leads)


# -- deciding --------------------------------------------------------------------------------


def edit_field(body: dict[str, Any]) -> str:
    """The lead field a bulk edit body changes: `status_id` or `custom.<cf_id>`."""
    if body.get("type") == "set_lead_status":
        return "status_id"
    return f"custom.{body['custom_field_id']}"


def why_not(settings: Settings, request: WriteRequest) -> str | None:
    """Why no snapshot (edit) or backup (delete) will be taken, or None when one will."""
    limit = settings.snapshot_limit
    if limit == 0:
        return "CLOSE_MCP_SNAPSHOT is off"
    if request.matched > limit:
        return f"it touches {request.matched} leads, more than CLOSE_MCP_SNAPSHOT allows ({limit})"
    limit_decides = request.results_limit is not None and request.matched >= request.results_limit
    if limit_decides and request.matched > walking.CURSOR_CAP:
        return (
            f"results_limit picks the first {request.results_limit} leads in sort order, and "
            f"Close ends a walk in that order at {walking.CURSOR_CAP} leads"
        )
    return None


def annotate(settings: Settings, request: WriteRequest) -> None:
    """Say in the preview what the safety net will do; without one, always ask first."""
    if request.matched == 0:
        return
    what = "snapshot" if request.action == "edit" else "backup"
    reason = why_not(settings, request)
    if reason is not None:
        request.always_confirm = True
        request.notes.append(
            f"No {what} will be taken because {reason}: this cannot be undone with "
            f"{'revert_bulk_edit' if what == 'snapshot' else 'restore_leads'}. "
            "Confirmation is required."
        )
        return
    cost = search_cost(request.matched) + (0 if what == "snapshot" else 1)
    if what == "snapshot":
        request.notes.append(
            f"Before sending, the current {_field_words(request.body)} of the "
            f"{request.matched} leads is saved so revert_bulk_edit can put it back "
            f"({cost} more Close request{'s' if cost != 1 else ''})."
        )
    else:
        request.notes.append(
            f"Before sending, the full records of the {request.matched} leads (fields, custom "
            f"fields, contacts) are saved ({cost} more Close requests): restore_leads "
            "re-creates them with new ids; activities, opportunities and tasks are not restored."
        )


def _field_words(body: dict[str, Any]) -> str:
    field = edit_field(body)
    return "status" if field == "status_id" else f"value of custom field {field[7:]}"


# -- writing ---------------------------------------------------------------------------------


@contextmanager
def private_file(path: Path) -> Iterator[TextIO]:
    """A file at `path` readable by the user only (folder 0700, file 0600), written through
    the handle and put in place (renamed from a private temporary name) only when the block
    ends without an error; on an error nothing is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        os.chmod(path.parent, 0o700)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the user only, atomically (see `private_file`)."""
    with private_file(path) as handle:
        handle.write(text)


def _pending(folder: Path, kind: str, suffix: str) -> Path:
    return folder / f"{PENDING}{kind}-{secrets.token_hex(8)}{suffix}"


def finalize(path: str, job_id: str) -> str:
    """Rename a pending backup file after the job id it belongs to; the new path."""
    pending = Path(path)
    if not pending.name.startswith(PENDING) or not _JOB_ID.match(job_id):
        return path
    final = pending.with_name(job_id + pending.suffix)
    os.replace(pending, final)
    return str(final)


def snapshot_key(job_id: str) -> str:
    return f"snapshot:{job_id}"


def backup_key(job_id: str) -> str:
    return f"backup:{job_id}"


def reverts_key(job_id: str) -> str:
    return f"reverts:{job_id}"


def reference(key: str) -> str:
    """The `snapshot` field of a result and of its audit line for a document under `key`."""
    return STORE_REF + key


class _Saver:
    """What the two safeguards share: the store, the clock, the client, the preview note, and
    writing the leads down page by page as Close returns them.

    A document is a small header under `<what>:<key>` naming the list of its leads,
    `<what>-leads:<random>`, one JSON line per lead, written a page (200 leads) at a time:
    the server holds one page, never the selection. The header is written once every page
    is, so a pending header always names a complete list; a walk that fails removes its
    list and nothing is sent."""

    what: str
    kind: str  # the job kind in the key: "bulkedit" or "bulkdelete"

    def __init__(
        self, settings: Settings, clock: Clock, client: CloseClient, store: StateStore
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.client = client
        self.store = store
        self._headers: dict[str, dict[str, Any]] = {}  # pending key -> its header, until attached

    def prepare(self, request: WriteRequest) -> None:
        """Attach to the request and say in its preview what will be saved."""
        request.safeguard = self
        annotate(self.settings, request)

    async def take(
        self, request: WriteRequest, progress: Progress | None = None, observe: Observe = None
    ) -> str | None:
        raise NotImplementedError

    async def discard(self, saved: str) -> None:
        """Remove a pending document `take` wrote (its list of leads, its header; a backup's
        file too): the binding check refused the write it was taken for."""
        pending = saved.removeprefix(STORE_REF)
        header = self._headers.pop(pending, None)
        with anyio.CancelScope(shield=True):
            if header is not None:
                await self.store.delete(str(header["leads_key"]))
            await self.store.delete(pending)

    async def attach(self, saved: str, job_id: str) -> str:
        """Write the header under `job_id` and drop the pending one; its reference (the list
        of leads stays where it is: nothing of size is rewritten).

        The job exists by now: a store that fails here must not turn the submission into an
        error, so the document then stays under its pending key (the audit line names it)."""
        pending = saved.removeprefix(STORE_REF)
        header = self._headers.pop(pending, None)
        if header is None or not _JOB_ID.match(job_id):
            return saved
        final = f"{self.what}:{job_id}"
        try:
            await self.store.put(final, json.dumps({**header, "job_id": job_id}))
            await self.store.delete(pending)
        except Exception:
            log.exception("could not write %s (it stays as %s)", final, pending)
            return saved
        return reference(final)

    def _will_save(self, request: WriteRequest) -> bool:
        return why_not(self.settings, request) is None and request.s_query is not None

    async def _write_leads(
        self,
        request: WriteRequest,
        fields: list[str],
        line: Callable[[dict[str, Any]], str],
        header: dict[str, Any],
        progress: Progress | None,
        observe: Observe,
        file: TextIO | None = None,
    ) -> str:
        """Walk the leads, append each page to a new list (and to `file`) and hand it to
        `observe`, then write the pending header naming it; the pending reference. On any
        error the list is removed."""
        assert request.s_query is not None
        suffix = secrets.token_hex(8)
        leads_key = f"{self.what}-leads:{suffix}"
        written = 0
        words = f"{self.what}: {{}} of {request.matched} leads saved"
        try:
            leads = iter_leads(
                self.client,
                request.s_query,
                fields,
                results_limit=request.results_limit,
                sort=request.sort,
            )
            async for page in pages(leads):
                if observe is not None:
                    observe(page)
                text = [line(lead) for lead in page]
                await self.store.extend(leads_key, text)
                if file is not None:
                    file.write("".join(t + "\n" for t in text))
                written += len(page)
                if progress is not None:
                    await progress.step(written, request.matched, words.format(written))
            pending = f"{self.what}:{PENDING}{suffix}"
            full = {**header, "leads_key": leads_key, "leads_count": written}
            await self.store.put(pending, json.dumps(full, ensure_ascii=False))
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.store.delete(leads_key)
            raise
        if progress is not None:
            await progress.step(written, written, words.format(written))
            progress.next_phase(written)
        self._headers[pending] = full
        return reference(pending)

    def _header(self, request: WriteRequest) -> dict[str, Any]:
        return {
            "version": STREAMED_VERSION,
            "job_id": None,
            "created_at": datetime.fromtimestamp(self.clock.time(), tz=UTC).isoformat(),
            "tool": request.tool,
        }


class SnapshotBeforeEdit(_Saver):
    """Saves the current value of the field the edit changes on every lead it will touch:
    one line `[lead_id, value]` per lead."""

    what = "snapshot"

    async def take(
        self, request: WriteRequest, progress: Progress | None = None, observe: Observe = None
    ) -> str | None:
        if not self._will_save(request):
            return None
        field = edit_field(request.body)

        def line(lead: dict[str, Any]) -> str:
            return _to_json([lead["id"], lead.get(field)])

        header = {**self._header(request), "request": request.body, "field": field}
        return await self._write_leads(request, [field], line, header, progress, observe)


class BackupBeforeDelete(_Saver):
    """Saves the full record of every lead the delete will remove, one JSON line each, in the
    store and in a file on this replica's disk."""

    what = "backup"

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        client: CloseClient,
        store: StateStore,
        custom_field_ids: Callable[[], Awaitable[list[str]]],
    ) -> None:
        super().__init__(settings, clock, client, store)
        self._custom_field_ids = custom_field_ids
        self._files: dict[str, str] = {}  # pending key -> pending file

    async def take(
        self, request: WriteRequest, progress: Progress | None = None, observe: Observe = None
    ) -> str | None:
        if not self._will_save(request):
            return None
        custom = [f"custom.{cf}" for cf in await self._custom_field_ids()]
        path = _pending(snapshot_dir(self.settings), "bulkdelete", BACKUP_SUFFIX)

        def line(lead: dict[str, Any]) -> str:
            return _to_json(lead)

        with private_file(path) as file:
            saved = await self._write_leads(
                request,
                [*BACKUP_FIELDS, *custom],
                line,
                self._header(request),
                progress,
                observe,
                file,
            )
        self._files[saved] = str(path)
        return saved

    async def discard(self, saved: str) -> None:
        file = self._files.pop(saved, None)
        if file is not None:
            await anyio.Path(file).unlink(missing_ok=True)
        await super().discard(saved)

    async def attach(self, saved: str, job_id: str) -> str:
        file = self._files.pop(saved, None)
        if file is not None:
            finalize(file, job_id)
        return await super().attach(saved, job_id)


# -- reading the documents back ----------------------------------------------------------------


@dataclass(frozen=True)
class EditSnapshot:
    where: str  # the store reference (or, for an older snapshot, its file)
    job_id: str
    created_at: str
    request: dict[str, Any]
    field: str
    leads_key: str | None  # the list of `[lead_id, old value]` lines (streamed snapshots)
    inline: dict[str, Any] | None = None  # lead_id -> old value (earlier versions' documents)
    leads_count: int = 0
    reverts: tuple[dict[str, Any], ...] = ()
    stored_reverts: int = 0  # how many of `reverts` the store held when this was read

    @property
    def revert_jobs(self) -> list[str]:
        """The bulk edit jobs earlier reverts sent, in order."""
        return [str(r["job_id"]) for r in self.reverts if r.get("job_id")]


def check_job_id(job_id: str) -> None:
    if not _JOB_ID.match(job_id):
        raise SafetyNetError(f"job_id {job_id!r} is not a bulk job id (bulkedit_...)")


def snapshot_path(settings: Settings, job_id: str) -> Path:
    """Where an earlier version kept the snapshot of `job_id` as a file."""
    check_job_id(job_id)
    return snapshot_dir(settings) / f"{job_id}{EDIT_SUFFIX}"


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
        path = snapshot_path(settings, job_id)
        if not path.exists():
            raise SafetyNetError(
                f"No snapshot for {job_id} in the state store ({store!r}): only edits sent "
                f"with CLOSE_MCP_SNAPSHOT on (up to {settings.snapshot_limit} leads) by a "
                "server sharing this store (CLOSE_MCP_STORE) can be reverted."
            )
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SafetyNetError(f"The snapshot {path} cannot be read: {exc}") from exc
    try:
        data = json.loads(text)
        recorded = [json.loads(line) for line in await store.lines(reverts_key(job_id))]
        streamed = "leads_key" in data
        return EditSnapshot(
            where=where,
            job_id=str(data["job_id"]),
            created_at=str(data["created_at"]),
            request=dict(data["request"]),
            field=str(data["field"]),
            leads_key=str(data["leads_key"]) if streamed else None,
            inline=None if streamed else dict(data["leads"]),
            leads_count=int(data["leads_count"]) if streamed else len(data["leads"]),
            reverts=tuple(dict(r) for r in [*data.get("reverts", []), *recorded]),
            stored_reverts=len(recorded),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SafetyNetError(f"The snapshot {where} cannot be read: {exc}") from exc


async def snapshot_leads(
    store: StateStore, snapshot: EditSnapshot, *, batch: int = 1000
) -> AsyncIterator[list[tuple[str, Any]]]:
    """The snapshot's `(lead_id, old value)` pairs in the order they were saved, `batch` at
    a time; a malformed line is an error naming it."""
    if snapshot.inline is not None:
        pairs = list(snapshot.inline.items())
        for start in range(0, len(pairs), batch):
            yield pairs[start : start + batch]
        return
    assert snapshot.leads_key is not None
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
    if "leads_key" in data:
        lines = await store.lines(data.pop("leads_key"))
        data.pop("leads_count", None)
        data["leads"] = {lead_id: value for lead_id, value in map(json.loads, lines)}
    return data


async def record_revert(store: StateStore, job_id: str, entries: list[dict[str, Any]]) -> None:
    """Add what a revert sent (`{sent_at, job_id}` or `{sent_at, lead_id}`) to the reverts of
    the edit `job_id`: appended in one write (the snapshot itself is never rewritten)."""
    await store.extend(reverts_key(job_id), [_to_json(entry) for entry in entries])


@dataclass(frozen=True)
class StoredBackup:
    """A backup the store holds: a header naming its list of leads, or (written by an
    earlier version) the whole JSON-lines text under `backup:<job_id>`."""

    where: str
    leads_key: str | None
    text: str | None = None
    header: dict[str, Any] = field(default_factory=dict)

    async def leads(self, store: StateStore) -> AsyncIterator[dict[str, Any]]:
        """The backed-up leads in order, a batch at a time from the store."""
        if self.leads_key is None:
            for lead in parse_backup(self.text or "", self.where):
                yield lead
            return
        number = 0
        async for lines in store.iter_lines(self.leads_key):
            for line in lines:
                number += 1
                yield parse_lead(line, self.where, number)


async def find_backup(store: StateStore, job_id: str) -> StoredBackup | None:
    """The backup of the delete `job_id` in the store; None if it has none."""
    return await _backup_at(store, backup_key(job_id))


async def _backup_at(store: StateStore, key: str) -> StoredBackup | None:
    text = await store.get(key)
    if text is None:
        return None
    try:
        header = json.loads(text)
    except ValueError:
        header = None  # several lines: a backup written whole by an earlier version
    if isinstance(header, dict) and isinstance(header.get("leads_key"), str):
        return StoredBackup(reference(key), header["leads_key"], header=header)
    return StoredBackup(reference(key), None, text)


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


def parse_backup(text: str, where: str) -> list[dict[str, Any]]:
    return [
        parse_lead(line, where, number)
        for number, line in enumerate(text.split("\n"), 1)
        if line.strip()
    ]


def parse_lead(line: str, where: str, number: int) -> dict[str, Any]:
    """One line of a backup: a lead record with an id."""
    try:
        lead = json.loads(line)
    except ValueError as exc:
        raise SafetyNetError(f"{where}:{number} is not JSON: {exc}") from exc
    if not isinstance(lead, dict) or not isinstance(lead.get("id"), str):
        raise SafetyNetError(f"{where}:{number} is not a lead record")
    return lead
