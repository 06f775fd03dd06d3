"""Values written into custom fields, checked against the field before Close sees them.

A bulk edit that sets a bad value would fail lead by lead inside Close's job, after it
started; checking here turns that into one clear tool error before anything is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from close_mcp.close.catalog import Catalog, CustomField
from close_mcp.errors import ArgumentError
from close_mcp.selection.parsers import (
    DATE_FIELD_TYPES,
    TEXT_FIELD_TYPES,
    check_choice,
    check_number,
    parse_when,
    short_repr,
)


async def check_custom_value(field: CustomField, value: Any, catalog: Catalog, path: str) -> Any:
    """The value as Close should receive it for this field, or `ArgumentError`."""
    kind = field.type
    if kind == "number":
        return check_number(value, path)
    if isinstance(value, bool) and kind != "checkbox":
        raise ArgumentError(path, f"{field.name!r} is a {kind} field; {value!r} does not fit")
    if kind in TEXT_FIELD_TYPES:
        return str(value)
    if kind in DATE_FIELD_TYPES:
        try:
            when = parse_when(str(value))
        except ValueError as exc:
            raise ArgumentError(path, str(exc)) from None
        if kind == "date" and isinstance(when, datetime):
            # A date field holds a day: Close refuses a time in it, but only inside the job.
            raise ArgumentError(
                path,
                f"{field.name!r} is a date field; {short_repr(value)} has a time, give a plain "
                "date like 2025-01-31",
            )
        return when.isoformat()
    if kind == "choices":
        return check_choice(str(value), field, path)
    if kind == "user":
        return (await catalog.resolve_user(str(value), path=path)).id
    return value
