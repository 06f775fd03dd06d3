"""The safety net's documents, written: a snapshot before a bulk edit, a backup before a
bulk delete (`SnapshotBeforeEdit`, `BackupBeforeDelete`: the pipeline's `Safeguard`s).

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
nothing is sent.

The job id is only known once Close answers the POST, so a header is first written as
`snapshot:pending-<random>` / `backup:pending-<random>` and `attach` (the pipeline calls it
with the job id) writes it under the job id and removes the pending one (the list of leads
stays where it is: nothing of size is rewritten); a pending document
that stays belongs to a POST that failed or whose outcome is unknown (the audit line names
it). Documents have no expiry: they are kept until deleted from the store.

The `snapshot` field of a result and of its audit line is the store reference,
`store:snapshot:<job_id>` or `store:backup:<job_id>` (`store:...:pending-<random>` when the
POST failed). Whether one is taken, and what it costs, is `snapshot_policy`; reading them
back is `snapshot_reader`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import anyio

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.close.lead_walk import iter_leads, pages
from close_mcp.config import Settings, default_audit_path
from close_mcp.safety.snapshot_policy import edit_field, safeguarding
from close_mcp.store import StateStore
from close_mcp.writes.guard import Guard
from close_mcp.writes.progress import Progress

if TYPE_CHECKING:
    from close_mcp.writes.request import WriteRequest

DOCUMENT_VERSION: Final = 2  # a header naming the list of its leads
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
JOB_ID: Final = re.compile(r"^bulk[a-z]+_[A-Za-z0-9]+$")
# Hears each page of leads a snapshot or backup walks (the binding check folds them in).
Observe = Callable[[list[dict[str, Any]]], None] | None


def snapshot_dir(settings: Settings) -> Path:
    """The folder for backup files (see the module docstring)."""
    if settings.snapshot_dir is not None:
        return settings.snapshot_dir
    audit = settings.audit_log or default_audit_path(os.environ)
    return audit.parent / "snapshots"


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


def _pending(folder: Path, kind: str, suffix: str) -> Path:
    return folder / f"{PENDING}{kind}-{secrets.token_hex(8)}{suffix}"


def finalize(path: str, job_id: str) -> str:
    """Rename a pending backup file after the job id it belongs to; the new path."""
    pending = Path(path)
    if not pending.name.startswith(PENDING) or not JOB_ID.match(job_id):
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

    def __init__(
        self, settings: Settings, clock: Clock, client: CloseClient, store: StateStore
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.client = client
        self.store = store
        self._headers: dict[str, dict[str, Any]] = {}  # pending key -> its header, until attached

    def prepare(self, request: WriteRequest) -> Guard:
        """What this adds to `request` (the caller attaches it): itself when it will save
        something, and what the preview says about it (`snapshot_policy`)."""
        return safeguarding(self.settings, request, self)

    async def take(
        self, request: WriteRequest, progress: Progress | None = None, observe: Observe = None
    ) -> str:
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
        if header is None or not JOB_ID.match(job_id):
            return saved
        final = f"{self.what}:{job_id}"
        try:
            await self.store.put(final, json.dumps({**header, "job_id": job_id}))
            await self.store.delete(pending)
        except Exception:
            log.exception("could not write %s (it stays as %s)", final, pending)
            return saved
        return reference(final)

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
            "version": DOCUMENT_VERSION,
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
    ) -> str:
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
    ) -> str:
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


async def record_revert(store: StateStore, job_id: str, entries: list[dict[str, Any]]) -> None:
    """Add what a revert sent (`{sent_at, job_id}` or `{sent_at, lead_id}`) to the reverts of
    the edit `job_id`: appended in one write (the snapshot itself is never rewritten)."""
    await store.extend(reverts_key(job_id), [_to_json(entry) for entry in entries])
