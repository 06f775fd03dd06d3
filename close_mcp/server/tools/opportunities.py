"""`update_opportunities` (toolset `opportunities`, opt-in): status, owner, value, confidence or
expected close date of many opportunities, one paced `PUT` each, snapshotted, with undo.

Here: which opportunities (`OpportunityWhere`) and which fields (`OpportunityChange`); the
rest of a call is `server/tools/records.py`.
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
from close_mcp.server.tools.records import (
    RecordArguments,
    RecordRun,
    change_target,
    record_tool,
    user_id,
)

TITLE: Final = "Update opportunities"
DESCRIPTION: Final = (
    "Set status, owner, value, confidence or close date on the opportunities "
    "of leads and/or `where`, one request each; `undo` takes a run id."
)
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


# The change's fields, as Close names them (an expected close date is Close's `date_won`).
CLOSE_NAMES: Final = {
    "status": "status_id",
    "user": "user_id",
    "value": "value",
    "confidence": "confidence",
    "expected_close_date": "date_won",
}
WhereArg = Annotated[OpportunityWhere | None, Field()]
ChangeArg = Annotated[OpportunityChange | None, Field()]


class OpportunitiesArguments(RecordArguments):
    where: WhereArg = None
    change: ChangeArg = None


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
    resolved: dict[str, tuple[Any, Any]] = {}
    if change.status is not None:
        status = (await _statuses(call, [change.status], None, "change.status"))[0]
        resolved["status"] = (status["id"], f"{status.get('label')} ({status['id']})")
    return await change_target(call, change, CLOSE_NAMES, users=frozenset({"user"}),
                               resolved=resolved)  # fmt: skip


async def _run(call: Call, args: OpportunitiesArguments) -> RecordRun:
    """The change and the opportunities it is made on (besides the lead selection)."""
    if args.change is None:
        raise ArgumentError("change", "give what to set (or undo, to undo a run)")
    target, shown = await _target(call, args.change)
    where = args.where or OpportunityWhere()
    pipeline_id = await _pipeline(call, where.pipeline) if where.pipeline else None
    status_ids: tuple[str, ...] = ()
    if where.status:
        found = await _statuses(call, where.status, pipeline_id, "where.status")
        status_ids = tuple(str(s["id"]) for s in found)
    owner_id = await user_id(call, where.user, "where.user")

    async def list_records(lead_id: str | None) -> list[dict[str, Any]]:
        criteria = OpportunityFilter(
            lead_id=lead_id,
            status_ids=status_ids,
            status_types=(where.status_type,) if where.status_type else (),
            user_ids=(owner_id,) if owner_id else (),
            pipeline_id=pipeline_id,
            won_from=where.close_after,
            won_to=where.close_before,
        )
        return await list_opportunities(
            call.client, criteria, fields=(*OPPORTUNITY_KEYS, "lead_name")
        )

    return RecordRun(where, target, shown, list_records)


TOOLS = (record_tool(KIND, _run, OpportunitiesArguments, title=TITLE, description=DESCRIPTION),)
prepare: Final = TOOLS[0].prepare  # an undo, or a run on the records `_run` selects
