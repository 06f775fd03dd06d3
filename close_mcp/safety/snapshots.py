"""The safety net's files: a snapshot before a bulk edit, a backup before a bulk delete.

Close can undo neither a bulk edit nor a bulk delete, so just before such a job is POSTed
(after confirmation, only on the path that really sends) the server reads what the job is
about to overwrite and writes it down:

- edit: `<dir>/bulkedit_xxx.json`, one JSON document `{version, job_id, created_at, tool,
  request, field, leads: {lead_id: old value}}`, where `field` is `status_id` or
  `custom.<cf_id>` and an absent custom value is `null`. `revert_bulk_edit` reads it, and
  adds `reverts: [{sent_at, job_id} | {sent_at, lead_id}]`: every bulk edit job it sent,
  recorded as soon as Close answers, and the leads it updated one by one (`record_revert`).
- delete: `<dir>/bulkdelete_xxx.jsonl`, one lead per line as `/data/search/` returned it
  (fields, `custom.<cf_id>` values, contacts with emails and phones). `close-mcp restore`
  reads it.

Where: a `snapshots` folder beside the audit log (`Settings.snapshot_dir`); with the audit
log off, beside where it would be in the user's state dir. The folder is 0700 and every
file 0600, written to a private temporary name first and renamed, so a reader never sees
half a file. The job id is only known once Close answers the POST, so the file is written
as `pending-...` and `finalize` renames it (the pipeline calls `attach`); a file that stays pending
belongs to a POST that failed or whose outcome is unknown (the audit line names it).

Cost, counted in the preview notes: ceil(n / 200) search requests for n leads (at least
one); a backup adds one `GET /custom_field/lead/` to learn which custom fields to read.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.config import Settings, default_audit_path
from close_mcp.errors import SafetyNetError

if TYPE_CHECKING:
    from close_mcp.writes.pipeline import WriteRequest

SNAPSHOT_VERSION: Final = 1
PAGE_SIZE: Final = 200  # Close's largest search page
CURSOR_CAP = 10_000  # one cursor walk of /data/search/ ends here (a variable, for tests)
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
_JOB_ID = re.compile(r"^bulk[a-z]+_[A-Za-z0-9]+$")


def snapshot_dir(settings: Settings) -> Path:
    """The folder for snapshots and backups (see the module docstring)."""
    if settings.snapshot_dir is not None:
        return settings.snapshot_dir
    audit = settings.audit_log or default_audit_path(os.environ)
    return audit.parent / "snapshots"


def search_cost(n_leads: int) -> int:
    """Search requests to read n leads: pages of 200, plus one new walk per 10,000 (about)."""
    return max(1, -(-n_leads // PAGE_SIZE)) + n_leads // CURSOR_CAP


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
    if limit_decides and request.matched > CURSOR_CAP:
        return (
            f"results_limit picks the first {request.results_limit} leads in sort order, and "
            f"Close ends a walk in that order at {CURSOR_CAP} leads"
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
            f"{'revert_bulk_edit' if what == 'snapshot' else 'close-mcp restore'}. "
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
            f"fields, contacts) are saved so close-mcp restore can re-create them ({cost} more "
            "Close requests)."
        )


def _field_words(body: dict[str, Any]) -> str:
    field = edit_field(body)
    return "status" if field == "status_id" else f"value of custom field {field[7:]}"


# -- reading the leads -----------------------------------------------------------------------


def _created_since(query: dict[str, Any], moment: str) -> dict[str, Any]:
    condition = {
        "type": "field_condition",
        "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"},
        "condition": {
            "type": "moment_range",
            "on_or_after": {"type": "fixed_utc", "value": moment},
        },
    }
    return {"type": "and", "queries": [query, condition]}


_BY_CREATED: Final = [
    {
        "direction": "asc",
        "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"},
    }
]


async def walk_leads(
    client: CloseClient,
    query: dict[str, Any],
    fields: list[str],
    *,
    results_limit: int | None,
    sort: list[dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """Every lead a bulk action with this selection touches, with `fields` (id always).

    Close ends one cursor walk at 10,000 leads. When `results_limit` is at most that, one
    walk with the request's exact query, results_limit and sort sees exactly the leads the
    job will. Otherwise the order does not matter (every match is touched), so this walks
    by `date_created` ascending and, when a walk reaches the cap, starts a new one at the
    last `date_created` seen (`on_or_after` is inclusive: leads created in that same
    instant are read again and deduplicated by id). A new walk that adds nothing means more
    than 10,000 leads share one creation instant: that is refused rather than cut short.
    """
    wanted = list(dict.fromkeys(["id", *fields]))
    if results_limit is not None and results_limit <= CURSOR_CAP:
        return [
            _hit(lead)
            async for lead in client.search_iter(
                query, fields=wanted, results_limit=results_limit, sort=sort, page_size=PAGE_SIZE
            )
        ]
    keyed = list(dict.fromkeys([*wanted, "date_created"]))
    seen: dict[str, dict[str, Any]] = {}
    current = query
    while True:
        walked = 0
        added = 0
        last: str | None = None
        async for lead in client.search_iter(
            current, fields=keyed, sort=_BY_CREATED, page_size=PAGE_SIZE
        ):
            walked += 1
            last = lead.get("date_created") or last
            if lead["id"] not in seen:
                seen[lead["id"]] = _hit(lead)
                added += 1
        if walked < CURSOR_CAP:
            return list(seen.values())
        if added == 0 or last is None:
            raise SafetyNetError(
                f"More than {CURSOR_CAP} of the selected leads were created in the same "
                "instant, so they cannot be read past Close's search limit; narrow the "
                "selection."
            )
        current = _created_since(query, last)


def _hit(lead: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in lead.items() if k != "__object_type"}


# -- writing ---------------------------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the user only (folder 0700, file 0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        os.chmod(path.parent, 0o700)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _pending(folder: Path, kind: str, suffix: str) -> Path:
    return folder / f"{PENDING}{kind}-{secrets.token_hex(8)}{suffix}"


def finalize(path: str, job_id: str) -> str:
    """Rename a pending snapshot or backup after the job id it belongs to; the new path."""
    pending = Path(path)
    if not pending.name.startswith(PENDING) or not _JOB_ID.match(job_id):
        return path
    final = pending.with_name(job_id + pending.suffix)
    if pending.suffix == EDIT_SUFFIX:
        data = json.loads(pending.read_text(encoding="utf-8"))
        data["job_id"] = job_id
        write_private(final, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
        pending.unlink()
    else:
        os.replace(pending, final)
    return str(final)


class _Saver:
    """What the two safeguards share: where files go, the clock, the client, the preview note."""

    what: str

    def __init__(self, settings: Settings, clock: Clock, client: CloseClient) -> None:
        self.settings = settings
        self.clock = clock
        self.client = client

    def prepare(self, request: WriteRequest) -> None:
        """Attach to the request and say in its preview what will be saved."""
        request.safeguard = self
        annotate(self.settings, request)

    async def take(self, request: WriteRequest) -> str | None:
        raise NotImplementedError

    def attach(self, saved: str, job_id: str) -> str:
        return finalize(saved, job_id)

    def _will_save(self, request: WriteRequest) -> bool:
        return why_not(self.settings, request) is None and request.s_query is not None

    async def _walk(self, request: WriteRequest, fields: list[str]) -> list[dict[str, Any]]:
        assert request.s_query is not None
        return await walk_leads(
            self.client,
            request.s_query,
            fields,
            results_limit=request.results_limit,
            sort=request.sort,
        )


class SnapshotBeforeEdit(_Saver):
    """Saves the current value of the field the edit changes on every lead it will touch."""

    what = "snapshot"

    async def take(self, request: WriteRequest) -> str | None:
        if not self._will_save(request):
            return None
        field = edit_field(request.body)
        leads = await self._walk(request, [field])
        document = {
            "version": SNAPSHOT_VERSION,
            "job_id": None,
            "created_at": datetime.fromtimestamp(self.clock.time(), tz=UTC).isoformat(),
            "tool": request.tool,
            "request": request.body,
            "field": field,
            "leads": {lead["id"]: lead.get(field) for lead in leads},
        }
        path = _pending(snapshot_dir(self.settings), "bulkedit", EDIT_SUFFIX)
        write_private(path, json.dumps(document, ensure_ascii=False, indent=1) + "\n")
        return str(path)


class BackupBeforeDelete(_Saver):
    """Saves the full record of every lead the delete will remove, one JSON line each."""

    what = "backup"

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        client: CloseClient,
        custom_field_ids: Callable[[], Awaitable[list[str]]],
    ) -> None:
        super().__init__(settings, clock, client)
        self._custom_field_ids = custom_field_ids

    async def take(self, request: WriteRequest) -> str | None:
        if not self._will_save(request):
            return None
        custom = [f"custom.{cf}" for cf in await self._custom_field_ids()]
        leads = await self._walk(request, [*BACKUP_FIELDS, *custom])
        path = _pending(snapshot_dir(self.settings), "bulkdelete", BACKUP_SUFFIX)
        write_private(path, "".join(json.dumps(lead, ensure_ascii=False) + "\n" for lead in leads))
        return str(path)


# -- reading the files back -------------------------------------------------------------------


@dataclass(frozen=True)
class EditSnapshot:
    path: Path
    job_id: str
    created_at: str
    request: dict[str, Any]
    field: str
    leads: dict[str, Any]
    reverts: tuple[dict[str, Any], ...] = ()

    @property
    def revert_jobs(self) -> list[str]:
        """The bulk edit jobs earlier reverts sent, in order."""
        return [str(r["job_id"]) for r in self.reverts if r.get("job_id")]


def snapshot_path(settings: Settings, job_id: str) -> Path:
    if not _JOB_ID.match(job_id):
        raise SafetyNetError(f"job_id {job_id!r} is not a bulk job id (bulkedit_...)")
    return snapshot_dir(settings) / f"{job_id}{EDIT_SUFFIX}"


def load_edit_snapshot(settings: Settings, job_id: str) -> EditSnapshot:
    path = snapshot_path(settings, job_id)
    if not job_id.startswith("bulkedit_"):
        raise SafetyNetError(f"job_id {job_id!r} is not a bulk edit; only edits can be reverted")
    if not path.exists():
        raise SafetyNetError(
            f"No snapshot for {job_id} in {path.parent}: only edits sent by this server with "
            f"CLOSE_MCP_SNAPSHOT on (up to {settings.snapshot_limit} leads) can be reverted."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return EditSnapshot(
            path=path,
            job_id=str(data["job_id"]),
            created_at=str(data["created_at"]),
            request=dict(data["request"]),
            field=str(data["field"]),
            leads=dict(data["leads"]),
            reverts=tuple(dict(r) for r in data.get("reverts", [])),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SafetyNetError(f"The snapshot {path} cannot be read: {exc}") from exc


def record_revert(path: Path, entries: list[dict[str, Any]]) -> None:
    """Add what a revert sent (`{sent_at, job_id}` or `{sent_at, lead_id}`) to the snapshot's
    `reverts`, rewriting the file atomically (still 0600)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["reverts"] = [*data.get("reverts", []), *entries]
    write_private(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def read_backup(path: Path) -> list[dict[str, Any]]:
    """The leads of a backup file, in order; a malformed line is an error naming it."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise SafetyNetError(f"{path} is not UTF-8 text: {exc}") from exc
    leads = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            lead = json.loads(line)
        except ValueError as exc:
            raise SafetyNetError(f"{path}:{number} is not JSON: {exc}") from exc
        if not isinstance(lead, dict) or not isinstance(lead.get("id"), str):
            raise SafetyNetError(f"{path}:{number} is not a lead record")
        leads.append(lead)
    return leads
