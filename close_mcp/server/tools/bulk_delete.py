"""`create_bulk_delete` (toolset `delete`): permanently delete the leads of a selection, as
one Close bulk job, always confirmed by the number of leads typed; a backup of the leads is
taken first (`close-mcp restore` brings them back, with new ids)."""

from close_mcp.safety.snapshot_writer import BackupBeforeDelete
from close_mcp.server.tools.bulk import selection_request
from close_mcp.server.tools.declare import CHANGES, Invocation, WriteTool
from close_mcp.server.tools.selection import BulkSelection
from close_mcp.wording import leads
from close_mcp.writes.request import WriteRequest


async def prepare_delete(invocation: Invocation, args: BulkSelection) -> WriteRequest:
    runtime, call = invocation.runtime, invocation.call
    request = await selection_request(
        invocation,
        args,
        tool="create_bulk_delete",
        action="delete",
        kind="delete",
        fields={},
        describe=lambda n: f"Bulk delete: permanently delete {leads(n)}",
    )

    async def custom_field_ids() -> list[str]:
        return [cf.id for cf in await call.catalog.custom_fields()]

    backup = BackupBeforeDelete(
        runtime.settings, runtime.clock, call.client, runtime.store, custom_field_ids
    )
    return backup.prepare(request).attach(request)


TOOLS = (
    WriteTool(
        name="create_bulk_delete",
        toolset="delete",
        title="Bulk delete leads",
        description="Permanently delete the leads of a selection, with their contacts and "
        "activities (one Close bulk job). Always confirmed.",
        annotations=CHANGES,
        arguments=BulkSelection,
        prepare=prepare_delete,
    ),
)
