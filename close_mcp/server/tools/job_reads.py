"""Following bulk jobs: list, read, and wait with progress notifications (toolset `jobs`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from close_mcp.close.jobs import (
    JOB_KINDS,
    RUNNING_STATUSES,
    CrmResult,
    JobDetail,
    JobKind,
    JobSummary,
    job_kind,
    job_path,
    summarize_job,
)
from close_mcp.close.times import close_time
from close_mcp.server.tools.declare import DirectTool, Invocation
from close_mcp.writes.background import server_job, summary

POLL_INTERVAL_S = 1.0
MAX_SCAN = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

JobId = Annotated[
    str,
    Field(
        description="bulkedit_, bulkemail_, bulkseqsub_ or bulkdelete_ id.",
        pattern=r"^bulk(edit|email|seqsub|delete)_[A-Za-z0-9]+$",
        max_length=100,
    ),
]


# One enum (not a union with a const): some clients' schema converters reject `const`.
StatusFilter = Annotated[
    Literal["running", "created", "loading", "processing", "paused", "resuming", "done", "error"]
    | None,
    Field(
        description="Only jobs in this status; running means created, loading, processing "
        "or resuming."
    ),
]


def _status_matches(job: dict[str, Any], status: str) -> bool:
    if status == "running":
        return job.get("status") in RUNNING_STATUSES
    return job.get("status") == status


class JobList(CrmResult):
    jobs: list[JobSummary]
    has_more: bool = Field(description="More jobs exist past this page (raise offset).")
    complete: bool = Field(
        description=f"Every job was read. False: a kind has more than {MAX_SCAN} jobs and only "
        f"the first {MAX_SCAN} Close listed of it (in no documented order) were sorted."
    )

    def holds_crm_text(self) -> bool:
        return any(job.quotes_crm_text for job in self.jobs)


class WaitResult(CrmResult):
    job: JobSummary
    finished: bool = Field(description="The job reached done or error.")
    timed_out: bool = Field(description="timeout_s passed first; the job is still going.")
    waited_s: float

    def holds_crm_text(self) -> bool:
        return self.job.quotes_crm_text


def _created(job: dict[str, Any]) -> datetime:
    """When a job was made, for sorting; an unreadable date sorts last."""
    return close_time(job.get("date_created")) or EPOCH


class ListArguments(BaseModel):
    kind: Annotated[JobKind | None, Field(description="Only this kind of job.")] = None
    status: StatusFilter = None
    limit: Annotated[int, Field(ge=1, le=100, description="Page size.")] = 20
    offset: Annotated[int, Field(ge=0, le=MAX_SCAN, description="Jobs to skip.")] = 0


async def list_bulk_jobs(invocation: Invocation, args: ListArguments) -> JobList:
    client = invocation.call.client
    kinds = [args.kind] if args.kind else list(JOB_KINDS)
    # Close documents no order for its job lists: every job of each kind is read (up to
    # MAX_SCAN) and sorted here by date_created, newest first.
    found: list[dict[str, Any]] = []
    complete = True
    for each in kinds:
        raw = await client.list_all(
            job_path(each), page_size=min(100, MAX_SCAN + 1), max_items=MAX_SCAN + 1
        )
        complete = complete and len(raw) <= MAX_SCAN
        found += [
            job
            for job in raw[:MAX_SCAN]
            if args.status is None or _status_matches(job, args.status)
        ]
    found.sort(key=_created, reverse=True)
    end = args.offset + args.limit
    jobs = [summarize_job(job) for job in found[args.offset : end]]
    return JobList(jobs=jobs, has_more=len(found) > end, complete=complete)


class JobArguments(BaseModel):
    job_id: JobId


async def get_bulk_job(invocation: Invocation, args: JobArguments) -> JobDetail:
    runtime = invocation.runtime
    state = await server_job(runtime.store, runtime.clock, args.job_id)
    if state is not None and not state.get("job_id"):
        return JobDetail(**summary(args.job_id, state).model_dump())
    job_id = str(state["job_id"]) if state is not None else args.job_id
    raw = await invocation.call.client.get(job_path(job_kind(job_id), job_id))
    return JobDetail(**summarize_job(raw, with_query=True).model_dump())


class WaitArguments(JobArguments):
    timeout_s: Annotated[
        float, Field(ge=0, le=600, description="Stop waiting after this many seconds.")
    ] = 60


async def wait_for_bulk_job(invocation: Invocation, args: WaitArguments) -> WaitResult:
    runtime, job_id, timeout_s = invocation.runtime, args.job_id, args.timeout_s
    report = invocation.report_progress
    clock = runtime.clock
    started = clock.time()
    # A server job (a confirmed write still reading its leads) first, then Close's job.
    while (state := await server_job(runtime.store, clock, job_id)) is not None:
        if state.get("job_id"):
            job_id = str(state["job_id"])
            break
        job = summary(job_id, state)
        if report and job.n_objects is not None and job.n_objects_processed is not None:
            await report(job.n_objects_processed, job.n_objects, str(job.details.get("progress")))
        waited = clock.time() - started
        if job.status == "error" or state.get("state") == "sent":
            return WaitResult(job=job, finished=True, timed_out=False, waited_s=waited)
        if waited + POLL_INTERVAL_S > timeout_s:
            return WaitResult(job=job, finished=False, timed_out=True, waited_s=waited)
        await clock.sleep(POLL_INTERVAL_S)
    path = job_path(job_kind(job_id), job_id)
    while True:
        job = summarize_job(await invocation.call.client.get(path), with_query=False)
        if report and job.n_objects is not None and job.n_objects_processed is not None:
            await report(job.n_objects_processed, job.n_objects, f"{job.status}: {job.id}")
        waited = clock.time() - started
        if job.finished or job.status in ("paused", "unknown"):
            # `unknown`: Close gave no status, so nothing says waiting will end.
            return WaitResult(job=job, finished=job.finished, timed_out=False, waited_s=waited)
        if waited + POLL_INTERVAL_S > timeout_s:
            return WaitResult(job=job, finished=False, timed_out=True, waited_s=waited)
        await clock.sleep(POLL_INTERVAL_S)


TOOLS = (
    DirectTool(
        name="list_bulk_jobs",
        toolset="jobs",
        title="List bulk jobs",
        description="List Close bulk jobs, newest first, optionally of one kind or status. "
        "Reads every job of each kind, so give kind when you know it.",
        arguments=ListArguments,
        run=list_bulk_jobs,
        result=JobList,
    ),
    DirectTool(
        name="get_bulk_job",
        toolset="jobs",
        title="Get a bulk job",
        description="Read one bulk job: status, progress, fields and s_query.",
        arguments=JobArguments,
        run=get_bulk_job,
        result=JobDetail,
    ),
    DirectTool(
        name="wait_for_bulk_job",
        toolset="jobs",
        title="Wait for a bulk job",
        description="Wait until a bulk job is done, in error or paused, or timeout_s passed "
        "(timed_out), with progress notifications.",
        arguments=WaitArguments,
        run=wait_for_bulk_job,
        result=WaitResult,
    ),
)
