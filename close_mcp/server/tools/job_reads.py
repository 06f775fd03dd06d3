"""Following bulk jobs: list, read, and wait with progress notifications (toolset `jobs`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

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
from close_mcp.server.tools import Registrar
from close_mcp.writes.background import server_job, summary

READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
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


def register(reg: Registrar) -> None:
    runtime = reg.runtime

    async def list_bulk_jobs(
        ctx: Context,
        kind: Annotated[JobKind | None, Field(description="Only this kind of job.")] = None,
        status: StatusFilter = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Page size.")] = 20,
        offset: Annotated[int, Field(ge=0, le=MAX_SCAN, description="Jobs to skip.")] = 0,
    ) -> JobList:
        client = runtime.client_for(ctx.headers)
        kinds = [kind] if kind else list(JOB_KINDS)
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
                job for job in raw[:MAX_SCAN] if status is None or _status_matches(job, status)
            ]
        found.sort(key=_created, reverse=True)
        jobs = [summarize_job(job) for job in found[offset : offset + limit]]
        return JobList(jobs=jobs, has_more=len(found) > offset + limit, complete=complete)

    async def get_bulk_job(ctx: Context, job_id: JobId) -> JobDetail:
        client = runtime.client_for(ctx.headers)
        state = await server_job(runtime.store, runtime.clock, job_id)
        if state is not None and not state.get("job_id"):
            return JobDetail(**summary(job_id, state).model_dump())
        job_id = str(state["job_id"]) if state is not None else job_id
        raw = await client.get(job_path(job_kind(job_id), job_id))
        return JobDetail(**summarize_job(raw, with_query=True).model_dump())

    async def wait_for_bulk_job(
        ctx: Context,
        job_id: JobId,
        timeout_s: Annotated[
            float, Field(ge=0, le=600, description="Stop waiting after this many seconds.")
        ] = 60,
    ) -> WaitResult:
        client = runtime.client_for(ctx.headers)
        clock = runtime.clock
        started = clock.time()
        # A server job (a confirmed write still reading its leads) first, then Close's job.
        while (state := await server_job(runtime.store, clock, job_id)) is not None:
            if state.get("job_id"):
                job_id = str(state["job_id"])
                break
            job = summary(job_id, state)
            if job.n_objects is not None and job.n_objects_processed is not None:
                await ctx.report_progress(
                    job.n_objects_processed, job.n_objects, str(job.details.get("progress"))
                )
            waited = clock.time() - started
            if job.status == "error" or state.get("state") == "sent":
                return WaitResult(job=job, finished=True, timed_out=False, waited_s=waited)
            if waited + POLL_INTERVAL_S > timeout_s:
                return WaitResult(job=job, finished=False, timed_out=True, waited_s=waited)
            await clock.sleep(POLL_INTERVAL_S)
        path = job_path(job_kind(job_id), job_id)
        while True:
            job = summarize_job(await client.get(path), with_query=False)
            if job.n_objects is not None and job.n_objects_processed is not None:
                await ctx.report_progress(
                    job.n_objects_processed, job.n_objects, f"{job.status}: {job.id}"
                )
            waited = clock.time() - started
            if job.finished or job.status in ("paused", "unknown"):
                # `unknown`: Close gave no status, so nothing says waiting will end (issue 25).
                return WaitResult(job=job, finished=job.finished, timed_out=False, waited_s=waited)
            if waited + POLL_INTERVAL_S > timeout_s:
                return WaitResult(job=job, finished=False, timed_out=True, waited_s=waited)
            await clock.sleep(POLL_INTERVAL_S)

    reg.add(
        list_bulk_jobs,
        name="list_bulk_jobs",
        toolset="jobs",
        title="List bulk jobs",
        description="List Close bulk jobs, newest first, optionally of one kind or status. "
        "Reads every job of each kind, so give kind when you know it.",
        annotations=READ,
    )
    reg.add(
        get_bulk_job,
        name="get_bulk_job",
        toolset="jobs",
        title="Get a bulk job",
        description="Read one bulk job: status, progress, fields and s_query.",
        annotations=READ,
    )
    reg.add(
        wait_for_bulk_job,
        name="wait_for_bulk_job",
        toolset="jobs",
        title="Wait for a bulk job",
        description="Wait until a bulk job is done, in error or paused, or timeout_s passed "
        "(timed_out), with progress notifications.",
        annotations=READ,
    )
