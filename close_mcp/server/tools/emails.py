"""`list_emails` (toolset `search`): a lead's email activities, newest first, small.

What a reply (`send_email`'s `in_reply_to_id`), an undo (`cancel_email`) and "did it go
out?" need of each email: its id, direction, status, a clipped subject, when, its thread and
its contact. Never a body: subjects are CRM text, marked as data like every lead read.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from close_mcp.close.activities import JSON, MAX_EMAILS, lead_emails
from close_mcp.close.client import CloseClient
from close_mcp.close.jobs import CrmResult
from close_mcp.close.times import close_time
from close_mcp.errors import ArgumentError, NotFound
from close_mcp.server.tools.declare import DirectTool, Invocation
from close_mcp.server.tools.ids import LeadIdArg

DEFAULT_PAGE = 5
# An email line is ~100 o200k tokens in the sandbox and ~150 with Close's 48-character ids
# (three of them): 8 stay under 1,500 either way.
MAX_PAGE = 8
SUBJECT_CHARS = 80


class EmailLine(BaseModel):
    id: str
    direction: str | None = None
    status: str | None = None
    subject: str | None = None
    date: str | None = Field(
        default=None, description="Sent or received; for a scheduled email, when it will go."
    )
    thread_id: str | None = None
    contact_id: str | None = None


class EmailList(CrmResult):
    lead_id: str
    emails: list[EmailLine]
    total: int = Field(description="Email activities the lead has.")
    next_offset: int | None = Field(
        default=None, description="Pass as offset for the next page; null on the last."
    )
    complete: bool = Field(
        default=True,
        description=f"False: the lead has more than {MAX_EMAILS} emails and only "
        f"{MAX_EMAILS} Close listed (in no documented order) were sorted.",
    )

    def holds_crm_text(self) -> bool:
        return any(e.subject for e in self.emails)


def _when(raw: object) -> str | None:
    """A Close timestamp to the second, in UTC (`2026-12-07T18:39:52Z`): microseconds and
    `+00:00` cost tokens and say nothing a reader of a list needs."""
    moment = close_time(raw)
    if moment is None:
        return raw if isinstance(raw, str) and raw else None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(text: object) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    return text if len(text) <= SUBJECT_CHARS else text[: SUBJECT_CHARS - 1] + "…"


def email_line(raw: JSON) -> EmailLine:
    """One email activity as the list shows it."""
    status = raw.get("status")
    moment = raw.get("date_scheduled") if status == "scheduled" else None
    moment = moment or raw.get("date_sent") or raw.get("activity_at") or raw.get("date_created")
    return EmailLine(
        id=str(raw.get("id")),
        direction=raw.get("direction"),
        status=status,
        subject=_clip(raw.get("subject")),
        date=_when(moment),
        thread_id=raw.get("thread_id"),
        contact_id=raw.get("contact_id"),
    )


async def list_lead_emails(client: CloseClient, lead_id: str, offset: int, limit: int) -> EmailList:
    """A page of the lead's emails; an empty list is checked against the lead itself, so a
    wrong id is an error rather than "no emails"."""
    read = await lead_emails(client, lead_id)
    if not read.emails:
        try:
            await client.get(f"lead/{lead_id}/", {"_fields": "id"})
        except NotFound:
            raise ArgumentError(
                "lead_id",
                f"Close has no lead {lead_id!r} (or this key cannot see it); find leads "
                "with search_leads",
            ) from None
    shown = read.emails[offset : offset + limit]
    end = offset + len(shown)
    return EmailList(
        lead_id=lead_id,
        emails=[email_line(e) for e in shown],
        total=len(read.emails),
        next_offset=end if end < len(read.emails) else None,
        complete=read.complete,
    )


class EmailsArguments(BaseModel):
    lead_id: LeadIdArg
    offset: Annotated[int, Field(ge=0, le=MAX_EMAILS)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE, description="At most 8.")] = DEFAULT_PAGE


async def list_emails(invocation: Invocation, args: EmailsArguments) -> EmailList:
    return await list_lead_emails(invocation.call.client, args.lead_id, args.offset, args.limit)


TOOLS = (
    DirectTool(
        name="list_emails",
        toolset="search",
        title="List a lead's emails",
        description="A lead's emails, newest first, with ids for in_reply_to_id and cancel_email.",
        arguments=EmailsArguments,
        run=list_emails,
        result=EmailList,
    ),
)
