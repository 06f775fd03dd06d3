"""`revert_bulk_edit`: put back the values a bulk edit overwrote, from its snapshot.

The plan, worked out fresh on every call from the snapshot and the leads' values now:

- Each lead of the snapshot is read again (`/data/search/` over its id, 1000 ids a query).
  A lead whose value is what the edit set goes back; one whose value is the old one already
  is left (nothing to do); one whose value is neither was changed by someone else since
  the edit and is reported and left alone, unless `include_changed_since` is true; a lead
  that no longer exists is reported.
- The leads going back are grouped by old value. A group of at most `PER_LEAD_MAX` leads is
  put back with one `PUT /lead/<id>/` each (immediate, no job to follow); a larger group
  with one bulk edit per `IDS_PER_REQUEST` leads, selecting exactly those leads with
  `query.lead_ids_node` (an undocumented Close shape, isolated there). 1000 ids keep each
  request body near 30 KB; Close documents no cap on a query's size. An old value that was
  absent becomes `clear_custom_field`.
- The whole plan is one write: its `WriteRequest.body` describes every request (in full for
  small plans, else summarized, always with `plan_sha256` over the exact requests), so one
  confirmation token binds all of them, and a lead that changes between preview and
  confirmation changes the plan and refuses the token. Requests are sent in order; each gets
  its own audit line (with its job id) as it goes, then the plan gets one.
- Each job the revert sends is written into the snapshot (`reverts`) as soon as Close
  answers, with the leads updated one by one (those are batched with the next job or the
  end: a lead already put back is skipped by the next plan anyway). While a recorded job is
  not done or in error its leads still hold the edited value, so a new call would plan the
  same edits again: it is refused, naming the jobs.

This module does not use `from __future__ import annotations` (see bulk.py).
"""

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp.types import ToolAnnotations
from pydantic import Field

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.close.jobs import job_path, summarize_job
from close_mcp.errors import ArgumentError, CloseError, OutcomeUnknown, SafetyNetError
from close_mcp.safety.snapshots import EditSnapshot, load_edit_snapshot, record_revert
from close_mcp.selection.query import LEAD_NODE, lead_ids_node
from close_mcp.server.tools import Registrar, tool_errors
from close_mcp.server.tools.selection import DryRunArg, TokenArg
from close_mcp.writes.pipeline import LeadSample, Pipeline, WriteRequest, WriteResult, question
from close_mcp.writes.sender import Sender

PER_LEAD_MAX: Final = 3
IDS_PER_REQUEST: Final = 1000
FULL_PLAN_MAX: Final = 100  # leads; above this the preview summarizes the requests
LISTED_MAX: Final = 50
RUNNING: Final = frozenset({"created", "loading", "processing", "resuming"})
FINISHED: Final = frozenset({"done", "error"})
TOOL: Final = "revert_bulk_edit"


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


@dataclass
class Plan:
    requests: list[dict[str, Any]] = field(default_factory=list)
    returns: list[dict[str, Any]] = field(default_factory=list)
    changed_since: list[dict[str, Any]] = field(default_factory=list)
    already_back: int = 0
    not_found: list[str] = field(default_factory=list)
    sample: list[LeadSample] = field(default_factory=list)

    @property
    def leads(self) -> int:
        return sum(int(r["leads"]) for r in self.returns)


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


def _requests(snapshot: EditSnapshot, value: Any, ids: list[str]) -> list[dict[str, Any]]:
    """The requests that put `value` back on exactly the leads `ids`."""
    if len(ids) <= PER_LEAD_MAX:
        put_value = None if normalized(value) is None else value
        return [
            {"method": "PUT", "path": f"/lead/{i}/", "body": {snapshot.field: put_value}}
            for i in ids
        ]
    done_email = bool(snapshot.request.get("send_done_email", True))
    return [
        {
            "method": "POST",
            "path": "/" + job_path("edit"),
            "body": {
                "s_query": {
                    "type": "and",
                    "queries": [LEAD_NODE, lead_ids_node(ids[i : i + IDS_PER_REQUEST])],
                },
                "send_done_email": done_email,
                **_edit_body(snapshot, value),
            },
        }
        for i in range(0, len(ids), IDS_PER_REQUEST)
    ]


