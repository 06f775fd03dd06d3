"""Opportunities, pipelines, tasks, lead merge, lead exports and the event log, as Close
documents them (the OpenAPI file's descriptions and Close's reference pages; README
"Limits and unverified Close behaviours" lists what is inferred).

Strictness: a body key the endpoint does not take is refused (400 naming it), and so is a
query parameter the endpoint does not document, so close-mcp can never come to rely on one
Close would ignore. List pages are Close's: `_skip`/`_limit`, at most 200 (the event log:
cursors, at most 50 a page, no `_skip`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from close_mcp.sandbox.errors import ApiError, BadRequest, NotFoundAnswer
from close_mcp.sandbox.evaluator import check_results_limit, select
from close_mcp.sandbox.routes import (
    Call,
    Handler,
    _int_param,
    narrow,
    page,
    unordered,
)
from close_mcp.sandbox.store import (
    JSON,
    Contact,
    Event,
    Export,
    Lead,
    Opportunity,
    Store,
    Task,
    from_epoch,
    iso,
)

EVENT_DAYS: Final = 30  # "up to 30 days back in history" (Close's event log page)
EVENT_MAX_LIMIT: Final = 50  # "capped at and defaulting to 50"
EXPORT_PATH: Final = "/sandbox-files/export/"  # where the sandbox serves finished exports
# The documented filters of GET /opportunity/ (the OpenAPI file's parameters).
_DATE_OPS: Final = ("", "__gte", "__gt", "__lte", "__lt")
OPP_PARAMS: Final = {
    "_limit", "_skip", "_fields", "lead_id", "organization_id", "user_id", "user_id__in",
    "status_id", "status_id__in", "status_type", "status_type__in", "status_label",
    "status_label__in", "value_period", "value_period__in", "_order_by", "is_stalled",
    *(f"{d}{op}" for d in ("date_won", "date_created", "date_updated") for op in _DATE_OPS),
}  # fmt: skip
OPP_ORDER: Final = ("date_won", "date_updated", "date_created", "confidence", "value")
OPP_WRITABLE: Final = {
    "status_id", "user_id", "value", "value_period", "value_currency", "confidence", "note",
    "date_won", "contact_id",
}  # fmt: skip
VALUE_PERIODS: Final = ("one_time", "monthly", "annual")
TASK_PARAMS: Final = {
    "_limit", "_skip", "_fields", "id", "id__in", "assigned_to", "is_complete", "lead_id",
    "_order_by", "organization_id", "_type", "_type__in", "view",
    *(f"{d}{op}" for d in ("date", "due_date") for op in _DATE_OPS),
    *(f"{d}{op}" for d in ("date_created", "date_updated") for op in _DATE_OPS[1:]),
}  # fmt: skip
# PUT /task/{id}/: "The assigned_to, date (either a date or a date-time), and is_complete
# fields may be updated on all tasks. If the task type is lead, the text field may also be
# modified." `due_date` is the newer name of `date`. Other keys of UpdateNotification exist
# but cannot be changed here.
TASK_WRITABLE: Final = {"assigned_to", "date", "due_date", "is_complete", "text"}
TASK_FIXED: Final = {
    "agent_config_id", "contact_id", "created_by", "is_dateless", "lead_id",
    "organization_id", "priority", "resolution",
}  # fmt: skip
EVENT_FILTERS: Final = ("object_type", "object_id", "lead_id", "action", "user_id", "request_id")
# The event log's supported filter combinations (date_updated may join any of them).
EVENT_COMBOS: Final = {
    frozenset(c)
    for c in (
        ("object_type", "object_id"), ("object_type", "action"), ("object_id", "action"),
        ("lead_id", "object_type"), ("lead_id", "object_type", "action"),
        ("lead_id", "user_id", "object_type"), ("lead_id", "user_id", "object_type", "action"),
        ("lead_id", "user_id"), ("user_id", "object_id"), ("user_id", "object_id", "action"),
        ("user_id", "object_type"), ("user_id", "object_type", "action"), ("lead_id",),
        ("user_id",), ("request_id",), (),
    )
}  # fmt: skip
EVENT_PARAMS: Final = {
    "_limit", "_cursor", *EVENT_FILTERS,
    *(f"date_updated{op}" for op in _DATE_OPS[1:]),
}  # fmt: skip
EXPORT_KEYS: Final = {
    "s_query", "results_limit", "sort", "format", "type", "date_format", "fields",
    "include_activities", "include_smart_fields", "include_addresses",
    "include_custom_objects", "send_done_email",
}  # fmt: skip
EXPORT_TYPES: Final = ("leads", "contacts", "lead_opps")
DATE_FORMATS: Final = ("original", "iso8601", "excel")
MERGE_KEYS: Final = {"source", "destination"}


def check_params(query: dict[str, str], allowed: set[str] | frozenset[str]) -> None:
    unknown = sorted(k for k in query if k not in allowed)
    if unknown:
        raise BadRequest({k: "Unknown query parameter." for k in unknown})


def check_keys(data: Any, allowed: set[str], fixed: set[str] = frozenset()) -> JSON:  # type: ignore[assignment]
    if not isinstance(data, dict):
        raise BadRequest({}, ["Expected a JSON object."])
    errors = {k: "This field cannot be changed." for k in data if k in fixed}
    errors |= {k: "Unknown field." for k in data if k not in allowed and k not in fixed}
    if errors:
        raise BadRequest(errors)
    return data


def _when(raw: str, name: str) -> datetime:
    """A date or date-time filter value (a bare date is its midnight UTC)."""
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest({name: "Must be an ISO 8601 date or date-time."}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _compare(value: datetime | None, op: str, bound: datetime) -> bool:
    if value is None:
        return False
    return {
        "": value == bound,
        "__gte": value >= bound,
        "__gt": value > bound,
        "__lte": value <= bound,
        "__lt": value < bound,
    }[op]


def _date_filters(
    query: dict[str, str], names: tuple[str, ...], get: Callable[[Any, str], datetime | None]
) -> Callable[[Any], bool]:
    tests = []
    for name in names:
        for op in _DATE_OPS:
            key = name + op
            if key in query:
                tests.append((name, op, _when(query[key], key)))
    return lambda obj: all(_compare(get(obj, n), op, bound) for n, op, bound in tests)


def _in(query: dict[str, str], name: str) -> set[str] | None:
    """`name=x` or `name__in=x,y` as a set; None when neither is given."""
    values: set[str] | None = None
    if name in query:
        values = {query[name]}
    if f"{name}__in" in query:
        values = (values or set()) | {v for v in query[f"{name}__in"].split(",") if v}
    return values


def _bool(query: dict[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false", "1", "0"):
        raise BadRequest({name: "Must be true or false."})
    return raw.lower() in ("true", "1")


def _order(
    items: list[Any], raw: str | None, allowed: tuple[str, ...], key: Callable[[Any, str], Any]
) -> list[Any]:
    if raw is None:
        return items
    name = raw.lstrip("-")
    if name not in allowed:
        raise BadRequest({"_order_by": f"Must be one of: {', '.join(allowed)} (- for descending)."})
    present = [i for i in items if key(i, name) is not None]
    absent = [i for i in items if key(i, name) is None]
    return sorted(present, key=lambda i: key(i, name), reverse=raw.startswith("-")) + absent


class Crm:
    """The handlers; `emit` writes the event log the way Close's actions do."""

    def __init__(self, store: Store, job_speed: float) -> None:
        self.store = store
        self.job_speed = job_speed
        self._owner_cache: tuple[tuple[int, int], set[str]] | None = None
        # Event ids of their own (deletes made by the flows that existed before the event
        # log must not shift the ids the store hands out next), and cheap: a bulk delete
        # logs each lead and its contacts. An odd multiplier mod 2**88 maps the counter
        # one-to-one onto 22 hex digits.
        self._events = random.Random(f"{store.org.id}-events").getrandbits(64)

    def routes(self) -> list[tuple[str, dict[str, Handler]]]:
        return [
            (r"pipeline/", {"GET": self.pipelines}),
            (r"status/opportunity/", {"GET": self.opportunity_statuses}),
            (r"opportunity/", {"GET": self.opportunities}),
            (
                r"opportunity/(?P<id>[^/]+)/",
                {"GET": self.opportunity, "PUT": self.update_opportunity},
            ),
            (r"task/", {"GET": self.tasks}),
            (
                r"task/(?P<id>[^/]+)/",
                {"GET": self.task, "PUT": self.update_task, "DELETE": self.delete_task},
            ),
            (r"lead/merge/", {"POST": self.merge}),
            (r"export/", {"GET": self.exports}),
            (r"export/lead/", {"POST": self.create_export}),
            (r"export/(?P<id>[^/]+)/", {"GET": self.export}),
            (r"event/", {"GET": self.events}),
            (r"event/(?P<id>[^/]+)/", {"GET": self.event}),
        ]

    # -- the event log -------------------------------------------------------------------

    def _event_id(self) -> str:
        self._events += 1
        return f"ev_{self._events * 0x9E3779B97F4A7C15 % (1 << 88):022x}"

    def emit(
        self,
        object_type: str,
        object_id: str,
        lead_id: str | None,
        action: str,
        now: datetime,
        **extra: Any,
    ) -> Event:
        event = Event(
            self._event_id(), object_type, object_id, lead_id, action, now,
            self.store.me.id, **extra,
        )  # fmt: skip
        self.store.events.append(event)
        return event

    def deleted_lead(self, lead: Lead, now: datetime, meta: JSON | None = None) -> None:
        """The events of a deleted lead: its children's `deleted` events (each with its
        `previous_data`), then the lead's own, whose `previous_data` is the lead as GET
        showed it. Its opportunities and tasks go with it."""
        store, meta = self.store, meta or {}  # one meta for all: events copy it when shown
        for contact in lead.contacts:
            self.emit(
                "contact", contact.id, lead.id, "deleted", now, meta=meta,
                later=lambda c=contact: c.to_json(store.org),
            )  # fmt: skip
        if lead.id in self._owners():
            for opp in [o for o in store.opportunities.values() if o.lead_id == lead.id]:
                data = self.opportunity_json(opp, lead)
                del store.opportunities[opp.id]
                self.emit(
                    "opportunity",
                    opp.id,
                    lead.id,
                    "deleted",
                    now,
                    previous_data=data,
                    meta=meta,
                )
            for task in [t for t in store.tasks.values() if t.lead_id == lead.id]:
                data = self.task_json(task, lead)
                del store.tasks[task.id]
                self.emit(
                    "task.lead",
                    task.id,
                    lead.id,
                    "deleted",
                    now,
                    previous_data=data,
                    meta=meta,
                )
            self._owner_cache = None
        self.emit(
            "lead", lead.id, lead.id, "deleted", now, meta=meta,
            later=lambda: lead.to_json(store),
        )  # fmt: skip

    def _owners(self) -> set[str]:
        """The ids of leads with opportunities or tasks (so deleting 100,000 leads does not
        scan every opportunity for each), rebuilt when their numbers change."""
        key = (len(self.store.opportunities), len(self.store.tasks))
        if self._owner_cache is None or self._owner_cache[0] != key:
            owners = {o.lead_id for o in self.store.opportunities.values()}
            owners |= {t.lead_id for t in self.store.tasks.values()}
            self._owner_cache = (key, owners)
        return self._owner_cache[1]

    def _visible_events(self, now: datetime) -> list[Event]:
        horizon = now - timedelta(days=EVENT_DAYS)
        return [e for e in reversed(self.store.events) if e.date_created >= horizon]

    def events(self, call: Call) -> JSON:
        query = call.query
        if "_skip" in query:
            raise BadRequest({"_skip": "The event log pages with _cursor, not _skip."})
        check_params(query, EVENT_PARAMS)
        given = frozenset(k for k in EVENT_FILTERS if k in query)
        if given not in EVENT_COMBOS:
            raise BadRequest(
                {}, [f"Unsupported combination of filters: {', '.join(sorted(given))}."]
            )
        limit = min(_int_param(query, "_limit", EVENT_MAX_LIMIT, 1), EVENT_MAX_LIMIT)
        dated = _date_filters(query, ("date_updated",), lambda e, _n: e.date_created)
        matches = [
            e
            for e in self._visible_events(from_epoch(call.now))
            if all(query[k] == (e.lead_id if k == "lead_id" else getattr(e, k)) for k in given)
            and dated(e)
        ]
        start = 0
        cursor = query.get("_cursor")
        if cursor:
            start = self._cursor_position(cursor, matches, limit)
        chunk = matches[start : start + limit]
        end = start + len(chunk)
        return {
            "data": [e.to_json(self.store.org) for e in chunk],
            "cursor_next": f"next.{chunk[-1].id}" if chunk and end < len(matches) else None,
            "cursor_previous": f"prev.{chunk[0].id}" if chunk and start > 0 else None,
        }

    def _cursor_position(self, cursor: str, matches: list[Event], limit: int) -> int:
        direction, _, event_id = cursor.partition(".")
        ids = [e.id for e in matches]
        if direction not in ("next", "prev") or event_id not in ids:
            raise BadRequest({"_cursor": "Invalid cursor (give the same filters as before)."})
        at = ids.index(event_id)
        return at + 1 if direction == "next" else max(0, at - limit)

    def event(self, call: Call) -> JSON:
        for e in self._visible_events(from_epoch(call.now)):
            if e.id == call.params["id"]:
                return e.to_json(self.store.org)
        raise NotFoundAnswer("Event not found.")

    # -- pipelines and opportunity statuses ----------------------------------------------

    def _status_json(self, status_id: str) -> JSON:
        status = self.store.opportunity_statuses[status_id]
        return {
            "id": status.id,
            "label": status.label,
            "type": status.type,
            "pipeline_id": status.pipeline_id,
            "organization_id": self.store.org.id,
        }

    def pipelines(self, call: Call) -> JSON:
        check_params(call.query, {"_limit", "_skip", "_fields"})
        org = self.store.org.id
        items = [
            {
                "id": p.id,
                "name": p.name,
                "organization_id": org,
                "statuses": [
                    self._status_json(s.id)
                    for s in self.store.opportunity_statuses.values()
                    if s.pipeline_id == p.id
                ],
            }
            for p in self.store.pipelines.values()
        ]
        return page(items, call.query)

    def opportunity_statuses(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        return {
            "data": [
                narrow(self._status_json(s), call.query) for s in self.store.opportunity_statuses
            ]
        }

    # -- opportunities -------------------------------------------------------------------

    def opportunity_json(self, opp: Opportunity, lead: Lead | None = None) -> JSON:
        """`lead`: the opportunity's lead when the store no longer holds it (being deleted)."""
        store = self.store
        status = store.opportunity_statuses[opp.status_id]
        pipeline = store.pipelines[status.pipeline_id]
        lead = lead or store.leads.get(opp.lead_id)
        user = store.users.get(opp.user_id)
        contact = _contact_of(lead, opp.contact_id)
        annual = (
            None if opp.value is None else opp.value * (12 if opp.value_period == "monthly" else 1)
        )
        expected = None if opp.value is None else opp.value * opp.confidence // 100
        names = {u.id: u.full_name for u in store.users.values()}
        return {
            "id": opp.id,
            "lead_id": opp.lead_id,
            "lead_name": lead.display_name if lead else None,
            "status_id": opp.status_id,
            "status_label": status.label,
            "status_display_name": status.label,
            "status_type": status.type,
            "pipeline_id": pipeline.id,
            "pipeline_name": pipeline.name,
            "user_id": opp.user_id,
            "user_name": user.full_name if user else None,
            "contact_id": opp.contact_id,
            "contact_name": contact.name if contact else None,
            "value": opp.value,
            "value_period": opp.value_period,
            "value_currency": "USD",
            "value_formatted": _formatted(opp.value, opp.value_period),
            "expected_value": expected,
            "annualized_value": annual,
            "annualized_expected_value": None if annual is None else annual * opp.confidence // 100,
            "confidence": opp.confidence,
            "note": opp.note,
            "date_won": opp.date_won,
            "date_lost": iso(opp.date_lost) if opp.date_lost else None,
            "date_created": iso(opp.date_created),
            "date_updated": iso(opp.date_updated),
            "created_by": opp.created_by,
            "created_by_name": names.get(opp.created_by or ""),
            "updated_by": opp.updated_by,
            "updated_by_name": names.get(opp.updated_by or ""),
            "is_stalled": False,
            "attachments": [],
            "integration_links": [],
            "organization_id": store.org.id,
        }

    def _opportunity(self, opp_id: str) -> Opportunity:
        opp = self.store.opportunities.get(opp_id)
        if opp is None:
            raise NotFoundAnswer("Opportunity not found.")
        return opp

    def opportunities(self, call: Call) -> JSON:
        query = call.query
        check_params(query, OPP_PARAMS)
        statuses = self.store.opportunity_statuses
        wanted = {
            "user_id": _in(query, "user_id"),
            "status_id": _in(query, "status_id"),
            "status_type": _in(query, "status_type"),
            "status_label": _in(query, "status_label"),
            "value_period": _in(query, "value_period"),
        }
        stalled = _bool(query, "is_stalled")

        def field(opp: Opportunity, name: str) -> Any:
            if name in ("status_type", "status_label"):
                status = statuses[opp.status_id]
                return status.type if name == "status_type" else status.label
            if name == "date_won":
                return None if opp.date_won is None else _when(opp.date_won, name)
            return getattr(opp, name)

        dated = _date_filters(query, ("date_won", "date_created", "date_updated"), field)
        matches = [
            o
            for o in self.store.opportunities.values()
            if query.get("lead_id") in (None, o.lead_id)
            and all(values is None or field(o, k) in values for k, values in wanted.items())
            and stalled in (None, False)
            and dated(o)
        ]
        if query.get("_order_by") is not None:
            ordered = _order(matches, query["_order_by"], OPP_ORDER, field)
        else:
            by_id = {o.id: o for o in matches}
            ordered = [by_id[i["id"]] for i in unordered([{"id": o.id} for o in matches])]
        answer = page(ordered, query, self.opportunity_json)
        answer.update(_aggregates(matches))
        return answer

    def opportunity(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        return narrow(self.opportunity_json(self._opportunity(call.params["id"])), call.query)

    def update_opportunity(self, call: Call) -> JSON:
        opp = self._opportunity(call.params["id"])
        data = check_keys(call.json, OPP_WRITABLE)
        before = self.opportunity_json(opp)
        changes: JSON = {}
        if "status_id" in data:
            if data["status_id"] not in self.store.opportunity_statuses:
                raise BadRequest({"status_id": "Opportunity status not found."})
            changes["status_id"] = data["status_id"]
        if "user_id" in data:
            if data["user_id"] not in self.store.users:
                raise BadRequest({"user_id": "User not found."})
            changes["user_id"] = data["user_id"]
        if "value" in data:
            value = data["value"]
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise BadRequest({"value": "Must be a non-negative integer (cents) or null."})
            changes["value"] = value
        if "value_period" in data:
            if data["value_period"] not in VALUE_PERIODS:
                raise BadRequest({"value_period": f"Must be one of: {', '.join(VALUE_PERIODS)}."})
            changes["value_period"] = data["value_period"]
        if "value_currency" in data and data["value_currency"] != "USD":
            raise BadRequest({"value_currency": "The organization's currency is USD."})
        if "confidence" in data:
            confidence = data["confidence"]
            if (
                not isinstance(confidence, int)
                or isinstance(confidence, bool)
                or not 0 <= confidence <= 100
            ):
                raise BadRequest({"confidence": "Must be an integer from 0 to 100."})
            changes["confidence"] = confidence
        if "note" in data:
            changes["note"] = str(data["note"] or "")
        if "date_won" in data:
            changes["date_won"] = _date_value(data["date_won"], "date_won")
        if "contact_id" in data:
            contact = self.store.contact(data["contact_id"]) if data["contact_id"] else None
            if data["contact_id"] is not None and (
                contact is None or contact.lead_id != opp.lead_id
            ):
                raise BadRequest({"contact_id": "Contact not found on this opportunity's lead."})
            changes["contact_id"] = data["contact_id"]
        now = from_epoch(call.now)
        for key, value in changes.items():
            setattr(opp, key, value)
        status = self.store.opportunity_statuses[opp.status_id]
        if "status_id" in changes:
            # Close: a won status sets date_won to today (the X-TZ-Offset day) when neither
            # the opportunity nor the request has one; leaving won does not clear it.
            if status.type == "won" and opp.date_won is None:
                opp.date_won = (now + call.tz).date().isoformat()
            opp.date_lost = now if status.type == "lost" else None
        opp.date_updated = now
        opp.updated_by = self.store.me.id
        after = self.opportunity_json(opp)
        changed = sorted(k for k in after if after[k] != before.get(k) and k != "date_updated")
        if changed:
            self.emit(
                "opportunity", opp.id, opp.lead_id, "updated", now, data=after,
                previous_data={k: before.get(k) for k in changed}, changed_fields=changed,
            )  # fmt: skip
        return after

    # -- tasks ---------------------------------------------------------------------------

    def task_json(self, task: Task, lead: Lead | None = None) -> JSON:
        store = self.store
        lead = lead or store.leads.get(task.lead_id)
        names = {u.id: u.full_name for u in store.users.values()}
        contact = _contact_of(lead, task.contact_id)
        return {
            "id": task.id,
            "_type": "lead",
            "lead_id": task.lead_id,
            "lead_name": lead.display_name if lead else None,
            "contact_id": task.contact_id,
            "contact_name": contact.name if contact else None,
            "assigned_to": task.assigned_to,
            "assigned_to_name": names.get(task.assigned_to),
            "text": task.text,
            "date": task.date,
            "due_date": task.date,
            "is_dateless": task.date is None,
            "is_complete": task.is_complete,
            "object_type": None,
            "object_id": None,
            "created_by": task.created_by,
            "created_by_name": names.get(task.created_by or ""),
            "updated_by": task.updated_by,
            "updated_by_name": names.get(task.updated_by or ""),
            "date_created": iso(task.date_created),
            "date_updated": iso(task.date_updated),
            "organization_id": store.org.id,
        }

    def _task(self, task_id: str) -> Task:
        task = self.store.tasks.get(task_id)
        if task is None:
            raise NotFoundAnswer("Task not found.")
        return task

    def tasks(self, call: Call) -> JSON:
        query = call.query
        check_params(query, TASK_PARAMS)
        complete = _bool(query, "is_complete")
        ids = _in(query, "id")
        types = _in(query, "_type")
        view = query.get("view")
        day_end = (
            datetime.combine((from_epoch(call.now) + call.tz).date(), datetime.min.time(), UTC)
            - call.tz
            + timedelta(days=1)
        )
        if view not in (None, "inbox", "future", "archive"):
            raise BadRequest({"view": "Must be inbox, future or archive."})

        def field(task: Task, name: str) -> Any:
            if name in ("date", "due_date"):
                return None if task.date is None else _when(task.date, name)
            return getattr(task, name)

        dated = _date_filters(query, ("date", "due_date", "date_created", "date_updated"), field)

        def in_view(task: Task) -> bool:
            if view == "archive":
                return task.is_complete
            if view is None:
                return True
            due: datetime | None = field(task, "date")
            if task.is_complete or due is None:
                return False
            return due < day_end if view == "inbox" else due >= day_end

        matches = [
            t
            for t in self.store.tasks.values()
            if query.get("assigned_to") in (None, t.assigned_to)
            and query.get("lead_id") in (None, t.lead_id)
            and complete in (None, t.is_complete)
            and (ids is None or t.id in ids)
            and (types is None or "lead" in types)
            and dated(t)
            and in_view(t)
        ]
        ordered = _order(matches, query.get("_order_by"), ("date", "date_created"), field)
        if query.get("_order_by") is None:
            by_id = {t.id: t for t in matches}
            ordered = [by_id[i["id"]] for i in unordered([{"id": t.id} for t in matches])]
        return page(ordered, query, self.task_json)

    def task(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        return narrow(self.task_json(self._task(call.params["id"])), call.query)

    def update_task(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        task = self._task(call.params["id"])
        data = check_keys(call.json, TASK_WRITABLE, TASK_FIXED)
        before = self.task_json(task)
        if "assigned_to" in data and data["assigned_to"] not in self.store.users:
            raise BadRequest({"assigned_to": "User not found."})
        if "is_complete" in data and not isinstance(data["is_complete"], bool):
            raise BadRequest({"is_complete": "Must be a boolean."})
        if "text" in data and not isinstance(data["text"], str):
            raise BadRequest({"text": "Must be a string."})
        if "date" in data and "due_date" in data and data["date"] != data["due_date"]:
            raise BadRequest({"due_date": "Give date or due_date, not two different values."})
        for key in ("date", "due_date"):
            if key in data:
                task.date = _date_or_moment(data[key], key)
        if "assigned_to" in data:
            task.assigned_to = data["assigned_to"]
        if "is_complete" in data:
            task.is_complete = data["is_complete"]
        if "text" in data:
            task.text = data["text"]
        now = from_epoch(call.now)
        task.date_updated = now
        task.updated_by = self.store.me.id
        after = self.task_json(task)
        changed = sorted(k for k in after if after[k] != before.get(k) and k != "date_updated")
        if changed:
            action = "completed" if "is_complete" in changed and task.is_complete else "updated"
            self.emit(
                "task.lead", task.id, task.lead_id, action, now, data=after,
                previous_data={k: before.get(k) for k in changed}, changed_fields=changed,
            )  # fmt: skip
        return narrow(after, call.query)

    def delete_task(self, call: Call) -> JSON:
        task = self._task(call.params["id"])
        data = self.task_json(task)
        del self.store.tasks[task.id]
        self.emit(
            "task.lead", task.id, task.lead_id, "deleted", from_epoch(call.now), previous_data=data
        )
        return {}

    # -- lead merge ----------------------------------------------------------------------

    def merge(self, call: Call) -> JSON:
        """`{"source": lead_id, "destination": lead_id}`: the source's contacts,
        opportunities, tasks, email activities and subscriptions move to the destination,
        custom fields the destination lacks are copied, and the source is deleted."""
        data = check_keys(call.json, MERGE_KEYS)
        missing = {k: "This field is required." for k in sorted(MERGE_KEYS) if not data.get(k)}
        if missing:
            raise BadRequest(missing)
        if data["source"] == data["destination"]:
            raise BadRequest({"destination": "A lead cannot be merged into itself."})
        found = {k: self.store.leads.get(data[k]) for k in ("source", "destination")}
        absent = {k: "Lead not found." for k, lead in found.items() if lead is None}
        if absent:
            raise BadRequest(absent)
        source, destination = found["source"], found["destination"]
        assert source is not None
        assert destination is not None
        now = from_epoch(call.now)
        meta = {"merge_source_lead_id": source.id, "merge_destination_lead_id": destination.id}
        before = destination.to_json(self.store)
        previous = source.to_json(self.store)
        for contact in source.contacts:
            contact.lead_id = destination.id
        destination.contacts.extend(source.contacts)
        source.contacts = []
        for cf_id, value in source.custom.items():
            destination.custom.setdefault(cf_id, value)
        moved: list[Opportunity | Task] = [
            *self.store.opportunities.values(),
            *self.store.tasks.values(),
        ]
        for obj in moved:
            if obj.lead_id == source.id:
                obj.lead_id = destination.id
        for sub in self.store.subscriptions.values():
            if sub.lead_id == source.id:
                sub.lead_id = destination.id
        for email in self.store.emails.values():
            if email.get("lead_id") == source.id:
                email["lead_id"] = destination.id
        destination.date_updated = now
        del self.store.leads[source.id]
        self._owner_cache = None
        after = destination.to_json(self.store)
        changed = sorted(k for k in after if after[k] != before.get(k) and k != "date_updated")
        self.emit(
            "lead", destination.id, destination.id, "updated", now, data=after,
            previous_data={k: before.get(k) for k in changed}, changed_fields=changed, meta=meta,
        )  # fmt: skip
        self.emit("lead", source.id, source.id, "deleted", now, previous_data=previous, meta=meta)
        self.emit("lead", destination.id, destination.id, "merged", now, data=after, meta=meta)
        return {}

    # -- exports -------------------------------------------------------------------------

    def create_export(self, call: Call) -> JSON:
        data = check_keys(call.json, EXPORT_KEYS)
        errors: dict[str, str] = {}
        fmt, kind = data.get("format"), data.get("type")
        if fmt not in ("csv", "json"):
            errors["format"] = "Must be csv or json."
        if kind not in EXPORT_TYPES:
            errors["type"] = f"Must be one of: {', '.join(EXPORT_TYPES)}."
        if data.get("date_format") is not None and data["date_format"] not in DATE_FORMATS:
            errors["date_format"] = f"Must be one of: {', '.join(DATE_FORMATS)}."
        fields = data.get("fields")
        if fields is not None and (
            not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields)
        ):
            errors["fields"] = "Must be a list of field names."
        for flag in ("include_activities", "include_smart_fields", "include_addresses",
                     "include_custom_objects", "send_done_email"):  # fmt: skip
            if flag in data and not isinstance(data[flag], bool):
                errors[flag] = "Must be a boolean."
        if data.get("include_activities") and (kind, fmt) != ("leads", "json"):
            errors["include_activities"] = "Only with type leads and format json."
        if errors:
            raise BadRequest(errors)
        results_limit = check_results_limit(data.get("results_limit"), "results_limit")
        tree = data.get("s_query") or {"type": "object_type", "object_type": "lead"}
        leads = select(
            self.store, tree, results_limit, data.get("sort"), from_epoch(call.now), "s_query",
            tz=call.tz,
        )  # fmt: skip
        content = gzip.compress(self._export_file(leads, str(fmt), str(kind), fields), mtime=0)
        export = Export(
            self.store.new_id("expo"), str(fmt), str(kind), dict(data), len(leads), content,
            self.store.new_id("tok"), self.store.me.id, from_epoch(call.now), call.now,
            call.now + 1.0 + len(leads) / self.job_speed,
        )  # fmt: skip
        self.store.exports[export.id] = export
        return self.export_json(export, call)

    def export_json(self, export: Export, call: Call) -> JSON:
        if call.now >= export.ready_at:
            status = "done"
        elif call.now >= export.started_at + 0.5:
            status = "in_progress"
        else:
            status = "created"
        url = None
        if status == "done":
            url = f"{call.base_url.rstrip('/')}{EXPORT_PATH}{export.id}/{export.token}/"
        return {
            "id": export.id,
            "status": status,
            "format": export.format,
            "type": export.type,
            "s_query": export.body.get("s_query"),
            "results_limit": export.body.get("results_limit"),
            "sort": export.body.get("sort") or [],
            "fields": export.body.get("fields"),
            "date_format": export.body.get("date_format") or "original",
            "send_done_email": export.body.get("send_done_email", True),
            "n_leads": export.n_leads,
            "download_url": url,
            "created_by": export.created_by,
            "date_created": iso(export.date_created),
            "date_updated": iso(export.date_created),
            "organization_id": self.store.org.id,
        }

    def exports(self, call: Call) -> JSON:
        check_params(call.query, {"_limit", "_skip", "_fields"})
        listed = [self.export_json(e, call) for e in self.store.exports.values()]
        return page(unordered(listed), call.query)

    def export(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        export = self.store.exports.get(call.params["id"])
        if export is None:
            raise NotFoundAnswer("Export not found.")
        return narrow(self.export_json(export, call), call.query)

    def download(self, export_id: str, token: str, now: float) -> Export:
        """The finished export a download URL names (its token is the URL's secret)."""
        export = self.store.exports.get(export_id)
        if export is None or export.token != token or now < export.ready_at:
            raise ApiError(404, {"error": "No such file."})
        return export

    def _export_file(
        self, leads: list[Lead], fmt: str, kind: str, fields: list[str] | None
    ) -> bytes:
        rows: list[JSON] = []
        for lead in leads:
            lead_json = lead.to_json(self.store)
            opps = [
                self.opportunity_json(o)
                for o in self.store.opportunities.values()
                if o.lead_id == lead.id
            ]
            if kind == "leads":
                rows.append({**lead_json, "opportunities": opps})
            elif kind == "contacts":
                rows.extend({**c, "lead_name": lead.display_name} for c in lead_json["contacts"])
            else:
                rows.extend({**o, "lead_name": lead.display_name} for o in opps)
        if fields is not None:
            rows = [{f: row[f] for f in fields if f in row} for row in rows]
        if fmt == "json":
            return json.dumps(rows).encode()
        columns = list(dict.fromkeys(k for row in rows for k in row))
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return out.getvalue().encode()


def _contact_of(lead: Lead | None, contact_id: str | None) -> Contact | None:
    """The contact on this lead (looking on the lead, not through every lead: a bulk delete
    renders each deleted lead's opportunities)."""
    if lead is None or contact_id is None:
        return None
    return next((c for c in lead.contacts if c.id == contact_id), None)


def _formatted(value: int | None, period: str) -> str | None:
    """`$3,000` for 300000 cents, `$50 monthly` for a monthly 5000 (Close's examples)."""
    if value is None:
        return None
    suffix = {"monthly": " monthly", "annual": " annual"}.get(period, "")
    return f"${value / 100:,.0f}{suffix}"


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _date_value(raw: Any, name: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadRequest({name: "Must be a date (YYYY-MM-DD) or null."})
    try:
        return date.fromisoformat(raw[:10]).isoformat()
    except ValueError:
        raise BadRequest({name: "Must be a date (YYYY-MM-DD) or null."}) from None


def _date_or_moment(raw: Any, name: str) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            if len(raw) == 10:
                return date.fromisoformat(raw).isoformat()
            return iso(_when(raw, name))
        except (ValueError, BadRequest):
            pass
    raise BadRequest({name: "Must be a date or a date-time (ISO 8601), or null."})


def _aggregates(opps: list[Opportunity]) -> JSON:
    """The aggregate values every opportunity list carries (over all matches)."""
    answer: JSON = {"total_results": len(opps)}
    counts = {p: 0 for p in VALUE_PERIODS}
    totals = {p: 0 for p in VALUE_PERIODS}
    expected = {p: 0 for p in VALUE_PERIODS}
    for opp in opps:
        counts[opp.value_period] += 1
        totals[opp.value_period] += opp.value or 0
        expected[opp.value_period] += (opp.value or 0) * opp.confidence // 100
    answer["count_by_value_period"] = counts
    for period in VALUE_PERIODS:
        answer[f"total_value_{period}"] = totals[period]
        answer[f"expected_value_{period}"] = expected[period]
    answer["total_value_annualized"] = (
        totals["one_time"] + totals["annual"] + 12 * totals["monthly"]
    )
    answer["expected_value_annualized"] = (
        expected["one_time"] + expected["annual"] + 12 * expected["monthly"]
    )
    return answer
