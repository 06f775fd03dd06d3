"""`send_email` (toolset `send`): one email activity, with Close's rules checked before it goes.

Close acts on `POST /activity/email/` at once: `outbox` sends now, `scheduled` sends later,
and neither can be taken back once it has gone. So the tool works out the exact request in
a `prepare` resolver (lead and contact checked, recipients filled in, template rendered for
the preview) and `close_mcp.writes.pipeline` decides preview, confirmation or sending, as for bulk
actions. Only `outbox` and `scheduled` use the confirmable action `send`; drafts and logged
emails (`sent`, `inbox`) reach nobody, so they use `log`, which is never confirmed.

Choices where Close leaves room:
- A template and a body together are refused: Close renders the template only when no body
  is given, so the template would be silently ignored.
- An empty `to` (except for `inbox`, a received email) is filled with the first address of
  `contact_id`, else of the lead's first contact that has one; the preview says so.
- Close renders a template for a lead and one of its contacts, so an email with a template
  always names one (`contact_id`): the one given, else the contact holding a recipient (for
  `inbox`, the sender), else the first with an address; the preview names it.
- `date_scheduled`, `send_in` and `followup_date` are refused for statuses where Close would
  ignore them (a draft with a date is still only a draft).
- A line break (CR or LF) in the subject, the sender or an address is refused: in a mail
  header it would start a new header (a hidden Bcc, say).
- The sender of an email that may go out (draft, outbox, scheduled) must be, address for
  address, one of the identities of the email accounts the calling user (`GET /me/`)
  connected in Close, and `email_account` one of those accounts: Close lists colleagues'
  accounts too, and nobody confirms an email in a colleague's name. A logged email (sent,
  inbox) records what happened elsewhere, so its sender is taken as given.
- Recipients who are not contacts of the lead are named in the preview's notes.
- A reply (`in_reply_to_id`) must answer an email activity of the same lead; Close keeps it
  in that email's thread, and the preview names the thread.
- A follow-up sequence (`followup_sequence`, name or id, resolved like every name) is for an
  email that goes out (draft, outbox, scheduled), must be active, and its delay is Close's
  `followup_sequence_delay`: whole seconds, at least a day; a delay without a sequence is
  refused (Close would have nothing to start).

No `from __future__ import annotations` here (see `writing.py`).
"""

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Annotated, Any, Final, Literal

from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from mcp.types import ToolAnnotations
from pydantic import Field

from close_mcp.clock import Clock, utc_datetime
from close_mcp.close.catalog import Catalog
from close_mcp.close.client import CloseClient
from close_mcp.errors import ArgumentError, NotFound
from close_mcp.selection.sample import LeadSample
from close_mcp.server.runtime import Runtime
from close_mcp.server.tools import Registrar, tool_errors
from close_mcp.server.tools.rendering import clip, first_email, render
from close_mcp.server.tools.selection import DryRunArg, TokenArg
from close_mcp.server.tools.writing import confirmer, run_write
from close_mcp.writes.gate import quoted
from close_mcp.writes.reconcile import RecentLookup
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.results import WriteResult

EmailStatus = Literal["draft", "outbox", "scheduled", "sent", "inbox"]
SENDS: Final = frozenset({"outbox", "scheduled"})
# What identifies an email activity this call created, when its outcome is unknown.
EMAIL_MATCH_KEYS: Final = (
    "lead_id",
    "contact_id",
    "to",
    "cc",
    "bcc",
    "subject",
    "template_id",
    "sender",
    "body_text",
    "body_html",
    "in_reply_to_id",
    "followup_sequence_id",
)
NEEDS_SENDER: Final = frozenset({"outbox", "scheduled", "inbox"})
LOGGED: Final = frozenset({"sent", "inbox"})  # only recorded: the sender is taken as given
LINE_BREAKS: Final = ("\r", "\n")
FOLLOWUP_STATUSES: Final = frozenset({"outbox", "scheduled", "sent"})
MAX_SUBJECT: Final = 1000
MAX_BODY: Final = 1_048_576  # Close: at most 1048576 characters per body
MAX_RECIPIENTS: Final = 100
LEAD_FIELDS: Final = "id,display_name,status_label,contacts"
REPLIED_FIELDS: Final = "id,lead_id,thread_id,subject,status,direction"
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


def _check_headers(
    subject: str | None, sender: str | None, recipients: dict[str, list[str] | None]
) -> None:
    _one_line("subject", subject)
    _one_line("sender", sender)
    for field, values in recipients.items():
        for i, value in enumerate(values or []):
            _one_line(f"{field}[{i}]", value)


