"""`update_tasks` (toolset `tasks`, opt-in): complete, reassign, reschedule or delete many lead
tasks, one paced request each, snapshotted (a deleted task whole), with undo.

This module only says how tasks are selected and which fields are set; the run is
`close_mcp.safety.records` (see `server/tools/records.py`).
"""

from datetime import date
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field

from close_mcp.close.crm import TASK_KEYS, TaskFilter, list_tasks
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

TOOL: Final = "update_tasks"
# A deleted task is created again (`POST /task/`) from these.
RECREATE: Final = ("_type", "lead_id", "contact_id", "assigned_to", "text", "date", "is_complete")
KIND: Final = RecordKind("task", "tasks", TOOL, "taskupd_", recreate=RECREATE)


class TaskWhere(BaseModel):
    """Which tasks, besides the lead selection: every given field must hold."""

    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(default=None, max_length=200)
    is_complete: bool | None = None
    due_after: date | None = None
    due_before: date | None = None


class TaskChange(BaseModel):
    """What to set; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    complete: bool | None = None
    assignee: str | None = Field(default=None, max_length=200)
    due_date: date | None = None


WhereArg = Annotated[TaskWhere | None, Field()]
ChangeArg = Annotated[TaskChange | None, Field()]
DeleteArg = Annotated[bool, Field(description="Instead of a change.")]


class TasksArguments(RecordSelection):
    where: WhereArg = None
    change: ChangeArg = None
    delete: DeleteArg = False
    undo: UndoArg = None


async def _target(call: Call, change: TaskChange) -> tuple[dict[str, Any], dict[str, Any]]:
    target: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    if change.complete is not None:
        target["is_complete"] = shown["complete"] = change.complete
    if change.assignee is not None:
        user = await call.catalog.resolve_user(change.assignee, path="change.assignee")
        target["assigned_to"] = user.id
        shown["assignee"] = f"{user.name} ({user.id})"
    if change.due_date is not None:
        target["date"] = shown["due_date"] = change.due_date.isoformat()
    if not target:
        raise ArgumentError("change", "give at least one field to set (or delete: true)")
    return target, shown


async def prepare(invocation: Invocation, args: TasksArguments) -> WriteRequest:
    """The write request of one call: a run on the selected tasks, or an undo."""
    runtime, call = invocation.runtime, invocation.call
    where, change, delete = args.where, args.change, args.delete
    if args.undo is not None:
        undo_alone(args, where=where, change=change, delete=delete)
        return await undo_request(runtime, call, KIND, action="tasks", run_id=args.undo)
    if (change is None) == (not delete):
        raise ArgumentError("change", "give exactly one of change or delete: true (or undo)")
    target: dict[str, Any] | None = None
    shown: dict[str, Any] = {"delete": True}
    if change is not None:
        target, shown = await _target(call, change)
    where = where or TaskWhere()
    leads, lead_selection = await selected_leads(call, args)
    what = described(where, lead_selection, shown)
    assignee = None
    if where.assignee is not None:
        assignee = (await call.catalog.resolve_user(where.assignee, path="where.assignee")).id

    async def list_records(lead_id: str | None) -> list[dict[str, Any]]:
        criteria = TaskFilter(
            assigned_to=assignee,
            lead_id=lead_id,
            is_complete=where.is_complete,
            due_from=where.due_after,
            due_to=where.due_before,
        )
        return await list_tasks(call.client, criteria, fields=(*TASK_KEYS, *RECREATE, "lead_name"))

    return await run_request(
        runtime,
        call,
        KIND,
        action="tasks",
        what=what,
        list_records=list_records,
        leads=leads,
        target=target,
        describe="delete" if target is None else "update",
    )


TOOLS = (
    WriteTool(
        name=TOOL,
        toolset="tasks",
        title="Update tasks",
        description="Complete, reassign, reschedule or delete the tasks of leads and/or "
        "`where`, one request each; `undo` takes a run id.",
        annotations=writes(),
        arguments=TasksArguments,
        prepare=prepare,
    ),
)
