"""`merge_leads`: duplicate leads merged through the write pipeline, one POST per pair, each
source backed up first, journaled so that no pair is ever merged twice.

The pairs (`close_mcp.safety.merge_pairs`) are read from Close when the call is prepared:
both leads of every pair (name, dates, contacts). The request a token binds holds the first
pairs and `leads_sha256`, a digest of every pair with both leads as read: a lead changed
since the preview, a lead gone, or (by a key) a duplicate that joined a group is another
request at the confirmed call, refused with a fresh preview.

Sending holds the lock `merge:leads` (one merge run at a time across every replica sharing
the state store; renewed while the run lives, however long Close takes). Each pair is then,
in order:

1. claimed in its journal entry `merge-pair:<source>` (atomically: absent, a merge Close
   refused, or the very entry of unknown outcome the plan offered it again on becomes
   `sending`); any other entry means an earlier run, this one's retry or a restart sent it:
   skipped. The preview leaves such pairs out too, and says so (`merge_journal`: when a pair
   of unknown outcome is offered again).
2. its source read whole (the fields a delete's backup keeps) and appended to the run's
   backup (`backup:<run_id>` in the store, read by `restore_leads(backup=<run_id>)`);
3. one `POST /lead/merge/` (`close_mcp.close.crm.merge_leads`: never resent), audited; Close
   refusing it marks the entry `failed` and lists the source under the backup's `skip_key`
   (it still exists, so a restore leaves it out); an ambiguous failure looks for the source:
   gone means merged, else `outcome_unknown`, not sent again by this run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.close.crm import merge_leads
from close_mcp.close.lead_walk import iter_leads
from close_mcp.errors import ArgumentError, CloseError, NotFound, OutcomeUnknown, SafetyNetError
from close_mcp.safety.merge_journal import (
    LOCK,
    LOCK_TTL_S,
    Review,
    claimable,
    entry,
    journal_key,
    review,
)
from close_mcp.safety.merge_pairs import MAX_PAIRS, WEBMAIL, Key, Pair, check_pairs, find_pairs
from close_mcp.safety.records import STOPS_THE_RUN
from close_mcp.safety.snapshot_writer import BACKUP_FIELDS, backup_key, reference
from close_mcp.selection.nodes import LEAD_NODE, lead_ids_node
from close_mcp.selection.resolve import Selection
from close_mcp.selection.sample import LeadSample
from close_mcp.store import StateStore, held
from close_mcp.writes.progress import Progress
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.results import PlanAnswer
from close_mcp.writes.sender import Sender

log = logging.getLogger(__name__)

TOOL: Final = "merge_leads"
RUN_PREFIX: Final = "leadmerge_"
SHOWN: Final = 10  # pairs in a preview
SHOWN_DONE: Final = 5  # of each outcome in a result
NAME_CLIP: Final = 60
WALK_MAX: Final = 10_000  # leads of a selection searched for duplicates
IDS_PER_SEARCH: Final = 100
READ_FIELDS: Final = ["id", "name", "display_name", "date_created", "date_updated", "contacts"]
WHAT_MOVES: Final = (
    "Each pair is one POST /lead/merge/: Close moves the source's contacts, activities, "
    "opportunities, tasks and sequence subscriptions to the destination, copies custom field "
    "values the destination lacks, and deletes the source. Close cannot undo it."
)
WHAT_UNDO: Final = (
    "Each source is backed up just before its merge: restore_leads(backup=<run_id>) "
    "re-creates the sources (name, status, custom fields, contacts; new ids). It removes "
    "nothing from the destinations: moved contacts stay there too (then on both leads); "
    "activities, opportunities, tasks and subscriptions stay with the destination."
)
DESTINATION_RULE: Final = (
    "In each group of duplicates the oldest lead (date_created, then id) is the destination."
)


def new_run_id() -> str:
    return RUN_PREFIX + secrets.token_hex(10)


def _clip(text: Any) -> str:
    value = str(text or "")
    return value if len(value) <= NAME_CLIP else value[: NAME_CLIP - 1] + "…"


def _ids_query(ids: list[str]) -> dict[str, Any]:
    return {"type": "and", "queries": [LEAD_NODE, lead_ids_node(ids)]}


async def read_leads(
    client: CloseClient, ids: list[str], fields: list[str]
) -> dict[str, dict[str, Any]]:
    """The leads `ids` that exist, with `fields`, by id (one search per hundred ids)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), IDS_PER_SEARCH):
        chunk = ids[start : start + IDS_PER_SEARCH]
        async for lead in client.search_iter(_ids_query(chunk), fields=fields):
            found[str(lead["id"])] = lead
    return found


