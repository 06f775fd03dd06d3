"""Email activities: Close's status rules for creating, changing, cancelling and sending.

`outbox` emails stay `outbox` until `send_in` seconds (default 0) have passed on the clock and
`scheduled` ones until `date_scheduled`; then the next request finds them `sent`, with
`date_sent` set. Until then setting them back to `draft` cancels them. Only drafts can be edited.

Replies and follow-up sequences, as Close's email reference documents them: `in_reply_to_id`
names an email activity that must exist, and the reply joins its thread (`thread_id`);
`followup_sequence_id` names a sequence that must exist, `followup_sequence_delay` is whole
seconds, at least 86400 (a day), and `followup_sequence_add_cc_bcc` a boolean.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from close_mcp.sandbox.errors import BadRequest, NotFoundAnswer, found
from close_mcp.sandbox.render import render_text
from close_mcp.sandbox.store import JSON, Contact, Lead, Store, from_epoch, iso, naive_iso

STATUSES = ("draft", "inbox", "scheduled", "outbox", "sent", "error")
NEEDS_SENDER = ("inbox", "scheduled", "outbox", "error")
FILE_URL_PREFIX = "https://app.close.com/go/file/"
MAX_BODY = 1_048_576
MIN_FOLLOWUP_SEQUENCE_DELAY = 86_400  # Close: followup_sequence_delay >= 86400
EDITABLE = (
    "contact_id", "to", "cc", "bcc", "subject", "body_text", "body_html", "template_id",
    "sender", "email_account_id", "date_scheduled", "send_in", "followup_date", "attachments",
    "status", "in_reply_to_id", "followup_sequence_id", "followup_sequence_delay",
    "followup_sequence_add_cc_bcc",
)  # fmt: skip

# The request fields Close documents for `POST /activity/email/` (its request schema, plus
# `date_scheduled` and `send_in`, which its prose requires for scheduled and outbox). Any
# other field is refused, so a client cannot rely on one Close would ignore.
CREATE_FIELDS = (
    "lead_id", "status", "activity_at", "attachments", "bcc", "body_html", "body_text", "cc",
    "contact_id", "created_by", "date_created", "email_account_id", "followup_date",
    "followup_sequence_add_cc_bcc", "followup_sequence_delay", "followup_sequence_id",
    "in_reply_to_id", "opens", "organization_id", "sender", "subject", "template_id", "to",
    "user_id", "date_scheduled", "send_in",
)  # fmt: skip


def _parse_datetime(value: Any) -> datetime | None:
    """A date-time (Close's type for `date_scheduled` and `followup_date`); a bare date is not."""
    text = str(value)
    if "T" not in text and " " not in text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stored_time(text: str) -> datetime:
    """One of this module's own timestamps (UTC, without an offset) as a UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def query_time(raw: str) -> datetime | None:
    """A list filter's bound: a date-time (no offset: UTC) or a date (its UTC midnight)."""
    text = raw.strip()
    try:
        if "T" in text:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        return None


def _check(store: Store, data: JSON, lead: Lead) -> dict[str, str]:
    """Field errors of a would-be email (the merged state for a PUT)."""
    errors: dict[str, str] = {}
    status = data.get("status")
    if status not in STATUSES:
        errors["status"] = f"Must be one of: {', '.join(STATUSES)}."
    sender = data.get("sender")
    if status in NEEDS_SENDER and not sender:
        errors["sender"] = f"This field is required for status {status!r}."
    elif sender is not None and (not isinstance(sender, str) or "@" not in sender):
        errors["sender"] = "Not a valid email address."
    if status == "scheduled" and data.get("date_scheduled") is None:
        errors["date_scheduled"] = "This field is required for status 'scheduled'."
    for key in ("date_scheduled", "followup_date"):
        if data.get(key) is not None and _parse_datetime(data[key]) is None:
            errors[key] = "Not a valid datetime."
    send_in = data.get("send_in")
    if send_in is not None and (
        not isinstance(send_in, (int, float)) or isinstance(send_in, bool) or not 0 <= send_in < 60
    ):
        errors["send_in"] = "Must be a number of seconds below 60."
    subject = data.get("subject")
    if subject is not None and (not isinstance(subject, str) or len(subject) > 1000):
        errors["subject"] = "Must be a string of at most 1000 characters."
    for key in ("body_text", "body_html"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_BODY):
            errors[key] = f"Must be a string of at most {MAX_BODY} characters."
    for key in ("to", "cc", "bcc"):
        value = data.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) and "@" in v for v in value)
        ):
            errors[key] = "Must be a list of email addresses."
    contact_id = data.get("contact_id")
    if contact_id is not None and all(c.id != contact_id for c in lead.contacts):
        errors["contact_id"] = "Contact not found on this lead."
    template_id = data.get("template_id")
    if template_id is not None and template_id not in store.templates:
        errors["template_id"] = "Email template not found."
    account_id = data.get("email_account_id")
    if account_id is not None and account_id not in store.email_accounts:
        errors["email_account_id"] = "Email account not found."
    errors.update(_check_thread_and_followup(store, data))
    attachments = data.get("attachments")
    if attachments is not None and not (
        isinstance(attachments, list)
        and all(
            isinstance(a, dict) and str(a.get("url", "")).startswith(FILE_URL_PREFIX)
            for a in attachments
        )
    ):
        errors["attachments"] = f"Each attachment needs a url starting {FILE_URL_PREFIX}."
    return errors