def _recipients(field: str, values: list[str] | None) -> list[str]:
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


def _sender_address(sender: str) -> str:
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


def _schedule(value: str, clock: Clock) -> str:
    when = _aware("date_scheduled", value, "2026-03-02T09:00:00+00:00")
    now = utc_datetime(clock)
    if when <= now:
        raise ArgumentError(
            "date_scheduled",
            f"{value!r} is not in the future (it is now {now.isoformat(timespec='seconds')})",
        )
    return when.isoformat()


def _followup(value: str) -> str:
    """A datetime with a timezone: Close types `followup_date` as a date-time, not a date."""
    return _aware("followup_date", value, "2026-03-09T09:00:00+00:00").isoformat()


@dataclass
class _Lead:
    id: str
    display_name: str | None
    status_label: str | None
    contacts: list[dict[str, Any]]


async def _fetch_lead(client: CloseClient, lead_id: str) -> _Lead:
    try:
        raw = await client.get(f"lead/{lead_id}/", {"_fields": LEAD_FIELDS})
    except NotFound:
        raise ArgumentError(
            "lead_id", f"Close has no lead {lead_id!r} (or this key cannot see it)"
        ) from None
    raw = raw if isinstance(raw, dict) else {}
    contacts = [c for c in raw.get("contacts") or [] if isinstance(c, dict)]
    return _Lead(lead_id, raw.get("display_name"), raw.get("status_label"), contacts)


def _pick_contact(
    lead: _Lead, contact_id: str | None, addresses: list[str]
) -> dict[str, Any] | None:
    """The given contact (which must be the lead's); else the first one holding one of
    `addresses`, else the first with an address, else the first (None: the lead has none).
    Close renders a template for a lead and one contact, so one is always chosen."""
    if contact_id is not None:
        for contact in lead.contacts:
            if contact.get("id") == contact_id:
                return contact
        listed = ", ".join(
            f"{c.get('id')} ({quoted(str(c['name'])) if c.get('name') else 'no name'})"
            for c in lead.contacts
        )
        raise ArgumentError(
            "contact_id",
            f"{contact_id!r} is not a contact of lead {lead.id}; its contacts: {listed or 'none'}",
            quotes_crm_text=bool(lead.contacts),
        )
    for address in addresses:
        for contact in lead.contacts:
            if address.lower() in _addresses_of(contact):
                return contact
    with_email = [c for c in lead.contacts if first_email(c)]
    if with_email:
        return with_email[0]
    return lead.contacts[0] if lead.contacts else None


def _addresses_of(contact: dict[str, Any]) -> set[str]:
    return {
        str(entry["email"]).lower()
        for entry in contact.get("emails") or []
        if isinstance(entry, dict) and isinstance(entry.get("email"), str)
    }


async def _check_identity(catalog: Catalog, sender_address: str) -> None:
    """The sender must be, address for address, an identity of an email account the calling
    user connected in Close: not a colleague's, and not another address at the same domain."""
    identities = [i.email for a in await catalog.own_email_accounts() for i in a.identities]
    if sender_address.lower() in {i.lower() for i in identities}:
        return
    allowed = ", ".join(dict.fromkeys(identities)) or "none (you have no email account connected)"
    others = {i.email.lower() for a in await catalog.email_accounts() for i in a.identities} - {
        i.lower() for i in identities
    }
    whose = " (it is another user's identity)" if sender_address.lower() in others else ""
    raise ArgumentError(
        "sender",
        f"{sender_address!r} is not one of your connected email identities{whose}; "
        f"allowed: {allowed}",
    )


def _strangers(lead: _Lead, recipients: list[str]) -> list[str]:
    """The recipients who are not contacts of the lead, in order, once each."""
    known = {address for contact in lead.contacts for address in _addresses_of(contact)}
    return [r for r in dict.fromkeys(recipients) if r.lower() not in known]


async def _account_id(catalog: Catalog, email_account: str, sender_address: str | None) -> str:
    account = await catalog.resolve_email_account(email_account, path="email_account")
    if account.user_id != await catalog.me_id():
        raise ArgumentError(
            "email_account",
            f"{account.id} is another user's account; send from one of your own: "
            + (", ".join(a.name for a in await catalog.own_email_accounts()) or "none"),
        )
    identities = [i.email.lower() for i in account.identities]
    if sender_address is not None and identities and sender_address.lower() not in identities:
        raise ArgumentError(
            "sender",
            f"{sender_address!r} is not an identity of {account.id}; allowed: "
            + ", ".join(i.email for i in account.identities),
        )
    return account.id


