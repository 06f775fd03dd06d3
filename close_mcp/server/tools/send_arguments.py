"""`send_email`'s arguments, and the checks that need nothing from Close: header fields on
one line, bare valid addresses, dates with a timezone, and Close's rules that tie fields to
the status. Each is refused before anything is read or sent."""

import re
from datetime import datetime
from email.utils import parseaddr
from typing import Annotated, Final, Literal

from pydantic import BaseModel, Field

from close_mcp.clock import Clock, utc_datetime
from close_mcp.errors import ArgumentError
from close_mcp.server.tools.ids import LeadIdArg

EmailStatus = Literal["draft", "outbox", "scheduled", "sent", "inbox"]


SENDS: Final = frozenset({"outbox", "scheduled"})


NEEDS_SENDER: Final = frozenset({"outbox", "scheduled", "inbox"})


LINE_BREAKS: Final = ("\r", "\n")


FOLLOWUP_STATUSES: Final = frozenset({"outbox", "scheduled", "sent"})


MAX_SUBJECT: Final = 1000


MAX_BODY: Final = 1_048_576  # Close: at most 1048576 characters per body


MAX_RECIPIENTS: Final = 100


FOLLOWUP_SEQUENCE_STATUSES: Final = frozenset({"draft", "outbox", "scheduled"})


MIN_FOLLOWUP_SEQUENCE_DELAY: Final = 86_400  # Close: followup_sequence_delay >= 86400 seconds


# The HTML living standard's address syntax, with a dotted domain: robust, and no dependency.
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)


def valid_address(value: str) -> bool:
    return len(value) <= 254 and _ADDRESS.fullmatch(value) is not None


def _one_line(field: str, value: str | None) -> None:
    """A header field with a line break would let its text start another header."""
    if value is not None and any(brk in value for brk in LINE_BREAKS):
        raise ArgumentError(
            field,
            f"{value!r} contains a line break (CR or LF); a header field must be one line",
        )


def check_headers(
    subject: str | None, sender: str | None, recipients: dict[str, list[str] | None]
) -> None:
    _one_line("subject", subject)
    _one_line("sender", sender)
    for field, values in recipients.items():
        for i, value in enumerate(values or []):
            _one_line(f"{field}[{i}]", value)


def parse_recipients(field: str, values: list[str] | None) -> list[str]:
    """Bare, valid addresses, stripped; the first bad one is an error naming its position."""
    out: list[str] = []
    for i, raw in enumerate(values or []):
        value = raw.strip()
        if not valid_address(value):
            raise ArgumentError(
                f"{field}[{i}]",
                f"{raw!r} is not a valid email address; give bare addresses like name@example.com",
            )
        out.append(value)
    return out


def address_of_sender(sender: str) -> str:
    """The address inside `"Name" <a@b.c>` or a bare address; an error when there is none."""
    _name, address = parseaddr(sender)
    if "\n" in sender or "\r" in sender or not valid_address(address):
        raise ArgumentError(
            "sender",
            f'{sender!r} is not a sender; use "Name" <name@example.com> or a bare address',
        )
    return address


