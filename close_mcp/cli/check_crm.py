"""`close-mcp check`'s probes of opportunities, pipelines, tasks, exports and the event log.

One read each, the answer's keys against what `close.crm` reads. Nothing is written: a lead
merge and an export's creation are POSTs, so only their read sides are probed (the export list
and one export; the deleted leads' events with their `previous_data`).
"""

from __future__ import annotations

from typing import Any

from close_mcp.cli.check_shapes import ITEMS, Probe, Verdict, counted, item_problems, list_problems
from close_mcp.close.client import CloseClient
from close_mcp.close.crm import (
    EVENT_KEYS,
    EXPORT_KEYS,
    OPPORTUNITY_KEYS,
    OPPORTUNITY_STATUS_KEYS,
    PIPELINE_KEYS,
    TASK_KEYS,
)


def _first_id(items: list[Any]) -> str | None:
    first = items[0] if items else None
    value = first.get("id") if isinstance(first, dict) else None
    return value if isinstance(value, str) else None


class CrmProbes:
    """The probes in order; the single-object ones read an id the list before found."""

    def __init__(self, client: CloseClient) -> None:
        self.client = client

    def probes(self) -> list[tuple[str, Probe]]:
        opportunities = self._list_then_one(
            "opportunity/", "opportunities", "opportunity", OPPORTUNITY_KEYS
        )
        tasks = self._list_then_one("task/", "tasks", "task", TASK_KEYS, {"_type": "lead"})
        exports = self._list_then_one("export/", "exports", "export", EXPORT_KEYS)
        return [
            ("GET pipeline/", self.pipelines),
            ("GET status/opportunity/", self.statuses),
            *opportunities,
            *tasks,
            *exports,
            ("GET event/ (deleted leads)", self.deleted_leads),
        ]

    def _list_then_one(
        self,
        path: str,
        plural: str,
        what: str,
        keys: tuple[str, ...],
        params: dict[str, Any] | None = None,
    ) -> list[tuple[str, Probe]]:
        """`GET path` and then `GET path{id}/` of the first object the list answered."""
        first: list[str | None] = [None]

        async def listed() -> Verdict:
            verdict, items = await self._list(path, plural, keys, params)
            first[0] = _first_id(items)
            return verdict

        async def one() -> Verdict:
            return await self._one(f"{path}{first[0]}/" if first[0] else None, what, keys)

        return [(f"GET {path}", listed), (f"GET {path}{{id}}/", one)]

    async def _list(
        self, path: str, what: str, keys: tuple[str, ...], params: dict[str, Any] | None = None
    ) -> tuple[Verdict, list[Any]]:
        answer = await self.client.get(path, {"_limit": ITEMS, **(params or {})})
        problems, items = list_problems(answer, keys=keys)
        return Verdict(tuple(problems), counted(items, what)), items

    async def _one(self, path: str | None, what: str, keys: tuple[str, ...]) -> Verdict:
        if path is None:
            return Verdict((), f"not checked: no {what} found")
        answer = await self.client.get(path)
        return Verdict(tuple(item_problems(answer, what, keys=keys)))

    async def pipelines(self) -> Verdict:
        verdict, items = await self._list("pipeline/", "pipelines", PIPELINE_KEYS)
        problems = list(verdict.problems)
        for i, item in enumerate(items):
            statuses = item.get("statuses") if isinstance(item, dict) else None
            for j, status in enumerate(statuses if isinstance(statuses, list) else []):
                where = f"data[{i}].statuses[{j}]"
                problems += item_problems(status, where, keys=("id", "label", "type"))
        return Verdict(tuple(problems), verdict.note)

    async def statuses(self) -> Verdict:
        answer = await self.client.get("status/opportunity/")
        problems, items = list_problems(answer, keys=OPPORTUNITY_STATUS_KEYS)
        return Verdict(tuple(problems), counted(items, "statuses"))

    async def deleted_leads(self) -> Verdict:
        params = {"object_type": "lead", "action": "deleted"}
        verdict, items = await self._list("event/", "events", EVENT_KEYS, params)
        problems = list(verdict.problems)
        unlike = []
        for i, event in enumerate(items):
            previous = event.get("previous_data") if isinstance(event, dict) else None
            if not isinstance(previous, dict):
                unlike.append(f"data[{i}].previous_data missing")
            elif previous.get("id") != event.get("object_id"):
                unlike.append(f"data[{i}].previous_data.id is not the lead's")
        if unlike:
            more = f" (and in {len(unlike) - 1} more items)" if len(unlike) > 1 else ""
            problems.append(unlike[0] + more)
        return Verdict(tuple(problems), verdict.note)
