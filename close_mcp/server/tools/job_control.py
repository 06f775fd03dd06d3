"""Stopping and restarting a running bulk job: `pause_bulk_job`, `resume_bulk_job` (toolset `jobs`).

Close pauses and resumes with `PUT {"status": "paused" | "resuming"}` on the job. The job is
read first and a change Close would refuse (a finished job, pausing a paused one, resuming
one that is not paused, resuming more than 7 days after the pause) is refused here with the
reason, without the write. Close does not say when a job was paused: a paused job's
`date_updated` is taken as the pause time (it stops moving while the job is paused). Close's
own refusals (400/404/405) become the same "cannot pause/resume this job" error. Every change
and every refusal is audited.

Pausing is the safe direction and needs no confirmation. Resuming undoes a pause, so it goes
through the write pipeline like the action the job is: resuming a delete is always
confirmed, resuming an edit, email or sequence subscription when that action
(`edit`, `email`, `sequences`) is in CLOSE_MCP_CONFIRM, as it is by default. The preview says
what is left to do; the token binds the job and the number of objects left.
"""

import logging
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from close_mcp.clock import utc_datetime
from close_mcp.close.client import CloseClient
from close_mcp.close.jobs import (
    RUNNING_STATUSES,
    CrmResult,
    JobKind,
    JobSummary,
    job_kind,
    job_path,
    summarize_job,
)
from close_mcp.close.times import close_time
from close_mcp.errors import CloseAPIError, CloseError
from close_mcp.server.runtime import Runtime
from close_mcp.server.tools.declare import CLOSE_REFUSALS, DirectTool, Invocation, WriteTool, writes
from close_mcp.server.tools.job_reads import JobArguments
from close_mcp.writes.audit import AuditOutcome
from close_mcp.writes.background import STOPPED, decide, server_job, summary
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.results import WriteResult
from close_mcp.writes.sender import Sender

log = logging.getLogger(__name__)

RESUME_LIMIT: Final = timedelta(days=7)
# The CLOSE_MCP_CONFIRM action a job of each kind is, and what it does to what it reaches.
ACTIONS: Final[dict[JobKind, str]] = {
    "edit": "edit",
    "email": "email",
    "sequence_subscription": "sequences",
    "delete": "delete",
}
# The toolset whose tools do what a job of each kind does: resuming one needs it enabled.
TOOLSETS: Final[dict[JobKind, str]] = {
    "edit": "edit",
    "email": "email",
    "sequence_subscription": "sequences",
    "delete": "delete",
}
EFFECTS: Final[dict[JobKind, str]] = {
    "edit": "Each object left is a lead the edit changes.",
    "email": "Each object left is an email sent to a customer; a sent email cannot be recalled.",
    "sequence_subscription": "Each object left is a contact whose sequence subscription "
    "changes (a subscribed contact gets the sequence's emails).",
    "delete": "Each object left is a lead deleted with its contacts and activities; Close "
    "cannot undo it.",
}


def _close_refusal(exc: Exception) -> bool:
    """Close saying no to this pause or resume: audited as refused, not failed."""
    return isinstance(exc, CloseAPIError) and exc.status in CLOSE_REFUSALS


# Pausing twice is the same as pausing once: the repeat sends nothing and says so.
CONTROL = writes(destructive=False, idempotent=True)
# Resuming restarts whatever the job does: deleting leads, sending emails. Not idempotent: a
# repeat finds the job no longer paused and is refused (and each resume is confirmed anew).
RESUME = writes(open_world=True)

Verb = Literal["pause", "resume"]


class JobControlResult(CrmResult):
    """What pause_bulk_job answers (resume_bulk_job answers a `WriteResult`)."""

    message: str = Field(description="What changed and what to do next.")
    previous_status: str = Field(description="The job's status before this call.")
    job: JobSummary = Field(description="The job as Close answered after the change.")
    resume_before: str | None = Field(
        default=None, description="After a pause: Close refuses to resume after this time."
    )

    def holds_crm_text(self) -> bool:
        return self.job.quotes_crm_text


def _when(raw: str | None) -> datetime | None:
    return close_time(raw)


