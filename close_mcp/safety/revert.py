"""The revert planner: what puts back the values a bulk edit overwrote, from its snapshot.

The plan, worked out fresh on every call from the snapshot and the leads' values now:

- Each lead of the snapshot is read again (`/data/search/` over its id, 1000 ids a query),
  the snapshot itself read back from the store 1000 leads at a time (`plan_revert`).
  A lead whose value is what the edit set goes back; one whose value is the old one already
  is left (nothing to do); one whose value is neither was changed by someone else since
  the edit and is reported and left alone, unless `include_changed_since` is true; a lead
  that no longer exists is reported.
- The leads going back are grouped by old value. A group of at most `PER_LEAD_MAX` leads is
  put back with one `PUT /lead/<id>/` each (immediate, no job to follow); a larger group
  with one bulk edit per `IDS_PER_REQUEST` leads, selecting exactly those leads with
  `query.lead_ids_node` (a documented `reference` on the lead id). 1000 ids keep each
  request body near 30 KB; Close documents no cap on a query's size. An old value that was
  absent becomes `clear_custom_field`. Each request is a `PlannedRequest`: method, path,
  the exact body sent, and the leads it puts back.
- The whole plan is one write: its `WriteRequest.body` (`plan_body`) shows the first few
  groups, requests and left-alone leads with their counts (a request in full for small
  plans, else summarized) and `plan_sha256` over every exact request, so one confirmation
  token binds all of them, and a lead that changes between preview and confirmation
  changes the plan and refuses the token. The preview of a 50,000-lead revert stays the
  size of a 500-lead one; the whole plan (`plan_document`) is kept in the store and read on
  demand as the resource `close://reverts/<job_id>` (`revert_resource`), with what the
  reverts of that edit sent. Requests are sent in order (`plan_sender`); each gets its own
  audit line (with its job id) as it goes, then the plan gets one.
- Each job the revert sends is appended to the edit's revert records (`reverts:<job_id>` in
  the state store, see `close_mcp.safety.snapshots`) as soon as Close answers, with the
  leads updated one by one (those are batched with the next job or the end: a lead already
  put back is skipped by the next plan anyway). While a recorded job is not finished its
  leads still hold the edited value, so a new call would plan the same edits again: it is
  refused, naming the jobs (`check_jobs`).
- One revert per edit at a time, on every replica sharing the store: the plan is sent
  holding the lock `revert:<job_id>`, and under it the revert records are read again; a
  record added since the plan was made (another call sent a revert meanwhile) refuses the
  plan before anything is sent, naming what that call sent. A call that finds the lock held
  is refused too (`Busy`), sending nothing, and so is a preview while it is held.

The MCP tool (`revert_bulk_edit`) is in `server/tools/revert.py`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import heapq
import json
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import anyio.lowlevel

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.close.jobs import (
    FINISHED_STATUSES,
    PAUSED_STATUS,
    RUNNING_STATUSES,
    JobSummary,
    job_path,
    summarize_job,
)
from close_mcp.errors import ArgumentError, CloseError, OutcomeUnknown, SafetyNetError
from close_mcp.safety.snapshots import EditSnapshot, record_revert, reverts_key, snapshot_leads
from close_mcp.selection.nodes import LEAD_NODE, lead_ids_node
from close_mcp.selection.sample import LeadSample
from close_mcp.store import Busy, StateStore, held
from close_mcp.writes.progress import Progress
from close_mcp.writes.results import PlanAnswer
from close_mcp.writes.sender import Method, Sender

PER_LEAD_MAX: Final = 3
IDS_PER_REQUEST: Final = 1000
FULL_PLAN_MAX: Final = 25  # leads; above this the preview summarizes the requests (bounded tokens)
SHOWN_MAX: Final = 3  # items of each list in a preview (the rest: `close://reverts/<job_id>`)
# The lock on sending a revert plan expires this long after its holder died (a plan is at
# most 50 bulk edits and a few PUTs: seconds, not minutes).
REVERT_LOCK_TTL_S: Final = 600.0
SAMPLE_MAX: Final = 5


def normalized(value: Any) -> Hashable:
    """A value for comparing: empty is None, a multi-value field compares as a set."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list):
        return frozenset(json.dumps(v, sort_keys=True) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    hashable: Hashable = value
    return hashable


def value_after(edit: dict[str, Any], old: Any) -> Any:
    """What the edit left on a lead that had `old` (Close's replace/add/remove rules)."""
    kind = edit.get("type")
    if kind == "set_lead_status":
        return edit.get("lead_status_id")
    if kind == "clear_custom_field":
        return None
    if "custom_field_values" not in edit:
        return edit.get("custom_field_value")
    values = list(edit["custom_field_values"])
    had = old if isinstance(old, list) else ([] if old is None else [old])
    operation = edit.get("custom_field_operation", "replace")
    if operation == "add":
        return had + [v for v in values if v not in had]
    if operation == "remove":
        return [v for v in had if v not in values]
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class PlannedRequest:
    """One request of a revert: `body` is exactly what is sent, `lead_ids` the leads it puts
    back (the one lead of a PUT, the leads a bulk edit's query selects)."""

    method: Method
    path: str  # with both slashes, as shown: "/lead/lead_x/", "/bulk_action/edit/"
    body: dict[str, Any]
    lead_ids: tuple[str, ...]

    @classmethod
    def put_lead(cls, lead_field: str, lead_id: str, value: Any) -> PlannedRequest:
        """`PUT /lead/<id>/` setting `lead_field` to `value` (an empty value as null)."""
        put_value = None if normalized(value) is None else value
        return cls("PUT", f"/lead/{lead_id}/", {lead_field: put_value}, (lead_id,))

    @classmethod
    def bulk_edit(
        cls, edit: dict[str, Any], lead_ids: Sequence[str], send_done_email: bool
    ) -> PlannedRequest:
        """A bulk edit `edit` over exactly the leads `lead_ids`."""
        ids = tuple(lead_ids)
        body = {
            "s_query": {"type": "and", "queries": [LEAD_NODE, lead_ids_node(list(ids))]},
            "send_done_email": send_done_email,
            **edit,
        }
        return cls("POST", "/" + job_path("edit"), body, ids)

    @property
    def starts_job(self) -> bool:
        return self.method == "POST"

    @property
    def leads(self) -> int:
        return len(self.lead_ids)

    @property
    def send_path(self) -> str:
        """The path as the client takes it: no leading slash, one trailing."""
        return self.path.strip("/") + "/"

    def shown(self, *, summarized: bool = False) -> dict[str, Any]:
        """The request as the preview shows it and the token binds it: exact, or (for a
        bulk edit in a large plan) with its query cut to the count and first lead ids."""
        body = self.body
        if summarized and self.starts_job:
            body = {k: v for k, v in self.body.items() if k != "s_query"}
            body["lead_ids"] = {"count": self.leads, "first": list(self.lead_ids[:3])}
        return {"method": self.method, "path": self.path, "body": body}


@dataclass(frozen=True)
class Return:
    """A group of leads going back to one old value."""

    value: Any
    leads: int

    def shown(self) -> dict[str, Any]:
        return {"value": self.value, "leads": self.leads}


@dataclass(frozen=True)
class ChangedSince:
    """A lead someone else changed since the edit: neither the old nor the edited value."""

    id: str
    value_now: Any
    value_before: Any

    def shown(self) -> dict[str, Any]:
        return {"id": self.id, "value_now": self.value_now, "value_before": self.value_before}


@dataclass
class Plan:
    requests: list[PlannedRequest] = field(default_factory=list)
    returns: list[Return] = field(default_factory=list)
    changed_since: list[ChangedSince] = field(default_factory=list)
    already_back: int = 0
    not_found: list[str] = field(default_factory=list)
    sample: list[LeadSample] = field(default_factory=list)
    sha256: str | None = None  # `_digest(requests)`, when worked out already

    @property
    def leads(self) -> int:
        return sum(r.leads for r in self.returns)

    @property
    def starts_jobs(self) -> bool:
        return any(r.starts_job for r in self.requests)


def _edit_body(snapshot: EditSnapshot, value: Any) -> dict[str, Any]:
    if snapshot.field == "status_id":
        return {"type": "set_lead_status", "lead_status_id": value}
    cf_id = snapshot.field.removeprefix("custom.")
    if normalized(value) is None:
        return {"type": "clear_custom_field", "custom_field_id": cf_id}
    if isinstance(value, list):
        return {
            "type": "set_custom_field",
            "custom_field_id": cf_id,
            "custom_field_values": value,
            "custom_field_operation": "replace",
        }
    return {"type": "set_custom_field", "custom_field_id": cf_id, "custom_field_value": value}


def _requests(snapshot: EditSnapshot, value: Any, ids: list[str]) -> list[PlannedRequest]:
    """The requests that put `value` back on exactly the leads `ids`."""
    if len(ids) <= PER_LEAD_MAX:
        return [PlannedRequest.put_lead(snapshot.field, i, value) for i in ids]
    done_email = bool(snapshot.request.get("send_done_email", True))
    edit = _edit_body(snapshot, value)
    return [
        PlannedRequest.bulk_edit(edit, ids[i : i + IDS_PER_REQUEST], done_email)
        for i in range(0, len(ids), IDS_PER_REQUEST)
    ]


async def check_jobs(client: CloseClient, job_id: str, snapshot: EditSnapshot) -> str | None:
    """The status of the edit `job_id`, once neither it nor a job of an earlier revert (from
    its snapshot) is running; `ArgumentError` on `job_id` otherwise."""
    job = await client.get(job_path("edit", job_id))
    status = job.get("status") if isinstance(job, dict) else None
    if status in RUNNING_STATUSES:
        raise ArgumentError(
            "job_id",
            f"the edit is still {status}; wait for it (wait_for_bulk_job) or pause it "
            "(pause_bulk_job) before reverting",
        )
    unfinished = []
    for revert_job in snapshot.revert_jobs:
        found = await client.get(job_path("edit", revert_job))
        state = found.get("status") if isinstance(found, dict) else None
        if state not in FINISHED_STATUSES:
            unfinished.append((revert_job, str(state)))
    if unfinished:
        raise ArgumentError("job_id", unfinished_message(unfinished))
    return status if isinstance(status, str) else None


async def read_current(
    client: CloseClient,
    lead_field: str,
    ids: list[str],
    on_page: Callable[[int], Awaitable[None]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The leads among `ids` that still exist, with their value of `lead_field` now;
    `on_page` hears how many were read after each page of 200."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), IDS_PER_REQUEST):
        query = {
            "type": "and",
            "queries": [LEAD_NODE, lead_ids_node(ids[start : start + IDS_PER_REQUEST])],
        }
        async for lead in client.search_iter(
            query, fields=["id", "display_name", "status_label", lead_field], page_size=200
        ):
            found[lead["id"]] = lead
            if on_page is not None and len(found) % 200 == 0:
                await on_page(len(found))
    return found


async def plan_revert(
    client: CloseClient,
    store: StateStore,
    snapshot: EditSnapshot,
    include_changed_since: bool,
    progress: Progress | None = None,
) -> Plan:
    """The plan, from the snapshot read back `IDS_PER_REQUEST` leads at a time with their
    values now: the snapshot is never held whole, only what the plan needs (the ids going
    back, the leads left alone). Each batch is a step of `progress`."""
    builder = _PlanBuilder(snapshot, include_changed_since)
    done = 0
    total = builder.count

    async def step(before: int, read: int) -> None:
        read += before
        if progress is not None:
            await progress.step(read, total, f"revert: {read} leads of the snapshot checked")

    await step(0, 0)
    async for batch in snapshot_leads(store, snapshot, batch=IDS_PER_REQUEST):
        ids = [lead_id for lead_id, _ in batch]
        current = await read_current(client, snapshot.field, ids, functools.partial(step, done))
        builder.add(batch, current)
        done += len(batch)
        await step(done, 0)
    if progress is not None:
        progress.next_phase(done)
    plan = builder.finish()
    plan.sha256 = await _digest_serving(plan.requests)
    return plan


class _PlanBuilder:
    """Classifies the snapshot's leads batch by batch; `finish` orders everything by lead id,
    so the plan is the same whatever order the snapshot was saved in."""

    def __init__(self, snapshot: EditSnapshot, include_changed_since: bool) -> None:
        self.snapshot = snapshot
        self.include_changed_since = include_changed_since
        self.count = snapshot.leads_count
        self.plan = Plan()
        # normalized old value -> (old value, ids going back to it)
        self.groups: dict[Hashable, tuple[Any, list[str]]] = {}
        self.samples: list[tuple[str, Any, Any]] = []  # (id, display_name, status_label)

    def add(self, batch: list[tuple[str, Any]], current: dict[str, dict[str, Any]]) -> None:
        snapshot, plan = self.snapshot, self.plan
        for lead_id, old in batch:
            lead = current.get(lead_id)
            if lead is None:
                plan.not_found.append(lead_id)
                continue
            now = lead.get(snapshot.field)
            if normalized(now) == normalized(old):
                plan.already_back += 1
                continue
            if normalized(now) != normalized(value_after(snapshot.request, old)):
                plan.changed_since.append(ChangedSince(id=lead_id, value_now=now, value_before=old))
                if not self.include_changed_since:
                    continue
            self.groups.setdefault(normalized(old), (old, []))[1].append(lead_id)
            self.samples.append((lead_id, lead.get("display_name"), lead.get("status_label")))
        self.samples = heapq.nsmallest(SAMPLE_MAX, self.samples, key=lambda s: s[0])

    def finish(self) -> Plan:
        plan = self.plan
        plan.not_found.sort()
        plan.changed_since.sort(key=lambda c: c.id)
        plan.sample = [
            LeadSample(id=lead_id, display_name=name, status_label=label)
            for lead_id, name, label in self.samples
        ]
        for _, ids in self.groups.values():
            ids.sort()
        # Largest group first; equal ones by value, then by their first lead.
        ordered = sorted(
            self.groups.values(),
            key=lambda g: (-len(g[1]), json.dumps(g[0], default=str), g[1][0]),
        )
        for value, ids in ordered:
            plan.returns.append(Return(value=value, leads=len(ids)))
            plan.requests.extend(_requests(self.snapshot, value, ids))
        return plan


def _digest(requests: Sequence[PlannedRequest]) -> str:
    exact = [r.shown() for r in requests]
    text = json.dumps(exact, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


async def _digest_serving(requests: Sequence[PlannedRequest]) -> str:
    """`_digest`, the same value, one request at a time with the event loop served in
    between (a 100,000-lead plan is 100 bulk edits of 1000 ids each)."""
    digest = hashlib.sha256(b"[")
    for number, request in enumerate(requests):
        text = json.dumps(request.shown(), sort_keys=True, separators=(",", ":"))
        digest.update((b"," if number else b"") + text.encode())
        await anyio.lowlevel.checkpoint()
    digest.update(b"]")
    return digest.hexdigest()


def revert_uri(job_id: str) -> str:
    """The resource with the whole plan of a revert of `job_id` and what reverts sent."""
    return f"close://reverts/{job_id}"


def plan_document(
    snapshot: EditSnapshot, plan: Plan, include_changed_since: bool, *, shown: int | None = None
) -> dict[str, Any]:
    """The plan: every group, request and left-alone lead, or (`shown`) the first of each
    with the counts. Either way `plan_sha256` covers every exact request."""
    full = plan.leads <= FULL_PLAN_MAX
    changed = [] if include_changed_since else plan.changed_since
    return {
        "job_id": snapshot.job_id,
        "field": snapshot.field,
        "returns": [r.shown() for r in plan.returns[:shown]],
        "returns_count": len(plan.returns),
        "left_alone": {
            "changed_since": [c.shown() for c in changed[:shown]],
            "changed_since_count": len(changed),
            "already_back": plan.already_back,
            "not_found": plan.not_found[:shown],
            "not_found_count": len(plan.not_found),
        },
        "requests": [r.shown(summarized=not full) for r in plan.requests[:shown]],
        "requests_count": len(plan.requests),
        "requests_shown": "exact" if full else "summarized",
        "plan_sha256": plan.sha256 or _digest(plan.requests),
    }


def plan_body(snapshot: EditSnapshot, plan: Plan, include_changed_since: bool) -> dict[str, Any]:
    """What the preview shows and the token binds: the first few of each list, the counts,
    the digest of every request, and where the rest is."""
    body = plan_document(snapshot, plan, include_changed_since, shown=SHOWN_MAX)
    return {**body, "full_plan": revert_uri(snapshot.job_id)}


def plan_key(job_id: str) -> str:
    return f"revert-plan:{job_id}"


async def keep_plan(store: StateStore, document: dict[str, Any]) -> None:
    """Keep the latest plan of a revert of its edit, for `close://reverts/<job_id>`."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    await store.put(plan_key(str(document["job_id"])), text)


async def revert_resource(store: StateStore, job_id: str) -> dict[str, Any]:
    """The latest plan made for reverting `job_id` (None before any), and everything the
    reverts of that edit sent (`{sent_at, job_id}` or `{sent_at, lead_id}`, in order)."""
    text = await store.get(plan_key(job_id))
    sent = [json.loads(line) for line in await store.lines(reverts_key(job_id))]
    return {"job_id": job_id, "plan": json.loads(text) if text else None, "sent": sent}


def _label(value: Any, labels: dict[str, str]) -> str:
    if normalized(value) is None:
        return "empty"
    if isinstance(value, str) and value in labels:
        return f"{labels[value]!r} ({value})"
    return json.dumps(value, ensure_ascii=False)


def plan_notes(
    snapshot: EditSnapshot, plan: Plan, include_changed_since: bool, labels: dict[str, str]
) -> list[str]:
    what = "status" if snapshot.field == "status_id" else snapshot.field
    notes = [
        f"{r.leads} lead{'s' if r.leads != 1 else ''} return to {what} {_label(r.value, labels)}."
        for r in plan.returns[:SHOWN_MAX]
    ]
    if len(plan.returns) > SHOWN_MAX:
        rest = plan.returns[SHOWN_MAX:]
        notes.append(
            f"{sum(r.leads for r in rest)} leads return to {len(rest)} other "
            f"value{'s' if len(rest) != 1 else ''} (the resource full_plan lists them)."
        )
    if plan.changed_since:
        # Their ids: the request's left_alone.changed_since (the first), the resource (all).
        if include_changed_since:
            notes.append(
                f"{len(plan.changed_since)} leads were changed by someone else since the edit "
                "and are put back too (include_changed_since)."
            )
        else:
            notes.append(
                f"{len(plan.changed_since)} leads were changed by someone else since the edit "
                "and are left alone (left_alone.changed_since). Pass "
                "include_changed_since=true to put them back as well."
            )
    if plan.already_back:
        notes.append(f"{plan.already_back} leads already have their old value: nothing to do.")
    if plan.not_found:
        notes.append(f"{len(plan.not_found)} leads of the snapshot no longer exist.")
    bulk = sum(1 for r in plan.requests if r.starts_job)
    puts = len(plan.requests) - bulk
    notes.append(
        f"Sends {bulk} bulk edit job{'s' if bulk != 1 else ''} and {puts} single-lead "
        f"update{'s' if puts != 1 else ''}, in order; follow the jobs with wait_for_bulk_job. "
        "The revert itself takes no snapshot."
    )
    return notes


def revert_lock(job_id: str) -> str:
    return f"revert:{job_id}"


def sending_message(job_id: str) -> str:
    return (
        f"Another revert_bulk_edit of {job_id} is being sent right now (by this server or "
        "another replica sharing its store); nothing was sent. Wait for it to finish "
        "(follow the jobs it answers with wait_for_bulk_job), then call again: it plans only "
        "what is still to do."
    )


async def check_not_sending(store: StateStore, job_id: str) -> None:
    """Refuse (`Busy`) while another call holds the lock on sending a revert of `job_id`."""
    if await store.get(f"lock:{revert_lock(job_id)}") is not None:
        raise Busy(sending_message(job_id))


def _sent_meanwhile(job_id: str, records: list[dict[str, Any]]) -> str:
    jobs = [str(r["job_id"]) for r in records if r.get("job_id")]
    leads = [str(r["lead_id"]) for r in records if r.get("lead_id")]
    what = []
    if jobs:
        what.append(f"the revert job{'s' if len(jobs) != 1 else ''} {', '.join(jobs)}")
    if leads:
        what.append(f"{len(leads)} lead update{'s' if len(leads) != 1 else ''}")
    return (
        f"Another revert_bulk_edit of {job_id} sent {' and '.join(what) or 'requests'} after "
        "this plan was made, so this plan is out of date; nothing was sent. "
        + ("Wait for that job (wait_for_bulk_job), then call again" if jobs else "Call again")
        + ": it plans only what is still to do."
    )


def plan_sender(
    clock: Clock,
    store: StateStore,
    snapshot: EditSnapshot,
    requests: Sequence[PlannedRequest],
    matched: int,
) -> Callable[[Sender, Progress | None], Awaitable[PlanAnswer]]:
    """Send the plan's requests in order under the edit's revert lock, each audited and
    recorded in the store (see the module docstring) and a step of `progress`; a failure
    says what already went."""
    job_id = snapshot.job_id

    async def send(sender: Sender, progress: Progress | None) -> PlanAnswer:
        async with held(
            store, revert_lock(job_id), ttl_s=REVERT_LOCK_TTL_S, busy=sending_message(job_id)
        ):
            recorded = await store.lines(reverts_key(job_id))
            if len(recorded) > snapshot.stored_reverts:
                meanwhile = [json.loads(line) for line in recorded[snapshot.stored_reverts :]]
                raise SafetyNetError(_sent_meanwhile(job_id, meanwhile))
            return await _send_plan(clock, store, job_id, sender, requests, matched, progress)

    return send


async def _send_plan(
    clock: Clock,
    store: StateStore,
    job_id: str,
    sender: Sender,
    requests: Sequence[PlannedRequest],
    matched: int,
    progress: Progress | None,
) -> PlanAnswer:
    jobs: list[JobSummary] = []
    updated: list[str] = []
    unrecorded: list[dict[str, Any]] = []  # lead updates, written with the next job

    def stopped(number: int) -> str:
        sent = f"already sent: {len(jobs)} jobs, {len(updated)} lead updates"
        ids = [job.id for job in jobs]
        again = (
            f"Once {', '.join(ids)} {'is' if len(ids) == 1 else 'are'} done "
            "(wait_for_bulk_job), call revert_bulk_edit again"
            if ids
            else "Call revert_bulk_edit again"
        )
        return (
            f"The revert stopped at request {number} of {len(requests)} ({sent}). "
            f"{again}: it plans only what is still to do."
        )

    try:
        for number, item in enumerate(requests, 1):
            try:
                answer = await sender.send(
                    item.method, item.send_path, item.body, matched=item.leads
                )
            except CloseError as exc:  # audited by the sender
                if isinstance(exc, OutcomeUnknown):
                    raise OutcomeUnknown(
                        f"{exc.message} {stopped(number)}", method=exc.method, path=exc.path
                    ) from exc
                raise SafetyNetError(f"{exc} {stopped(number)}") from exc
            if item.starts_job:
                job = summarize_job(answer)
                jobs.append(job)
                sent_job: str | None = job.id
            else:
                updated.append(item.lead_ids[0])
                sent_job = None
            sender.record(
                "submitted", path=item.path, body=item.body, matched=item.leads, job_id=sent_job
            )
            if progress is not None:
                await progress.step(
                    number, len(requests), f"revert: {number} of {len(requests)} requests sent"
                )
            sent_at = datetime.fromtimestamp(clock.time(), tz=UTC).isoformat()
            if sent_job is None:
                unrecorded.append({"sent_at": sent_at, "lead_id": updated[-1]})
                continue
            try:
                await record_revert(
                    store, job_id, [*unrecorded, {"sent_at": sent_at, "job_id": sent_job}]
                )
            except Exception as exc:
                raise SafetyNetError(
                    f"Job {sent_job} was sent but could not be recorded in the state store "
                    f"({exc}), so the next call could not tell it is running. "
                    f"{stopped(number + 1)}"
                ) from exc
            unrecorded.clear()
    finally:
        # The leads' values say what is left to do; this record is for the reader.
        if unrecorded:
            with contextlib.suppress(Exception):
                await record_revert(store, job_id, unrecorded)
    return plan_answer(jobs, updated, matched)


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def plan_answer(jobs: list[JobSummary], updated: list[str], leads: int) -> PlanAnswer:
    """The result of a revert that went: the first job in full (the result's `job`), the
    first few job ids and lead updates with their counts; all of them in the resource."""
    sent = [_plural(len(jobs), "bulk edit job")] if jobs else []
    if updated or not jobs:
        sent.append(_plural(len(updated), "lead update"))
    follow = ""
    if len(jobs) == 1:
        follow = " Follow the job with wait_for_bulk_job."
    elif jobs:
        follow = (
            " Follow each job with wait_for_bulk_job: `job` is the first, result.jobs the "
            "first few, the resource preview.request.full_plan every one."
        )
    result = {
        "jobs": [job.id for job in jobs[:SHOWN_MAX]],
        "jobs_count": len(jobs),
        "updated_leads": updated[:SHOWN_MAX],
        "updated_leads_count": len(updated),
        "leads": leads,
    }
    return PlanAnswer(jobs=jobs, result=result, sent=" and ".join(sent), follow=follow)


def unfinished_message(unfinished: list[tuple[str, str]]) -> str:
    """Why a revert is refused while jobs of an earlier one run: (job id, status) each."""
    paused = any(status == PAUSED_STATUS for _, status in unfinished)
    if len(unfinished) == 1:
        job, status = unfinished[0]
        what = f"the revert job {job} sent by an earlier revert_bulk_edit call is still {status}"
        them, it = "its", "it"
    else:
        listed = ", ".join(f"{job} ({status})" for job, status in unfinished)
        what = f"the revert jobs {listed} sent by earlier revert_bulk_edit calls are not finished"
        them, it = "their", "them"
    resume = "; resume a paused one with resume_bulk_job" if paused else ""
    return (
        f"{what}: {them} leads still hold the edited value, so a new revert would send the "
        f"same edits again. Wait for {it} (wait_for_bulk_job{resume}), then call again: it "
        "plans only what is still to do."
    )