def _aware(field: str, value: str, example: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ArgumentError(
            field, f"{value!r} is not an ISO datetime with a timezone, e.g. {example}"
        )
    return parsed


def parse_schedule(value: str, clock: Clock) -> str:
    when = _aware("date_scheduled", value, "2026-03-02T09:00:00+00:00")
    now = utc_datetime(clock)
    if when <= now:
        raise ArgumentError(
            "date_scheduled",
            f"{value!r} is not in the future (it is now {now.isoformat(timespec='seconds')})",
        )
    return when.isoformat()


def parse_followup(value: str) -> str:
    """A datetime with a timezone: Close types `followup_date` as a date-time, not a date."""
    return _aware("followup_date", value, "2026-03-09T09:00:00+00:00").isoformat()


def check_combination(
    status: str,
    sender: str | None,
    date_scheduled: str | None,
    send_in: int | None,
    followup_date: str | None,
    body_text: str | None,
    body_html: str | None,
    template: str | None,
) -> None:
    """Close's rules that tie fields to the status, before anything is fetched."""
    if status in NEEDS_SENDER and not sender:
        raise ArgumentError(
            "sender",
            f"required for status {status} (outbox, scheduled and inbox need one"
            + ("; or an email_account with one identity)" if status in SENDS else ")"),
        )
    if status == "scheduled" and date_scheduled is None:
        raise ArgumentError("date_scheduled", "required for status scheduled")
    if status != "scheduled" and date_scheduled is not None:
        raise ArgumentError(
            "date_scheduled", f"only for status scheduled; with {status} it would be ignored"
        )
    if send_in is not None and status != "outbox":
        raise ArgumentError(
            "send_in", f"only for status outbox (a delay before sending), not {status}"
        )
    if followup_date is not None and status not in FOLLOWUP_STATUSES:
        raise ArgumentError(
            "followup_date", f"only for status outbox, scheduled or sent, not {status}"
        )
    bodies = [n for n, v in (("body_text", body_text), ("body_html", body_html)) if v is not None]
    if template is not None and bodies:
        raise ArgumentError(
            "template",
            f"give a template or {' and '.join(bodies)}, not both: Close renders the template "
            "only when no body is given",
        )
    if template is None and not bodies:
        raise ArgumentError("body_text", "give body_text, body_html or a template")


def check_followup_sequence(
    status: str, followup_sequence: str | None, followup_sequence_delay: int | None
) -> None:
    if followup_sequence_delay is not None and followup_sequence is None:
        raise ArgumentError(
            "followup_sequence_delay", "only with followup_sequence (the sequence it starts)"
        )
    if followup_sequence is not None and status not in FOLLOWUP_SEQUENCE_STATUSES:
        raise ArgumentError(
            "followup_sequence",
            f"only for an email that goes out (draft, outbox, scheduled), not {status}",
        )


Address = Annotated[str, Field(max_length=254)]


Recipients = Annotated[list[Address] | None, Field(max_length=MAX_RECIPIENTS)]


Body = Annotated[str | None, Field(max_length=MAX_BODY)]


class SendArguments(BaseModel):
    lead_id: LeadIdArg
    contact_id: Annotated[
        str | None,
        Field(
            pattern=r"^cont_[A-Za-z0-9]+$",
            max_length=100,
            description="One of the lead's contacts.",
        ),
    ] = None
    to: Annotated[
        list[Address] | None,
        Field(
            max_length=MAX_RECIPIENTS,
            description="Default: contact_id's first address, else the lead's first contact's.",
        ),
    ] = None
    cc: Recipients = None
    bcc: Recipients = None
    subject: Annotated[
        str | None,
        Field(max_length=MAX_SUBJECT, description="Subject (a template supplies one)."),
    ] = None
    body_text: Body = None
    body_html: Body = None
    template: Annotated[
        str | None,
        Field(
            max_length=200,
            description="Template name or id, instead of a body.",
        ),
    ] = None
    status: Annotated[
        EmailStatus,
        Field(
            description="draft sends nothing, outbox now, scheduled at date_scheduled; sent and "
            "inbox only log."
        ),
    ] = "draft"
    sender: Annotated[
        str | None,
        Field(
            max_length=400,
            description='"Name" <a@b.co> or an address; needed for outbox, scheduled, inbox.',
        ),
    ] = None
    email_account: Annotated[
        str | None,
        Field(max_length=200, description="Sending account (email or id)."),
    ] = None
    date_scheduled: Annotated[
        str | None,
        Field(
            max_length=64,
            description="scheduled: future ISO datetime with offset.",
        ),
    ] = None
    send_in: Annotated[
        int | None,
        Field(ge=0, lt=60, description="outbox: send after 0-59 seconds."),
    ] = None
    followup_date: Annotated[
        str | None,
        Field(
            max_length=64,
            description="outbox/scheduled/sent: follow-up task datetime if no reply.",
        ),
    ] = None
    in_reply_to_id: Annotated[
        str | None,
        Field(
            pattern=r"^acti_[A-Za-z0-9]+$",
            max_length=100,
            description="Email replied to.",
        ),
    ] = None
    followup_sequence: Annotated[
        str | None,
        Field(
            max_length=200,
            description="Sequence started if nobody replies.",
        ),
    ] = None
    followup_sequence_delay: Annotated[
        int | None,
        Field(
            ge=MIN_FOLLOWUP_SEQUENCE_DELAY,
            le=365 * 86_400,
        ),
    ] = None