def _check_thread_and_followup(store: Store, data: JSON) -> dict[str, str]:
    errors: dict[str, str] = {}
    reply_to = data.get("in_reply_to_id")
    if reply_to is not None and (not isinstance(reply_to, str) or reply_to not in store.emails):
        errors["in_reply_to_id"] = "Email activity not found."
    sequence_id = data.get("followup_sequence_id")
    if sequence_id is not None and (
        not isinstance(sequence_id, str) or sequence_id not in store.sequences
    ):
        errors["followup_sequence_id"] = "Sequence not found."
    delay = data.get("followup_sequence_delay")
    if delay is not None and (
        not isinstance(delay, int) or isinstance(delay, bool) or delay < MIN_FOLLOWUP_SEQUENCE_DELAY
    ):
        errors["followup_sequence_delay"] = (
            f"Ensure this value is greater than or equal to {MIN_FOLLOWUP_SEQUENCE_DELAY}."
        )
    add_cc_bcc = data.get("followup_sequence_add_cc_bcc")
    if add_cc_bcc is not None and not isinstance(add_cc_bcc, bool):
        errors["followup_sequence_add_cc_bcc"] = "Must be a boolean."
    return errors


def _thread_of(store: Store, data: JSON) -> str:
    """A reply joins the thread of the email it answers; anything else starts one."""
    replied = store.emails.get(data.get("in_reply_to_id") or "")
    if replied is not None and replied.get("thread_id"):
        return str(replied["thread_id"])
    return store.new_id("acti")


def _lead_of(store: Store, data: JSON) -> Lead:
    lead_id = data.get("lead_id")
    if lead_id is None:
        raise BadRequest({"lead_id": "This field is required."})
    lead = store.leads.get(lead_id) if isinstance(lead_id, str) else None
    if lead is None:
        raise BadRequest({"lead_id": "Lead not found."})
    return lead


def _schedule(store: Store, email: JSON, send_in: Any, now: float) -> None:
    store.email_send_at.pop(email["id"], None)
    if email["status"] == "outbox":
        store.email_send_at[email["id"]] = now + float(send_in or 0)
    elif email["status"] == "scheduled":
        when = _parse_datetime(email["date_scheduled"])
        assert when is not None  # checked by _check
        email["date_scheduled"] = iso(when)
        store.email_send_at[email["id"]] = when.timestamp()


def _fill_from_template(store: Store, email: JSON, lead: Lead) -> None:
    template = store.templates.get(email.get("template_id") or "")
    if template is None or email.get("body_text") or email.get("body_html"):
        return
    contact = _contact(lead, email.get("contact_id"))
    body = render_text(template.body, store, lead, contact)
    email["body_text"] = body
    email["body_html"] = body.replace("\n", "<br>")
    if not email.get("subject"):
        email["subject"] = render_text(template.subject, store, lead, contact)
    email["template_name"] = template.name


def _contact(lead: Lead, contact_id: Any) -> Contact | None:
    return next((c for c in lead.contacts if c.id == contact_id), None)


