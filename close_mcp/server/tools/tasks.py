"""`update_tasks` (toolset `tasks`, opt-in): complete, reassign, reschedule or delete many lead
tasks, one paced request each, snapshotted (a deleted task whole), with undo.

Here: which tasks (`TaskWhere`) and what is done to them (`TaskChange`, or `delete`); the
rest of a call is `server/tools/records.py`.
"""

from datetime import date
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field

from close_mcp.close.crm import TASK_KEYS, TaskFilter, list_tasks
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

TITLE: Final = "Update tasks"
DESCRIPTION: Final = (
    "Complete, reassign, reschedule or delete the tasks of leads and/or "
    "`where`, one request each; `undo` takes a run id."
)
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


# The change's fields, as Close names them.
CLOSE_NAMES: Final = {"complete": "is_complete", "assignee": "assigned_to", "due_date": "date"}
WhereArg = Annotated[TaskWhere | None, Field()]
ChangeArg = Annotated[TaskChange | None, Field()]
DeleteArg = Annotated[bool, Field(description="Instead of a change.")]


class TasksArguments(RecordArguments):
    where: WhereArg = None
    change: ChangeArg = None
    delete: DeleteArg = False


async def _run(call: Call, args: TasksArguments) -> RecordRun:
    """The change (or the delete) and the tasks it is made on (besides the lead selection)."""
    if (args.change is None) == (not args.delete):
        raise ArgumentError("change", "give exactly one of change or delete: true (or undo)")
    target: dict[str, Any] | None = None
    shown: dict[str, Any] = {"delete": True}
    if args.change is not None:
        target, shown = await change_target(call, args.change, CLOSE_NAMES,
                                            users=frozenset({"assignee"}),
                                            nothing="give at least one field to set "
                                            "(or delete: true)")  # fmt: skip
    where = args.where or TaskWhere()
    assignee = await user_id(call, where.assignee, "where.assignee")

    async def list_records(lead_id: str | None) -> list[dict[str, Any]]:
        criteria = TaskFilter(
            assigned_to=assignee,
            lead_id=lead_id,
            is_complete=where.is_complete,
            due_from=where.due_after,
            due_to=where.due_before,
        )
        return await list_tasks(call.client, criteria, fields=(*TASK_KEYS, *RECREATE, "lead_name"))

    return RecordRun(where, target, shown, list_records)


TOOLS = (record_tool(KIND, _run, TasksArguments, title=TITLE, description=DESCRIPTION),)
prepare: Final = TOOLS[0].prepare  # an undo, or a run on the records `_run` selects
