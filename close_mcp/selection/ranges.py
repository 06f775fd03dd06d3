"""Ranges on custom fields in the friendly filter: `{"Score": {"gte": 80}}`, or a date field's
`{"gte": "2025-01-01", "lte": "2025-03-31"}`, both ends included.

A number field takes Close's `number_range` condition; a date field a `moment_range` of whole
local days (from the start of `gte`'s day to the start of the day after `lte`), the form the
filter already sends for one day. Any other field type refuses a range, naming the types that
take one.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, TypeAdapter, model_validator

from close_mcp.close.catalog import CustomField
from close_mcp.errors import ArgumentError

__all__ = ["FieldRange", "range_node", "schema_with_range"]

RANGE_FIELD_TYPES: Final = ("number", "date", "datetime")


class FieldRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Both ends included; described once, by the filter's `custom_fields`.
    gte: float | int | str | None = None
    lte: float | int | str | None = None

    @model_validator(mode="after")
    def _one_end(self) -> FieldRange:
        if self.gte is None and self.lte is None:
            raise ValueError("a range needs gte, lte or both")
        return self


def schema_with_range(plain: Any) -> dict[str, Any]:
    """The schema of a custom field's value, `plain` or a range, with the range inline: as a
    `$ref` it would be described twice (the map and the list form of `custom_fields`)."""
    arms = TypeAdapter(plain).json_schema()["anyOf"]
    return {"anyOf": [*arms, FieldRange.model_json_schema()]}


def _number(value: object, path: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgumentError(path, f"this is a number field; {value!r} is not a number")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int past a double's range
        finite = False
    if not finite:
        text = repr(value)
        shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} digits)"
        raise ArgumentError(path, f"{shown} is out of range for a number field")
    return value


def _day(value: object, path: str) -> date:
    text = value.strip() if isinstance(value, str) else ""
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise ArgumentError(path, f"this is a date field; {value!r} is not a date like 2025-01-31")
    if day == date.max:  # the range ends at the start of the next day, in year 10000
        raise ArgumentError(path, f"{value!r} is out of range; the last day allowed is 9999-12-30")
    return day


def _local_day(day: date) -> dict[str, Any]:
    return {"type": "fixed_local_date", "value": day.isoformat(), "which": "start"}


def range_node(field: CustomField, value: FieldRange, path: str) -> dict[str, Any]:
    """The condition node of `value` on `field`; `path` names the filter entry at fault."""
    ref = {"type": "custom_field", "custom_field_id": field.id}
    if field.type == "number":
        bounds = {
            key: _number(getattr(value, key), f"{path}.{key}")
            for key in ("gte", "lte")
            if getattr(value, key) is not None
        }
        if "gte" in bounds and "lte" in bounds and bounds["gte"] > bounds["lte"]:
            raise ArgumentError(path, f"gte ({bounds['gte']}) is above lte ({bounds['lte']})")
        condition: dict[str, Any] = {"type": "number_range", **bounds}
    elif field.type in ("date", "datetime"):
        condition = {"type": "moment_range"}
        if value.gte is not None:
            condition["on_or_after"] = _local_day(_day(value.gte, f"{path}.gte"))
        if value.lte is not None:
            last = _day(value.lte, f"{path}.lte")
            condition["before"] = _local_day(last + timedelta(days=1))
            if value.gte is not None and _day(value.gte, path) > last:
                raise ArgumentError(path, f"gte ({value.gte}) is after lte ({value.lte})")
    else:
        raise ArgumentError(
            path,
            f"a range (gte/lte) applies to {', '.join(RANGE_FIELD_TYPES)} fields; this is a "
            f"{field.type} field: give its value instead",
        )
    return {"type": "field_condition", "field": ref, "condition": condition}