async def read_current(
    client: CloseClient, lead_field: str, ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The leads among `ids` that still exist, with their value of `lead_field` now."""
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
    return found


def build_plan(
    snapshot: EditSnapshot, current: dict[str, dict[str, Any]], include_changed_since: bool
) -> Plan:
    plan = Plan()
    groups: dict[Hashable, tuple[Any, list[str]]] = {}
    for lead_id in sorted(snapshot.leads):
        old = snapshot.leads[lead_id]
        lead = current.get(lead_id)
        if lead is None:
            plan.not_found.append(lead_id)
            continue
        now = lead.get(snapshot.field)
        if normalized(now) == normalized(old):
            plan.already_back += 1
            continue
        if normalized(now) != normalized(value_after(snapshot.request, old)):
            plan.changed_since.append({"id": lead_id, "value_now": now, "value_before": old})
            if not include_changed_since:
                continue
        groups.setdefault(normalized(old), (old, []))[1].append(lead_id)
        if len(plan.sample) < 5:
            plan.sample.append(
                LeadSample(
                    id=lead_id,
                    display_name=lead.get("display_name"),
                    status_label=lead.get("status_label"),
                )
            )
    ordered = sorted(groups.values(), key=lambda g: (-len(g[1]), json.dumps(g[0], default=str)))
    for value, ids in ordered:
        plan.returns.append({"value": value, "leads": len(ids)})
        plan.requests.extend(_requests(snapshot, value, ids))
    return plan


def _digest(requests: list[dict[str, Any]]) -> str:
    text = json.dumps(requests, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _summarized(item: dict[str, Any]) -> dict[str, Any]:
    body = dict(item["body"])
    if "s_query" in body:
        ids = body.pop("s_query")["queries"][1]["condition"]["values"]
        body["lead_ids"] = {"count": len(ids), "first": ids[:3]}
    return {**item, "body": body}


def plan_body(snapshot: EditSnapshot, plan: Plan, include_changed_since: bool) -> dict[str, Any]:
    """What the preview shows and the token binds: the whole plan (digest always)."""
    full = plan.leads <= FULL_PLAN_MAX
    return {
        "job_id": snapshot.job_id,
        "field": snapshot.field,
        "returns": plan.returns,
        "left_alone": {
            "changed_since": [] if include_changed_since else plan.changed_since[:LISTED_MAX],
            "changed_since_count": 0 if include_changed_since else len(plan.changed_since),
            "already_back": plan.already_back,
            "not_found": plan.not_found[:LISTED_MAX],
            "not_found_count": len(plan.not_found),
        },
        "requests": plan.requests if full else [_summarized(r) for r in plan.requests],
        "requests_shown": "exact" if full else "summarized",
        "plan_sha256": _digest(plan.requests),
    }


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
        f"{r['leads']} lead{'s' if r['leads'] != 1 else ''} return to {what} "
        f"{_label(r['value'], labels)}."
        for r in plan.returns
    ]
    if plan.changed_since:
        ids = ", ".join(c["id"] for c in plan.changed_since[:10])
        more = "" if len(plan.changed_since) <= 10 else f" and {len(plan.changed_since) - 10} more"
        if include_changed_since:
            notes.append(
                f"{len(plan.changed_since)} leads were changed by someone else since the edit "
                f"and are put back too (include_changed_since): {ids}{more}."
            )
        else:
            notes.append(
                f"{len(plan.changed_since)} leads were changed by someone else since the edit "
                f"and are left alone: {ids}{more}. Pass include_changed_since=true to put "
                "them back as well."
            )
    if plan.already_back:
        notes.append(f"{plan.already_back} leads already have their old value: nothing to do.")
    if plan.not_found:
        notes.append(f"{len(plan.not_found)} leads of the snapshot no longer exist.")
    bulk = sum(1 for r in plan.requests if r["method"] == "POST")
    puts = len(plan.requests) - bulk
    notes.append(
        f"Sends {bulk} bulk edit job{'s' if bulk != 1 else ''} and {puts} single-lead "
        f"update{'s' if puts != 1 else ''}, in order; follow the jobs with wait_for_bulk_job. "
        "The revert itself takes no snapshot."
    )
    return notes


def plan_sender(
    clock: Clock, snapshot: EditSnapshot, requests: list[dict[str, Any]], matched: int
) -> Callable[[Sender], Awaitable[dict[str, Any]]]:
    """Send the plan's requests in order, each audited and recorded in the snapshot (see the
    module docstring); a failure says what already went."""

    async def send(sender: Sender) -> dict[str, Any]:
        jobs: list[dict[str, Any]] = []
        updated: list[str] = []
        unrecorded: list[dict[str, Any]] = []  # lead updates, written with the next job

        def stopped(number: int) -> str:
            sent = f"already sent: {len(jobs)} jobs, {len(updated)} lead updates"
            ids = [job["id"] for job in jobs]
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
                path = item["path"].strip("/") + "/"
                leads = _lead_count(item)
                try:
                    answer = await sender.send(item["method"], path, item["body"], matched=leads)
                except CloseError as exc:  # audited by the sender
                    if isinstance(exc, OutcomeUnknown):
                        raise OutcomeUnknown(
                            f"{exc.message} {stopped(number)}", method=exc.method, path=exc.path
                        ) from exc
                    raise SafetyNetError(f"{exc} {stopped(number)}") from exc
                if item["method"] == "POST":
                    job = summarize_job(answer)
                    jobs.append(job.model_dump(mode="json", exclude_none=True))
                    job_id: str | None = job.id
                else:
                    updated.append(path.split("/")[1])
                    job_id = None
                sender.record(
                    "submitted", path=item["path"], body=item["body"], matched=leads, job_id=job_id
                )
                sent_at = datetime.fromtimestamp(clock.time(), tz=UTC).isoformat()
                if job_id is None:
                    unrecorded.append({"sent_at": sent_at, "lead_id": updated[-1]})
                    continue
                try:
                    record_revert(
                        snapshot.path, [*unrecorded, {"sent_at": sent_at, "job_id": job_id}]
                    )
                except OSError as exc:
                    raise SafetyNetError(
                        f"Job {job_id} was sent but could not be recorded in {snapshot.path} "
                        f"({exc}), so the next call could not tell it is running. "
                        f"{stopped(number + 1)}"
                    ) from exc
                unrecorded.clear()
        finally:
            # The leads' values say what is left to do; this record is for the reader.
            if unrecorded:
                with contextlib.suppress(OSError):
                    record_revert(snapshot.path, unrecorded)
        return {"jobs": jobs, "updated_leads": updated, "leads": matched}

    return send


def unfinished_message(unfinished: list[tuple[str, str]]) -> str:
    """Why a revert is refused while jobs of an earlier one run: (job id, status) each."""
    paused = any(status == "paused" for _, status in unfinished)
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


def _lead_count(item: dict[str, Any]) -> int:
    if item["method"] == "PUT":
        return 1
    return len(item["body"]["s_query"]["queries"][1]["condition"]["values"])


def register(reg: Registrar) -> None:
    runtime = reg.runtime

    @tool_errors
    async def prepare_revert(
        ctx: Context, job_id: str, include_changed_since: bool
    ) -> WriteRequest:
        snapshot = load_edit_snapshot(runtime.settings, job_id)
        call = runtime.call(ctx.headers)
        job = await call.client.get(job_path("edit", job_id))
        status = job.get("status") if isinstance(job, dict) else None
        if status in RUNNING:
            raise ArgumentError(
                "job_id",
                f"the edit is still {status}; wait for it (wait_for_bulk_job) or pause it "
                "(pause_bulk_job) before reverting",
            )
        unfinished = []
        for revert_job in snapshot.revert_jobs:
            found = await call.client.get(job_path("edit", revert_job))
            state = found.get("status") if isinstance(found, dict) else None
            if state not in FINISHED:
                unfinished.append((revert_job, str(state)))
        if unfinished:
            raise ArgumentError("job_id", unfinished_message(unfinished))
        current = await read_current(call.client, snapshot.field, sorted(snapshot.leads))
        plan = build_plan(snapshot, current, include_changed_since)
        labels: dict[str, str] = {}
        if snapshot.field == "status_id":
            labels = {s.id: s.label for s in await call.catalog.lead_statuses()}
        notes = plan_notes(snapshot, plan, include_changed_since, labels)
        if status == "paused":
            notes.append(
                "The edit is paused: resuming it later would apply it again to the leads it "
                "had not reached."
            )
        if not plan.requests:
            notes.append("Nothing to revert.")
        return WriteRequest(
            tool=TOOL,
            action="edit",
            path=job_path("edit") if any(r["method"] == "POST" for r in plan.requests) else "lead/",
            body=plan_body(snapshot, plan, include_changed_since),
            matched=plan.leads,
            summary=f"Revert {job_id}: put the old value back on {plan.leads} "
            f"lead{'s' if plan.leads != 1 else ''}",
            sample=plan.sample,
            notes=notes,
            send=plan_sender(runtime.clock, snapshot, plan.requests, plan.leads),
        )

    async def confirm_revert(
        ctx: Context,
        request: Annotated[WriteRequest, Resolve(prepare_revert)],
        dry_run: bool,
        confirmation_token: str | None,
    ) -> Elicit[Any] | str:
        return question(ctx, runtime.writes, request, dry_run, confirmation_token)

    async def revert_bulk_edit(
        ctx: Context,
        request: Annotated[WriteRequest, Resolve(prepare_revert)],
        answer: Annotated[ElicitationResult[Any], Resolve(confirm_revert)],
        job_id: Annotated[
            str,
            Field(
                max_length=100,
                pattern=r"^bulkedit_[A-Za-z0-9]+$",
                description="The bulk edit to undo (bulkedit_...), as create_bulk_edit answered.",
            ),
        ],
        include_changed_since: Annotated[
            bool,
            Field(
                description="Also put back leads someone else changed since the edit "
                "(normally reported and left alone)."
            ),
        ] = False,
        dry_run: DryRunArg = False,
        confirmation_token: TokenArg = None,
    ) -> WriteResult:
        if request.matched == 0 and not dry_run:
            reason = "nothing to revert: no lead still has the value the edit set"
            runtime.audit.record(
                tool=TOOL, outcome="refused", path="/" + request.path, request=request.body,
                matched=0, reason=reason,
            )  # fmt: skip
            return WriteResult(
                status="refused",
                tool=TOOL,
                message=f"Refused: {reason}. Nothing was sent.",
                preview=request.preview(),
                reason=reason,
            )
        client = runtime.client_for(ctx.headers)
        return await Pipeline(runtime.writes, client).run(
            request, dry_run=dry_run, token=confirmation_token, answer=answer
        )

    reg.add(
        revert_bulk_edit,
        name=TOOL,
        toolset="edit",
        title="Revert a bulk edit",
        description="Undo a bulk edit made through create_bulk_edit: put back, lead by lead, "
        "the values it overwrote, from the snapshot taken before it ran. Leads someone else "
        "changed since are reported and left alone. Use after the edit finished (or was "
        "paused); not for deletes (those are restored with `close-mcp restore`). Two steps: "
        "the first call previews how many leads return to which value (and, when "
        "confirmation is needed, gives a confirmation_token); call again with the token once "
        "the user agrees. dry_run only previews.",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
