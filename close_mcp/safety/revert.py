"""Reverting a bulk edit: reading its snapshot and the leads now into a plan
(`plan_revert`; what the plan is, `close_mcp.safety.revert_plan`), and sending the plan.

- Each lead of the snapshot is read again (`/data/search/` over its id, 1000 ids a query),
  the snapshot itself read back from the store 1000 leads at a time.
- The whole plan is kept in the store (`keep_plan`) for the resource
  `close://reverts/<job_id>` (`revert_resource`), with what the reverts of that edit sent.
  Requests are sent in order (`plan_sender`); each gets its own audit line (with its job
  id) as it goes, then the plan gets one.
- Each job the revert sends is appended to the edit's revert records (`reverts:<job_id>` in
  the state store, see `close_mcp.safety.snapshot_writer`) as soon as Close answers, with the
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
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.close.jobs import (
    FINISHED_STATUSES,
    RUNNING_STATUSES,
    JobSummary,
    job_path,
    summarize_job,
)
from close_mcp.errors import ArgumentError, CloseError, OutcomeUnknown, SafetyNetError
from close_mcp.safety import revert_plan
from close_mcp.safety.revert_messages import (
    plan_answer,
    sending_message,
    sent_meanwhile,
    stopped_message,
    unfinished_message,
)
from close_mcp.safety.revert_plan import Plan, PlanBuilder, PlannedRequest, digest_serving
from close_mcp.safety.snapshot_reader import EditSnapshot, snapshot_leads
from close_mcp.safety.snapshot_writer import record_revert, reverts_key
from close_mcp.selection.nodes import LEAD_NODE, lead_ids_node
from close_mcp.store import Busy, StateStore, held
from close_mcp.writes.progress import Progress
from close_mcp.writes.results import PlanAnswer
from close_mcp.writes.sender import Sender

# The lock on sending a revert plan expires this long after its holder died (a plan is at
# most 50 bulk edits and a few PUTs: seconds, not minutes).
REVERT_LOCK_TTL_S: Final = 600.0


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
    for start in range(0, len(ids), revert_plan.IDS_PER_REQUEST):
        query = {
            "type": "and",
            "queries": [LEAD_NODE, lead_ids_node(ids[start : start + revert_plan.IDS_PER_REQUEST])],
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
    builder = PlanBuilder(snapshot, include_changed_since)
    done = 0
    total = builder.count

    async def step(before: int, read: int) -> None:
        read += before
        if progress is not None:
            await progress.step(read, total, f"revert: {read} leads of the snapshot checked")

    await step(0, 0)
    async for batch in snapshot_leads(store, snapshot, batch=revert_plan.IDS_PER_REQUEST):
        ids = [lead_id for lead_id, _ in batch]
        current = await read_current(client, snapshot.field, ids, functools.partial(step, done))
        builder.add(batch, current)
        done += len(batch)
        await step(done, 0)
    if progress is not None:
        progress.next_phase(done)
    plan = builder.finish()
    plan.sha256 = await digest_serving(plan.requests)
    return plan


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


def revert_lock(job_id: str) -> str:
    return f"revert:{job_id}"


async def check_not_sending(store: StateStore, job_id: str) -> None:
    """Refuse (`Busy`) while another call holds the lock on sending a revert of `job_id`."""
    if await store.get(f"lock:{revert_lock(job_id)}") is not None:
        raise Busy(sending_message(job_id))


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
                raise SafetyNetError(sent_meanwhile(job_id, meanwhile))
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
        return stopped_message(number, len(requests), [job.id for job in jobs], len(updated))

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
