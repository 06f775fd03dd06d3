"""The friendly filter -> one Close query tree: names become ids, values are checked against
their custom field, dates become Close's moments.

The tree always starts with the `object_type: lead` node Close expects at the top, then one
node per given field, in the filter's declared order.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from close_mcp.close.catalog import Catalog
from close_mcp.errors import ArgumentError
from close_mcp.selection.activity import activity_nodes
from close_mcp.selection.filter import LeadFilter
from close_mcp.selection.grammar import OFFSET_UNITS
from close_mcp.selection.nodes import (
    LEAD_NODE,
    any_of,
    field_condition,
    has_email_node,
    lead_ids_node,
    regular_field,
)
from close_mcp.selection.parsers import (
    DATE_FIELD_TYPES,
    TEXT_FIELD_TYPES,
    check_choice,
    check_number,
    check_strings,
    parse_day,
    parse_duration,
    parse_when,
)
from close_mcp.selection.ranges import FieldRange, range_node
from close_mcp.selection.smart_views import smart_view_node

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _moment(text: str) -> dict[str, Any]:
    """A date is the start of that day where Close reads local dates: the zone of the
    `X-TZ-Offset` the client sends (CLOSE_MCP_TIMEZONE). A datetime is an instant, in UTC."""
    when = parse_when(text)
    if isinstance(when, datetime):
        return {"type": "fixed_utc", "value": when.isoformat()}
    return {"type": "fixed_local_date", "value": when.isoformat(), "which": "start"}


def _since_moment(duration: str) -> dict[str, Any]:
    """`now` minus the duration, as Close's relative moment: Close reads `now` when it runs the
    query, so a job started later selects by its own clock.

    The form is the one every query exported from Close's UI has: all seven units, zeros
    included, and `which_day_end`. `start` because this is a lower bound: a span of whole
    days reaches back to the start of its first day (in the `X-TZ-Offset` zone), as Close's
    "in the last 90 days" does; README "Selecting leads" says what that means for `12h`.
    """
    offset = parse_duration(duration)
    return {
        "type": "offset",
        "direction": "past",
        "moment": {"type": "now"},
        "offset": {unit: offset.get(unit, 0) for unit in OFFSET_UNITS},
        "which_day_end": "start",
    }


def _date_range_node(
    field_name: str, after: str | None, before: str | None, within: str | None = None
) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": "moment_range"}
    if after is not None:
        condition["on_or_after"] = _moment(after)
    if within is not None:
        condition["on_or_after"] = _since_moment(within)
    if before is not None:
        condition["before"] = _moment(before)
    return field_condition(regular_field(field_name), condition)


def _day_node(field: dict[str, Any], day: date) -> dict[str, Any]:
    """The whole day: on or after its start, before the start of the next day (both documented)."""
    return field_condition(
        field,
        {
            "type": "moment_range",
            "on_or_after": {"type": "fixed_local_date", "value": day.isoformat(), "which": "start"},
            "before": {
                "type": "fixed_local_date",
                "value": (day + timedelta(days=1)).isoformat(),
                "which": "start",
            },
        },
    )


# -- custom fields -------------------------------------------------------------------------


def _custom_path(key: str) -> str:
    suffix = f".{key}" if _IDENTIFIER.match(key) else f"[{key!r}]"
    return f"filter.custom_fields{suffix}"


async def _custom_field_node(key: str, value: object, catalog: Catalog) -> dict[str, Any]:
    path = _custom_path(key)
    field = await catalog.resolve_custom_field(key, path=path)
    if isinstance(value, FieldRange):
        return range_node(field, value, path)
    ref = {"type": "custom_field", "custom_field_id": field.id}
    values: list[object] = list(value) if isinstance(value, list) else [value]
    if not values:
        raise ArgumentError(path, "an empty list matches nothing; give at least one value")
    kind = field.type
    if kind in TEXT_FIELD_TYPES:
        texts = check_strings(values, path, "a text field")
        return any_of(
            [field_condition(ref, {"type": "text", "mode": "phrase", "value": t}) for t in texts]
        )
    if kind == "number":
        numbers = [check_number(v, path) for v in values]
        return any_of(
            [field_condition(ref, {"type": "number_range", "gte": n, "lte": n}) for n in numbers]
        )
    if kind in DATE_FIELD_TYPES:
        days = [parse_day(text, path) for text in check_strings(values, path, "a date field")]
        return any_of([_day_node(ref, day) for day in days])
    if kind == "choices":
        choices = [
            check_choice(v, field, path) for v in check_strings(values, path, "a choices field")
        ]
        return field_condition(ref, {"type": "term", "values": choices})
    if kind == "user":
        ids: list[str] = []
        for name in check_strings(values, path, "a user field"):
            ids.append((await catalog.resolve_user(name, path=path)).id)
        return field_condition(
            ref, {"type": "reference", "reference_type": "user_or_group", "object_ids": ids}
        )
    return field_condition(ref, {"type": "term", "values": values})


# -- filter -> tree ------------------------------------------------------------------------


async def resolve_filter(filter: LeadFilter, catalog: Catalog) -> dict[str, Any]:
    """One Close tree: the lead node, then one node per given field, in declared order."""
    nodes: list[dict[str, Any]] = [dict(LEAD_NODE)]
    if filter.smart_view is not None:
        nodes.append(await smart_view_node(filter.smart_view, catalog))
    if filter.lead_ids is not None:
        nodes.append(lead_ids_node(filter.lead_ids))
    if filter.lead_status is not None:
        nodes.append(await _status_node(filter.lead_status, catalog))
    if filter.name is not None:
        nodes.append(
            field_condition(
                regular_field("name"), {"type": "text", "mode": "full_words", "value": filter.name}
            )
        )
    if filter.text is not None:
        nodes.append({"type": "text", "mode": "full_words", "value": filter.text})
    if filter.custom_fields is not None:
        for key, value in filter.custom_fields.items():
            nodes.append(await _custom_field_node(key, value, catalog))
    if (filter.created_after, filter.created_before, filter.created_within) != (None, None, None):
        nodes.append(
            _date_range_node(
                "date_created", filter.created_after, filter.created_before, filter.created_within
            )
        )
    if (filter.updated_after, filter.updated_before, filter.updated_within) != (None, None, None):
        nodes.append(
            _date_range_node(
                "date_updated", filter.updated_after, filter.updated_before, filter.updated_within
            )
        )
    if filter.has_email is not None:
        nodes.append(has_email_node(filter.has_email))
    nodes += await activity_nodes(filter, catalog, since=_since_moment, at=_moment)
    return {"type": "and", "queries": nodes}


async def _status_node(lead_status: str | list[str], catalog: Catalog) -> dict[str, Any]:
    names = [lead_status] if isinstance(lead_status, str) else lead_status
    ids: list[str] = []
    for i, name in enumerate(names):
        path = "filter.lead_status" + ("" if isinstance(lead_status, str) else f"[{i}]")
        status = await catalog.resolve_status(name, path=path)
        if status.id not in ids:
            ids.append(status.id)
    return field_condition(
        regular_field("status_id"),
        {"type": "reference", "reference_type": "status.lead", "object_ids": ids},
    )