async def _sole_identity(catalog: Catalog, email_account: str, status: str) -> str:
    """The sender an email account implies when it has one identity to send as."""
    account = await catalog.resolve_email_account(email_account, path="email_account")
    if len(account.identities) != 1:
        listed = ", ".join(i.email for i in account.identities) or "none"
        raise ArgumentError(
            "sender",
            f"required for status {status}: {account.id} has {len(account.identities)} "
            f"identities ({listed}); pass the one to send as",
        )
    identity = account.identities[0]
    name = identity.name.replace('"', "'").replace("\\", "")
    return f'"{name}" <{identity.email}>' if name else identity.email


def _summary(status: str, to: list[str], sender: str | None, subject: str | None) -> str:
    who = ", ".join(to) or "no recipient yet"
    about = f" (subject {subject!r})" if subject else ""
    return {
        "draft": f"Create a draft email to {who}{about}",
        "outbox": f"Send an email now to {who}{about}",
        "scheduled": f"Schedule an email to {who}{about}",
        "sent": f"Log an already sent email to {who}{about}",
        "inbox": f"Log a received email from {sender}{about}",
    }[status]


def _check_combination(
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


def _check_followup_sequence(
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


async def _replied_email(client: CloseClient, activity_id: str, lead_id: str) -> dict[str, Any]:
    """The email a reply answers: it must exist and belong to the same lead."""
    try:
        raw = await client.get(f"activity/email/{activity_id}/", {"_fields": REPLIED_FIELDS})
    except NotFound:
        raw = None
    if not isinstance(raw, dict) or raw.get("id") != activity_id:
        raise ArgumentError(
            "in_reply_to_id",
            f"Close has no email activity {activity_id!r} (or this key cannot see it)",
        )
    if raw.get("lead_id") != lead_id:
        raise ArgumentError(
            "in_reply_to_id",
            f"{activity_id!r} is an email of lead {raw.get('lead_id')}, not of {lead_id}; a reply "
            "stays on the lead of the email it answers",
        )
    return raw


async def _followup_sequence_id(catalog: Catalog, name_or_id: str) -> tuple[str, str]:
    sequence = await catalog.resolve_sequence(name_or_id, path="followup_sequence")
    if sequence.status not in (None, "active"):
        raise ArgumentError(
            "followup_sequence",
            f"{quoted(sequence.name)} is {sequence.status}; pick an active sequence",
            quotes_crm_text=True,
        )
    return sequence.id, sequence.name


Address = Annotated[str, Field(max_length=254)]
Recipients = Annotated[list[Address] | None, Field(max_length=MAX_RECIPIENTS)]

# Each argument send_email and its `prepare` resolver share is declared once, here.
LeadIdArg = Annotated[
    str,
    Field(pattern=r"^lead_[A-Za-z0-9]+$", max_length=100, description="A lead_ id."),
]
ContactIdArg = Annotated[
    str | None,
    Field(
        pattern=r"^cont_[A-Za-z0-9]+$",
        max_length=100,
        description="One of the lead's contacts.",
    ),
]
ToArg = Annotated[
    list[Address] | None,
    Field(
        max_length=MAX_RECIPIENTS,
        description="Default: contact_id's first address, else the lead's first contact's.",
    ),
]
SubjectArg = Annotated[
    str | None,
    Field(max_length=MAX_SUBJECT, description="Subject (a template supplies one)."),
]
BodyTextArg = Annotated[str | None, Field(max_length=MAX_BODY)]
BodyHtmlArg = Annotated[str | None, Field(max_length=MAX_BODY)]
TemplateArg = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Template name or id, instead of a body.",
    ),
]
StatusArg = Annotated[
    EmailStatus,
    Field(
        description="draft sends nothing, outbox now, scheduled at date_scheduled; sent and "
        "inbox only log."
    ),
]
SenderArg = Annotated[
    str | None,
    Field(
        max_length=400,
        description='"Name" <a@b.co> or an address; needed for outbox, scheduled, inbox.',
    ),
]
EmailAccountArg = Annotated[
    str | None,
    Field(max_length=200, description="Sending account (email or id)."),
]
DateScheduledArg = Annotated[
    str | None,
    Field(
        max_length=64,
        description="scheduled: future ISO datetime with offset.",
    ),
]
SendInArg = Annotated[
    int | None,
    Field(ge=0, lt=60, description="outbox: send after 0-59 seconds."),
]
FollowupDateArg = Annotated[
    str | None,
    Field(
        max_length=64,
        description="outbox/scheduled/sent: follow-up task datetime if no reply.",
    ),
]
InReplyToArg = Annotated[
    str | None,
    Field(
        pattern=r"^acti_[A-Za-z0-9]+$",
        max_length=100,
        description="Email replied to.",
    ),
]
FollowupSequenceArg = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Sequence started if nobody replies.",
    ),
]
FollowupSequenceDelayArg = Annotated[
    int | None,
    Field(
        ge=MIN_FOLLOWUP_SEQUENCE_DELAY,
        le=365 * 86_400,
    ),
]


