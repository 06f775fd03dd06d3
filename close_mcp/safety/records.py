"""Per-record writes: many opportunities or tasks changed one request each, with an undo.

Close has no bulk endpoint for opportunities or tasks, so a change to many of them is one
`PUT /<object>/<id>/` (or `DELETE`) per record, paced by the client's rate-limit budget. What
makes that safe is here, once, for every such tool (each tool module only says which fields
it sets and how it selects):

- The records: the ones a tool's list filters select (`collect`), narrowed to the leads of a
  lead selection when one is given (its lead ids walked once; up to `PER_LEAD_MAX` leads the
  list is asked per lead instead). At most `MAX_RECORDS` a run.
- The plan (`plan_changes`): each record whose values differ from the target gets one
  request; one that already has them is left alone and counted. The preview body
  (`plan_body`) shows the first few requests with each record's values now, the counts, and
  `requests_sha256` over every exact request and the values it overwrites: the confirmation
  token binds the whole plan, so a record changed, added or gone since the preview changes
  the plan and refuses the token (the confirmed call plans again from Close).
- The snapshot (`RecordSnapshot`, the pipeline's `Safeguard`): once the token is checked and
  before the first request, every record's old values (a deleted task whole) are written to
  the state store, `records:<run_id>` (a header) and `records-lines:<run_id>` (one JSON line
  per request), so an undo works from any replica sharing it.
- Sending (`plan_sender`, through the pipeline's plan path like a revert): in order, each
  request audited by the `Sender` and a step of the call's progress; a record Close refuses
  is reported in the result and the run goes on; an unknown key or missing permission stops
  it (every other record would fail the same way), saying what already went.
- The undo (`plan_undo`): reads the run back and each record now, with the caller's key (a
  deleted task's lead too: a run none of whose records it sees is "no saved run"); a record
  that still holds what the run set gets its old values back, a deleted task is created again
  once (`recreations`; the undo of an undo deletes it); one changed since is left alone. It is
  a run too, sent under the lock `records-undo:<run_id>`, and refused there when another undo
  of the run was sent after it was planned (`records-undone:<run_id>`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.close.crm import shown
from close_mcp.close.times import close_time
from close_mcp.errors import (
    ArgumentError,
    AuthenticationError,
    CloseError,
    NotFound,
    PermissionDenied,
    SafetyNetError,
)
from close_mcp.safety.recreations import (
    UNKNOWN,
    Wanted,
    latest_recreation,
    made_unseen,
    reconciler,
    recorded,
)
from close_mcp.safety.revert_plan import normalized
from close_mcp.selection.sample import LeadSample, clipped_texts
from close_mcp.store import Busy, StateStore, held
from close_mcp.wording import sentences
from close_mcp.writes.progress import Progress
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.results import PlanAnswer
from close_mcp.writes.sender import Sender

MAX_RECORDS: Final = 5_000
PER_LEAD_MAX: Final = 20  # leads; more: the list is read once and narrowed to them
LEAD_WALK_MAX: Final = 10_000  # one walk of Close's search yields at most this many
SHOWN_MAX: Final = 3
TEXT_SHOWN: Final = 200  # characters of a value a preview's requests show (a task's text)
LINES_BATCH: Final = 1000
UNDO_LOCK_TTL_S: Final = 3600.0
RUN_ID_CHARS: Final = 20
UNDONE: Final = "records-undone:"  # + a run's id: the id of its latest undo sent
Method = Literal["PUT", "DELETE", "POST"]


@dataclass(frozen=True)
class RecordKind:
    """One kind of record written one request at a time."""

    object: str  # "opportunity", "task": its path and the words in messages
    plural: str
    tool: str
    prefix: str  # of its run ids: "oppupd_"
    # What a deleted record is created again from (a task); empty: never deleted.
    recreate: tuple[str, ...] = ()
    # Fields Close changes along with one a run sets (a won status sets an opportunity's
    # date_won): saved with it, so the undo puts them back too.
    alongside: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def path(self, record_id: str | None = None) -> str:
        return f"{self.object}/{record_id}/" if record_id else f"{self.object}/"


@dataclass(frozen=True)
class RecordChange:
    """One request of a run: `after` the values it sets (None: it deletes the record, or,
    with method POST, creates `before` again), `before` the values it overwrites."""

    id: str
    method: Method
    before: dict[str, Any]
    after: dict[str, Any] | None
    lead_id: str | None = None
    name: str | None = None  # the lead's name, for the preview's sample

    def path(self, kind: RecordKind) -> str:
        return kind.path() if self.method == "POST" else kind.path(self.id)

    def body(self) -> dict[str, Any]:
        if self.method == "POST":
            return dict(self.before)
        return dict(self.after or {})

    def shown(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"id": self.id, "method": self.method, "before": self.before}
        if self.method == "PUT":
            shown["after"] = self.after
        return shown

    def line(self) -> str:
        return json.dumps(
            [self.id, self.method, self.before, self.after, self.lead_id],
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_line(cls, text: str) -> RecordChange:
        record_id, method, before, after, lead_id = json.loads(text)
        return cls(str(record_id), method, dict(before), after, lead_id)


@dataclass
class RecordPlan:
    changes: list[RecordChange] = field(default_factory=list)
    already: int = 0  # records that hold the target already (or, undoing, the old values)
    changed_since: list[dict[str, Any]] = field(default_factory=list)  # undo: left alone
    not_found: list[str] = field(default_factory=list)  # undo: records gone since
    # undo: each record to create again -> its latest re-creation when planned (None: none)
    recreations: dict[str, str | None] = field(default_factory=dict)
    undone: str | None = None  # undo: the run's latest undo sent when planned (None: none)

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        for change in self.changes:
            text = json.dumps(change.shown(), sort_keys=True, separators=(",", ":"))
            digest.update(text.encode() + b"\n")
        return digest.hexdigest()

    def sample(self) -> list[LeadSample]:
        return [
            LeadSample(id=c.lead_id or c.id, display_name=c.name) for c in self.changes[:SHOWN_MAX]
        ]


def same(a: Any, b: Any) -> bool:
    """Whether two values of a field are the same: empty alike, and two date-times equal as
    moments (Close writes back `...T00:00:00+00:00` as `...T00:00:00.000000+00:00`)."""
    if normalized(a) == normalized(b):
        return True
    if isinstance(a, str) and isinstance(b, str) and "T" in a and "T" in b:
        moments = close_time(a), close_time(b)
        return moments[0] is not None and moments[0] == moments[1]
    return False


def new_run_id(kind: RecordKind) -> str:
    return kind.prefix + secrets.token_hex(RUN_ID_CHARS // 2)


# -- selecting ------------------------------------------------------------------------------


async def lead_ids(
    client: CloseClient,
    s_query: dict[str, Any],
    results_limit: int | None,
    sort: list[dict[str, Any]] | None,
) -> list[str]:
    """The ids of the leads a lead selection matches, walked once (at most LEAD_WALK_MAX)."""
    ids: list[str] = []
    async for lead in client.search_iter(
        s_query, fields=["id"], results_limit=results_limit, sort=sort
    ):
        ids.append(str(lead["id"]))
        if len(ids) > LEAD_WALK_MAX:
            raise ArgumentError(
                "filter",
                f"the lead selection matches more than {LEAD_WALK_MAX} leads; narrow it (or "
                "select the records by their own fields alone)",
            )
    return ids


async def collect(
    kind: RecordKind,
    list_records: Callable[[str | None], Awaitable[list[dict[str, Any]]]],
    leads: list[str] | None,
) -> list[dict[str, Any]]:
    """The records `list_records(lead_id)` lists (None: with no lead filter), narrowed to
    the leads `leads` (None: any lead), in id order; more than MAX_RECORDS is refused."""
    if leads is not None and len(leads) <= PER_LEAD_MAX:
        found: dict[str, dict[str, Any]] = {}
        for lead_id in leads:
            for record in await list_records(lead_id):
                found[str(record["id"])] = record
        records = list(found.values())
    else:
        records = await list_records(None)
        if leads is not None:
            wanted = set(leads)
            records = [r for r in records if r.get("lead_id") in wanted]
    if len(records) > MAX_RECORDS:
        raise ArgumentError(
            None,
            f"{len(records)} {kind.plural} match; one call changes at most {MAX_RECORDS}: "
            "narrow the selection",
        )
    return sorted(records, key=lambda r: str(r["id"]))


# -- planning -------------------------------------------------------------------------------


def plan_changes(
    kind: RecordKind, records: Sequence[dict[str, Any]], target: dict[str, Any] | None
) -> RecordPlan:
    """One request per record whose values differ from `target` (None: delete each record,
    its `kind.recreate` fields kept as the backup)."""
    plan = RecordPlan()
    for record in records:
        record_id, lead_id, name = str(record["id"]), record.get("lead_id"), record.get("lead_name")
        if target is None:
            backup = {k: record.get(k) for k in kind.recreate}
            plan.changes.append(RecordChange(record_id, "DELETE", backup, None, lead_id, name))
            continue
        differ = {k: v for k, v in target.items() if not same(record.get(k), v)}
        if not differ:
            plan.already += 1
            continue
        before = {k: record.get(k) for k in differ}
        for extra in (e for k in differ for e in kind.alongside.get(k, ()) if e not in target):
            before[extra] = record.get(extra)
        plan.changes.append(RecordChange(record_id, "PUT", before, differ, lead_id, name))
    return plan


def plan_body(kind: RecordKind, what: dict[str, Any], plan: RecordPlan) -> dict[str, Any]:
    """What the preview shows and the token binds: `what` (the selection and the change as
    asked), the first requests, the counts, and the digest of every request."""
    body: dict[str, Any] = {
        **what,
        "requests": [
            {"path": "/" + c.path(kind), **clipped_texts(c.shown(), TEXT_SHOWN)}
            for c in plan.changes[:SHOWN_MAX]
        ],
        "requests_count": len(plan.changes),
        "already_count": plan.already,
        "requests_sha256": plan.sha256,
    }
    if plan.changed_since or plan.not_found:
        body["left_alone"] = {
            "changed_since": plan.changed_since[:SHOWN_MAX],
            "changed_since_count": len(plan.changed_since),
            "not_found": plan.not_found[:SHOWN_MAX],
            "not_found_count": len(plan.not_found),
        }
    return body


def plan_notes(kind: RecordKind, plan: RecordPlan, *, undo: bool = False) -> list[str]:
    n, records = len(plan.changes), kind.plural
    have = "have their old values" if undo else "already have these values"
    return [
        f"Sends {n} request{'s' if n != 1 else ''}, one per {kind.object}, paced at Close's "
        "rate limit; the old values are saved first, and the result names the run to undo.",
        *sentences(
            (plan.already, f"{plan.already} {records} {have}: nothing to do."),
            (
                plan.changed_since,
                f"{len(plan.changed_since)} {records} were changed by someone else since the "
                "run and are left alone (left_alone.changed_since).",
            ),
            (plan.not_found, f"{len(plan.not_found)} {records} of the run no longer exist."),
            (
                any(c.method == "POST" for c in plan.changes),
                f"Deleted {records} are created again from their backup, with new ids.",
            ),
        ),
    ]


# -- the snapshot ---------------------------------------------------------------------------


def run_key(run_id: str) -> str:
    return f"records:{run_id}"


def lines_key(run_id: str) -> str:
    return f"records-lines:{run_id}"


@dataclass(frozen=True, eq=False, repr=False)  # no repr: the plan holds CRM values
class RecordSnapshot:
    """The `Safeguard` of a run: every request's old values in the store before the first
    request leaves (see the module docstring)."""

    what = "snapshot"

    store: StateStore
    clock: Clock
    kind: RecordKind
    run_id: str
    plan: RecordPlan

    async def take(
        self,
        request: WriteRequest,
        progress: Progress | None = None,
        observe: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> str | None:
        changes = self.plan.changes
        for start in range(0, len(changes), LINES_BATCH):
            batch = changes[start : start + LINES_BATCH]
            await self.store.extend(lines_key(self.run_id), [c.line() for c in batch])
        header = {
            "version": 1,
            "run_id": self.run_id,
            "object": self.kind.object,
            "tool": request.tool,
            "created_at": datetime.fromtimestamp(self.clock.time(), tz=UTC).isoformat(),
            "count": len(changes),
            "lines_key": lines_key(self.run_id),
        }
        await self.store.put(run_key(self.run_id), json.dumps(header))
        return "store:" + run_key(self.run_id)

    async def discard(self, saved: str) -> None:
        await self.store.delete(lines_key(self.run_id))
        await self.store.delete(run_key(self.run_id))

    async def attach(self, saved: str, job_id: str) -> str:
        return saved  # a run is named by its own id, known before it is sent


@dataclass(frozen=True)
class StoredRun:
    run_id: str
    object: str
    count: int


async def load_run(store: StateStore, kind: RecordKind, run_id: str) -> StoredRun:
    """The header of the run `run_id` of this kind; `ArgumentError` on `undo` otherwise."""
    if not run_id.startswith(kind.prefix):
        raise ArgumentError("undo", f"{run_id!r} is not a run of {kind.tool} ({kind.prefix}...)")
    text = await store.get(run_key(run_id))
    if text is None:
        raise ArgumentError("undo", f"no saved run {run_id}: nothing to undo from")
    header = json.loads(text)
    return StoredRun(run_id, str(header["object"]), int(header["count"]))


async def run_changes(store: StateStore, run_id: str) -> AsyncIterator[list[RecordChange]]:
    async for batch in store.iter_lines(lines_key(run_id), batch=LINES_BATCH):
        yield [RecordChange.from_line(line) for line in batch]


# -- the undo -------------------------------------------------------------------------------


async def plan_undo(
    client: CloseClient, store: StateStore, kind: RecordKind, run_id: str
) -> RecordPlan:
    """What puts back the old values of the run `run_id`, from its snapshot and each record
    read now (one GET each, paced like the run)."""
    run = await load_run(store, kind, run_id)
    if await store.get(f"lock:{run_lock(run_id)}") is not None:
        raise Busy(
            f"The run {run_id} is still being sent (by this server or another replica); "
            "nothing was sent. Undo it once it is done."
        )
    plan = RecordPlan(undone=await store.get(UNDONE + run_id))
    leads: dict[str, bool] = {}  # whether the caller's key sees each lead (asked once each)

    async def read(record_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await client.get(kind.path(record_id))
        except NotFound:
            return None
        return found

    async for batch in run_changes(store, run_id):
        for change in batch:
            if change.method == "POST":
                # The run created a deleted record again: its undo deletes the new one.
                latest = await latest_recreation(store, change.id)
                latest = latest or await made_unseen(
                    client, store, Wanted.of(kind.path(), change, same)
                )
                alive = await read(latest) if latest else None
                if alive is None:
                    plan.already += 1
                else:
                    backup = {k: alive.get(k) for k in kind.recreate}
                    plan.changes.append(
                        RecordChange(str(latest), "DELETE", backup, None, change.lead_id)
                    )
                continue
            now = await read(change.id)
            if change.method == "DELETE":
                latest = None if now is not None else await latest_recreation(store, change.id)
                if now is None and latest is None:
                    latest = await made_unseen(client, store, Wanted.of(kind.path(), change, same))
                if now is not None or (latest is not None and await read(latest) is not None):
                    plan.already += 1  # never deleted, or created again by an earlier undo
                elif not await shown(client, f"lead/{change.lead_id}/", leads):
                    plan.not_found.append(change.id)  # its lead is gone, or not this key's
                else:
                    plan.changes.append(
                        RecordChange(change.id, "POST", change.before, None, change.lead_id)
                    )
                    plan.recreations[change.id] = latest
                continue
            if now is None:
                plan.not_found.append(change.id)
                continue
            after = change.after or {}
            current = {k: now.get(k) for k in after}
            name = now.get("lead_name")
            if all(same(current[k], change.before.get(k)) for k in after):
                plan.already += 1
            elif all(same(current[k], v) for k, v in after.items()):
                plan.changes.append(
                    RecordChange(change.id, "PUT", current, change.before, change.lead_id, name)
                )
            else:
                plan.changed_since.append(
                    {"id": change.id, "value_now": current, "value_before": change.before}
                )
    if run.count and len(plan.not_found) == run.count:  # e.g. another organization's run
        raise ArgumentError("undo", f"no saved run {run_id} with {kind.plural} this key can read")
    return plan


def undo_lock(run_id: str) -> str:
    return f"records-undo:{run_id}"


def run_lock(run_id: str) -> str:
    return f"records-run:{run_id}"


# -- sending --------------------------------------------------------------------------------

# Close refusing every request of the run alike: going on would only fail the rest.
STOPS_THE_RUN: Final = (AuthenticationError, PermissionDenied)


def plan_sender(
    client: CloseClient,
    store: StateStore,
    kind: RecordKind,
    run_id: str,
    plan: RecordPlan,
    *,
    clock: Clock,
    undoing: str | None = None,
) -> Callable[[Sender, Progress | None], Awaitable[PlanAnswer]]:
    """Send the plan's requests in order (each audited, a step of `progress`); `undoing`:
    the run being undone, whose lock is held while they go."""

    async def send(sender: Sender, progress: Progress | None) -> PlanAnswer:
        # Held while the run goes, so that no undo plans from a run half sent.
        busy = f"The run {run_id} is already being sent; nothing was sent again."
        async with held(store, run_lock(run_id), ttl_s=UNDO_LOCK_TTL_S, busy=busy):
            if undoing is None:
                return await _send_all(
                    client, store, clock, kind, run_id, plan.changes, sender, progress
                )
            return await _send_undo(sender, progress)

    async def _send_undo(sender: Sender, progress: Progress | None) -> PlanAnswer:
        assert undoing is not None
        busy = (
            f"Another undo of {undoing} is being sent right now (by this server or another "
            "replica); nothing was sent. Call again once it is done: it plans only what is "
            "still to do."
        )
        async with held(store, undo_lock(undoing), ttl_s=UNDO_LOCK_TTL_S, busy=busy):
            # Planned before another undo of the run went (or made its re-creations)?
            stale = [
                o for o, s in plan.recreations.items() if await latest_recreation(store, o) != s
            ]
            if stale or await store.get(UNDONE + undoing) != plan.undone:
                raise SafetyNetError(
                    f"Another undo of {undoing} was sent after this plan was made, so it is out "
                    "of date; nothing was sent. Call again: it plans only what is still to do."
                )
            await store.put(UNDONE + undoing, run_id)
            return await _send_all(
                client, store, clock, kind, run_id, plan.changes, sender, progress
            )

    return send


async def _send_one(
    client: CloseClient,
    store: StateStore,
    clock: Clock,
    kind: RecordKind,
    change: RecordChange,
    sender: Sender,
) -> Any:
    path, body = change.path(kind), change.body()
    if change.method == "DELETE":
        # Not retried: a lost answer is reported, the task read again by the undo.
        return await sender.guard(
            lambda: client.request("DELETE", path, retry_errors=False), path, body, matched=1
        )
    if change.method == "PUT":
        return await sender.send("PUT", path, body, matched=1)
    # Noted before it leaves: Close may make it though its answer or its mark is lost.
    since = clock.time()
    await store.put(UNKNOWN + change.id, repr(since))
    look = reconciler(client, store, Wanted.of(kind.path(), change, same), since)
    return await sender.send("POST", path, body, matched=1, reconcile=look)


async def _send_all(
    client: CloseClient,
    store: StateStore,
    clock: Clock,
    kind: RecordKind,
    run_id: str,
    changes: Sequence[RecordChange],
    sender: Sender,
    progress: Progress | None,
) -> PlanAnswer:
    done: list[str] = []
    failed: list[dict[str, str]] = []
    total = len(changes)
    for number, change in enumerate(changes, 1):
        try:
            answer = await _send_one(client, store, clock, kind, change, sender)
        except STOPS_THE_RUN as exc:
            raise SafetyNetError(
                f"{exc} The run {run_id} stopped at {kind.object} {number} of {total} "
                f"({len(done)} sent, {len(failed)} refused); undo it with "
                f"{kind.tool}(undo={run_id!r})."
            ) from exc
        except CloseError as exc:  # audited by the sender; the next record goes on
            failed.append({"id": change.id, "error": str(exc)[:300]})
        else:
            made = answer.get("id") if isinstance(answer, dict) else None
            done.append(str(made) if change.method == "POST" and made else change.id)
            sender.record("submitted", path="/" + change.path(kind), body=change.body(), matched=1)
            if change.method == "POST" and made:
                try:
                    await recorded(store, change.id, str(made))
                except Exception as exc:
                    raise SafetyNetError(
                        f"{kind.object.capitalize()} {change.id} was created again as {made} "
                        f"but that could not be recorded in the state store ({exc}); an undo "
                        f"looks for it among the lead's {kind.plural} before creating it. The "
                        f"run {run_id} stopped at {kind.object} {number} of {total}."
                    ) from exc
        if progress is not None:
            await progress.step(
                number, total, f"{kind.tool}: {number} of {total} {kind.plural} sent"
            )
    return _answer(kind, run_id, done, failed)


def _answer(
    kind: RecordKind, run_id: str, done: list[str], failed: list[dict[str, str]]
) -> PlanAnswer:
    result: dict[str, Any] = {
        "run_id": run_id,
        "done": done[:SHOWN_MAX],
        "done_count": len(done),
        "failed": failed[:SHOWN_MAX],
        "failed_count": len(failed),
    }
    sent = f"{len(done)} {kind.object if len(done) == 1 else kind.plural} written"
    if failed:
        sent += f", {len(failed)} refused by Close (result.failed)"
    follow = f" Undo the whole run with {kind.tool}(undo={run_id!r})."
    return PlanAnswer(jobs=[], result=result, sent=sent, follow=follow)
