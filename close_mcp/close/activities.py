"""A lead's email activities and sequence subscriptions, read for the read tools, and one
email activity by its id (the email a reply answers, the email a cancel takes back).

Close documents no order for `GET /activity/email/` and no `_order_by` on it, so a lead's
emails are read whole (pages of 200, at most `MAX_EMAILS`) and put newest first here, by
when each happened (`activity_at`: sent, received or created), never by Close's list order.
`GET /sequence_subscription/` needs one of `sequence_id`, `contact_id`, `lead_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from close_mcp.close.client import MAX_PAGE_SIZE, CloseClient
from close_mcp.close.times import close_time
from close_mcp.errors import ArgumentError, NotFound

JSON = dict[str, Any]

# What close-mcp reads of an email activity and of a subscription (`_fields`).
EMAIL_KEYS: Final = (
    "id", "direction", "status", "subject", "date_created", "activity_at", "date_sent",
    "date_scheduled", "thread_id", "contact_id", "sender", "to",
)  # fmt: skip
SUBSCRIPTION_KEYS: Final = ("id", "sequence_id", "contact_id", "status")
MAX_EMAILS: Final = 1_000  # emails of one lead read to order them (5 pages of 200)
MAX_SUBSCRIPTIONS: Final = 200  # one page
_EPOCH: Final = datetime.min.replace(tzinfo=UTC)


@dataclass
class LeadEmails:
    emails: list[JSON]  # newest first
    complete: bool  # False: the lead has more than MAX_EMAILS; only those read are ordered


def email_moment(email: JSON) -> datetime:
    """When an email happened: `activity_at` (Close: when it was sent or received), else
    when it was created; an email with neither sorts last."""
    return close_time(email.get("activity_at")) or close_time(email.get("date_created")) or _EPOCH


async def email_activity(client: CloseClient, activity_id: str, fields: str, *, field: str) -> JSON:
    """The email activity `activity_id` (its `fields`); an error on the argument `field` when
    Close has none by that id, or does not show it to this key."""
    try:
        raw = await client.get(f"activity/email/{activity_id}/", {"_fields": fields})
    except NotFound:
        raw = None
    if not isinstance(raw, dict) or raw.get("id") != activity_id:
        raise ArgumentError(
            field, f"Close has no email activity {activity_id!r} (or this key cannot see it)"
        )
    return raw


async def _lead_list(
    client: CloseClient, path: str, lead_id: str, keys: tuple[str, ...], cap: int
) -> tuple[list[JSON], bool]:
    """Up to `cap` items of one of the lead's lists (pages of 200), and whether that was all."""
    read = await client.list_all(
        path,
        {"lead_id": lead_id, "_fields": ",".join(keys)},
        page_size=MAX_PAGE_SIZE,
        max_items=cap + 1,
    )
    return [item for item in read[:cap] if isinstance(item, dict)], len(read) <= cap


async def lead_emails(client: CloseClient, lead_id: str) -> LeadEmails:
    """The lead's email activities, newest first (ties by id, so pages never overlap)."""
    emails, complete = await _lead_list(client, "activity/email/", lead_id, EMAIL_KEYS, MAX_EMAILS)
    emails.sort(key=lambda e: str(e.get("id")), reverse=True)
    emails.sort(key=email_moment, reverse=True)
    return LeadEmails(emails=emails, complete=complete)


async def lead_subscriptions(client: CloseClient, lead_id: str) -> tuple[list[JSON], bool]:
    """The lead's sequence subscriptions (one page of 200), and whether that was all of them."""
    return await _lead_list(
        client, "sequence_subscription/", lead_id, SUBSCRIPTION_KEYS, MAX_SUBSCRIPTIONS
    )