def _problem(verb: Verb, job: JobSummary, now: datetime) -> str | None:
    """Why Close would refuse this change, or None to go ahead."""
    if job.finished:
        return f"it is {job.status}, and a finished job cannot be paused or resumed"
    if verb == "pause":
        return None  # an already paused job: `_Control.pause` answers without a write
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
    """One pause (from the read to the audit line) or the checks before a resume (which the
    pipeline sends)."""

    def __init__(self, runtime: Runtime, client: CloseClient, verb: Verb, job_id: str) -> None:
        self.runtime = runtime
        self.client = client
        self.verb = verb
        self.job_id = job_id
        self.path = job_path(job_kind(job_id), job_id)
        self.body = {"status": "paused" if verb == "pause" else "resuming"}
        self.sender = Sender(runtime.audit, client, f"{verb}_bulk_job")
        # The job's selection (s_query, results_limit) and sort, once read.
        self.selection: JobSummary | None = None
        self.sort: list[dict[str, Any]] | None = None

    def refuse(self, reason: str) -> ToolError:
        self._record("refused", reason=reason)
        return ToolError(f"cannot {self.verb} this job: {reason}")

    def _record(self, outcome: AuditOutcome, *, reason: str | None = None) -> None:
        self.sender.record(
            outcome, path="/" + self.path, body=self.body, job_id=self.job_id, reason=reason
        )

    async def checked(self) -> JobSummary:
        """The job as Close has it now (its selection kept aside); refused (and audited) when
        the change cannot happen."""
        try:
            raw = await self.client.get(self.path)
            before = summarize_job(raw)
            self.selection = summarize_job(raw, with_query=True)
            sort = raw.get("sort") if isinstance(raw, dict) else None
            self.sort = sort if isinstance(sort, list) and sort else None
        except CloseAPIError as exc:
            if exc.status in CLOSE_REFUSALS:
                raise self.refuse(exc.message) from exc
            raise
        problem = _problem(self.verb, before, utc_datetime(self.runtime.clock))
        if problem is not None:
            raise self.refuse(problem)
        return before

    async def pause(self) -> JobControlResult:
        before = await self.checked()
        if before.status == "paused":
            return self._result(before, before, already=True)
        try:
            answer: Any = await self.sender.send(
                "PUT", self.path, self.body, job_id=self.job_id, unaudited=_close_refusal
            )
        except CloseAPIError as exc:
            if exc.status in CLOSE_REFUSALS:
                raise self.refuse(exc.message) from exc
            raise
        # Close accepted the pause: it is audited first, and reading the job back cannot
        # turn it into an error (the job as read before, paused, stands in).
        self._record("submitted")
        try:
            if not (isinstance(answer, dict) and answer.get("id") == self.job_id):
                answer = await self.client.get(self.path)  # Close's answer shape is unverified
            after = summarize_job(answer)
        except Exception as exc:
            log.error("pause_bulk_job: %s was paused, but reading it back failed: %s",
                      self.job_id, exc)  # fmt: skip
            after = before.model_copy(update={"status": "paused"})
        return self._result(before, after)

    def _result(
        self, before: JobSummary, after: JobSummary, *, already: bool = False
    ) -> JobControlResult:
        progress = ""
        if after.n_objects is not None:
            progress = f" at {after.n_objects_processed or 0} of {after.n_objects} objects"
        paused_at = _when(after.date_updated) or utc_datetime(self.runtime.clock)
        deadline = (paused_at + RESUME_LIMIT).isoformat(timespec="seconds")
        done = (
            f"Job {after.id} was already paused{progress}; nothing was sent."
            if already
            else f"Paused job {after.id}{progress}."
        )
        return JobControlResult(
            message=f"{done} Resume it with resume_bulk_job before {deadline}; Close refuses "
            "later.",
            previous_status=before.status,
            job=after,
            resume_before=deadline,
        )


async def _stop(runtime: Runtime, job_id: str, state: dict[str, Any]) -> JobControlResult:
    """Pausing a server job not sent yet stops it for good (`background.decide`): nothing is
    sent; the job audits the refusal when its read ends."""
    before = summary(job_id, state)
    if state.get("state") in ("refused", "failed"):
        raise ToolError(
            f"cannot pause this job: it ended before anything was sent ({state.get('reason')})"
        )
    if await decide(runtime.store, job_id, "stop") != "stop":
        raise ToolError(
            "cannot pause this job yet: it is being sent to Close right now; call "
            "pause_bulk_job again in a moment to pause Close's job"
        )
    return JobControlResult(
        message=f"Stopped job {job_id} before anything was sent to Close: it will not be "
        "sent and cannot be resumed; call the tool again for a fresh preview if it is still "
        "wanted.",
        previous_status=before.status,
        job=summary(job_id, {"state": "refused", "reason": STOPPED}),
    )


def _left(job: JobSummary) -> tuple[int, str] | None:
    """How many objects the job has left, and a sentence on where it stopped; None when
    Close has not counted its selection yet."""
    if job.n_objects is None:
        if job.n_leads is None:
            return None
        done = job.n_leads_processed or 0
        return max(job.n_leads - done, 0), (
            f"Job {job.id} was paused at {done} of {job.n_leads} leads."
        )
    done = job.n_objects_processed or 0
    leads = f" ({job.n_leads} leads selected)" if job.n_leads is not None else ""
    return max(job.n_objects - done, 0), (
        f"Job {job.id} was paused at {done} of {job.n_objects} objects{leads}."
    )


