"""Stopping and restarting a running bulk job: `pause_bulk_job`, `resume_bulk_job` (toolset `jobs`).

Close pauses and resumes with `PUT {"status": "paused" | "resuming"}` on the job. Both are
reversible, so they need no confirmation, but the job is read first and a change Close would
refuse (a finished job, pausing a paused one, resuming one that is not paused, resuming more
than 7 days after the pause) is refused here with the reason, without the write. Close does
not say when a job was paused: a paused job's `date_updated` is taken as the pause time (it
stops moving while the job is paused). Close's own refusals (400/404/405) become the same
"cannot pause/resume this job" error. Every change and every refusal is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from close_mcp.clock import utc_datetime
from close_mcp.close.client import CloseClient
from close_mcp.close.jobs import CRM_DATA_NOTICE, JobSummary, job_kind, job_path, summarize_job
from close_mcp.errors import CloseAPIError
from close_mcp.server.runtime import Runtime
from close_mcp.server.tools import Registrar
from close_mcp.server.tools.job_reads import JobId
from close_mcp.writes.audit import AuditOutcome
from close_mcp.writes.sender import Sender

RESUME_LIMIT: Final = timedelta(days=7)
CLOSE_REFUSALS: Final = frozenset({400, 404, 405})


def _close_refusal(exc: Exception) -> bool:
    """Close saying no to this pause or resume: audited as refused, not failed."""
    return isinstance(exc, CloseAPIError) and exc.status in CLOSE_REFUSALS


CONTROL = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

Verb = Literal["pause", "resume"]


class JobControlResult(BaseModel):
    message: str = Field(description="What changed and what to do next.")
    previous_status: str = Field(description="The job's status before this call.")
    job: JobSummary = Field(description="The job as Close answered after the change.")
    resume_before: str | None = Field(
        default=None, description="After a pause: Close refuses to resume after this time."
    )
    crm_data_notice: str = CRM_DATA_NOTICE


def _when(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _problem(verb: Verb, job: JobSummary, now: datetime) -> str | None:
    """Why Close would refuse this change, or None to go ahead."""
    if job.finished:
        return f"it is {job.status}, and a finished job cannot be paused or resumed"
    if verb == "pause":
        if job.status == "paused":
            since = f" since {job.date_updated}" if job.date_updated else ""
            return f"it is already paused{since}; use resume_bulk_job to restart it"
        return None
    if job.status != "paused":
        return f"it is {job.status}, not paused; only a paused job can be resumed"
    paused_at = _when(job.date_updated)
    if paused_at is not None and now - paused_at > RESUME_LIMIT:
        days = (now - paused_at).total_seconds() / 86400
        return (
            f"it was paused at {job.date_updated} ({days:.1f} days ago), and Close does not "
            "resume a job paused more than 7 days ago; start a new bulk action instead"
        )
    return None


class _Control:
    """One pause or resume, from the read to the audit line."""

    def __init__(self, runtime: Runtime, client: CloseClient, verb: Verb, job_id: str) -> None:
        self.runtime = runtime
        self.client = client
        self.verb = verb
        self.job_id = job_id
        self.path = job_path(job_kind(job_id), job_id)
        self.body = {"status": "paused" if verb == "pause" else "resuming"}
        self.sender = Sender(runtime.audit, client, f"{verb}_bulk_job")

    def refuse(self, reason: str) -> ToolError:
        self._record("refused", reason=reason)
        return ToolError(f"cannot {self.verb} this job: {reason}")

    def _record(self, outcome: AuditOutcome, *, reason: str | None = None) -> None:
        self.sender.record(
            outcome, path="/" + self.path, body=self.body, job_id=self.job_id, reason=reason
        )

    async def run(self) -> JobControlResult:
        try:
            before = summarize_job(await self.client.get(self.path))
        except CloseAPIError as exc:
            if exc.status in CLOSE_REFUSALS:
                raise self.refuse(exc.message) from exc
            raise
        problem = _problem(self.verb, before, utc_datetime(self.runtime.clock))
        if problem is not None:
            raise self.refuse(problem)
        try:
            answer: Any = await self.sender.send(
                "PUT", self.path, self.body, job_id=self.job_id, unaudited=_close_refusal
            )
        except CloseAPIError as exc:
            if exc.status in CLOSE_REFUSALS:
                raise self.refuse(exc.message) from exc
            raise
        if not (isinstance(answer, dict) and answer.get("id") == self.job_id):
            answer = await self.client.get(self.path)  # Close's answer shape is unverified
        after = summarize_job(answer)
        self._record("submitted")
        return self._result(before, after)

    def _result(self, before: JobSummary, after: JobSummary) -> JobControlResult:
        progress = ""
        if after.n_objects is not None:
            progress = f" at {after.n_objects_processed or 0} of {after.n_objects} objects"
        if self.verb == "pause":
            paused_at = _when(after.date_updated) or utc_datetime(self.runtime.clock)
            deadline = (paused_at + RESUME_LIMIT).isoformat(timespec="seconds")
            return JobControlResult(
                message=f"Paused job {after.id}{progress}. Resume it with resume_bulk_job "
                f"before {deadline}; Close refuses later.",
                previous_status=before.status,
                job=after,
                resume_before=deadline,
            )
        return JobControlResult(
            message=f"Resuming job {after.id}{progress}; follow it with wait_for_bulk_job.",
            previous_status=before.status,
            job=after,
        )


def register(reg: Registrar) -> None:
    runtime = reg.runtime

    async def pause_bulk_job(ctx: Context, job_id: JobId) -> JobControlResult:
        client = runtime.client_for(ctx.headers)
        return await _Control(runtime, client, "pause", job_id).run()

    async def resume_bulk_job(ctx: Context, job_id: JobId) -> JobControlResult:
        client = runtime.client_for(ctx.headers)
        return await _Control(runtime, client, "resume", job_id).run()

    reg.add(
        pause_bulk_job,
        name="pause_bulk_job",
        toolset="jobs",
        title="Pause a bulk job",
        description="Pause a running Close bulk job (edit, email, sequence subscription, "
        "delete) so it stops touching more leads; what it already did stays done. Needs no "
        "confirmation: resume_bulk_job restarts it, within 7 days. A finished or already "
        "paused job is refused.",
        annotations=CONTROL,
    )
    reg.add(
        resume_bulk_job,
        name="resume_bulk_job",
        toolset="jobs",
        title="Resume a paused bulk job",
        description="Restart a bulk job paused with pause_bulk_job; it carries on where it "
        "stopped. Needs no confirmation. Close refuses jobs that are not paused or were "
        "paused more than 7 days ago. Follow it with wait_for_bulk_job.",
        annotations=CONTROL,
    )
