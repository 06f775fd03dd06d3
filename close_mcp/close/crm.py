"""Close's opportunities, pipelines, tasks, lead merge, lead exports and event log, typed.

Reads page at Close's limits (200 a page for `_skip`/`_limit` lists; the event log's cursors,
50 a page); writes go through `CloseClient` with its retries and rate-limit budget. Only the
filters Close documents are sent: a pipeline, which `GET /opportunity/` cannot filter by, is
turned into its statuses (`status_id__in`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

import httpx

from close_mcp.close.client import MAX_PAGE_SIZE, CloseClient
from close_mcp.errors import ArgumentError, MalformedResponse, NotFound, PermissionDenied

EVENT_PAGE: Final = 50  # the event log's largest page ("capped at and defaulting to 50")
OPPORTUNITY_CHANGES: Final = frozenset(
    {"status_id", "user_id", "value", "value_period", "confidence", "note", "date_won"}
)
TASK_CHANGES: Final = frozenset({"assigned_to", "date", "is_complete", "text"})
EXPORT_FORMATS: Final = ("json", "csv")
EXPORT_TYPES: Final = ("leads", "contacts", "lead_opps")
# The event log's filter combinations Close supports (README "Limits"); sent otherwise,
# Close answers 400.
EVENT_COMBOS: Final = frozenset(
    frozenset(c)
    for c in (
        ("object_type", "object_id"), ("object_type", "action"), ("object_id", "action"),
        ("lead_id", "object_type"), ("lead_id", "object_type", "action"),
        ("lead_id", "user_id", "object_type"), ("lead_id", "user_id", "object_type", "action"),
        ("lead_id", "user_id"), ("user_id", "object_id"), ("user_id", "object_id", "action"),
        ("user_id", "object_type"), ("user_id", "object_type", "action"), ("lead_id",),
        ("user_id",), ("request_id",), (),
    )
)  # fmt: skip

JSON = dict[str, Any]

# What close-mcp reads of each object (`close-mcp check` asks Close for each).
PIPELINE_KEYS: Final = ("id", "name", "statuses")
OPPORTUNITY_STATUS_KEYS: Final = ("id", "label", "type", "pipeline_id")
OPPORTUNITY_KEYS: Final = (
    "id", "lead_id", "status_id", "status_type", "pipeline_id", "user_id", "value",
    "value_period", "confidence", "date_won", "note", "date_updated",
)  # fmt: skip
TASK_KEYS: Final = ("id", "lead_id", "assigned_to", "date", "is_complete", "text", "date_updated")
EXPORT_KEYS: Final = ("id", "status", "download_url")
EVENT_KEYS: Final = ("id", "object_type", "object_id", "lead_id", "action", "date_created")


def _day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


def _object(answer: Any, what: str) -> JSON:
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
        raise MalformedResponse(f"Close's {what} had no id.", path=what)
    return answer


def _ids(values: tuple[str, ...]) -> str:
    return ",".join(values)


async def _list_all(
    client: CloseClient, path: str, params: JSON, fields: tuple[str, ...]
) -> list[JSON]:
    """Every page of a list, 200 at a time; `fields` (and the id) only when given."""
    if fields:
        params["_fields"] = ",".join(dict.fromkeys(("id", *fields)))
    return await client.list_all(path, params, page_size=MAX_PAGE_SIZE)


async def _update(
    client: CloseClient, kind: str, object_id: str, changes: JSON, allowed: frozenset[str]
) -> JSON:
    """One `PUT` of `changes` to a `kind` object, refused before sending unless every
    changed field is one close-mcp may set."""
    if not changes or set(changes) - allowed:
        names = ", ".join(sorted(allowed))
        raise ArgumentError("changes", f"Only these fields can be set: {names}.")
    return _object(await client.put(f"{kind}/{object_id}/", changes), kind)


# -- pipelines and opportunity statuses --------------------------------------------------


async def shown(client: CloseClient, path: str, seen: dict[str, bool] | None = None) -> bool:
    """Whether Close shows the object at `path` to the client's key (a 404 or 403: it does
    not, as for a key of another organization); asked once per path `seen` keeps."""
    if seen is not None and path in seen:
        return seen[path]
    try:
        await client.get(path, params={"_fields": "id"})
        found = True
    except (NotFound, PermissionDenied):
        found = False
    if seen is not None:
        seen[path] = found
    return found


async def list_pipelines(client: CloseClient) -> list[JSON]:
    return await client.list_all("pipeline/", page_size=MAX_PAGE_SIZE)


async def list_opportunity_statuses(client: CloseClient) -> list[JSON]:
    """Every opportunity status (`id`, `label`, `type`, `pipeline_id`); Close does not page it."""
    answer = await client.get("status/opportunity/")
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise MalformedResponse(
            "Close's answer had no 'data' list.", method="GET", path="status/opportunity/"
        )
    return data


# -- opportunities ---------------------------------------------------------------------


@dataclass(frozen=True)
class OpportunityFilter:
    """Which opportunities: every given criterion must hold. Dates are `YYYY-MM-DD` (or
    ISO date-times), bounds inclusive."""

    lead_id: str | None = None
    status_ids: tuple[str, ...] = ()
    status_types: tuple[Literal["active", "won", "lost"], ...] = ()
    user_ids: tuple[str, ...] = ()
    pipeline_id: str | None = None
    created_from: date | str | None = None
    created_to: date | str | None = None
    won_from: date | str | None = None  # date_won: also an active one's expected close date
    won_to: date | str | None = None
    updated_from: date | str | None = None
    updated_to: date | str | None = None


async def opportunity_params(client: CloseClient, where: OpportunityFilter) -> JSON | None:
    """The query parameters for `where`; None when no opportunity can match (a pipeline whose
    statuses exclude every status asked for)."""
    params: JSON = {}
    status_ids = where.status_ids
    if where.pipeline_id is not None:
        in_pipeline = [
            s["id"]
            for s in await list_opportunity_statuses(client)
            if s.get("pipeline_id") == where.pipeline_id
        ]
        if not in_pipeline:
            raise ArgumentError("pipeline_id", f"No opportunity status in {where.pipeline_id}.")
        status_ids = (
            tuple(s for s in status_ids if s in in_pipeline) if status_ids else tuple(in_pipeline)
        )
        if not status_ids:
            return None
    if where.lead_id is not None:
        params["lead_id"] = where.lead_id
    if status_ids:
        params["status_id__in"] = _ids(status_ids)
    if where.status_types:
        params["status_type__in"] = _ids(where.status_types)
    if where.user_ids:
        params["user_id__in"] = _ids(where.user_ids)
    for name, low, high in (
        ("date_created", where.created_from, where.created_to),
        ("date_won", where.won_from, where.won_to),
        ("date_updated", where.updated_from, where.updated_to),
    ):
        if low is not None:
            params[f"{name}__gte"] = _day(low)
        if high is not None:
            params[f"{name}__lte"] = _day(high)
    return params


async def list_opportunities(
    client: CloseClient, where: OpportunityFilter, *, fields: tuple[str, ...] = ()
) -> list[JSON]:
    """Every opportunity `where` selects, in pages of 200 (Close's most)."""
    params = await opportunity_params(client, where)
    if params is None:
        return []
    return await _list_all(client, "opportunity/", params, fields)


async def get_opportunity(client: CloseClient, opportunity_id: str) -> JSON:
    return _object(await client.get(f"opportunity/{opportunity_id}/"), "opportunity")


async def update_opportunity(client: CloseClient, opportunity_id: str, changes: JSON) -> JSON:
    """One `PUT`: only the fields close-mcp changes (status, owner, value, confidence,
    expected close date as `date_won`, note)."""
    return await _update(client, "opportunity", opportunity_id, changes, OPPORTUNITY_CHANGES)


# -- tasks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks: every given criterion must hold; due dates inclusive."""

    assigned_to: str | None = None
    lead_id: str | None = None
    is_complete: bool | None = None
    due_from: date | str | None = None
    due_to: date | str | None = None


def task_params(where: TaskFilter) -> JSON:
    params: JSON = {"_type": "lead"}
    if where.assigned_to is not None:
        params["assigned_to"] = where.assigned_to
    if where.lead_id is not None:
        params["lead_id"] = where.lead_id
    if where.is_complete is not None:
        params["is_complete"] = where.is_complete
    if where.due_from is not None:
        params["due_date__gte"] = _day(where.due_from)
    if where.due_to is not None:
        params["due_date__lte"] = _day(where.due_to)
    return params


async def list_tasks(
    client: CloseClient, where: TaskFilter, *, fields: tuple[str, ...] = ()
) -> list[JSON]:
    """Every lead task `where` selects, in pages of 200."""
    return await _list_all(client, "task/", task_params(where), fields)


async def get_task(client: CloseClient, task_id: str) -> JSON:
    return _object(await client.get(f"task/{task_id}/"), "task")


async def update_task(client: CloseClient, task_id: str, changes: JSON) -> JSON:
    """One `PUT` of what Close lets a task change: assignee, date, completion, text."""
    return await _update(client, "task", task_id, changes, TASK_CHANGES)


async def delete_task(client: CloseClient, task_id: str) -> None:
    """Not retried on an ambiguous failure: the caller reads the task to learn the outcome."""
    await client.request("DELETE", f"task/{task_id}/", retry_errors=False)


# -- lead merge ------------------------------------------------------------------------


async def merge_leads(client: CloseClient, source_id: str, destination_id: str) -> None:
    """Merge `source_id` into `destination_id`; Close deletes the source. Never retried
    after an answer that may have come after the merge (the source may be gone)."""
    if source_id == destination_id:
        raise ArgumentError("source", "A lead cannot be merged into itself.")
    body = {"source": source_id, "destination": destination_id}
    await client.request("POST", "lead/merge/", json_body=body, retry_errors=False)


# -- exports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportStatus:
    id: str
    status: str  # created, started, in_progress, done, error
    download_url: str | None

    @property
    def done(self) -> bool:
        return self.status == "done" and self.download_url is not None


def _export_status(answer: Any, path: str) -> ExportStatus:
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
        raise MalformedResponse("Close's export had no id.", method="GET", path=path)
    status = answer.get("status")
    url = answer.get("download_url")
    if not isinstance(status, str) or not (url is None or isinstance(url, str)):
        raise MalformedResponse("Close's export had no status.", method="GET", path=path)
    return ExportStatus(answer["id"], status, url)


async def create_lead_export(
    client: CloseClient,
    s_query: JSON,
    *,
    format: Literal["json", "csv"],
    type: Literal["leads", "contacts", "lead_opps"],
    fields: tuple[str, ...] = (),
    results_limit: int | None = None,
    sort: list[JSON] | None = None,
) -> ExportStatus:
    """Start an export of the leads `s_query` selects. Not retried: a second POST would be
    a second export."""
    if format not in EXPORT_FORMATS:
        raise ArgumentError("format", f"Must be one of: {', '.join(EXPORT_FORMATS)}.")
    if type not in EXPORT_TYPES:
        raise ArgumentError("type", f"Must be one of: {', '.join(EXPORT_TYPES)}.")
    body: JSON = {"s_query": s_query, "format": format, "type": type, "send_done_email": False}
    if fields:
        body["fields"] = list(fields)
    if results_limit is not None:
        body["results_limit"] = results_limit
    if sort:
        body["sort"] = sort
    answer = await client.request("POST", "export/lead/", json_body=body, retry_errors=False)
    return _export_status(answer, "export/lead/")


async def get_export(client: CloseClient, export_id: str) -> ExportStatus:
    path = f"export/{export_id}/"
    return _export_status(await client.get(path), path)


async def download_export(
    url: str, *, transport: httpx.AsyncBaseTransport | None = None, seconds: float = 60.0
) -> bytes:
    """A finished export's file, decompressed. Fetched without the API key: the link is
    Close's own signed URL on another host, which must never see the key."""
    async with httpx.AsyncClient(transport=transport, timeout=seconds) as http:
        response = await http.get(url)
    if response.status_code != 200:
        raise MalformedResponse(
            f"The export's file answered HTTP {response.status_code}.", method="GET", path="export"
        )
    return response.content


# -- the event log ---------------------------------------------------------------------


async def iter_events(client: CloseClient, filters: Mapping[str, str]) -> AsyncIterator[JSON]:
    """Every event the filters select, newest first, following `cursor_next` (50 a page).
    Close keeps 30 days of events and only some filter combinations."""
    names = frozenset(k for k in filters if not k.startswith("date_updated"))
    if names not in EVENT_COMBOS:
        raise ArgumentError(
            "filters", f"Close's event log cannot filter by {', '.join(sorted(names))} together."
        )
    cursor: str | None = None
    while True:
        params: JSON = {**filters, "_limit": EVENT_PAGE}
        if cursor:
            params["_cursor"] = cursor
        page = await client.get("event/", params)
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list):
            raise MalformedResponse(
                "Close's answer had no 'data' list.", method="GET", path="event/"
            )
        for event in data:
            yield event
        cursor = page.get("cursor_next")
        if not cursor or not data:
            return


async def deleted_leads(client: CloseClient) -> list[JSON]:
    """The `deleted` events of leads Close still keeps (30 days), newest first; each
    `previous_data` is the lead as it was."""
    filters = {"object_type": "lead", "action": "deleted"}
    return [event async for event in iter_events(client, filters)]
