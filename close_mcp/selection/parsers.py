"""Parsers of the values an assistant writes: dates, spans of time, numbers, choices.

The friendly filter and the values written into custom fields read the same kinds of
values, so both parse them here; each refusal quotes the value (short, even for a
5,000-digit number) and says what is allowed.
"""

from __future__ import annotations

import math
import re
import sys
from datetime import UTC, date, datetime
from typing import Final

from close_mcp.close.catalog import CustomField
from close_mcp.errors import ArgumentError
from close_mcp.selection.grammar import MAX_OFFSET

# The largest value of a number custom field: what a double holds.
MAX_FIELD_NUMBER: Final = sys.float_info.max
TEXT_FIELD_TYPES: Final = frozenset({"text", "textarea", "hidden", "url", "email", "phone"})
DATE_FIELD_TYPES: Final = frozenset({"date", "datetime"})
DATE_HELP: Final = (
    "use an ISO date like 2025-01-31 or a datetime with a timezone like 2025-01-31T10:00:00Z"
)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_SHORT_DURATION = re.compile(r"^(\d+)\s*([hdw])$", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$",
    re.IGNORECASE,
)
_SHORT_UNITS: Final = {"h": "hours", "d": "days", "w": "weeks"}


def short_repr(value: object, limit: int = 60) -> str:
    """A value quoted for an error message: short, and safe for a 5,000-digit number."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'a'} number of about {digits} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def parse_when(value: str) -> date | datetime:
    """An ISO date, or a timezone-aware ISO datetime converted to UTC; ValueError otherwise."""
    text = value.strip()
    try:
        if _DATE.match(text):
            day = date.fromisoformat(text)
            # its start east of UTC is in year 0: `filter._contradicts` overflowed
            if day == date.min:
                raise OverflowError
            return day
        if _DATETIME.match(text):
            return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise ValueError(f"{short_repr(value)} is not a real date; {DATE_HELP}") from None
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in year 10000 in UTC
        raise ValueError(
            f"{short_repr(value)} is out of range: in UTC it falls outside the years 1 to 9999 "
            "(the first whole day allowed is 0001-01-02)"
        ) from None
    if re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", text):
        raise ValueError(
            f"{short_repr(value)} has no timezone; add Z (UTC) or an offset like +02:00"
        )
    raise ValueError(f"{short_repr(value)} is not a date; {DATE_HELP}")


def parse_duration(value: str) -> dict[str, int]:
    """A span back from now, `90d` / `12h` / `2w` or ISO-8601 `P90D` / `PT12H` / `P1Y2M`, as
    the `offset` of Close's `now`-relative moment ({"days": 90}); ValueError otherwise."""
    text = value.strip()
    short = _SHORT_DURATION.match(text)
    if short:
        offset = {_SHORT_UNITS[short.group(2).lower()]: int(short.group(1))}
    else:
        iso = _ISO_DURATION.match(text)
        if iso is None or not any(iso.groupdict().values()):
            raise ValueError(
                f"{short_repr(value)} is not a duration; use a number of hours, days or weeks like "
                "12h, 90d, 2w, or an ISO-8601 duration like P90D, PT12H, P1Y"
            )
        offset = {unit: int(n) for unit, n in iso.groupdict().items() if n is not None}
    offset = {unit: n for unit, n in offset.items() if n}
    if not offset:
        raise ValueError(f"{short_repr(value)} is an empty span; give a duration longer than zero")
    for unit, n in offset.items():
        if n > MAX_OFFSET[unit]:
            raise ValueError(
                f"{short_repr(value)} is out of range: at most {MAX_OFFSET[unit]} {unit}"
            )
    return offset


def check_number(value: object, path: str) -> int | float:
    """A number field's value: a number or a numeric string (not a bool), finite as a double."""
    number = value
    if isinstance(value, str) and _NUMBER.match(value):
        text = value.strip()
        try:
            number = int(text) if re.match(r"^[+-]?\d+$", text) else float(text)
        except ValueError:  # more digits than Python converts to an int: far out of range
            number = float(text)
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ArgumentError(path, f"this is a number field; {short_repr(value)} is not a number")
    try:
        finite = math.isfinite(float(number))
    except OverflowError:
        finite = False
    if isinstance(number, float) and math.isnan(number):
        raise ArgumentError(path, f"this is a number field; {short_repr(value)} is not a number")
    if not finite:
        raise ArgumentError(
            path,
            f"{short_repr(value)} is out of range; a number field holds finite numbers "
            f"between {-MAX_FIELD_NUMBER:.3g} and {MAX_FIELD_NUMBER:.3g}",
        )
    return number


def check_strings(values: list[object], path: str, what: str) -> list[str]:
    for value in values:
        if not isinstance(value, str):
            raise ArgumentError(path, f"this is {what}; expected a string, not {short_repr(value)}")
    return [str(v) for v in values]


def parse_day(text: str, path: str) -> date:
    """A date field's value: one calendar day (the field has no time to compare with)."""
    if not _DATE.match(text.strip()):
        raise ArgumentError(
            path, f"this is a date field; {short_repr(text)} is not an ISO date like 2025-01-31"
        )
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ArgumentError(path, f"{short_repr(text)} is not a real date; {DATE_HELP}") from None
    if day == date.max:  # the day is matched up to the start of the next one, year 10000
        raise ArgumentError(
            path, f"{short_repr(text)} is out of range; the last day allowed is 9999-12-30"
        )
    return day


def check_choice(value: str, field: CustomField, path: str) -> str:
    """One of the field's choices, with the case fixed to the real choice."""
    if value in field.choices:
        return value
    folded = [c for c in field.choices if c.casefold() == value.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    listed = ", ".join(repr(c) for c in field.choices[:30])
    more = f" and {len(field.choices) - 30} more" if len(field.choices) > 30 else ""
    raise ArgumentError(path, f"{value!r} is not a choice of this field; allowed: {listed}{more}")
