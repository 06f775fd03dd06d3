"""`update_opportunities` (toolset `opportunities`, opt-in): status, owner, value, confidence or
expected close date of many opportunities, one paced `PUT` each, snapshotted, with undo.

This module only says how opportunities are selected and which fields are set; the run is
`close_mcp.safety.records` (see `server/tools/records.py`).
"""

from datetime import date
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from close_mcp.close.catalog import normalize_name
from close_mcp.close.crm import (
    OPPORTUNITY_KEYS,
    OpportunityFilter,
    list_opportunities,
    list_opportunity_statuses,
    list_pipelines,
)
from close_mcp.errors import ArgumentError
from close_mcp.safety.records import RecordKind
from close_mcp.server.runtime import Call
from close_mcp.server.tools.declare import Invocation, WriteTool, writes
from close_mcp.server.tools.records import (
    RecordSelection,
    UndoArg,
    described,
    run_request,
    selected_leads,
    undo_alone,
    undo_request,
)
from close_mcp.writes.request import WriteRequest

TOOL: Final = "update_opportunities"
# A won status sets date_won when the opportunity has none: the undo puts it back too.
KIND: Final = RecordKind(
    "opportunity", "opportunities", TOOL, "oppupd_", alongside={"status_id": ("date_won",)}
)


class OpportunityWhere(BaseModel):
    """Which opportunities, besides the lead selection: every given field must hold."""

    model_config = ConfigDict(extra="forbid")

    status: list[str] | None = Field(default=None, max_length=20)
    status_type: Literal["active", "won", "lost"] | None = None
    user: str | None = Field(default=None, max_length=200, description="Owner.")
    pipeline: str | None = Field(default=None, max_length=200)
    close_after: date | None = Field(default=None, description="Expected close date, from.")
    close_before: date | None = None


class OpportunityChange(BaseModel):
    """What to set; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    status: str | None = Field(default=None, max_length=200)
    user: str | None = Field(default=None, max_length=200, description="New owner.")
    value: int | None = Field(default=None, ge=0, description="In cents.")
    confidence: int | None = Field(default=None, ge=0, le=100)
    expected_close_date: date | None = None


WhereArg = Annotated[OpportunityWhere | None, Field()]
ChangeArg = Annotated[OpportunityChange | None, Field()]


class OpportunitiesArguments(RecordSelection):
    where: WhereArg = None
    change: ChangeArg = None
    undo: UndoArg = None


async def _statuses(
    call: Call, names: list[str], pipeline_id: str | None, path: str
) -> list[dict[str, Any]]:
    """The opportunity statuses `names` mean (ids as is, labels within `pipeline_id` if given)."""
    every = await list_opportunity_statuses(call.client)
    found: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        here = f"{path}[{i}]" if path.startswith("where") else path
        matches = [
            s
            for s in every
            if s.get("id") == name
            or (
                normalize_name(str(s.get("label", ""))) == normalize_name(name)
                and pipeline_id in (None, s.get("pipeline_id"))
            )
        ]
        if not matches:
            labels = sorted({str(s.get("label")) for s in every})
            raise ArgumentError(here, f"no opportunity status {name!r}; known: {labels}")
        if len(matches) > 1:
            listed = ", ".join(f"{s['id']} (pipeline {s.get('pipeline_id')})" for s in matches)
            raise ArgumentError(here, f"{name!r} is a status of several pipelines: {listed}")
        found.append(matches[0])
    return found


async def _pipeline(call: Call, name: str) -> str:
    pipelines = await list_pipelines(call.client)
    for p in pipelines:
        if p.get("id") == name or normalize_name(str(p.get("name", ""))) == normalize_name(name):
            return str(p["id"])
    known = sorted(str(p.get("name")) for p in pipelines)
    raise ArgumentError("where.pipeline", f"no pipeline {name!r}; known: {known}")


async def _target(call: Call, change: OpportunityChange) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields sent (Close's names, ids) and the change as shown."""
    target: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    if change.status is not None:
        status = (await _statuses(call, [change.status], None, "change.status"))[0]
        target["status_id"] = status["id"]
        shown["status"] = f"{status.get('label')} ({status['id']})"
    if change.user is not None:
        user = await call.catalog.resolve_user(change.user, path="change.user")
        target["user_id"] = user.id
        shown["user"] = f"{user.name} ({user.id})"
    if change.value is not None:
        target["value"] = shown["value"] = change.value
    if change.confidence is not None:
        target["confidence"] = shown["confidence"] = change.confidence
    if change.expected_close_date is not None:
        target["date_won"] = shown["expected_close_date"] = change.expected_close_date.isoformat()
    if not target:
        raise ArgumentError("change", "give at least one field to set")
    return target, shown


async def prepare(invocation: Invocation, args: OpportunitiesArguments) -> WriteRequest:
    """The write request of one call: a run on the selected opportunities, or an undo."""
    runtime, call = invocation.runtime, invocation.call
    where, change = args.where, args.change
    if args.undo is not None:
        undo_alone(args, where=where, change=change)
        return await undo_request(runtime, call, KIND, action="opportunities", run_id=args.undo)
    if change is None:
        raise ArgumentError("change", "give what to set (or undo, to undo a run)")
    target, shown = await _target(call, change)
    where = where or OpportunityWhere()
    leads, lead_selection = await selected_leads(call, args)
    what = described(where, lead_selection, shown)
    pipeline_id = await _pipeline(call, where.pipeline) if where.pipeline else None
    status_ids: tuple[str, ...] = ()
    if where.status:
        found = await _statuses(call, where.status, pipeline_id, "where.status")
        status_ids = tuple(str(s["id"]) for s in found)
    user_id = None
    if where.user is not None:
        user_id = (await call.catalog.resolve_user(where.user, path="where.user")).id

    async def list_records(lead_id: str | None) -> list[dict[str, Any]]:
        criteria = OpportunityFilter(
            lead_id=lead_id,
            status_ids=status_ids,
            status_types=(where.status_type,) if where.status_type else (),
            user_ids=(user_id,) if user_id else (),
            pipeline_id=pipeline_id,
            won_from=where.close_after,
            won_to=where.close_before,
        )
        return await list_opportunities(
            call.client, criteria, fields=(*OPPORTUNITY_KEYS, "lead_name")
        )

    return await run_request(
        runtime,
        call,
        KIND,
        action="opportunities",
        what=what,
        list_records=list_records,
        leads=leads,
        target=target,
        describe="update",
    )


TOOLS = (
    WriteTool(
        name=TOOL,
        toolset="opportunities",
        title="Update opportunities",
        description="Set status, owner, value, confidence or close date on the opportunities "
        "of leads and/or `where`, one request each; `undo` takes a run id.",
        annotations=writes(),
        arguments=OpportunitiesArguments,
        prepare=prepare,
    ),
)