async def selection_leads(client: CloseClient, selection: Selection) -> list[dict[str, Any]]:
    """The leads of a selection, with what a key reads; more than WALK_MAX is refused."""
    leads: list[dict[str, Any]] = []
    walk = iter_leads(
        client, selection.s_query, READ_FIELDS, results_limit=selection.results_limit,
        sort=selection.sort,
    )  # fmt: skip
    async for lead in walk:
        leads.append(lead)
        if len(leads) > WALK_MAX:
            raise ArgumentError(
                "selection",
                f"matches more than {WALK_MAX} leads to search for duplicates; narrow it",
            )
    return leads


@dataclass
class MergePlan:
    """The pairs to send, both leads of each as read, and what the journal said of them."""

    pairs: list[Pair]
    leads: dict[str, dict[str, Any]]
    review: Review = field(default_factory=Review)

    def digest(self) -> str:
        """Every pair with both leads as read: what the token binds."""
        digest = hashlib.sha256()
        for p in self.pairs:
            row = [p.source, p.destination, self.leads.get(p.source), self.leads.get(p.destination)]
            digest.update(json.dumps(row, sort_keys=True, separators=(",", ":")).encode() + b"\n")
        return digest.hexdigest()

    def name(self, lead_id: str) -> str:
        lead = self.leads.get(lead_id) or {}
        return _clip(lead.get("display_name") or lead.get("name"))


async def plan_merge(
    store: StateStore,
    clock: Clock,
    client: CloseClient,
    *,
    pairs: list[tuple[str, str]] | None,
    key: Key | None,
    selection: Selection | None,
) -> MergePlan:
    """The pairs the arguments mean, checked against Close and the journal (a pair whose
    earlier attempt had an unknown outcome is reviewed: `merge_journal`)."""
    if pairs is not None:
        checked = check_pairs(pairs)
        ids = list(dict.fromkeys(i for p in checked for i in (p.source, p.destination)))
        leads = await read_leads(client, ids, READ_FIELDS)
        journal = await review(store, clock, client, checked)
        merged_now = {p.source for p in journal.gone}  # gone, as the review found
        for i, p in enumerate(checked):
            for side in ("source", "destination"):
                if getattr(p, side) not in leads and p.source not in merged_now:
                    raise ArgumentError(f"pairs[{i}].{side}", f"no lead {getattr(p, side)}")
    else:
        assert key is not None
        assert selection is not None
        found = await selection_leads(client, selection)
        leads = {str(lead["id"]): lead for lead in found}
        journal = await review(store, clock, client, find_pairs(found, key))
    if len(journal.send) > MAX_PAIRS:
        raise ArgumentError(
            "pairs" if pairs is not None else "key",
            f"{len(journal.send)} pairs to merge; at most {MAX_PAIRS} per call: narrow the "
            "selection",
        )
    return MergePlan(journal.send, leads, journal)