def register(reg: Registrar) -> None:
    runtime: Runtime = reg.runtime

    @tool_errors
    async def prepare(
        ctx: Context,
        lead_id: LeadIdArg,
        contact_id: ContactIdArg,
        to: ToArg,
        cc: Recipients,
        bcc: Recipients,
        subject: SubjectArg,
        body_text: BodyTextArg,
        body_html: BodyHtmlArg,
        template: TemplateArg,
        status: StatusArg,
        sender: SenderArg,
        email_account: EmailAccountArg,
        date_scheduled: DateScheduledArg,
        send_in: SendInArg,
        followup_date: FollowupDateArg,
        in_reply_to_id: InReplyToArg,
        followup_sequence: FollowupSequenceArg,
        followup_sequence_delay: FollowupSequenceDelayArg,
    ) -> WriteRequest:
        from_account = None
        if sender is None and email_account is not None and status in SENDS:
            sender = from_account = await _sole_identity(
                runtime.call(ctx.headers).catalog, email_account, status
            )
        _check_headers(subject, sender, {"to": to, "cc": cc, "bcc": bcc})
        _check_combination(
            status, sender, date_scheduled, send_in, followup_date, body_text, body_html, template
        )
        _check_followup_sequence(status, followup_sequence, followup_sequence_delay)
        sender_address = _sender_address(sender) if sender else None
        to_list = _recipients("to", to)
        cc_list = _recipients("cc", cc)
        bcc_list = _recipients("bcc", bcc)
        scheduled = _schedule(date_scheduled, runtime.clock) if date_scheduled else None
        followup = _followup(followup_date) if followup_date else None

        call = runtime.call(ctx.headers)
        lead = await _fetch_lead(call.client, lead_id)
        # An inbox email's recipients are this side's addresses: its sender is the contact's.
        known = [sender_address] if status == "inbox" and sender_address else []
        contact = _pick_contact(lead, contact_id, known or to_list + cc_list + bcc_list)
        notes: list[str] = []
        replied = (
            await _replied_email(call.client, in_reply_to_id, lead.id) if in_reply_to_id else None
        )
        sequence = (
            await _followup_sequence_id(call.catalog, followup_sequence)
            if followup_sequence
            else None
        )
        chosen_contact = contact_id
        picked = str(contact.get("id")) if contact is not None else None
        who = f"contact {picked} ({(contact or {}).get('name') or 'no name'})"
        if not to_list and status != "inbox" and contact is not None:
            address = first_email(contact)
            if address is not None:
                to_list = [address]
                chosen_contact = picked
                notes.append(
                    f"to was empty: the email goes to {address}, the first address of {who}."
                )
        if template is not None and chosen_contact is None:
            # Close renders a template for the email's lead and contact: name one.
            if picked is None:
                raise ArgumentError(
                    "template",
                    f"lead {lead.id} has no contact, and Close renders a template for a lead "
                    "and one of its contacts; write the body instead",
                )
            chosen_contact = picked
            notes.append(f"The template is rendered for {who}, the email filed under it.")
        if status in SENDS and not to_list:
            raise ArgumentError(
                "to",
                f"status {status} sends the email, so it needs a recipient, and lead "
                f"{lead.id} has no contact with an email address; pass to",
            )
        found = None
        if template is not None:
            found = await call.catalog.resolve_template(template)
            if found.is_archived:
                raise ArgumentError(
                    "template",
                    f"{quoted(found.name)} is archived; pick an active one",
                    quotes_crm_text=True,
                )
        account_id = (
            await _account_id(call.catalog, email_account, sender_address)
            if email_account
            else None
        )
        if sender_address is not None and status not in LOGGED:
            await _check_identity(call.catalog, sender_address)
        if status != "inbox":  # an inbox email's recipients are this side's addresses
            strangers = _strangers(lead, to_list + cc_list + bcc_list)
            if strangers:
                notes.append(
                    f"Not contacts of lead {lead.id}: {', '.join(strangers)}. Check they "
                    "should get this email."
                )

        if from_account is not None:
            notes.append(f"The sender is {from_account}, the one identity of {email_account}.")
        body: dict[str, Any] = {"lead_id": lead.id, "status": status}
        optional: list[tuple[str, Any]] = [
            ("contact_id", chosen_contact),
            ("to", to_list or None),
            ("cc", cc_list or None),
            ("bcc", bcc_list or None),
            ("subject", subject),
            ("body_text", body_text),
            ("body_html", body_html),
            ("template_id", found.id if found else None),
            ("sender", sender.strip() if sender else None),
            ("email_account_id", account_id),
            ("date_scheduled", scheduled),
            ("send_in", send_in),
            ("followup_date", followup),
            ("in_reply_to_id", in_reply_to_id),
            ("followup_sequence_id", sequence[0] if sequence else None),
            ("followup_sequence_delay", followup_sequence_delay if sequence else None),
        ]
        body.update((k, v) for k, v in optional if v is not None)

        rendering: dict[str, Any] = {"to": to_list, "cc": cc_list, "bcc": bcc_list}
        if sender:
            rendering["sender"] = body["sender"]
        rendering["subject"] = subject
        rendering["body"] = clip(body_text if body_text is not None else body_html)
        if found is not None and chosen_contact is not None:
            rendered = await render(call.client, found.id, lead.id, chosen_contact)
            rendering["contact_id"] = chosen_contact
            rendering["subject"] = subject or rendered.get("subject")
            rendering["body"] = clip(rendered.get("body"))
            rendering["template"] = found.name
            notes.append(f"Close renders the template {found.name!r} for this lead when it saves.")
        if scheduled:
            rendering["date_scheduled"] = scheduled
        if send_in:
            rendering["send_in"] = send_in
        if replied is not None:
            rendering["in_reply_to"] = {
                k: replied.get(k) for k in ("id", "subject", "thread_id", "direction")
            }
            notes.append(
                f"A reply to {replied['id']} (subject {replied.get('subject')!r}): Close keeps "
                f"it in thread {replied.get('thread_id')}."
            )
        if sequence is not None:
            delay = (
                f" after {followup_sequence_delay // 3600} hours"
                if followup_sequence_delay
                else " after Close's default delay"
            )
            rendering["followup_sequence"] = sequence[1]
            notes.append(
                f"If nobody replies, Close subscribes the recipient to the sequence "
                f"{sequence[1]!r} ({sequence[0]}){delay}; that sequence then emails them."
            )

        return WriteRequest(
            tool="send_email",
            action="send" if status in SENDS else "log",
            path="activity/email/",
            body=body,
            matched=max(1, len(set(to_list + cc_list + bcc_list))),
            summary=_summary(status, to_list, sender, rendering["subject"])
            + (f" on lead {lead.display_name!r}" if lead.display_name else f" on lead {lead.id}"),
            job_kind=None,
            recent=RecentLookup(
                path="activity/email/",
                params={"lead_id": lead.id},
                keys=EMAIL_MATCH_KEYS,
                later_status={
                    "outbox": frozenset({"sending", "sent"}),
                    "scheduled": frozenset({"outbox", "sending", "sent"}),
                },
                where=f"the email activities of lead {lead.id}",
                since_param="date_created__gte",
            ),
            sample=[
                LeadSample(
                    id=lead.id, display_name=lead.display_name, status_label=lead.status_label
                )
            ],
            rendering=rendering,
            notes=notes,
        )

    confirm = confirmer(runtime, prepare)

    async def send_email(
        ctx: Context,
        request: Annotated[WriteRequest, Resolve(prepare)],
        answer: Annotated[ElicitationResult[Any], Resolve(confirm)],
        lead_id: LeadIdArg,
        contact_id: ContactIdArg = None,
        to: ToArg = None,
        cc: Recipients = None,
        bcc: Recipients = None,
        subject: SubjectArg = None,
        body_text: BodyTextArg = None,
        body_html: BodyHtmlArg = None,
        template: TemplateArg = None,
        status: StatusArg = "draft",
        sender: SenderArg = None,
        email_account: EmailAccountArg = None,
        date_scheduled: DateScheduledArg = None,
        send_in: SendInArg = None,
        followup_date: FollowupDateArg = None,
        in_reply_to_id: InReplyToArg = None,
        followup_sequence: FollowupSequenceArg = None,
        followup_sequence_delay: FollowupSequenceDelayArg = None,
        dry_run: DryRunArg = False,
        confirmation_token: TokenArg = None,
    ) -> WriteResult:
        return await run_write(
            runtime, ctx, request, answer, dry_run=dry_run, token=confirmation_token
        )

    reg.add(
        send_email,
        name="send_email",
        toolset="send",
        title="Send, schedule, draft or log one email",
        description="Create one email activity on a lead; only outbox and scheduled are "
        "confirmed. For many leads: create_bulk_email.",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
