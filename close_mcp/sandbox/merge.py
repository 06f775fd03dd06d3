"""Lead merge as Close documents it: one POST moves the source's records to the destination,
then deletes the source, and logs both leads' events."""

from __future__ import annotations

from typing import Final

from close_mcp.sandbox.errors import BadRequest
from close_mcp.sandbox.events import EventLog
from close_mcp.sandbox.params import check_keys
from close_mcp.sandbox.routes import Call
from close_mcp.sandbox.store import JSON, Opportunity, Store, Task, from_epoch

MERGE_KEYS: Final = {"source", "destination"}


def merge_leads(store: Store, log: EventLog, call: Call) -> JSON:
    """`{"source": lead_id, "destination": lead_id}`: the source's contacts,
    opportunities, tasks, email activities and subscriptions move to the destination,
    custom fields the destination lacks are copied, and the source is deleted."""
    data = check_keys(call.json, MERGE_KEYS)
    missing = {k: "This field is required." for k in sorted(MERGE_KEYS) if not data.get(k)}
    if missing:
        raise BadRequest(missing)
    if data["source"] == data["destination"]:
        raise BadRequest({"destination": "A lead cannot be merged into itself."})
    found = {k: store.leads.get(data[k]) for k in ("source", "destination")}
    absent = {k: "Lead not found." for k, lead in found.items() if lead is None}
    if absent:
        raise BadRequest(absent)
    source, destination = found["source"], found["destination"]
    assert source is not None
    assert destination is not None
    now = from_epoch(call.now)
    meta = {"merge_source_lead_id": source.id, "merge_destination_lead_id": destination.id}
    before = destination.to_json(store)
    previous = source.to_json(store)
    for contact in source.contacts:
        contact.lead_id = destination.id
    destination.contacts.extend(source.contacts)
    source.contacts = []
    for cf_id, value in source.custom.items():
        destination.custom.setdefault(cf_id, value)
    moved: list[Opportunity | Task] = [
        *store.opportunities.values(),
        *store.tasks.values(),
    ]
    for obj in moved:
        if obj.lead_id == source.id:
            obj.lead_id = destination.id
    for sub in store.subscriptions.values():
        if sub.lead_id == source.id:
            sub.lead_id = destination.id
    for email in store.emails.values():
        if email.get("lead_id") == source.id:
            email["lead_id"] = destination.id
    destination.date_updated = now
    del store.leads[source.id]
    after = destination.to_json(store)
    changed = sorted(k for k in after if after[k] != before.get(k) and k != "date_updated")
    log.emit(
        "lead", destination.id, destination.id, "updated", now, data=after,
        previous_data={k: before.get(k) for k in changed}, changed_fields=changed, meta=meta,
    )  # fmt: skip
    log.emit("lead", source.id, source.id, "deleted", now, previous_data=previous, meta=meta)
    log.emit("lead", destination.id, destination.id, "merged", now, data=after, meta=meta)
    return {}
