"""`restore_leads`: bring back deleted leads, from a delete's backup or Close's event log.

The sources, the plan and its sending are `close_mcp.safety.restore_plan`; this module is the
MCP tool: it hands the plan to the pipeline as one write, confirmed by the typed count.

No `from __future__ import annotations` here (see `writing.py`).
"""

from typing import Annotated, Any

from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from mcp.types import ToolAnnotations
from pydantic import Field

from close_mcp.safety.restore_plan import TOOL, prepare_restore
from close_mcp.server.tools import Registrar, tool_errors
from close_mcp.server.tools.selection import DryRunArg, TokenArg
from close_mcp.server.tools.writing import confirmer, run_write
from close_mcp.writes.pipeline import WriteRequest, WriteResult
from close_mcp.writes.progress import Progress

BackupArg = Annotated[
    str | None,
    Field(
        max_length=100,
        pattern=r"^(store:backup:)?bulkdelete_[A-Za-z0-9]+$",
        description="A create_bulk_delete job id.",
    ),
]
SinceArg = Annotated[
    str | None,
    Field(
        max_length=40,
        description="Or: deleted since this date (30 days back at most).",
    ),
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


def register(reg: Registrar) -> None:
    runtime = reg.runtime

    @tool_errors
    async def prepare(
        ctx: Context,
        backup: BackupArg,
        deleted_since: SinceArg,
        deleted_by: ByArg,
        lead_ids: LeadIdsArg,
    ) -> WriteRequest:
        return await prepare_restore(
            runtime.store,
            runtime.clock,
            runtime.client_for(ctx.headers),
            backup=backup,
            deleted_since=deleted_since,
            deleted_by=deleted_by,
            lead_ids=lead_ids,
            sandbox=runtime.settings.sandbox,
            progress=Progress(ctx.report_progress, runtime.clock),
        )

    confirm = confirmer(runtime, prepare)

    async def restore_leads(
        ctx: Context,
        request: Annotated[WriteRequest, Resolve(prepare)],
        answer: Annotated[ElicitationResult[Any], Resolve(confirm)],
        backup: BackupArg = None,
        deleted_since: SinceArg = None,
        deleted_by: ByArg = None,
        lead_ids: LeadIdsArg = None,
        dry_run: DryRunArg = False,
        confirmation_token: TokenArg = None,
    ) -> WriteResult:
        return await run_write(
            runtime, ctx, request, answer, dry_run=dry_run, token=confirmation_token
        )

    reg.add(
        restore_leads,
        name=TOOL,
        toolset="delete",
        title="Restore deleted leads",
        description="Re-create deleted leads (new ids, no activities) from a delete's backup or "
        "Close's event log.",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
