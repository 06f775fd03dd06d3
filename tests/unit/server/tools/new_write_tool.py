"""`mark_leads_qualified` (toolset `edit`): set the status of a selection's leads to
Qualified, as one Close bulk edit job, after a snapshot of the old values.

Not a tool of close_mcp: `test_registry.py` puts this module, and nothing else, into a copy of
the package, to show that a new write tool is one new module."""

from dataclasses import replace

from close_mcp.close.jobs import job_echo
from close_mcp.safety.snapshot_writer import SnapshotBeforeEdit
from close_mcp.server.tools.bulk import selection_request
from close_mcp.server.tools.declare import CHANGES, Invocation, WriteTool
from close_mcp.server.tools.selection import BulkSelection
from close_mcp.wording import leads
from close_mcp.writes.request import WriteRequest


async def prepare(invocation: Invocation, args: BulkSelection) -> WriteRequest:
    runtime, call = invocation.runtime, invocation.call
    status = await call.catalog.resolve_status("Qualified")
    request = await selection_request(
        invocation,
        args,
        tool="mark_leads_qualified",
        action="edit",
        kind="edit",
        fields={"type": "set_lead_status", "lead_status_id": status.id},
        describe=lambda n: f"Mark {leads(n)} as {status.label!r}",
    )
    request = replace(request, echo=job_echo("edit", request.body))
    snapshot = SnapshotBeforeEdit(runtime.settings, runtime.clock, call.client, runtime.store)
    return snapshot.prepare(request).attach(request)


TOOLS = (
    WriteTool(
        name="mark_leads_qualified",
        toolset="edit",
        title="Mark leads qualified",
        description="Set the status of the leads of a selection to Qualified (one Close bulk "
        "job). Undo: revert_bulk_edit.",
        annotations=CHANGES,
        arguments=BulkSelection,
        prepare=prepare,
    ),
)
