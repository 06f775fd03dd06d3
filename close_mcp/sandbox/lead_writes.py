"""Creating and changing single leads, with Close's checks on statuses and custom values.

`POST /lead/` lets a restore re-create deleted leads (with their contacts and, as an import
would, their `date_created`); `PUT /lead/{id}/` lets a revert, or a test posing as a third
party, change a status or custom fields. `custom.cf_...` keys carry custom values, as Close's.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from close_mcp.sandbox.errors import BadRequest
from close_mcp.sandbox.store import JSON, Contact, CustomField, Lead, Store, from_epoch

READ_ONLY = {
    "id", "display_name", "status_label", "html_url", "date_updated", "organization_id",
    "created_by", "updated_by", "opportunities", "tasks", "addresses", "custom",
    "integration_links",
}  # fmt: skip
WRITABLE = {"name", "status_id", "url", "description", "contacts", "date_created"}


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def check_custom_value(store: Store, cf: CustomField, value: Any, key: str) -> None:
    """Refuse a value the custom field cannot hold (one value; lists are checked item by item)."""
    ok = {
        "text": isinstance(value, str),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "date": isinstance(value, str) and _is_date(value),
        "choices": value in cf.choices,
        "user": value in store.users,
    }.get(cf.type, True)
    if not ok:
        allowed = f" Allowed: {', '.join(cf.choices)}." if cf.type == "choices" else ""
        raise BadRequest({key: f"Not a valid value for {cf.type} field {cf.name!r}.{allowed}"})


def _custom_updates(store: Store, data: JSON) -> dict[str, Any]:
    """`custom.cf_x` keys -> {cf_id: value or None (clear)}; multi-value fields take lists."""
    updates: dict[str, Any] = {}
    for key, value in data.items():
        if not key.startswith("custom."):
            continue
        cf = store.custom_fields.get(key[len("custom.") :])
        if cf is None:
            raise BadRequest({key: "Unknown custom field."})
        if value is None or value == []:
            updates[cf.id] = None
            continue
        values = value if isinstance(value, list) else [value]
        if len(values) > 1 and not cf.accepts_multiple_values:
            raise BadRequest({key: f"{cf.name!r} does not accept multiple values."})
        for item in values:
            check_custom_value(store, cf, item, key)
        updates[cf.id] = list(values) if cf.accepts_multiple_values else values[0]
    return updates


def _contacts(store: Store, raw: Any, lead_id: str, now: datetime) -> list[Contact]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise BadRequest({"contacts": "Must be a list of contact objects."})
    contacts = []
    for i, item in enumerate(raw):
        emails, phones = item.get("emails") or [], item.get("phones") or []
        if not isinstance(emails, list) or not all(
            isinstance(e, dict) and isinstance(e.get("email"), str) for e in emails
        ):
            raise BadRequest({f"contacts.{i}.emails": "Must be a list of {email, type}."})
        if not isinstance(phones, list) or not all(isinstance(p, dict) for p in phones):
            raise BadRequest({f"contacts.{i}.phones": "Must be a list of {phone, type}."})
        contacts.append(
            Contact(
                store.new_id("cont"),
                lead_id,
                str(item.get("name") or ""),
                str(item.get("title") or ""),
                [{"email": e["email"], "type": e.get("type", "office")} for e in emails],
                [
                    {"phone": str(p.get("phone", "")), "type": p.get("type", "office")}
                    for p in phones
                ],
                now,
                now,
            )
        )
    return contacts


def _check_keys(data: JSON, writable: set[str]) -> None:
    unknown = [k for k in data if k not in writable | READ_ONLY and not k.startswith("custom.")]
    if unknown:
        raise BadRequest({k: "Unknown field." for k in unknown})


def _status(store: Store, data: JSON) -> str | None:
    status_id = data.get("status_id")
    if status_id is not None and status_id not in store.statuses:
        raise BadRequest({"status_id": "Lead status not found."})
    return status_id if isinstance(status_id, str) else None


def create_lead(store: Store, data: Any, now: float) -> Lead:
    if not isinstance(data, dict):
        raise BadRequest({}, ["Expected a JSON object."])
    _check_keys(data, WRITABLE)
    status_id = _status(store, data) or next(iter(store.statuses))
    created = from_epoch(now)
    if data.get("date_created") is not None:
        try:
            created = datetime.fromisoformat(str(data["date_created"]).replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest({"date_created": "Not a valid datetime."}) from None
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
    custom = {k: v for k, v in _custom_updates(store, data).items() if v is not None}
    lead_id = store.new_id("lead")
    lead = Lead(
        lead_id, str(data.get("name") or ""), status_id,
        _contacts(store, data.get("contacts"), lead_id, created), custom, created,
        from_epoch(now), data.get("url"), str(data.get("description") or ""), store.me.id,
    )  # fmt: skip
    store.leads[lead.id] = lead
    return lead


def update_lead(store: Store, lead: Lead, data: Any, now: float) -> Lead:
    """PUT semantics (like PATCH): only the given fields change; `custom.cf_x: null` clears."""
    if not isinstance(data, dict):
        raise BadRequest({}, ["Expected a JSON object."])
    _check_keys(data, WRITABLE - {"contacts", "date_created"})
    status_id = _status(store, data)
    updates = _custom_updates(store, data)
    if status_id is not None:
        lead.status_id = status_id
    if "name" in data:
        lead.name = str(data["name"] or "")
    if "url" in data:
        lead.url = data["url"]
    if "description" in data:
        lead.description = str(data["description"] or "")
    for cf_id, value in updates.items():
        if value is None:
            lead.custom.pop(cf_id, None)
        else:
            lead.custom[cf_id] = value
    lead.date_updated = from_epoch(now)
    return lead
