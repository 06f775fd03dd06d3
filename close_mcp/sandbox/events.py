"""The event log as Close documents it: 30 days back, cursors of at most 50 events, and only
the filter combinations Close supports; `emit` writes it the way Close's actions do."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from close_mcp.sandbox.errors import BadRequest, NotFoundAnswer
from close_mcp.sandbox.params import DATE_OPS, check_params, date_filters
from close_mcp.sandbox.routes import Call, Handler, _int_param
from close_mcp.sandbox.store import JSON, Event, Store, from_epoch

EVENT_DAYS: Final = 30  # "up to 30 days back in history" (Close's event log page)
EVENT_MAX_LIMIT: Final = 50  # "capped at and defaulting to 50"
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
    *(f"date_updated{op}" for op in DATE_OPS[1:]),
}  # fmt: skip


class EventLog:
    """The store's event log: written by `emit`, read by `GET /event/`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Event ids of their own, so logging never shifts the ids the store hands out next
        # (a delete logs events; the ids of what is created after it stay the same), and
        # cheap: a bulk delete logs each lead and its contacts. An odd multiplier mod 2**88
        # maps the counter one-to-one onto 22 hex digits.
        self._events = random.Random(f"{store.org.id}-events").getrandbits(64)

    def routes(self) -> list[tuple[str, dict[str, Handler]]]:
        return [
            (r"event/", {"GET": self.events}),
            (r"event/(?P<id>[^/]+)/", {"GET": self.event}),
        ]

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
        dated = date_filters(query, ("date_updated",), lambda e, _n: e.date_created)
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


@dataclass
class Logged:
    """Handlers of objects whose changes are logged in `log` (opportunities, tasks)."""

    store: Store
    log: EventLog
