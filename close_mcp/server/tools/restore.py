"""`restore_leads`: bring back deleted leads, from a delete's backup or Close's event log.

The sources, the plan and its sending are `close_mcp.safety.restore_plan`; this module
declares the tool: the pipeline previews the plan as one write, confirmed by the typed count
like a delete.

No `from __future__ import annotations` here (see `declare.py`).
"""

from typing import Annotated

from pydantic import BaseModel, Field

from close_mcp.safety.restore_plan import TOOL, prepare_restore
from close_mcp.server.tools.declare import ADDS, Invocation, WriteTool
from close_mcp.writes.request import WriteRequest

BackupArg = Annotated[
    str | None,
    Field(
        max_length=100,
        pattern=r"^(store:backup:)?(bulkdelete|leadmerge)_[A-Za-z0-9]+$",
        description="A create_bulk_delete job id or merge_leads run_id.",
    ),
]
SinceArg = Annotated[
    str | None,
    Field(max_length=40, description="Or: deleted since this date (30 days back at most)."),
]
ByArg = Annotated[
    str | None,
    Field(
        max_length=100,
        pattern=r"^user_[A-Za-z0-9]+$",
        description="With deleted_since: by this user_ id.",
    ),
]
LeadIdsArg = Annotated[
    list[Annotated[str, Field(max_length=100, pattern=r"^lead_[A-Za-z0-9]+$")]] | None,
    Field(max_length=10_000, description="Only these leads."),
]


class RestoreArguments(BaseModel):
    backup: BackupArg = None
    deleted_since: SinceArg = None
    deleted_by: ByArg = None
    lead_ids: LeadIdsArg = None


async def prepare_restore_leads(invocation: Invocation, args: RestoreArguments) -> WriteRequest:
    runtime = invocation.runtime
    return await prepare_restore(
        runtime.store,
        runtime.clock,
        invocation.call.client,
        backup=args.backup,
        deleted_since=args.deleted_since,
        deleted_by=args.deleted_by,
        lead_ids=args.lead_ids,
        sandbox=runtime.settings.sandbox,
        progress=invocation.progress(),
    )


TOOLS = (
    WriteTool(
        name=TOOL,
        toolset="delete",
        title="Restore deleted leads",
        description="Re-create deleted leads (new ids, no activities) from a delete's backup or "
        "Close's event log.",
        annotations=ADDS,
        arguments=RestoreArguments,
        prepare=prepare_restore_leads,
    ),
)
