"""What a write answers: its preview, its result, and what a plan of several requests sent.

The types every write tool returns (`WriteResult`, with the `Preview` it showed), and the
small builders that turn Close's answer into them without ever raising: Close accepted the
write by then, so an odd answer must not become an error (a retry would send it twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from close_mcp.close.jobs import CrmResult, JobSummary, summarize_job
from close_mcp.errors import UnknownJobId
from close_mcp.selection.sample import LeadSample

# accepted: confirmed, and carried out as a server job (`close_mcp.writes.background`).
Status = Literal["preview", "confirmation_required", "submitted", "refused", "accepted"]


class Preview(BaseModel):
    """What would be sent, and what it would touch."""

    path: str = Field(description="The Close API path the request goes to.")
    request: dict[str, Any] = Field(
        description="The exact JSON body that would be sent; its s_query (with results_limit "
        "and sort) is the resolved selection, shown here only."
    )
    matched: int = Field(description="How many leads (or emails) the action would touch.")
    sample: list[LeadSample] = Field(default_factory=list)
    rendering: dict[str, Any] | None = Field(
        default=None,
        description="The email as Close renders it for the first lead and contact it reaches.",
    )
    notes: list[str] = Field(default_factory=list)


class WriteResult(CrmResult):
    model_config = ConfigDict(extra="forbid")

    status: Status
    tool: str
    message: str = Field(description="What happened and what to do next.")
    preview: Preview
    confirmation_token: str | None = Field(
        default=None, description="Pass back unchanged, with the same arguments, to confirm."
    )
    expires_at: str | None = None
    reason: str | None = Field(default=None, description="Why the call was refused.")
    job: JobSummary | None = None
    result: dict[str, Any] | None = Field(
        default=None, description="What Close answered (for writes that are not jobs)."
    )
    snapshot: str | None = Field(default=None, description="Store key of the values before.")

    def holds_crm_text(self) -> bool:
        """Lead names, an email's rendering, Close's answer, or a job's typed fields."""
        shown = self.preview.sample or self.preview.rendering or self.result
        return bool(shown) or (self.job is not None and self.job.quotes_crm_text)


@dataclass(frozen=True)
class PlanAnswer:
    """What a write of several requests (a revert plan) answers once all of them went: the
    jobs it started, in order (the first becomes the result's `job`), `result` (bounded: the
    first few of each list, with counts), `sent` ("41 bulk edit jobs and 2 lead updates")
    and `follow` (how to follow the jobs) for the message."""

    jobs: list[JobSummary]
    result: dict[str, Any]
    sent: str
    follow: str = ""


def job_or_none(answer: Any) -> JobSummary | None:
    """The job Close created; None when its answer is not a job we recognise.

    The write has happened by then: an odd answer must not turn a submission into an error.
    """
    try:
        return summarize_job(answer)
    except (UnknownJobId, AttributeError, ValueError):
        return None


def compact(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        return {"answer": answer}
    keep = (
        "id",
        "status",
        "thread_id",
        "lead_id",
        "contact_id",
        "subject",
        "to",
        "cc",
        "bcc",
        "sender",
        "date_scheduled",
        "date_created",
    )
    return {k: answer[k] for k in keep if k in answer}
