"""Sort keys by name: a lead field, a custom field's name or cf_ id, "-" first for descending.

Expanded to the `{direction, field}` keys Close expects, and only to fields that exist:
Close answers an unknown sort field with a 400, after a bulk action was asked for.
"""

from __future__ import annotations

from typing import Any, Final

from close_mcp.close.catalog import Catalog
from close_mcp.errors import ArgumentError, NameNotFound
from close_mcp.selection.nodes import regular_field

SORTABLE_LEAD_FIELDS: Final = ("date_created", "date_updated", "display_name", "name")


async def resolve_sort(sort: list[Any], catalog: Catalog) -> list[Any]:
    """Sort keys as the tools send them to Close: each named key ("date_created", a custom
    field's name or cf_ id, "-" first for descending as in Close's `_order_by`; or a
    {direction, field} object whose field is named so) expanded to a field that exists."""
    if not isinstance(sort, list):
        return sort
    expanded: list[Any] = []
    for i, key in enumerate(sort):
        if isinstance(key, str):
            direction = "desc" if key.startswith("-") else "asc"
            key = {"direction": direction, "field": key.removeprefix("-")}
        if isinstance(key, dict) and isinstance(key.get("field"), str):
            key = {**key, "field": await _sort_field(key["field"], f"sort[{i}]", catalog)}
        expanded.append(key)
    return expanded


async def _sort_field(name: str, path: str, catalog: Catalog) -> dict[str, Any]:
    if name in SORTABLE_LEAD_FIELDS:
        return regular_field(name)
    try:
        field = await catalog.resolve_custom_field(name, path=path)
    except NameNotFound:
        raise ArgumentError(
            path,
            f"{name!r} is neither a lead field ({', '.join(SORTABLE_LEAD_FIELDS)}) nor a "
            "custom field's name or cf_ id; lookup(kind='custom_fields') lists them",
        ) from None
    return {"type": "custom_field", "custom_field_id": field.id}
