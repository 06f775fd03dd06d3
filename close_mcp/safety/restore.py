"""`close-mcp restore BACKUP`: re-create the leads of a pre-delete backup, after confirmation.

Each line of the backup (see `safety.snapshot_writer`) becomes one `POST /lead/` with what a
new lead can carry: name, status, description, url, `date_created` (as an import would),
the `custom.<cf_id>` values, and the contacts with their emails and phones. Close gives new
ids (the old ones are gone for good), so the command reports old -> new on stdout, one JSON
object, and appends one line to the audit log. Activities, opportunities and tasks are not
in the backup and are not re-created.

A person confirms by typing the number of leads (the preview goes to stderr). Without a
terminal on stdin the command refuses unless `--yes` is given, so a script cannot restore
by accident. `--sandbox` restores into a fresh embedded sandbox (a fake Close in memory,
gone when the command ends): only for trying the command and for tests.

BACKUP is a bulk delete job id (`bulkdelete_...`, or the `store:backup:bulkdelete_...`
reference the delete answered): the backup is read from the state store, so any machine
sharing `CLOSE_MCP_STORE` can restore it. Or it is a backup file (the copy the replica that
ran the delete keeps, or one written by an earlier version).

A backup's identity is its content: the sha256 of its leads, one canonical JSON line each,
in order (`Backup.identity`, `sha256:<hex>`), the same whether it is read from the store,
from its file, or from a copy of that file in another folder or under another name.

One restore per backup at a time: the whole run (preview, confirmation, every POST) holds
the lock `restore:<identity>` in the state store (and `restore:<job id>` when the backup
names its delete, as earlier versions locked it), renewed while the run lives and gone a
minute after it dies. A second run meanwhile, from any copy, says another restore of that
backup is running and exits non-zero, sending nothing.

Running it again must not create the leads twice, and a lead has no idempotency key Close
could check, so the command keeps a journal of what it did, read and written under that
lock, in the store: the list `restored:<identity>` (so a copy of the backup, or a machine
sharing Redis, sees it). Journals of earlier versions are read too: the list
`restored:<job_id>` and the file beside a backup file, `<backup>.restored.jsonl`. Two cases
keep their journal in that file beside the backup, mode 0600, appended and synced as it
happens: `--sandbox` (`.sandbox-restored.jsonl`, so trying the command never hides a real
restore) and a store that ends with the process (`:memory:`). Either way it is one JSON
line per event (rewriting a whole document after each of
up to 50,000 leads would cost quadratic time): `sending` before a lead's POST, then
`restored` with the new id, `failed` (Close refused it: nothing was created, a re-run sends
it again) or `outcome_unknown`. A `sending` with nothing after it (the run was killed
mid-POST, or the line that followed was cut short) counts as outcome unknown. A re-run skips
the restored leads and does not resend the outcome-unknown ones: Close may have created
them, and only a person can tell, by looking for them in Close (by name, contacts, creation
time). After checking, `--retry-unknown` sends them again; any that did exist are then
duplicated.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from close_mcp.clock import Clock, SystemClock
from close_mcp.errors import CloseError, OutcomeUnknown
from close_mcp.safety.backups import Backup, open_backup
from close_mcp.safety.journal import Event, Progress, journal_key, progress_path
from close_mcp.store import StateStore, held
from close_mcp.writes.progress import Progress as Steps
from close_mcp.writes.sender import Sender

# Where they were defined before the module was split; `close-mcp restore` and tests use them.
__all__ = ["Backup", "Progress", "journal_key", "open_backup", "progress_path"]

LEAD_FIELDS = ("name", "status_id", "description", "url", "date_created")
PREVIEW_LEADS = 10
HELD_BACK: Final = (
    "outcome unknown in an earlier run ({why}); not sent again: check in Close whether it "
    "exists, then --retry-unknown sends it again"
)

# The restore lock expires this long after its holder stopped renewing it (died).
RESTORE_LOCK_TTL_S: Final = 60.0
log = logging.getLogger(__name__)


def busy_message(backup: Backup) -> str:
    return (
        f"another restore of {backup.where} is running (here or on a machine sharing the "
        "state store); nothing was sent. Let it finish, then run this again: it skips what "
        "that run restored."
    )


async def run_restore(
    store: StateStore,
    backup: Backup,
    sender: Callable[[], Sender],
    *,
    approve: Callable[[Progress], Awaitable[bool]],
    sandbox: bool = False,
    retry_unknown: bool = False,
    steps: Steps | None = None,
    clock: Clock | None = None,
) -> Report | None:
    """Restore `backup` holding its lock from reading the journal to the last POST: `approve`
    sees the journal (shows the preview, asks); None when it says no. Each lead handled is a
    step of `steps`. `Busy` when another restore of the backup runs. The lock is renewed on
    `clock` while the run lives."""
    # Named after its content, so two copies of one backup exclude each other too; and after
    # its delete, as earlier versions named it.
    names = [f"restore:{backup.identity}"]
    if backup.job_id is not None:
        names.insert(0, f"restore:{backup.job_id}")
    async with held(
        store,
        names,
        ttl_s=RESTORE_LOCK_TTL_S,
        busy=busy_message(backup),
        renew=clock or SystemClock(),
    ):
        progress = await Progress.open(store, backup, sandbox=sandbox)
        if not await approve(progress):
            return None
        return await restore_leads(
            sender(),
            backup.leads(),
            progress=progress,
            retry_unknown=retry_unknown,
            backup=backup.where,
            steps=steps,
            total=backup.count,
        )


@dataclass
class Report:
    restored: dict[str, str] = field(default_factory=dict)  # old id -> new id, this run
    already_restored: dict[str, str] = field(default_factory=dict)  # by an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # old id -> why (nothing created)
    outcome_unknown: dict[str, str] = field(default_factory=dict)  # old id -> why
    stopped: str | None = None  # the progress file could not be written: why

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "restored": self.restored,
            "already_restored": self.already_restored,
            "failed": self.failed,
            "outcome_unknown": self.outcome_unknown,
        }
        if self.stopped is not None:
            document["stopped"] = self.stopped
        return document

    @property
    def complete(self) -> bool:
        return not (self.failed or self.outcome_unknown or self.stopped)


def lead_body(lead: dict[str, Any]) -> dict[str, Any]:
    """The `POST /lead/` body that re-creates a backed-up lead (empty values left out)."""
    body: dict[str, Any] = {k: lead[k] for k in LEAD_FIELDS if lead.get(k) not in (None, "")}
    for key, value in lead.items():
        if key.startswith("custom.") and value not in (None, "", []):
            body[key] = value
    contacts = []
    for contact in lead.get("contacts") or []:
        item: dict[str, Any] = {"name": contact.get("name") or ""}
        if contact.get("title"):
            item["title"] = contact["title"]
        item["emails"] = [
            {"email": e["email"], "type": e.get("type", "office")}
            for e in contact.get("emails") or []
            if e.get("email")
        ]
        item["phones"] = [
            {"phone": p["phone"], "type": p.get("type", "office")}
            for p in contact.get("phones") or []
            if p.get("phone")
        ]
        contacts.append(item)
    if contacts:
        body["contacts"] = contacts
    return body


@dataclass
class Preview:
    text: str
    sending: int  # leads this run would POST


async def preview(
    backup: Backup, progress: Progress | None = None, *, retry_unknown: bool = False
) -> Preview:
    """What a run would do, read in one pass over the backup (the first leads it sends are
    listed)."""
    contacts = 0
    done = unknown = sending = 0
    listed: list[dict[str, Any]] = []
    async for lead in backup.leads():
        contacts += len(lead.get("contacts") or [])
        if progress is not None and lead["id"] in progress.restored:
            done += 1
        elif progress is not None and lead["id"] in progress.unknown:
            unknown += 1
        if progress is None or progress.sends(lead, retry_unknown=retry_unknown):
            sending += 1
            if len(listed) < PREVIEW_LEADS:
                listed.append(lead)
    lines = [f"Backup {backup.where}: {backup.count} leads with {contacts} contacts."]
    if progress is not None:
        if done:
            lines.append(
                f"{done} of them were restored by an earlier run (recorded in "
                f"{progress.where}): skipped."
            )
        if unknown and retry_unknown:
            lines.append(
                f"{unknown} of them had an unknown outcome in an earlier run and are sent "
                "again (--retry-unknown): any that Close did create will exist twice."
            )
        elif unknown:
            lines.append(
                f"{unknown} of them had an unknown outcome in an earlier run (Close may have "
                "created them): not sent again. Check in Close whether they exist; "
                "--retry-unknown sends them again."
            )
    if not sending:
        lines.append("Nothing is left to send.")
        return Preview("\n".join(lines), 0)
    they = "They" if sending == backup.count else f"These {sending} leads"
    lines.append(
        f"{they} will be re-created in Close with new ids (activities are not in the backup):"
    )
    for lead in listed:
        status = lead.get("status_label") or lead.get("status_id") or "?"
        name = lead.get("display_name") or lead.get("name") or ""
        lines.append(f"  {lead['id']}  {name}  [{status}]")
    if sending > PREVIEW_LEADS:
        lines.append(f"  ... and {sending - PREVIEW_LEADS} more")
    return Preview("\n".join(lines), sending)


def confirmed(
    n: int, *, yes: bool, interactive: bool, ask: Callable[[str], str], err: TextIO
) -> bool:
    """`--yes`, or a person at a terminal typing the number of leads."""
    if yes:
        return True
    if not interactive:
        print(
            "close-mcp: refusing to restore: stdin is not a terminal, so nobody can confirm. "
            "Run it in a terminal, or pass --yes in a script.",
            file=err,
        )
        return False
    typed = ask(f"Type the number of leads to restore ({n}) to go ahead: ").strip()
    if typed != str(n):
        print(f"close-mcp: not restored (typed {typed!r}, expected {n}).", file=err)
        return False
    return True


async def restore_leads(
    sender: Sender,
    leads: Iterable[dict[str, Any]] | AsyncIterable[dict[str, Any]],
    *,
    progress: Progress | None = None,
    retry_unknown: bool = False,
    backup: str | None = None,
    steps: Steps | None = None,
    total: int | None = None,
) -> Report:
    """POST each lead once through `sender`, which audits it (never retried: a POST that may
    have worked is not resent).

    With `progress`, leads an earlier run restored are skipped (`already_restored`), those
    of unknown outcome are not sent unless `retry_unknown` (reported in `outcome_unknown`),
    and every POST is journaled before and after; a journal that cannot be written stops
    the run (`stopped`). Each lead handled is a step of `steps` (of `total`)."""
    report = Report()
    handled = 0
    try:
        async for lead in _each(leads):
            if steps is not None:
                await steps.step(handled, total, f"restore: {handled} of {total} leads")
            handled += 1
            old = lead["id"]
            if progress is not None and old in progress.restored:
                report.already_restored[old] = progress.restored[old]
                continue
            if progress is not None and old in progress.unknown and not retry_unknown:
                report.outcome_unknown[old] = HELD_BACK.format(why=progress.unknown[old])
                continue
            try:
                if progress is not None:
                    await progress.record(old, "sending")
            except Exception as exc:
                report.stopped = f"the progress journal could not be written ({exc})"
                break
            event, new_id, why = await _post(sender, lead, backup)
            if event == "restored" and new_id is not None:
                report.restored[old] = new_id
            elif event == "failed":
                report.failed[old] = why
            else:
                report.outcome_unknown[old] = why
            try:
                if progress is not None:
                    await progress.record(old, event, new_id=new_id, reason=why or None)
            except Exception as exc:
                report.stopped = f"the progress journal could not be written ({exc})"
                break
    finally:
        if progress is not None:
            progress.close()
    if steps is not None:
        await steps.step(handled, handled, f"restore: {handled} of {total} leads")
    return report


async def _each(
    leads: Iterable[dict[str, Any]] | AsyncIterable[dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    if isinstance(leads, AsyncIterable):
        async for lead in leads:
            yield lead
    else:
        for lead in leads:
            yield lead


async def _post(
    sender: Sender, lead: dict[str, Any], backup: str | None
) -> tuple[Event, str | None, str]:
    body = lead_body(lead)
    try:
        created = await sender.send("POST", "lead/", body, matched=1, snapshot=backup)
    except OutcomeUnknown as exc:
        return "outcome_unknown", None, str(exc)
    except CloseError as exc:
        return "failed", None, str(exc)
    new_id = created.get("id") if isinstance(created, dict) else None
    if isinstance(new_id, str):
        sender.record(
            "submitted", path="/lead/", body=body, matched=1, job_id=new_id, snapshot=backup
        )
        return "restored", new_id, ""
    why = "Close answered without an id, so the new lead is unknown"
    sender.record(
        "outcome_unknown", path="/lead/", body=body, matched=1, snapshot=backup, reason=why
    )
    return "outcome_unknown", None, why
