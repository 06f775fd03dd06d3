"""The fields an `s_query` can name and how each is read: a lead's, a contact's, an email
address's, an email activity's and a custom field's, with the conditions each kind takes and
the relations `has_related` can follow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class FieldSpec:
    """How to read a field: its kind decides which conditions apply."""

    kind: str  # text, choice, number, date, reference
    get: Callable[[Any], list[Any]]
    reference_types: tuple[str, ...] = ()  # what a reference condition may name, first preferred
    day_only: bool = False  # a date custom field: a day, compared with local dates only


def _one(value: Any) -> list[Any]:
    return [] if value is None or value == "" else [value]


def _day_start(value: str, tz: timedelta = timedelta(0)) -> datetime | None:
    """The instant the day `value` begins where clocks are `tz` ahead of UTC."""
    try:
        day = datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        return day - tz
    except (ValueError, OverflowError):
        return None


# Close documents both forms for user fields ("user" and "user_or_group").
USER_REFERENCE = ("user_or_group", "user")

LEAD_FIELDS: dict[str, FieldSpec] = {
    "id": FieldSpec("reference", lambda o: [o.id], ("lead",)),
    "name": FieldSpec("text", lambda o: _one(o.name)),
    "display_name": FieldSpec("text", lambda o: _one(o.display_name)),
    "description": FieldSpec("text", lambda o: _one(o.description)),
    "url": FieldSpec("text", lambda o: _one(o.url)),
    "status_id": FieldSpec("reference", lambda o: [o.status_id], ("status.lead",)),
    "date_created": FieldSpec("date", lambda o: [o.date_created]),
    "date_updated": FieldSpec("date", lambda o: [o.date_updated]),
    "created_by": FieldSpec("reference", lambda o: _one(o.created_by), USER_REFERENCE),
    "num_contacts": FieldSpec("number", lambda o: [len(o.contacts)]),
}
CONTACT_FIELDS: dict[str, FieldSpec] = {
    "id": FieldSpec("reference", lambda o: [o.id], ("contact",)),
    "lead_id": FieldSpec("reference", lambda o: [o.lead_id], ("lead",)),
    "name": FieldSpec("text", lambda o: _one(o.name)),
    "display_name": FieldSpec("text", lambda o: _one(o.name)),
    "title": FieldSpec("text", lambda o: _one(o.title)),
    "date_created": FieldSpec("date", lambda o: [o.date_created]),
    "date_updated": FieldSpec("date", lambda o: [o.date_updated]),
}
EMAIL_FIELDS: dict[str, FieldSpec] = {
    "email": FieldSpec("text", lambda o: _one(o["email"])),
    "type": FieldSpec("choice", lambda o: _one(o.get("type"))),
}


def _when(value: Any) -> list[datetime]:
    """An activity's ISO date as a UTC datetime (none when absent or unreadable); without an
    offset it is UTC, as Close's activities answer (`naive_iso`), whatever the machine's zone."""
    if not isinstance(value, str) or not value:
        return []
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return []
    return [moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)]


# An email activity, as Close's UI filters it ("emailed in the last 30 days": outgoing, by
# `date`): `date` is when it was sent, or made when it was not sent.
EMAIL_ACTIVITY_FIELDS: dict[str, FieldSpec] = {
    "direction": FieldSpec("choice", lambda o: _one(o.get("direction"))),
    "status": FieldSpec("choice", lambda o: _one(o.get("status"))),
    "date": FieldSpec("date", lambda o: _when(o.get("date_sent") or o.get("date_created"))),
    "date_created": FieldSpec("date", lambda o: _when(o.get("date_created"))),
}
# A call, as Close's call activity has it: `direction` inbound or outbound, `date` when it
# happened (`activity_at`, else when it was logged).
CALL_ACTIVITY_FIELDS: dict[str, FieldSpec] = {
    "direction": FieldSpec("choice", lambda o: _one(o.get("direction"))),
    "status": FieldSpec("choice", lambda o: _one(o.get("status"))),
    "date": FieldSpec("date", lambda o: _when(o.get("activity_at") or o.get("date_created"))),
    "date_created": FieldSpec("date", lambda o: _when(o.get("date_created"))),
    "duration": FieldSpec("number", lambda o: _one(o.get("duration"))),
}
# An opportunity: its status is a `status.opportunity` reference (a lead status's id, or the
# lead's reference type, is refused as Close refuses it).
OPPORTUNITY_FIELDS: dict[str, FieldSpec] = {
    "status_id": FieldSpec("reference", lambda o: [o.status_id], ("status.opportunity",)),
    "user_id": FieldSpec("reference", lambda o: [o.user_id], USER_REFERENCE),
    "value": FieldSpec("number", lambda o: _one(o.value)),
    "date_created": FieldSpec("date", lambda o: [o.date_created]),
    "date_updated": FieldSpec("date", lambda o: [o.date_updated]),
}
REGULAR_FIELDS = {
    "lead": LEAD_FIELDS,
    "contact": CONTACT_FIELDS,
    "contact_email": EMAIL_FIELDS,
    "activity.email": EMAIL_ACTIVITY_FIELDS,
    "activity.call": CALL_ACTIVITY_FIELDS,
    "opportunity": OPPORTUNITY_FIELDS,
}
RELATIONS: dict[tuple[str, str], Callable[[Any], list[Any]]] = {
    ("lead", "contact"): lambda lead: list(lead.contacts),
    ("lead", "contact_email"): lambda lead: [e for c in lead.contacts for e in c.emails],
    ("contact", "contact_email"): lambda contact: list(contact.emails),
}
CONDITIONS_BY_KIND = {
    "text": {"text", "term", "exists"},
    "choice": {"text", "term", "exists"},
    "number": {"number_range", "term", "exists"},
    "date": {"moment_range", "exists"},
    # ID fields take a reference condition naming the ID's type, as Close documents; a `term`
    # on an ID is not documented, so it is refused.
    "reference": {"reference", "exists"},
}


def custom_spec(cf_id: str, cf_type: str, tz: timedelta = timedelta(0)) -> FieldSpec:
    def get(lead: Any) -> list[Any]:
        value = lead.custom.get(cf_id)
        values = value if isinstance(value, list) else _one(value)
        if cf_type == "date":  # a day, which starts at midnight in the request's offset
            return [d for d in (_day_start(str(v), tz) for v in values) if d is not None]
        return list(values)

    kind = {"text": "text", "number": "number", "date": "date", "choices": "choice"}.get(
        cf_type, "reference"
    )
    return FieldSpec(
        kind, get, USER_REFERENCE if cf_type == "user" else (), day_only=cf_type == "date"
    )