def merge_request(
    store: StateStore,
    clock: Clock,
    client: CloseClient,
    plan: MergePlan,
    *,
    what: dict[str, Any],
    custom_field_ids: Callable[[], Awaitable[list[str]]],
) -> WriteRequest:
    """The write the pipeline previews, confirms (the number of pairs typed) and sends."""
    n = len(plan.pairs)
    shown = [
        {"source": p.source, "source_name": plan.name(p.source),
         "destination": p.destination, "destination_name": plan.name(p.destination)}
        for p in plan.pairs[:SHOWN]
    ]  # fmt: skip
    notes = [WHAT_MOVES, WHAT_UNDO]
    if "key" in what:
        notes.append(DESTINATION_RULE)
    if what.get("key") == "email_domain":
        notes.append(f"Webmail domains ({len(WEBMAIL)}, such as gmail.com) make no duplicates.")
    notes += plan.review.notes()
    run_id = new_run_id()
    backup = MergeBackup(store, clock, run_id)
    pairs = "pair" if n == 1 else "pairs"
    return WriteRequest(
        tool=TOOL,
        action="merge",
        counted="merged",
        path="lead/merge/",
        body={**what, "pairs": shown, "pairs_count": n, "leads_sha256": plan.digest()},
        matched=n,
        summary=f"Merge {n} {pairs} of leads (each source into its destination; Close "
        "deletes the source)",
        when_empty="no pair of leads to merge",
        sample=[LeadSample(id=p.source, display_name=plan.name(p.source)) for p in plan.pairs[:3]],
        notes=notes,
        send=_sender(store, clock, client, run_id, plan, backup, custom_field_ids),
        safeguard=backup,
    )