async def _resumed_anyway(
    control: _Control, request: WriteRequest, refusal: CloseAPIError
) -> WriteResult | None:
    """Close refused the PUT, yet the job (paused when this call checked it) runs now: a first
    try whose answer was lost to a 5xx resumed it before the client retried, or someone else
    did. Read the job before reporting "cannot resume"; None if it is not running."""
    try:
        job = summarize_job(await control.client.get(control.path))
    except CloseError:
        return None
    if job.status not in RUNNING_STATUSES and job.status != "done":
        return None
    message = (
        f"Close refused the resume ({refusal.message}), but job {job.id} is now {job.status}: "
        "it was resumed (by an earlier try of this call whose answer was lost, or meanwhile "
        "by someone else). Follow it with wait_for_bulk_job; do not resume it again."
    )
    control.sender.record(
        "submitted", path="/" + control.path, body=control.body, job_id=job.id, reason=message
    )
    return WriteResult(
        status="submitted", tool=request.tool, message=message, preview=request.preview(), job=job
    )


async def resume_request(control: _Control, job: JobSummary) -> WriteRequest:
    """Resuming `job`, as a write: the PUT, what is left to do, and the job's own action.

    A job paused before Close counted its selection has no count to show: its query is
    counted now (never shown or confirmed as 0), and the token binds that count and those
    leads, as for a new bulk action."""

    def request(count: int, unit: str, notes: list[str], **selection: Any) -> WriteRequest:
        return WriteRequest(
            tool="resume_bulk_job",
            action=ACTIONS[job.kind],
            path=control.path,
            body=control.body,
            matched=count,
            summary=f"Resume the paused bulk {job.kind} job {job.id}: {count} "
            f"{unit}{'s' if count != 1 else ''} left",
            job_kind=job.kind,
            method="PUT",
            when_empty=None,  # a job with nothing left may still be resumed, to let it finish
            notes=[*notes, EFFECTS[job.kind]],
            **selection,
        )

    left = _left(job)
    if left is not None:
        count, where = left
        return request(count, "object", [f"{where} Resuming carries on with the {count} left."])
    selection = control.selection
    if selection is None or not isinstance(selection.s_query, dict):
        raise control.refuse(
            "Close has not counted its selection yet and does not show its query; wait until "
            "get_bulk_job shows n_objects, then resume it"
        )
    count = await control.client.count(selection.s_query)
    if selection.results_limit is not None:
        count = min(count, selection.results_limit)
    note = (
        f"Job {job.id} was paused before Close counted its selection: its query matches "
        f"{count} leads now (counted for this preview). Resuming carries on with them."
    )
    return request(
        count,
        "lead",
        [note],
        s_query=selection.s_query,
        results_limit=selection.results_limit,
        sort=control.sort,
    )


async def pause_bulk_job(invocation: Invocation, args: JobArguments) -> JobControlResult:
    runtime, job_id = invocation.runtime, args.job_id
    state = await server_job(runtime.store, runtime.clock, job_id)
    if state is not None and not state.get("job_id"):
        return await _stop(runtime, job_id, state)
    if state is not None:  # the server job was sent: pausing it pauses Close's job
        job_id = str(state["job_id"])
    return await _Control(runtime, invocation.call.client, "pause", job_id).pause()


async def prepare_resume(invocation: Invocation, args: JobArguments) -> WriteRequest:
    runtime = invocation.runtime
    control = _Control(runtime, invocation.call.client, "resume", args.job_id)
    kind = job_kind(args.job_id)
    if TOOLSETS[kind] not in runtime.settings.toolsets:
        # Resuming does what the job does: it needs that action's tools, not only `jobs`.
        raise control.refuse(
            f"{args.job_id} is a bulk {kind} job, and resuming it needs the {TOOLSETS[kind]} "
            "toolset, which this server does not enable (CLOSE_MCP_TOOLSETS)"
        )
    return await resume_request(control, await control.checked())


async def _recover_resume(
    invocation: Invocation, args: JobArguments, request: WriteRequest, refusal: CloseAPIError
) -> WriteResult | None:
    control = _Control(invocation.runtime, invocation.call.client, "resume", args.job_id)
    return await _resumed_anyway(control, request, refusal)


TOOLS = (
    DirectTool(
        name="pause_bulk_job",
        toolset="jobs",
        title="Pause a bulk job",
        description="Pause a running Close bulk job; what it did stays done. Not confirmed; "
        "resume_bulk_job restarts it within 7 days. A repeat changes nothing.",
        annotations=CONTROL,
        arguments=JobArguments,
        run=pause_bulk_job,
        result=JobControlResult,
    ),
    WriteTool(
        name="resume_bulk_job",
        toolset="jobs",
        title="Resume a paused bulk job",
        description="Restart a paused bulk job where it stopped; confirmed like the job's own "
        "action. Close refuses a job paused over 7 days.",
        annotations=RESUME,
        arguments=JobArguments,
        prepare=prepare_resume,
        refused=lambda args: "cannot resume this job",
        recover=_recover_resume,
    ),
)
