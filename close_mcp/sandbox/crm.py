"""The sandbox's CRM objects beyond leads (opportunities, pipelines, tasks, lead merge, lead
exports and the event log), as Close documents them: the OpenAPI file's descriptions and
Close's reference pages; README "Limits and unverified Close behaviours" lists what is
inferred. Each kind lives in its own module; `Crm` joins them and decides what a deleted or
merged lead takes with it.

Strictness: a body key the endpoint does not take is refused (400 naming it), and so is a
query parameter the endpoint does not document, so close-mcp can never come to rely on one
Close would ignore. List pages are Close's: `_skip`/`_limit`, at most 200 (the event log:
cursors, at most 50 a page, no `_skip`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from close_mcp.sandbox.events import EventLog
from close_mcp.sandbox.exports import Exports
from close_mcp.sandbox.merge import merge_leads
from close_mcp.sandbox.opportunities import Opportunities
from close_mcp.sandbox.routes import Call, Handler
from close_mcp.sandbox.store import JSON, Lead, Store
from close_mcp.sandbox.tasks import Tasks


class Crm:
    """The CRM handlers, and what a lead deleted or merged away takes with it."""

    def __init__(self, store: Store, job_speed: float) -> None:
        self.store = store
        self.log = EventLog(store)
        self.opportunities = Opportunities(store, self.log)
        self.tasks = Tasks(store, self.log)
        self.exports = Exports(store, job_speed, self.opportunities.opportunity_json)
        self._owner_cache: tuple[tuple[int, int], set[str]] | None = None

    def routes(self) -> list[tuple[str, dict[str, Handler]]]:
        return [
            *self.opportunities.routes(),
            *self.tasks.routes(),
            (r"lead/merge/", {"POST": self.merge}),
            *self.exports.routes(),
            *self.log.routes(),
        ]

    def merge(self, call: Call) -> JSON:
        answer = merge_leads(self.store, self.log, call)
        self._owner_cache = None  # the source's opportunities and tasks changed lead
        return answer

    def deleted_lead(self, lead: Lead, now: datetime, meta: JSON | None = None) -> None:
        """The events of a deleted lead: its children's `deleted` events (each with its
        `previous_data`), then the lead's own, whose `previous_data` is the lead as GET
        showed it. Its opportunities and tasks go with it."""
        store, meta = self.store, meta or {}  # one meta for all: events copy it when shown
        for contact in lead.contacts:
            self.log.emit(
                "contact", contact.id, lead.id, "deleted", now, meta=meta,
                later=lambda c=contact: c.to_json(store.org),
            )  # fmt: skip
        if lead.id in self._owners():
            owned: list[tuple[str, dict[str, Any], Callable[[Any, Lead], JSON]]] = [
                ("opportunity", store.opportunities, self.opportunities.opportunity_json),
                ("task.lead", store.tasks, self.tasks.task_json),
            ]
            for object_type, objects, render in owned:
                for obj in [o for o in objects.values() if o.lead_id == lead.id]:
                    data = render(obj, lead)
                    del objects[obj.id]
                    self.log.emit(
                        object_type, obj.id, lead.id, "deleted", now, previous_data=data, meta=meta
                    )
            self._owner_cache = None
        self.log.emit(
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
