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
"""

from dataclasses import dataclass
from typing import Any, Final

from close_mcp.close.activities import email_activity
from close_mcp.close.catalog import Catalog
from close_mcp.close.client import CloseClient
from close_mcp.errors import ArgumentError, NotFound
from close_mcp.selection.sample import LeadSample
from close_mcp.server.tools.declare import EMAILS, Invocation, WriteTool
from close_mcp.server.tools.rendering import active_template, clip, first_email, render
from close_mcp.server.tools.send_arguments import (
    SENDS,
    SendArguments,
    address_of_sender,
    check_combination,
    check_followup_sequence,
    check_headers,
    parse_followup,
    parse_recipients,
    parse_schedule,
)
from close_mcp.writes.gate import quoted
from close_mcp.writes.reconcile import RecentLookup
from close_mcp.writes.request import WriteRequest

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
LOGGED: Final = frozenset({"sent", "inbox"})  # only recorded: the sender is taken as given
LEAD_FIELDS: Final = "id,display_name,status_label,contacts"
REPLIED_FIELDS: Final = "id,lead_id,thread_id,subject,status,direction"


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


async def _replied_email(client: CloseClient, activity_id: str, lead_id: str) -> dict[str, Any]:
    """The email a reply answers: it must exist and belong to the same lead."""
    raw = await email_activity(client, activity_id, REPLIED_FIELDS, field="in_reply_to_id")
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


async def prepare_send(invocation: Invocation, args: SendArguments) -> WriteRequest:
    sender = args.sender
    from_account = None
    if sender is None and args.email_account is not None and args.status in SENDS:
        sender = from_account = await _sole_identity(
            invocation.call.catalog, args.email_account, args.status
        )
    check_headers(args.subject, sender, {"to": args.to, "cc": args.cc, "bcc": args.bcc})
    check_combination(
        args.status,
        sender,
        args.date_scheduled,
        args.send_in,
        args.followup_date,
        args.body_text,
        args.body_html,
        args.template,
    )
    check_followup_sequence(args.status, args.followup_sequence, args.followup_sequence_delay)
    sender_address = address_of_sender(sender) if sender else None
    to_list = parse_recipients("to", args.to)
    cc_list = parse_recipients("cc", args.cc)
    bcc_list = parse_recipients("bcc", args.bcc)
    scheduled = (
        parse_schedule(args.date_scheduled, invocation.runtime.clock)
        if args.date_scheduled
        else None
    )
    followup = parse_followup(args.followup_date) if args.followup_date else None

    call = invocation.call
    lead = await _fetch_lead(call.client, args.lead_id)
    # An inbox email's recipients are this side's addresses: its sender is the contact's.
    known = [sender_address] if args.status == "inbox" and sender_address else []
    contact = _pick_contact(lead, args.contact_id, known or to_list + cc_list + bcc_list)
    notes: list[str] = []
    replied = (
        await _replied_email(call.client, args.in_reply_to_id, lead.id)
        if args.in_reply_to_id
        else None
    )
    sequence = (
        await _followup_sequence_id(call.catalog, args.followup_sequence)
        if args.followup_sequence
        else None
    )
    chosen_contact = args.contact_id
    picked = str(contact.get("id")) if contact is not None else None
    who = f"contact {picked} ({(contact or {}).get('name') or 'no name'})"
    if not to_list and args.status != "inbox" and contact is not None:
        address = first_email(contact)
        if address is not None:
            to_list = [address]
            chosen_contact = picked
            notes.append(f"to was empty: the email goes to {address}, the first address of {who}.")
    if args.template is not None and chosen_contact is None:
        # Close renders a template for the email's lead and contact: name one.
        if picked is None:
            raise ArgumentError(
                "template",
                f"lead {lead.id} has no contact, and Close renders a template for a lead "
                "and one of its contacts; write the body instead",
            )
        chosen_contact = picked
        notes.append(f"The template is rendered for {who}, the email filed under it.")
    if args.status in SENDS and not to_list:
        raise ArgumentError(
            "to",
            f"status {args.status} sends the email, so it needs a recipient, and lead "
            f"{lead.id} has no contact with an email address; pass to",
        )
    found = None
    if args.template is not None:
        found = await active_template(call.catalog, args.template)
    account_id = (
        await _account_id(call.catalog, args.email_account, sender_address)
        if args.email_account
        else None
    )
    if sender_address is not None and args.status not in LOGGED:
        await _check_identity(call.catalog, sender_address)
    if args.status != "inbox":  # an inbox email's recipients are this side's addresses
        strangers = _strangers(lead, to_list + cc_list + bcc_list)
        if strangers:
            notes.append(
                f"Not contacts of lead {lead.id}: {', '.join(strangers)}. Check they "
                "should get this email."
            )

    if from_account is not None:
        notes.append(f"The sender is {from_account}, the one identity of {args.email_account}.")
    body: dict[str, Any] = {"lead_id": lead.id, "status": args.status}
    optional: list[tuple[str, Any]] = [
        ("contact_id", chosen_contact),
        ("to", to_list or None),
        ("cc", cc_list or None),
        ("bcc", bcc_list or None),
        ("subject", args.subject),
        ("body_text", args.body_text),
        ("body_html", args.body_html),
        ("template_id", found.id if found else None),
        ("sender", sender.strip() if sender else None),
        ("email_account_id", account_id),
        ("date_scheduled", scheduled),
        ("send_in", args.send_in),
        ("followup_date", followup),
        ("in_reply_to_id", args.in_reply_to_id),
        ("followup_sequence_id", sequence[0] if sequence else None),
        ("followup_sequence_delay", args.followup_sequence_delay if sequence else None),
    ]
    body.update((k, v) for k, v in optional if v is not None)

    rendering: dict[str, Any] = {"to": to_list, "cc": cc_list, "bcc": bcc_list}
    if sender:
        rendering["sender"] = body["sender"]
    rendering["subject"] = args.subject
    rendering["body"] = clip(args.body_text if args.body_text is not None else args.body_html)
    if found is not None and chosen_contact is not None:
        rendered = await render(call.client, found.id, lead.id, chosen_contact)
        rendering["contact_id"] = chosen_contact
        rendering["subject"] = args.subject or rendered.get("subject")
        rendering["body"] = clip(rendered.get("body"))
        rendering["template"] = found.name
        notes.append(f"Close renders the template {found.name!r} for this lead when it saves.")
    if scheduled:
        rendering["date_scheduled"] = scheduled
    if args.send_in:
        rendering["send_in"] = args.send_in
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
            f" after {args.followup_sequence_delay // 3600} hours"
            if args.followup_sequence_delay
            else " after Close's default delay"
        )
        rendering["followup_sequence"] = sequence[1]
        notes.append(
            f"If nobody replies, Close subscribes the recipient to the sequence "
            f"{sequence[1]!r} ({sequence[0]}){delay}; that sequence then emails them."
        )

    return WriteRequest(
        tool="send_email",
        action="send" if args.status in SENDS else "log",
        path="activity/email/",
        body=body,
        matched=max(1, len(set(to_list + cc_list + bcc_list))),
        summary=_summary(args.status, to_list, sender, rendering["subject"])
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
            LeadSample(id=lead.id, display_name=lead.display_name, status_label=lead.status_label)
        ],
        rendering=rendering,
        notes=notes,
    )


TOOLS = (
    WriteTool(
        name="send_email",
        toolset="send",
        title="Send, schedule, draft or log one email",
        description="Create one email activity on a lead; only outbox and scheduled are "
        "confirmed. For many leads: create_bulk_email.",
        annotations=EMAILS,
        arguments=SendArguments,
        prepare=prepare_send,
    ),
)