def create(store: Store, data: Any, now: float, bulk_email_action_id: str | None = None) -> JSON:
    """POST /activity/email/: validate like Close, store, and answer the activity."""
    if not isinstance(data, dict):
        raise BadRequest({}, ["Expected a JSON object."])
    unknown = sorted(set(data) - set(CREATE_FIELDS))
    if unknown:
        raise BadRequest({key: "Unknown field." for key in unknown})
    lead = _lead_of(store, data)
    errors = _check(store, data, lead)
    if errors:
        raise BadRequest(errors)
    moment = naive_iso(from_epoch(now))  # as Close's example answers: no offset
    email_id = store.new_id("acti")
    sender = data.get("sender")
    if sender is None and data["status"] == "sent":
        sender = store.me.email
    body_text = data.get("body_text")
    email: JSON = {
        "_type": "Email",
        "id": email_id,
        "thread_id": _thread_of(store, data),
        "lead_id": lead.id,
        "contact_id": data.get("contact_id"),
        "status": data["status"],
        "direction": "incoming" if data["status"] == "inbox" else "outgoing",
        "to": list(data.get("to") or []),
        "cc": list(data.get("cc") or []),
        "bcc": list(data.get("bcc") or []),
        "subject": data.get("subject"),
        "body_text": body_text,
        "body_html": data.get("body_html"),
        "body_preview": (body_text or "")[:200],
        "template_id": data.get("template_id"),
        "template_name": None,
        "sender": sender,
        "email_account_id": data.get("email_account_id"),
        "date_scheduled": data.get("date_scheduled"),
        "date_sent": moment if data["status"] == "sent" else None,
        "followup_date": data.get("followup_date"),
        "attachments": list(data.get("attachments") or []),
        "bulk_email_action_id": bulk_email_action_id,
        "has_reply": False,
        "in_reply_to_id": data.get("in_reply_to_id"),
        "followup_sequence_id": data.get("followup_sequence_id"),
        "followup_sequence_delay": data.get("followup_sequence_delay"),
        "followup_sequence_add_cc_bcc": bool(data.get("followup_sequence_add_cc_bcc")),
        "need_smtp_credentials": False,
        "send_as_id": None,
        "envelope": {},
        "message_ids": [],
        "references": [],
        "users": [],
        "opens": [],
        "opens_summary": None,
        "send_attempts": [],
        "sequence_id": None,
        "sequence_name": None,
        "sequence_subscription_id": None,
        "user_id": store.me.id,
        "user_name": store.me.full_name,
        "created_by": store.me.id,
        "created_by_name": store.me.full_name,
        "updated_by": store.me.id,
        "updated_by_name": store.me.full_name,
        "organization_id": store.org.id,
        "date_created": moment,
        "date_updated": moment,
        "activity_at": moment,
    }
    _fill_from_template(store, email, lead)
    email["body_preview"] = (email["body_text"] or "")[:200]
    _schedule(store, email, data.get("send_in"), now)
    store.emails[email_id] = email
    return dict(email)


def update(store: Store, email_id: str, data: Any, now: float) -> JSON:
    """PUT /activity/email/{id}/: edit a draft, or cancel an unsent scheduled/outbox email."""
    email = found(store.emails, email_id, "Email activity")
    if not isinstance(data, dict):
        raise BadRequest({}, ["Expected a JSON object."])
    unsent = email["status"] in ("scheduled", "outbox") and email_id in store.email_send_at
    if unsent and data.get("status") == "draft":
        store.email_send_at.pop(email_id, None)
    elif email["status"] != "draft":
        raise BadRequest({"status": "Only drafts can be modified."})
    unknown = sorted(set(data) - set(EDITABLE))
    if unknown:
        raise BadRequest({key: "This field cannot be changed." for key in unknown})
    merged = {**email, **data}
    lead = store.leads.get(email["lead_id"])
    if lead is None:
        raise NotFoundAnswer("The email's lead no longer exists.")
    errors = _check(store, merged, lead)
    if errors:
        raise BadRequest(errors)
    send_in = merged.pop("send_in", None)
    email.update({k: v for k, v in merged.items() if k in EDITABLE})
    email["date_updated"] = naive_iso(from_epoch(now))
    _fill_from_template(store, email, lead)
    _schedule(store, email, send_in, now)
    return dict(email)


def deliver_due(store: Store, now: float) -> None:
    """Mark outbox and scheduled emails whose time has come as sent."""
    for email_id, send_at in list(store.email_send_at.items()):
        if send_at <= now:
            email = store.emails[email_id]
            email["status"] = "sent"
            email["date_sent"] = naive_iso(from_epoch(send_at))
            email["date_updated"] = email["date_sent"]
            email["activity_at"] = email["date_sent"]  # Close: when it was actually sent
            del store.email_send_at[email_id]
