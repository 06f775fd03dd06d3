"""What the per-record write tools (`update_opportunities`, `update_tasks`) share at the MCP
surface: the lead selection narrowed to lead ids, the write request of a run or of its undo.

The machinery (records, plan, snapshot, sending, undo) is `close_mcp.safety.records`.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import BaseModel, Field

from close_mcp.errors import ArgumentError
from close_mcp.safety.records import (
    RecordKind,
    RecordPlan,
    RecordSnapshot,
    collect,
    lead_ids,
    new_run_id,
    plan_body,
    plan_changes,
    plan_notes,
    plan_sender,
    plan_undo,
)
from close_mcp.selection.every_lead import matches_everything
from close_mcp.selection.resolve import resolve_selection
from close_mcp.server.runtime import Call, Runtime
from close_mcp.server.tools.selection import FilterArg, SQueryArg
from close_mcp.writes.request import WriteRequest

# What undo does is in each tool's description ("`undo` takes a run id"): told once.
UndoArg = Annotated[str | None, Field(max_length=100, pattern=r"^[a-z]+_[0-9a-f]+$")]


class RecordSelection(BaseModel):
    """The lead selection of a per-record tool: optional (the records' own criteria may do),
    and never "every lead" refused: one criterion is required, and MAX_RECORDS caps a run.
    No results_limit or sort: a run acts on every record of the leads, never on the first."""

    filter: FilterArg = None
    s_query: SQueryArg = None


def undo_alone(args: RecordSelection, **given: Any) -> None:
    """An undo comes alone: with a selection or a change the call would mean two things."""
    also = {"filter": args.filter, "s_query": args.s_query, **given}
    named = [name for name, value in also.items() if value not in (None, False)]
    if named:
        raise ArgumentError("undo", f"give undo alone, not with {', '.join(named)}")


def described(
    where: BaseModel, lead_selection: dict[str, Any] | None, change: dict[str, Any]
) -> dict[str, Any]:
    """What the preview says the call asked for: the criteria, the leads, the change. A call
    with no criterion at all (it would select every record) is refused."""
    criteria = where.model_dump(mode="json", exclude_none=True)
    if lead_selection is None and not criteria:
        raise ArgumentError(
            "where", "give at least one criterion (where, or a lead selection: filter or s_query)"
        )
    shown: dict[str, Any] = {"where": criteria}
    if lead_selection is not None:
        shown["leads"] = lead_selection
    return {**shown, "change": change}


async def selected_leads(
    call: Call, args: RecordSelection
) -> tuple[list[str] | None, dict[str, Any] | None]:
    """The lead ids of the lead selection, with its resolved s_query (None, None: none given)."""
    if args.filter is None and args.s_query is None:
        return None, None
    selection = await resolve_selection(
        filter=args.filter,
        s_query=args.s_query,
        allow_all_leads=True,  # the records' own criteria still narrow (one is required)
        catalog=call.catalog,
    )
    if matches_everything(selection.s_query):
        return None, None  # every lead narrows nothing: not a criterion
    ids = await lead_ids(call.client, selection.s_query, selection.results_limit, selection.sort)
    shown: dict[str, Any] = {"s_query": selection.s_query}
    if selection.results_limit is not None:
        shown["results_limit"] = selection.results_limit
    if selection.sort:
        shown["sort"] = selection.sort
    return ids, shown


async def run_request(
    runtime: Runtime,
    call: Call,
    kind: RecordKind,
    *,
    action: str,
    what: dict[str, Any],
    list_records: Callable[[str | None], Awaitable[list[dict[str, Any]]]],
    leads: list[str] | None,
    target: dict[str, Any] | None,
    describe: str,
) -> WriteRequest:
    """The write request of one run: `target` set on (None: delete) the records selected."""
    records = await collect(kind, list_records, leads)
    plan = plan_changes(kind, records, target)
    return _request(runtime, call, kind, action, what, plan, describe)


async def undo_request(
    runtime: Runtime, call: Call, kind: RecordKind, *, action: str, run_id: str
) -> WriteRequest:
    """The write request that undoes the run `run_id`."""
    plan = await plan_undo(call.client, runtime.store, kind, run_id)
    describe = f"undo {run_id}: put the old values back on"
    return _request(runtime, call, kind, action, {"undo": run_id}, plan, describe, undo=run_id)


def _request(
    runtime: Runtime,
    call: Call,
    kind: RecordKind,
    action: str,
    what: dict[str, Any],
    plan: RecordPlan,
    describe: str,
    undo: str | None = None,
) -> WriteRequest:
    run_id = new_run_id(kind)
    n = len(plan.changes)
    return WriteRequest(
        tool=kind.tool,
        action=action,
        path=kind.path(),
        body=plan_body(kind, what, plan),
        matched=n,
        summary=f"{describe.capitalize()} {n} {kind.object if n == 1 else kind.plural}",
        when_empty=f"no {kind.object} needs a change",
        sample=plan.sample(),
        notes=plan_notes(kind, plan, undo=undo is not None),
        send=plan_sender(call.client, runtime.store, kind, run_id, plan, undoing=undo),
        method="PUT",
        safeguard=RecordSnapshot(runtime.store, runtime.clock, kind, run_id, plan),
    )
