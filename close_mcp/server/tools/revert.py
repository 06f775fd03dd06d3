"""`revert_bulk_edit`: put back the values a bulk edit overwrote, from its snapshot.

The planning (what goes back, the requests: `close_mcp.safety.revert_plan`) and the sending
(how they are sent, recorded and refused while an earlier revert runs or is being sent:
`close_mcp.safety.revert`) are in `safety/`; this module is the MCP tool: it reads the
snapshot and the jobs from the state store and Close, builds the plan and hands it to the
pipeline as one write.
"""

from typing import Annotated, Final

from pydantic import BaseModel, Field

from close_mcp.close.jobs import PAUSED_STATUS, job_path
from close_mcp.errors import ArgumentError
from close_mcp.safety.revert import (
    check_jobs,
    check_not_sending,
    keep_plan,
    plan_revert,
    plan_sender,
)
from close_mcp.safety.revert_messages import plan_notes
from close_mcp.safety.revert_plan import plan_body, plan_document
from close_mcp.safety.snapshot_reader import load_edit_snapshot
from close_mcp.server.tools.declare import CHANGES, Invocation, WriteTool
from close_mcp.wording import leads
from close_mcp.writes.request import WriteRequest

TOOL: Final = "revert_bulk_edit"

EditJobIdArg = Annotated[
    str,
    Field(
        max_length=100,
        pattern=r"^bulk[a-z]+_[A-Za-z0-9]+$",  # another kind is told what undoes it
        description="The bulk edit to undo (bulkedit_...).",
    ),
]
IncludeChangedArg = Annotated[
    bool,
    Field(description="Also put back leads changed since the edit (normally left alone)."),
]


OTHER_UNDO: Final = {
    "bulkdelete_": "a bulk delete: its leads come back from the backup taken before it, with "
    "restore_leads with backup {job_id} (new ids; fields, custom fields and contacts come back, "
    "activities do not)",
    "bulkemail_": "a bulk email: emails sent cannot be called back; pause_bulk_job stops one "
    "still running",
    "bulkseqsub_": "a sequence subscription job: create_bulk_sequence_subscription with "
    "action_type pause on the same selection stops the subscriptions it made; pause_bulk_job "
    "stops one still running",
}


def _only_edits(job_id: str) -> None:
    """A revert of another kind of job says what undoes that kind instead."""
    if job_id.startswith("bulkedit_"):
        return
    for prefix, undo in OTHER_UNDO.items():
        if job_id.startswith(prefix):
            raise ArgumentError(
                "job_id",
                f"{job_id} is {undo.format(job_id=job_id)}; revert_bulk_edit undoes bulk edits "
                "(bulkedit_...) only",
            )
    raise ArgumentError(
        "job_id", f"{job_id!r} is not a bulk edit id; revert_bulk_edit takes bulkedit_..."
    )


class RevertArguments(BaseModel):
    job_id: EditJobIdArg
    include_changed_since: IncludeChangedArg = False


async def prepare_revert(invocation: Invocation, args: RevertArguments) -> WriteRequest:
    job_id, runtime = args.job_id, invocation.runtime
    _only_edits(job_id)
    snapshot = await load_edit_snapshot(runtime.settings, runtime.store, job_id)
    await check_not_sending(runtime.store, job_id)
    call = invocation.call
    status = await check_jobs(call.client, job_id, snapshot)
    progress = invocation.progress()
    plan = await plan_revert(
        call.client, runtime.store, snapshot, args.include_changed_since, progress
    )
    # The preview shows the first few of each list; the whole plan is read on demand.
    await keep_plan(runtime.store, plan_document(snapshot, plan, args.include_changed_since))
    labels: dict[str, str] = {}
    if snapshot.field == "status_id":
        labels = {s.id: s.label for s in await call.catalog.lead_statuses()}
    notes = plan_notes(snapshot, plan, args.include_changed_since, labels)
    if status == PAUSED_STATUS:
        notes.append(
            "The edit is paused: resuming it later would apply it again to the leads it "
            "had not reached."
        )
    if not plan.requests:
        notes.append("Nothing to revert.")
    return WriteRequest(
        tool=TOOL,
        action="edit",
        path=job_path("edit") if plan.starts_jobs else "lead/",
        body=plan_body(snapshot, plan, args.include_changed_since),
        matched=plan.leads,
        summary=f"Revert {job_id}: put the old value back on {leads(plan.leads)}",
        sample=plan.sample,
        notes=notes,
        send=plan_sender(runtime.clock, runtime.store, snapshot, plan.requests, plan.leads),
        when_empty="nothing to revert: no lead still has the value the edit set",
        progress=progress,
    )


TOOLS = (
    WriteTool(
        name=TOOL,
        toolset="edit",
        title="Revert a bulk edit",
        description="Undo a create_bulk_edit: put back the values it overwrote, lead by lead, "
        "from its snapshot; leads changed since are left alone and reported. For a finished or "
        "paused edit.",
        annotations=CHANGES,
        arguments=RevertArguments,
        prepare=prepare_revert,
    ),
)
