"""What the per-record write tools (`update_opportunities`, `update_tasks`) share at the MCP
surface: the lead selection (a search_leads handle, a filter or an s_query) narrowed to lead
ids, the steps of a call (an undo, or a run on the records a tool's own step selects), the
write request of a run or of its undo, and the declaration itself. Each tool module only
says how its records are selected and which fields are set (`RecordRun`).

The machinery (records, plan, snapshot, sending, undo) is `close_mcp.safety.records`.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

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
from close_mcp.selection.resolve import Selection, resolve_selection
from close_mcp.server.runtime import Call, Runtime
from close_mcp.server.tools.bulk import handle_selection
from close_mcp.server.tools.declare import Invocation, WriteTool, writes
from close_mcp.server.tools.selection import FilterArg, SelectionArg, SQueryArg
from close_mcp.writes.request import WriteRequest

# What undo does is in each tool's description ("`undo` takes a run id"): told once.
UndoArg = Annotated[str | None, Field(max_length=100, pattern=r"^[a-z]+_[0-9a-f]+$")]
ListRecords = Callable[[str | None], Awaitable[list[dict[str, Any]]]]


class RecordSelection(BaseModel):
    """The lead selection of a per-record tool: optional (the records' own criteria may do),
    and never "every lead" refused: one criterion is required, and MAX_RECORDS caps a run.
    No results_limit or sort of its own: a run acts on every record of the leads, never on
    the first (a handle's limit and order still choose the leads, as they did in search_leads).

    As for a bulk tool (`BulkSelection.UNLISTED`), `filter` is taken but not listed: the
    model describes the leads to search_leads and passes its `selection` handle."""

    UNLISTED: ClassVar[frozenset[str]] = frozenset({"filter"})

    filter: FilterArg = None
    s_query: SQueryArg = None
    selection: SelectionArg = None


class RecordArguments(RecordSelection):
    """A per-record tool's arguments besides its own (`where`, `change`): the lead selection,
    or the run to undo instead."""

    undo: UndoArg = None


@dataclass(frozen=True)
class RecordRun:
    """What a tool's own step works out for a run: its criteria (`where`), the fields set
    on each record (None: the records are deleted), the change as the preview shows it, and
    how records are listed (of one lead, or None: of any lead)."""

    where: BaseModel
    target: dict[str, Any] | None
    shown: dict[str, Any]
    list_records: ListRecords


PlanStep = Callable[[Call, Any], Awaitable[RecordRun]]
PrepareStep = Callable[[Invocation, Any], Awaitable[WriteRequest]]


def record_prepare(kind: RecordKind, plan: PlanStep) -> PrepareStep:
    """A per-record tool's `prepare`: the undo its arguments name, or a run `plan` works out."""

    async def prepare(invocation: Invocation, args: RecordArguments) -> WriteRequest:
        return await record_request(invocation, args, kind, plan=plan)

    return prepare


async def change_target(
    call: Call,
    change: BaseModel,
    close_names: Mapping[str, str],
    *,
    users: frozenset[str] = frozenset(),
    resolved: Mapping[str, tuple[Any, Any]] | None = None,
    nothing: str = "give at least one field to set",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields a change sets, under Close's names (`close_names`), and the change as the
    preview shows it. A field in `users` names a user (resolved to an id); one in `resolved`
    the tool resolved itself (Close's value, the value shown); the rest go as given."""
    target: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    for name, value in change.model_dump(mode="json", exclude_none=True).items():
        sent = close_names[name]
        if resolved and name in resolved:
            target[sent], shown[name] = resolved[name]
        elif name in users:
            user = await call.catalog.resolve_user(value, path=f"change.{name}")
            target[sent], shown[name] = user.id, f"{user.name} ({user.id})"
        else:
            target[sent] = shown[name] = value
    if not target:
        raise ArgumentError("change", nothing)
    return target, shown


def record_tool(
    kind: RecordKind,
    plan: PlanStep,
    arguments: type[RecordArguments],
    *,
    title: str,
    description: str,
) -> WriteTool:
    """A per-record tool's declaration: its toolset and its confirmation action are both
    named after the records (`opportunities`, `tasks`); its `prepare` is `record_prepare`."""
    return WriteTool(
        name=kind.tool,
        toolset=kind.plural,
        title=title,
        description=description,
        annotations=writes(),
        arguments=arguments,
        prepare=record_prepare(kind, plan),
    )


async def user_id(call: Call, name: str | None, path: str) -> str | None:
    """The id of the user a criterion names (None: none named)."""
    return None if name is None else (await call.catalog.resolve_user(name, path=path)).id


async def record_request(
    invocation: Invocation,
    args: RecordArguments,
    kind: RecordKind,
    *,
    plan: PlanStep,
) -> WriteRequest:
    """The write request of one call: the undo of run `args.undo`, or a run on the records
    `plan` selects (narrowed to the leads of the lead selection, if one is given)."""
    runtime, call = invocation.runtime, invocation.call
    if args.undo is not None:
        undo_alone(args)
        return await undo_request(runtime, call, kind, action=kind.plural, run_id=args.undo)
    selection = await lead_selection(invocation, args)  # a handle refused before any read
    run = await plan(call, args)
    leads, shown_leads = await selected_leads(call, selection)
    what = described(run.where, shown_leads, run.shown)
    records = await collect(kind, run.list_records, leads)
    request_plan = plan_changes(kind, records, run.target)
    describe = "delete" if run.target is None else "update"
    return _request(runtime, call, kind, kind.plural, what, request_plan, describe)


def undo_alone(args: BaseModel) -> None:
    """An undo comes alone: with a selection or a change the call would mean two things."""
    fields = type(args).model_fields
    named = [n for n in fields if n != "undo" and getattr(args, n) not in (None, False)]
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
            "where",
            "give at least one criterion (where, or the leads: selection, filter or s_query)",
        )
    shown: dict[str, Any] = {"where": criteria}
    if lead_selection is not None:
        shown["leads"] = lead_selection
    return {**shown, "change": change}


async def lead_selection(invocation: Invocation, args: RecordSelection) -> Selection | None:
    """The lead selection the arguments name (None: none given): a search_leads handle,
    exactly as a bulk tool takes it, or a filter or s_query resolved as search_leads does."""
    if args.selection is not None:
        also = [n for n in ("filter", "s_query") if getattr(args, n) is not None]
        return await handle_selection(invocation, args.selection, also)
    if args.filter is None and args.s_query is None:
        return None
    return await resolve_selection(
        filter=args.filter,
        s_query=args.s_query,
        allow_all_leads=True,  # the records' own criteria still narrow (one is required)
        catalog=invocation.call.catalog,
    )


async def selected_leads(
    call: Call, selection: Selection | None
) -> tuple[list[str] | None, dict[str, Any] | None]:
    """The lead ids of the lead selection, with its resolved s_query (None, None: none, or
    one that matches every lead and so narrows nothing)."""
    if selection is None or selection.worded_every_lead:
        return None, None
    ids = await lead_ids(call.client, selection.s_query, selection.results_limit, selection.sort)
    shown: dict[str, Any] = {"s_query": selection.s_query}
    if selection.results_limit is not None:
        shown["results_limit"] = selection.results_limit
    if selection.sort:
        shown["sort"] = selection.sort
    return ids, shown


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
        send=plan_sender(
            call.client, runtime.store, kind, run_id, plan, clock=runtime.clock, undoing=undo
        ),
        method="PUT",
        safeguard=RecordSnapshot(runtime.store, runtime.clock, kind, run_id, plan),
    )