class MergeBackup:
    """The pipeline's `Safeguard` of a merge run: the header of its backup, written before
    the first merge; each source is appended to its list just before its own merge."""

    what = "backup"

    def __init__(self, store: StateStore, clock: Clock, run_id: str) -> None:
        self.store = store
        self.clock = clock
        self.run_id = run_id
        self.leads_key = f"backup-leads:{secrets.token_hex(8)}"
        self.skip_key = f"merge-skipped:{run_id}"

    async def take(
        self,
        request: WriteRequest,
        progress: Progress | None = None,
        observe: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> str:
        header = {
            "version": 2,
            "job_id": self.run_id,
            "created_at": datetime.fromtimestamp(self.clock.time(), tz=UTC).isoformat(),
            "tool": TOOL,
            "leads_key": self.leads_key,
            "skip_key": self.skip_key,
        }
        await self.store.put(backup_key(self.run_id), json.dumps(header))
        return reference(backup_key(self.run_id))

    async def discard(self, saved: str) -> None:
        for key in (backup_key(self.run_id), self.leads_key, self.skip_key):
            await self.store.delete(key)

    async def attach(self, saved: str, job_id: str) -> str:
        return saved  # a run is named by its own id, known before it is sent


@dataclass
class Outcomes:
    merged: list[Pair] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    unknown: list[dict[str, str]] = field(default_factory=list)
    skipped: list[Pair] = field(default_factory=list)


def _sender(
    store: StateStore,
    clock: Clock,
    client: CloseClient,
    run_id: str,
    plan: MergePlan,
    backup: MergeBackup,
    custom_field_ids: Callable[[], Awaitable[list[str]]],
) -> Callable[[Sender, Progress | None], Awaitable[PlanAnswer]]:
    """Send the pairs under the merge lock, each claimed, backed up, merged (module docstring)."""

    async def mark(pair: Pair, state: str) -> None:
        await store.put(
            journal_key(pair.source), entry(run_id, pair.destination, state, clock.time())
        )
        if state == "failed":
            await store.append(backup.skip_key, pair.source)

    async def claim(pair: Pair) -> bool:
        mine = entry(run_id, pair.destination, "sending", clock.time())
        may = claimable(plan.review.again.get(pair.source))

        def change(current: str | None) -> tuple[str, bool]:
            if current is None or may(current):
                return mine, True
            return current, False

        return await store.update(journal_key(pair.source), change)

    def reconcile(source: str) -> Callable[[], Awaitable[tuple[dict[str, Any] | None, str]]]:
        async def look() -> tuple[dict[str, Any] | None, str]:
            try:
                await client.get(f"lead/{source}/", params={"_fields": "id"})
            except NotFound:
                return {"merged": source}, ""  # Close deletes the source as it merges
            except CloseError:
                return None, (
                    " The source could not be read to check: not sent again by this run; a "
                    "later preview looks it up again."
                )
            return None, (
                " The source still exists (Close may still be merging): not sent again for "
                "an hour; then a preview offers it again if it still exists."
            )

        return look

    async def one(pair: Pair, wanted: list[str], sender: Sender, done: Outcomes) -> None:
        if not await claim(pair):
            done.skipped.append(pair)
            return
        lead = (await read_leads(client, [pair.source], wanted)).get(pair.source)
        if lead is None:
            await mark(pair, "failed")
            done.failed.append({"source": pair.source, "error": "the source no longer exists"})
            return
        await store.append(backup.leads_key, json.dumps(lead, ensure_ascii=False))
        body = {"source": pair.source, "destination": pair.destination}
        try:
            await sender.guard(
                lambda: merge_leads(client, pair.source, pair.destination), "lead/merge/", body,
                matched=1, reconcile=reconcile(pair.source),
            )  # fmt: skip
        except STOPS_THE_RUN:
            await mark(pair, "failed")
            raise
        except OutcomeUnknown as exc:
            await mark(pair, "outcome_unknown")
            done.unknown.append({"source": pair.source, "error": str(exc)[:300]})
        except CloseError as exc:
            await mark(pair, "failed")
            done.failed.append({"source": pair.source, "error": str(exc)[:300]})
        else:
            done.merged.append(pair)
            sender.record("submitted", path="/lead/merge/", body=body, matched=1)
            try:
                await mark(pair, "merged")
            except Exception as exc:  # merged: its entry stays `sending`, which is never resent
                log.error("%s: %s merged, but its journal entry was not updated: %s",
                          TOOL, pair.source, exc)  # fmt: skip

    async def send(sender: Sender, progress: Progress | None) -> PlanAnswer:
        busy = (
            "another merge_leads run is being sent (by this server or a replica sharing its "
            "state store); nothing was sent. Call again once it is done: a fresh preview "
            "leaves out what it merged."
        )
        done = Outcomes()
        total = len(plan.pairs)
        # Renewed while the run lives (429 waits or a slow Close can outlast the TTL); the
        # TTL still frees the lock of a replica that died holding it.
        async with held(store, LOCK, ttl_s=LOCK_TTL_S, busy=busy, renew=clock):
            # What a delete's backup keeps of a lead: restore_leads reads both alike.
            wanted = [*BACKUP_FIELDS, *(f"custom.{cf}" for cf in await custom_field_ids())]
            for number, pair in enumerate(plan.pairs, 1):
                try:
                    await one(pair, wanted, sender, done)
                except STOPS_THE_RUN as exc:
                    raise SafetyNetError(
                        f"{exc} The merge run {run_id} stopped at pair {number} of {total} "
                        f"({len(done.merged)} merged); the merged sources are in its backup "
                        f"(restore_leads(backup={run_id!r}))."
                    ) from exc
                if progress is not None:
                    await progress.step(number, total, f"{TOOL}: {number} of {total} pairs")
        return _answer(run_id, total, done)

    return send


def _answer(run_id: str, total: int, done: Outcomes) -> PlanAnswer:
    result: dict[str, Any] = {
        "run_id": run_id,
        "merged": [{"source": p.source, "destination": p.destination}
                   for p in done.merged[:SHOWN_DONE]],
        "merged_count": len(done.merged),
        "failed": done.failed[:SHOWN_DONE],
        "failed_count": len(done.failed),
    }  # fmt: skip
    follow = (
        f" Each merged source is backed up: restore_leads(backup={run_id!r}) re-creates them "
        "(new ids)."
    )
    if done.unknown:
        result["outcome_unknown"] = done.unknown[:SHOWN_DONE]
        result["outcome_unknown_count"] = len(done.unknown)
        follow += (
            f" {len(done.unknown)} have an unknown outcome: check them in Close; a preview an "
            "hour from now offers them again if their source still exists."
        )
    if done.skipped:
        result["skipped_count"] = len(done.skipped)
        follow += f" {len(done.skipped)} were sent meanwhile by another run: skipped."
    if done.failed:
        follow += f" {len(done.failed)} were refused by Close (result.failed): not merged."
    sent = f"{len(done.merged)} of {total} pairs merged"
    return PlanAnswer(jobs=[], result=result, sent=sent, follow=follow)
