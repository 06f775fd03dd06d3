"""What a lead's `has_related` reaches beyond its contacts: its email and call activities and
its opportunities, each kind indexed by lead once per query (a search over 100,000 leads reads
the activities once, not once per lead). Their fields are in `query_fields`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from close_mcp.sandbox.store import Lead, Opportunity, Store

RELATED_KINDS: Final = ("activity.email", "activity.call", "opportunity")


class LeadRelated:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._by_lead: dict[str, dict[str, list[Any]]] = {}

    def _objects(self, kind: str) -> list[Any]:
        if kind == "activity.email":
            return list(self._store.emails.values())
        if kind == "activity.call":
            return list(self._store.calls.values())
        return list(self._store.opportunities.values())

    def of(self, kind: str) -> Callable[[Lead], list[Any]]:
        """Lead -> its objects of `kind` (one of RELATED_KINDS)."""

        def related(lead: Lead) -> list[Any]:
            index = self._by_lead.get(kind)
            if index is None:
                index = self._by_lead[kind] = {}
                for obj in self._objects(kind):
                    owner = obj.lead_id if isinstance(obj, Opportunity) else obj.get("lead_id")
                    index.setdefault(str(owner), []).append(obj)
            return index.get(lead.id, [])

        return related
