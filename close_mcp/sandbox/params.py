"""The sandbox's strict reading of CRM list queries and bodies: a key or parameter an
endpoint does not take is a 400 naming it, so close-mcp never relies on one Close ignores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Final

from close_mcp.sandbox.errors import BadRequest
from close_mcp.sandbox.store import JSON, iso

DATE_OPS: Final = ("", "__gte", "__gt", "__lte", "__lt")


def check_params(query: dict[str, str], allowed: set[str] | frozenset[str]) -> None:
    unknown = sorted(k for k in query if k not in allowed)
    if unknown:
        raise BadRequest({k: "Unknown query parameter." for k in unknown})


def check_keys(data: Any, allowed: set[str], fixed: set[str] = frozenset()) -> JSON:  # type: ignore[assignment]
    if not isinstance(data, dict):
        raise BadRequest({}, ["Expected a JSON object."])
    errors = {k: "This field cannot be changed." for k in data if k in fixed}
    errors |= {k: "Unknown field." for k in data if k not in allowed and k not in fixed}
    if errors:
        raise BadRequest(errors)
    return data


def when(raw: str, name: str) -> datetime:
    """A date or date-time filter value (a bare date is its midnight UTC)."""
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest({name: "Must be an ISO 8601 date or date-time."}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _compare(value: datetime | None, op: str, bound: datetime) -> bool:
    if value is None:
        return False
    return {
        "": value == bound,
        "__gte": value >= bound,
        "__gt": value > bound,
        "__lte": value <= bound,
        "__lt": value < bound,
    }[op]


def date_filters(
    query: dict[str, str], names: tuple[str, ...], get: Callable[[Any, str], datetime | None]
) -> Callable[[Any], bool]:
    tests = []
    for name in names:
        for op in DATE_OPS:
            key = name + op
            if key in query:
                tests.append((name, op, when(query[key], key)))
    return lambda obj: all(_compare(get(obj, n), op, bound) for n, op, bound in tests)


def values_in(query: dict[str, str], name: str) -> set[str] | None:
    """`name=x` or `name__in=x,y` as a set; None when neither is given."""
    values: set[str] | None = None
    if name in query:
        values = {query[name]}
    if f"{name}__in" in query:
        values = (values or set()) | {v for v in query[f"{name}__in"].split(",") if v}
    return values


def flag(query: dict[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false", "1", "0"):
        raise BadRequest({name: "Must be true or false."})
    return raw.lower() in ("true", "1")


def order(
    items: list[Any], raw: str | None, allowed: tuple[str, ...], key: Callable[[Any, str], Any]
) -> list[Any]:
    if raw is None:
        return items
    name = raw.lstrip("-")
    if name not in allowed:
        raise BadRequest({"_order_by": f"Must be one of: {', '.join(allowed)} (- for descending)."})
    present = [i for i in items if key(i, name) is not None]
    absent = [i for i in items if key(i, name) is None]
    return sorted(present, key=lambda i: key(i, name), reverse=raw.startswith("-")) + absent


def date_value(raw: Any, name: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadRequest({name: "Must be a date (YYYY-MM-DD) or null."})
    try:
        return date.fromisoformat(raw[:10]).isoformat()
    except ValueError:
        raise BadRequest({name: "Must be a date (YYYY-MM-DD) or null."}) from None


def date_or_moment(raw: Any, name: str) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            if len(raw) == 10:
                return date.fromisoformat(raw).isoformat()
            return iso(when(raw, name))
        except (ValueError, BadRequest):
            pass
    raise BadRequest({name: "Must be a date or a date-time (ISO 8601), or null."})
