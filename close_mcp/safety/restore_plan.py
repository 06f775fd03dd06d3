"""`restore_leads`: deleted leads brought back through the write pipeline, as a plan of POSTs.

Two sources, each read as a `Backup` (`close_mcp.safety.backups`): the backup a
`create_bulk_delete` took, by its job id, from the state store (a tool never reads a file a
caller names), or Close's event log (each `deleted` lead event's `previous_data`, for the 30
days Close keeps events). The request a token binds names the source's identity (the sha256
of its leads) and the digest of exactly the leads this run would POST, with their bodies: a
backup or an event log that changed since the preview, or a journal another run moved on, is a
different request at the confirmed call, refused with a fresh preview.

Sending holds the locks `restore:leads` (every restore a tool sends: two sources never race on
one lead) and the backup's own (`restore:<identity>`, and `restore:<job id>` as
`close-mcp restore` takes them), reads the journal again under them and refuses if another
run restored any planned lead meanwhile; then each lead is one POST, journaled before and
after (`close_mcp.safety.restore.restore_leads`), so no re-run creates a lead twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.errors import ArgumentError, SafetyNetError
from close_mcp.safety.backups import STORED_BACKUP, Backup, deleted_in_close, open_callers_backup
from close_mcp.safety.journal import Progress
from close_mcp.safety.restore import (
    RESTORE_LOCK_TTL_S,
    Report,
    lead_body,
    restore_leads,
)
from close_mcp.selection.sample import LeadSample
from close_mcp.store import StateStore, held
from close_mcp.wording import leads, sentences
from close_mcp.writes.progress import Progress as Steps
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.results import PlanAnswer
from close_mcp.writes.sender import Sender

TOOL: Final = "restore_leads"
SHOWN: Final = 3  # ids of each list in a preview or result
REASON_MAX: Final = 300  # characters of a failure's reason in a result
EVENT_DAYS: Final = 30  # how far back Close's event log reaches
ALL_RESTORES: Final = "restore:leads"
WHAT_COMES_BACK: Final = (
    "Each lead is re-created (POST /lead/) with its name, status, description, url, custom "
    "fields and contacts (emails, phones), under a new id. Not restored: activities, "
    "opportunities, tasks, the old ids."
)


async def prepare_restore(
    store: StateStore,
    clock: Clock,
    client: CloseClient,
    *,
    backup: str | None,
    deleted_since: str | None,
    deleted_by: str | None = None,
    lead_ids: list[str] | None = None,
    sandbox: bool = False,
    progress: Steps | None = None,
) -> WriteRequest:
    """The restore the arguments ask for, read from its source now (module docstring)."""
    if (backup is None) == (deleted_since is None):
        raise ArgumentError(
            "backup",
            "give exactly one of backup (the bulkdelete_... job of a create_bulk_delete) or "
            f"deleted_since (a date within {EVENT_DAYS} days: leads deleted in Close since then)",
        )
    notes: list[str] = []
    if backup is not None:
        if deleted_by is not None:
            raise ArgumentError("deleted_by", "filters the event log: give it with deleted_since")
        job_id = backup.removeprefix("store:").removeprefix("backup:")
        if not STORED_BACKUP.match(job_id):
            raise ArgumentError(
                "backup",
                f"{backup!r} is not a bulk delete job id (bulkdelete_...) or a merge_leads "
                "run id (leadmerge_...)",
            )
        source = await open_callers_backup(
            store,
            client,
            job_id,
            hint="this server keeps the backups of the deletes and merges it ran "
            "(CLOSE_MCP_STORE), each for the keys Close shows the delete or a merged lead to; for "
            "a backup file, use `close-mcp restore FILE`; for a delete made elsewhere, "
            "deleted_since",
        )
    else:
        assert deleted_since is not None
        since = parse_since(deleted_since, datetime.fromtimestamp(clock.time(), UTC))
        deleted = await deleted_in_close(client, since=since, user_id=deleted_by)
        source = deleted.backup
        if deleted.without_data:
            notes.append(
                f"{deleted.without_data} deleted leads have no previous_data in the event log: "
                "they cannot be restored."
            )
    plan = await plan_restore(store, source, lead_ids=lead_ids, sandbox=sandbox)
    return restore_request(store, clock, plan, sandbox=sandbox, notes=notes, progress=progress)


def parse_since(value: str, now: datetime) -> datetime:
    """`deleted_since`: a date (its midnight UTC) or an ISO date-time, within the 30 days
    Close keeps events."""
    try:
        moment = (
            datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
            if len(value) == 10
            else datetime.fromisoformat(value.replace("Z", "+00:00"))
        )
    except ValueError:
        raise ArgumentError(
            "deleted_since", f"{value!r} is not a date (YYYY-MM-DD) or an ISO date-time"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    oldest = now - timedelta(days=EVENT_DAYS)
    if moment.date() < oldest.date():  # a day's slack: the day 30 days back is fine
        raise ArgumentError(
            "deleted_since",
            f"Close's event log keeps {EVENT_DAYS} days: give {oldest.date().isoformat()} or "
            "later (older deletions cannot be restored from it)",
        )
    if moment > now:
        raise ArgumentError("deleted_since", f"{value} is in the future")
    return moment


@dataclass
class RestorePlan:
    """The leads of `backup` this run would POST (old ids, in order) and the digest of their
    bodies, with what the journal and `lead_ids` leave out."""

    backup: Backup
    ids: list[str] = field(default_factory=list)
    digest: str = ""
    sample: list[LeadSample] = field(default_factory=list)
    done: int = 0  # restored by an earlier run
    unknown: int = 0  # outcome unknown in an earlier run: held back
    missing: list[str] = field(default_factory=list)  # lead_ids the source does not hold


async def plan_restore(
    store: StateStore, backup: Backup, *, lead_ids: list[str] | None, sandbox: bool
) -> RestorePlan:
    """One pass over the backup, beside its journal (see `Progress.open`)."""
    journal = await Progress.open(store, backup, sandbox=sandbox)
    journal.close()
    wanted = set(lead_ids) if lead_ids else None
    plan = RestorePlan(backup)
    found: set[str] = set()
    digest = hashlib.sha256()
    async for lead in backup.leads():
        old = lead["id"]
        if wanted is not None and old not in wanted:
            continue
        found.add(old)
        if old in journal.restored:
            plan.done += 1
        elif old in journal.unknown:
            plan.unknown += 1
        else:
            plan.ids.append(old)
            digest.update(json.dumps([old, lead_body(lead)], sort_keys=True).encode() + b"\n")
            if len(plan.sample) < SHOWN:
                name = lead.get("display_name") or lead.get("name")
                plan.sample.append(LeadSample(id=old, display_name=name,
                                              status_label=lead.get("status_label")))  # fmt: skip
    plan.digest = digest.hexdigest()
    plan.missing = sorted((wanted or set()) - found)
    return plan


def restore_request(
    store: StateStore,
    clock: Clock,
    plan: RestorePlan,
    *,
    sandbox: bool,
    notes: list[str],
    progress: Steps | None = None,
) -> WriteRequest:
    """The write the pipeline previews, confirms (by the typed count, as a delete) and sends."""
    backup, n = plan.backup, len(plan.ids)
    missing = plan.missing
    notes = [*notes, WHAT_COMES_BACK]
    notes += sentences(
        (plan.done, f"{plan.done} of its leads were restored by an earlier run: skipped."),
        (
            plan.unknown,
            f"{plan.unknown} had an unknown outcome in an earlier run (Close may have created "
            "them): not sent again; check in Close whether they exist.",
        ),
        (
            missing,
            f"{len(missing)} of lead_ids are not in it: {', '.join(missing[:SHOWN])}"
            + (" ..." if len(missing) > SHOWN else ""),
        ),
    )
    return WriteRequest(
        tool=TOOL,
        action="delete",  # never out of the confirmation list; the same typed count
        counted="restored",
        path="lead/",
        body={
            "source": backup.where,
            "identity": backup.identity,
            "leads": n,
            "old_ids": plan.ids[:SHOWN],
            "leads_sha256": plan.digest,
        },
        matched=n,
        summary=f"Restore {leads(n)} from {backup.where} (one POST /lead/ each, new ids)",
        sample=plan.sample,
        notes=notes,
        send=plan_sender(store, clock, plan, sandbox=sandbox),
        when_empty=f"nothing to restore from {backup.where}"
        + (": every lead of it was restored already" if plan.done and not plan.unknown else ""),
        progress=progress,
    )


def plan_sender(
    store: StateStore, clock: Clock, plan: RestorePlan, *, sandbox: bool
) -> Callable[[Sender, Steps | None], Awaitable[PlanAnswer]]:
    """Send the planned leads under the restore locks, journaled (module docstring)."""
    backup = plan.backup
    names = [ALL_RESTORES, f"restore:{backup.identity}"]
    if backup.job_id is not None:
        names.append(f"restore:{backup.job_id}")

    async def send(sender: Sender, steps: Steps | None) -> PlanAnswer:
        busy = (
            "another restore is being sent (by this server or a replica sharing its state "
            f"store); nothing was sent. Let it finish, then call {TOOL} again: it leaves out "
            "what that run restored."
        )
        async with held(store, names, ttl_s=RESTORE_LOCK_TTL_S, busy=busy, renew=clock):
            journal = await Progress.open(store, backup, sandbox=sandbox)
            moved = [i for i in plan.ids if i in journal.restored or i in journal.unknown]
            if moved:
                journal.close()
                raise SafetyNetError(
                    f"another restore sent {len(moved)} of these leads after the preview "
                    f"({', '.join(moved[:SHOWN])}); nothing was sent. Call {TOOL} again for a "
                    "fresh preview: it leaves out what is restored."
                )
            wanted = set(plan.ids)

            async def planned() -> AsyncIterator[dict[str, Any]]:
                async for lead in backup.leads():
                    if lead["id"] in wanted:
                        yield lead

            report = await restore_leads(
                sender, planned(), progress=journal, backup=backup.where, steps=steps,
                total=len(plan.ids),
            )  # fmt: skip
        return answer(report, len(plan.ids))

    return send


def _first(items: dict[str, str]) -> dict[str, str]:
    """The first few, each reason clipped: Close may list every field of a body it refuses
    (the whole reason stays in the journal and the audit line)."""
    return {old: clip(why) for old, why in list(items.items())[:SHOWN]}


def clip(text: str) -> str:
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


def answer(report: Report, planned: int) -> PlanAnswer:
    """What a restore that went answers: old -> new ids, the first few of each outcome with
    their counts (the whole journal is in the state store)."""
    result: dict[str, Any] = {
        "restored": _first(report.restored),
        "restored_count": len(report.restored),
    }
    follow = ""
    if report.already_restored:
        result["already_restored_count"] = len(report.already_restored)
    if report.failed:
        result["failed"] = _first(report.failed)
        result["failed_count"] = len(report.failed)
        follow += (
            f" {len(report.failed)} failed (Close refused them; nothing was created): call "
            f"{TOOL} again to retry them."
        )
    if report.outcome_unknown:
        result["outcome_unknown"] = _first(report.outcome_unknown)
        result["outcome_unknown_count"] = len(report.outcome_unknown)
        follow += (
            f" {len(report.outcome_unknown)} have an unknown outcome: check in Close whether "
            "they exist; they are not sent again."
        )
    if report.stopped:
        result["stopped"] = report.stopped
        follow += f" Stopped: {report.stopped}."
    sent = f"{len(report.restored)} of {planned} leads re-created with new ids"
    return PlanAnswer(jobs=[], result=result, sent=sent, follow=follow)
