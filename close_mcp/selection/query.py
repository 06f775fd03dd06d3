"""Selections: what an assistant says (a friendly `filter` or a raw `s_query`) -> one Close query.

Every bulk tool selects leads the same way, and every preview shows the resolved tree, so
this module is the single place where names become ids, values are checked against their
custom field, dates are parsed, and a selection that would touch every lead is caught. The
result always starts with the `object_type: lead` node Close expects at the top.
"""

from __future__ import annotations

import copy
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)

from close_mcp.close.catalog import Catalog, CustomField, SmartView
from close_mcp.errors import ArgumentError, EveryLeadRefused, NameNotFound
from close_mcp.selection.activity import (
    SPAN_FIELDS,
    WHEN_FIELDS,
    ActivityFields,
    activity_fields_last,
    activity_nodes,
)
from close_mcp.selection.ranges import FieldRange, range_node, schema_with_range
from close_mcp.selection.squery import (
    MAX_OFFSET,
    validate_s_query,
    validate_sort,
)

__all__ = [
    "LeadFilter",
    "Selection",
    "all_leads_refused",
    "check_choice",
    "check_number",
    "has_email_node",
    "lead_ids_node",
    "matches_everything",
    "parse_duration",
    "parse_when",
    "resolve_filter",
    "resolve_selection",
    "shown",
    "top_object_type",
]

MAX_RESULTS_LIMIT: Final = 100_000
MAX_NUMBER: Final = sys.float_info.max
MAX_VIEW_NESTING: Final = 4  # smart views inlined inside smart views, at most this deep
LEAD_NODE: Final[dict[str, Any]] = {"type": "object_type", "object_type": "lead"}
TEXT_FIELD_TYPES: Final = frozenset({"text", "textarea", "hidden", "url", "email", "phone"})
DATE_FIELD_TYPES: Final = frozenset({"date", "datetime"})

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHORT_DURATION = re.compile(r"^(\d+)\s*([hdw])$", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$",
    re.IGNORECASE,
)
_SHORT_UNITS: Final = {"h": "hours", "d": "days", "w": "weeks"}


# -- the friendly filter -------------------------------------------------------------------


def _custom_value(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """One clear message instead of one error per member of the union."""
    if isinstance(value, dict):  # a range: its own message names gte / lte
        unknown = [key for key in value if key not in FieldRange.model_fields]
        if unknown:
            raise ValueError(f"an object here is a range {{gte, lte}}, not {shown(unknown[0])}")
        try:
            return FieldRange.model_validate(value)
        except ValidationError as exc:
            raise ValueError(
                "a range is {gte, lte} (numbers, or dates like 2025-01-31): "
                + "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            ) from None
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(
            "must be a string, a number, a boolean, a list of strings or a range {gte, lte}, "
            f"not {type(value).__name__}"
        ) from None


_PlainValue = bool | int | float | str | list[str]
CustomValue = Annotated[
    _PlainValue | FieldRange,
    WrapValidator(_custom_value),
    WithJsonSchema(schema_with_range(_PlainValue)),
]
LeadId = Annotated[str, StringConstraints(pattern=r"^lead_[A-Za-z0-9]+$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=1000)]

_DATE_HELP: Final = (
    "use an ISO date like 2025-01-31 or a datetime with a timezone like 2025-01-31T10:00:00Z"
)
_DATE_DESCRIPTION: Final = "2025-01-31 (server time zone) or 2025-01-31T10:00Z"


def shown(value: object, limit: int = 60) -> str:
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
            if day == date.min:  # its start east of UTC is in year 0: `_contradicts` overflowed
                raise OverflowError
            return day
        if _DATETIME.match(text):
            return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise ValueError(f"{shown(value)} is not a real date; {_DATE_HELP}") from None
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in year 10000 in UTC
        raise ValueError(
            f"{shown(value)} is out of range: in UTC it falls outside the years 1 to 9999 "
            "(the first whole day allowed is 0001-01-02)"
        ) from None
    if re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", text):
        raise ValueError(f"{shown(value)} has no timezone; add Z (UTC) or an offset like +02:00")
    raise ValueError(f"{shown(value)} is not a date; {_DATE_HELP}")


def _custom_fields_as_list_too(schema: dict[str, Any]) -> None:
    """The map form also as a list of {custom_field, value}: clients that cannot express a
    map (Gemini; OpenAI's strict mode) are shown the list (see `server.compact`)."""
    arms = schema["anyOf"]
    mapping = next(arm for arm in arms if arm.get("type") == "object")
    item = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "custom_field": {"type": "string", "minLength": 1, "maxLength": 200},
            "value": mapping["additionalProperties"],
        },
        "required": ["custom_field", "value"],
    }
    listed = {"type": "array", "items": item, "minItems": 1, "maxItems": mapping["maxProperties"]}
    arms.insert(arms.index(mapping) + 1, listed)


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
                f"{shown(value)} is not a duration; use a number of hours, days or weeks like "
                "12h, 90d, 2w, or an ISO-8601 duration like P90D, PT12H, P1Y"
            )
        offset = {unit: int(n) for unit, n in iso.groupdict().items() if n is not None}
    offset = {unit: n for unit, n in offset.items() if n}
    if not offset:
        raise ValueError(f"{shown(value)} is an empty span; give a duration longer than zero")
    for unit, n in offset.items():
        if n > MAX_OFFSET[unit]:
            raise ValueError(f"{shown(value)} is out of range: at most {MAX_OFFSET[unit]} {unit}")
    return offset


class LeadFilter(ActivityFields):
    # Friendly lead selection; every field given must hold (they are ANDed). A comment, not a
    # docstring: the tool argument already says so, and the schema is sent on every turn.

    model_config = ConfigDict(extra="forbid", json_schema_extra=activity_fields_last)

    smart_view: Text | None = Field(default=None, description="Smart view name or save_ id.")
    lead_ids: list[LeadId] | None = Field(
        default=None, min_length=1, max_length=1000, description="lead_ ids."
    )
    lead_status: Text | Annotated[list[Text], Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="Status label or stat_ id; a list: any of them."
    )
    name: Text | None = Field(default=None, description="Words in the lead name.")
    text: Text | None = Field(default=None, description="Full-text search.")
    custom_fields: Annotated[dict[str, CustomValue], Field(min_length=1, max_length=50)] | None = (
        Field(
            default=None,
            description=(
                "[{custom_field: name or cf_ id, value}]; value a list of strings: any of them; "
                "{gte, lte}: a number or date range."
            ),
            json_schema_extra=_custom_fields_as_list_too,
        )
    )
    created_after: str | None = Field(
        default=None, description="Created on or after: " + _DATE_DESCRIPTION + "."
    )
    created_before: str | None = Field(default=None, description="Created before.")
    updated_after: str | None = Field(default=None, description="Updated on or after.")
    updated_before: str | None = Field(default=None, description="Updated before.")
    has_email: bool | None = Field(
        default=None, description="A contact has an email (false: none has)."
    )
    created_within: str | None = Field(
        default=None,
        description="Created in the last 90d, 12h, 2w or ISO-8601 span (P90D); not with "
        "created_after.",
    )
    updated_within: str | None = Field(
        default=None, description="Updated within this span up to now; same format."
    )

    @field_validator("custom_fields", mode="before")
    @classmethod
    def _from_list(cls, value: object) -> object:
        """[{custom_field, value}] as {custom_field: value}; a field named twice is refused."""
        if not isinstance(value, list):
            return value
        found: dict[object, object] = {}
        for item in value:
            if not (isinstance(item, dict) and set(item) == {"custom_field", "value"}):
                raise ValueError("each item must be {custom_field, value}")
            if item["custom_field"] in found:
                raise ValueError(f"{shown(item['custom_field'])} is given twice")
            found[item["custom_field"]] = item["value"]
        return found

    @field_validator(
        "created_after", "created_before", "updated_after", "updated_before", *WHEN_FIELDS
    )
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        return None if value is None else parse_when(value).isoformat()

    @field_validator("created_within", "updated_within", *SPAN_FIELDS)
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _meaningful(self) -> LeadFilter:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError(
                "filter needs at least one field; to select every lead use "
                's_query {"type": "match_all"} with allow_all_leads: true'
            )
        for prefix in ("created", "updated"):
            within, after = getattr(self, f"{prefix}_within"), getattr(self, f"{prefix}_after")
            if within is not None and after is not None:
                raise ValueError(
                    f"{prefix}_within ({within}) and {prefix}_after ({after}) both set where the "
                    "range starts; give only one of them"
                )
            after, before = getattr(self, f"{prefix}_after"), getattr(self, f"{prefix}_before")
            if after is not None and before is not None and _contradicts(after, before):
                raise ValueError(
                    f"{prefix}_after ({after}) must be earlier than {prefix}_before ({before}); "
                    "no lead could match"
                )
        return self


# How far a day's start may be from its start in UTC: zones run from UTC-12 to UTC+14.
_EARLIEST_DAY_START: Final = timedelta(hours=-14)
_LATEST_DAY_START: Final = timedelta(hours=12)


def _contradicts(after: str, before: str) -> bool:
    """No lead can be on or after `after` and before `before`, in whatever time zone.

    Two days, or two instants, compare as they are. A day against an instant depends on the
    zone the day is read in (CLOSE_MCP_TIMEZONE, not known here): refuse only what no zone
    allows, so a real range is never refused.
    """
    start, end = parse_when(after), parse_when(before)
    if isinstance(start, datetime) == isinstance(end, datetime):
        return start >= end
    earliest = start if isinstance(start, datetime) else _utc_day(start) + _EARLIEST_DAY_START
    latest = end if isinstance(end, datetime) else _utc_day(end) + _LATEST_DAY_START
    return earliest >= latest


def _utc_day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# -- building blocks -----------------------------------------------------------------------


def _regular(field_name: str) -> dict[str, Any]:
    return {"type": "regular_field", "object_type": "lead", "field_name": field_name}


def _field_condition(field: dict[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
    return {"type": "field_condition", "field": field, "condition": condition}


def _any_of(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    return nodes[0] if len(nodes) == 1 else {"type": "or", "queries": nodes}


def lead_ids_node(ids: list[str]) -> dict[str, Any]:
    """Leads whose id is one of `ids`: the one place a lead-id condition is built.

    Close's advanced filtering reference: ID fields take a `reference` condition with the
    ID's type as `reference_type`, so the lead `id` field takes `reference_type: "lead"`.
    `filter.lead_ids` and every revert plan use it.
    """
    return _field_condition(
        _regular("id"), {"type": "reference", "reference_type": "lead", "object_ids": list(ids)}
    )


def has_email_node(has_email: bool) -> dict[str, Any]:
    """Leads with (or, negated, without) a contact that has an email address.

    Our reading of Close's grammar: `has_related` from lead to contact, and from contact to
    `contact_email`, matching any email; `negate` on the outer node means "no contact has one".
    """
    node: dict[str, Any] = {
        "type": "has_related",
        "this_object_type": "lead",
        "related_object_type": "contact",
        "related_query": {
            "type": "has_related",
            "this_object_type": "contact",
            "related_object_type": "contact_email",
            "related_query": {"type": "match_all"},
        },
    }
    if not has_email:
        node["negate"] = True
    return node


def _moment(text: str) -> dict[str, Any]:
    """A date is the start of that day where Close reads local dates: the zone of the
    `X-TZ-Offset` the client sends (CLOSE_MCP_TIMEZONE). A datetime is an instant, in UTC."""
    when = parse_when(text)
    if isinstance(when, datetime):
        return {"type": "fixed_utc", "value": when.isoformat()}
    return {"type": "fixed_local_date", "value": when.isoformat(), "which": "start"}


OFFSET_UNITS: Final = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")


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
    return _field_condition(_regular(field_name), condition)


def _day_node(field: dict[str, Any], day: date) -> dict[str, Any]:
    """The whole day: on or after its start, before the start of the next day (both documented)."""
    return _field_condition(
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
        raise ArgumentError(path, f"this is a number field; {shown(value)} is not a number")
    try:
        finite = math.isfinite(float(number))
    except OverflowError:
        finite = False
    if isinstance(number, float) and math.isnan(number):
        raise ArgumentError(path, f"this is a number field; {shown(value)} is not a number")
    if not finite:
        raise ArgumentError(
            path,
            f"{shown(value)} is out of range; a number field holds finite numbers "
            f"between {-MAX_NUMBER:.3g} and {MAX_NUMBER:.3g}",
        )
    return number


def _strings(values: list[object], path: str, what: str) -> list[str]:
    for value in values:
        if not isinstance(value, str):
            raise ArgumentError(path, f"this is {what}; expected a string, not {shown(value)}")
    return [str(v) for v in values]


def _day(text: str, path: str) -> date:
    """A date field's value: one calendar day (the field has no time to compare with)."""
    if not _DATE.match(text.strip()):
        raise ArgumentError(
            path, f"this is a date field; {shown(text)} is not an ISO date like 2025-01-31"
        )
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ArgumentError(path, f"{shown(text)} is not a real date; {_DATE_HELP}") from None
    if day == date.max:  # the day is matched up to the start of the next one, year 10000
        raise ArgumentError(
            path, f"{shown(text)} is out of range; the last day allowed is 9999-12-30"
        )
    return day


def check_choice(value: str, field: CustomField, path: str) -> str:
    """One of the field's choices, with the case fixed to the real choice."""
    if value in field.choices:
        return value
    folded = [c for c in field.choices if c.casefold() == value.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    shown = ", ".join(repr(c) for c in field.choices[:30])
    more = f" and {len(field.choices) - 30} more" if len(field.choices) > 30 else ""
    raise ArgumentError(path, f"{value!r} is not a choice of this field; allowed: {shown}{more}")


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
        texts = _strings(values, path, "a text field")
        return _any_of(
            [_field_condition(ref, {"type": "text", "mode": "phrase", "value": t}) for t in texts]
        )
    if kind == "number":
        numbers = [check_number(v, path) for v in values]
        return _any_of(
            [_field_condition(ref, {"type": "number_range", "gte": n, "lte": n}) for n in numbers]
        )
    if kind in DATE_FIELD_TYPES:
        days = [_day(text, path) for text in _strings(values, path, "a date field")]
        return _any_of([_day_node(ref, day) for day in days])
    if kind == "choices":
        choices = [check_choice(v, field, path) for v in _strings(values, path, "a choices field")]
        return _field_condition(ref, {"type": "term", "values": choices})
    if kind == "user":
        ids: list[str] = []
        for name in _strings(values, path, "a user field"):
            ids.append((await catalog.resolve_user(name, path=path)).id)
        return _field_condition(
            ref, {"type": "reference", "reference_type": "user_or_group", "object_ids": ids}
        )
    return _field_condition(ref, {"type": "term", "values": values})


# -- filter -> tree ------------------------------------------------------------------------


async def resolve_filter(filter: LeadFilter, catalog: Catalog) -> dict[str, Any]:
    """One Close tree: the lead node, then one node per given field, in declared order."""
    nodes: list[dict[str, Any]] = [dict(LEAD_NODE)]
    if filter.smart_view is not None:
        nodes.append(await _smart_view_node(filter.smart_view, catalog))
    if filter.lead_ids is not None:
        nodes.append(lead_ids_node(filter.lead_ids))
    if filter.lead_status is not None:
        nodes.append(await _status_node(filter.lead_status, catalog))
    if filter.name is not None:
        nodes.append(
            _field_condition(
                _regular("name"), {"type": "text", "mode": "full_words", "value": filter.name}
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
    return _field_condition(
        _regular("status_id"),
        {"type": "reference", "reference_type": "status.lead", "object_ids": ids},
    )


async def _smart_view_node(name: str, catalog: Catalog) -> dict[str, Any]:
    """The view's own tree, inlined (not a `saved_search` node: unverified inside bulk actions)."""
    view = await catalog.resolve_smart_view(name, path="filter.smart_view")
    return await _view_tree(view, catalog, "filter.smart_view", ())


async def _view_tree(
    view: SmartView, catalog: Catalog, path: str, chain: tuple[str, ...]
) -> dict[str, Any]:
    """A copy of the view's stored tree, its own `saved_search` nodes inlined in turn."""
    if view.query is None:
        raise ArgumentError(path, f"smart view {view.name!r} ({view.id}) has no stored query")
    object_type = top_object_type(view.query)
    if (view.type not in (None, "lead")) or object_type not in (None, "lead"):
        raise ArgumentError(
            path,
            f"smart view {view.name!r} ({view.id}) selects {object_type or view.type} "
            "objects, not leads",
        )
    return await _inline_views(copy.deepcopy(view.query), catalog, path, (*chain, view.id))


async def _inline_views(
    node: dict[str, Any], catalog: Catalog, path: str, chain: tuple[str, ...], ctx: str = "lead"
) -> dict[str, Any]:
    """`node` with every `saved_search` node replaced by its view's tree, so the body (and the
    confirmation token) carry what Close will really run, not a reference Close resolves later.

    `path` names the argument at fault: the node's own place in an `s_query`, or, inside an
    inlined view, the place of the outermost `saved_search` node. `chain` is the views being
    inlined, outermost first (a view met again is a cycle).
    """
    inside_view = bool(chain)
    if node.get("type") == "saved_search":
        view_id = node.get("saved_search_id")
        if not isinstance(view_id, str):
            raise ArgumentError(f"{path}.saved_search_id", "missing the smart view id")
        if ctx != "lead":
            raise ArgumentError(path, f"a smart view selects leads; it cannot match {ctx} objects")
        via = " -> ".join((*chain, view_id))
        if view_id in chain:
            raise ArgumentError(path, f"smart views refer to each other in a cycle: {via}")
        if len(chain) >= MAX_VIEW_NESTING:
            raise ArgumentError(
                path, f"smart views nested more than {MAX_VIEW_NESTING} deep: {via}"
            )
        view = await catalog.resolve_smart_view(view_id, path=path)
        if view.results_limit is not None:
            raise ArgumentError(
                path,
                f"smart view {view.name!r} ({view.id}) shows only its first "
                f"{view.results_limit} leads, which a saved_search node inside a query cannot "
                "keep; select it alone with filter.smart_view",
            )
        tree = await _view_tree(view, catalog, path, chain)
        if node.get("negate"):
            tree = {"type": "and", "queries": [tree], "negate": True}
        return tree
    out = dict(node)
    queries = node.get("queries")
    if isinstance(queries, list):
        out["queries"] = [
            await _inline_views(
                q, catalog, path if inside_view else f"{path}.queries[{i}]", chain, ctx
            )
            if isinstance(q, dict)
            else q
            for i, q in enumerate(queries)
        ]
    related = node.get("related_query")
    if isinstance(related, dict):
        related_type = node.get("related_object_type")
        out["related_query"] = await _inline_views(
            related,
            catalog,
            path if inside_view else f"{path}.related_query",
            chain,
            related_type if isinstance(related_type, str) else "",
        )
    return out


# -- raw trees -----------------------------------------------------------------------------


def top_object_type(tree: dict[str, Any]) -> str | None:
    """The object type a tree starts with: its own, or a direct child's of a top-level `and`."""
    candidates = [tree]
    if tree.get("type") == "and" and not tree.get("negate"):
        candidates += [q for q in tree.get("queries") or [] if isinstance(q, dict)]
    for node in candidates:
        if node.get("type") == "object_type" and not node.get("negate"):
            object_type = node.get("object_type")
            return object_type if isinstance(object_type, str) else None
    return None


def _with_lead_node(tree: dict[str, Any]) -> dict[str, Any]:
    object_type = top_object_type(tree)
    if object_type == "lead":
        return copy.deepcopy(tree)
    if object_type is not None:
        raise ArgumentError(
            "s_query",
            f"the query selects {object_type!r} objects; bulk actions and searches here "
            "select leads",
        )
    return {"type": "and", "queries": [dict(LEAD_NODE), copy.deepcopy(tree)]}


# -- does it select everything? ------------------------------------------------------------


def matches_everything(tree: object) -> bool:
    """True when simple rules prove the tree (for leads) matches every lead.

    Errs towards True: a false alarm costs an `allow_all_leads: true`, a miss could touch
    every lead. Field conditions and related queries are taken as real filters, so this is
    only the fast path: `close_mcp.selection.totals` compares the selection's count with the
    organization's (`saved_search` nodes are inlined before either looks at the tree).
    """
    return _all(tree)


def _strip_negate(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != "negate"}


def _complementary(nodes: list[dict[str, Any]]) -> bool:
    """Some node appears both plain and negated (X or not X)."""
    plain = [_strip_negate(n) for n in nodes if not n.get("negate")]
    return any(_strip_negate(n) in plain for n in nodes if n.get("negate"))


def _all(node: object) -> bool:
    if not isinstance(node, dict):
        return False
    return _base_none(node) if node.get("negate") else _base_all(node)


def _none(node: object) -> bool:
    if not isinstance(node, dict):
        return False
    return _base_all(node) if node.get("negate") else _base_none(node)


def _children(node: dict[str, Any]) -> list[dict[str, Any]]:
    queries = node.get("queries")
    return [q for q in queries if isinstance(q, dict)] if isinstance(queries, list) else []


def _base_all(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if kind == "match_all":
        return True
    if kind == "object_type":
        return node.get("object_type") == "lead"
    if kind == "and":
        return all(_all(child) for child in _children(node))
    if kind == "or":
        children = _children(node)
        return any(_all(child) for child in children) or _complementary(children)
    return False


def _base_none(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if kind == "match_all":
        return False
    if kind == "object_type":
        return node.get("object_type") != "lead"
    if kind == "and":
        children = _children(node)
        return any(_none(child) for child in children) or _complementary(children)
    if kind == "or":
        return all(_none(child) for child in _children(node))
    return False


def all_leads_refused(source: str) -> EveryLeadRefused:
    """The refusal of a selection that matches every lead, by its wording or by its count."""
    return EveryLeadRefused(
        source,
        "the selection matches every lead in the organization; pass "
        "`allow_all_leads: true` if that is really meant",
    )


# -- the selection every tool takes --------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The resolved selection: exactly what a preview shows and a bulk request carries."""

    s_query: dict[str, Any]
    results_limit: int | None
    sort: list[dict[str, Any]] | None
    source: Literal["filter", "s_query"]
    matches_everything: bool


def _limited_view(
    filter: LeadFilter, view: SmartView, results_limit: int | None, sort: list[Any] | None
) -> tuple[int | None, list[Any] | None]:
    """A view with a limit shows only its first N leads by its sort: never act on others."""
    if view.results_limit is None:
        return results_limit, sort
    where = f"smart view {view.name!r} ({view.id}) shows only its first {view.results_limit} leads"
    others = [
        name
        for name in LeadFilter.model_fields
        if name != "smart_view" and getattr(filter, name) is not None
    ]
    if others:
        raise ArgumentError(
            "filter",
            f"{where}; combined with {', '.join(others)} the limit would pick other leads. "
            "Use the smart view alone, or pass an s_query",
        )
    if sort is not None and sort != (view.sort or None):
        raise ArgumentError(
            "sort", f"{where} in its own order; leave sort out to use the view's order"
        )
    limit = view.results_limit if results_limit is None else min(results_limit, view.results_limit)
    return limit, view.sort


def _filter_error(exc: ValidationError) -> ArgumentError:
    problems: list[tuple[str, str]] = []
    allowed = ", ".join(LeadFilter.model_json_schema()["properties"])
    for error in exc.errors():
        path = "filter"
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field; the filter fields are: {allowed}"
        problems.append((path, message))
    if len(problems) == 1:
        return ArgumentError(*problems[0])
    return ArgumentError(None, "; ".join(f"{path}: {message}" for path, message in problems))


SORTABLE_LEAD_FIELDS: Final = ("date_created", "date_updated", "display_name", "name")


async def resolve_sort(sort: list[Any], catalog: Catalog) -> list[Any]:
    """Sort keys as the tools send them to Close (see `_named_sort`)."""
    return await _named_sort(sort, catalog)


async def _named_sort(sort: list[Any], catalog: Catalog) -> list[Any]:
    """Sort keys may be named: "date_created" (a lead field), a custom field's name or cf_ id,
    "-" first for descending as in Close's `_order_by`; or a {direction, field} object whose
    field is named so. Expanded to the sort keys Close expects, and only to fields that exist:
    Close answers an unknown sort field with a 400."""
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


async def _sort_field(name: str, path: str, catalog: Catalog) -> dict[str, str]:
    if name in SORTABLE_LEAD_FIELDS:
        return {"type": "regular_field", "object_type": "lead", "field_name": name}
    try:
        field = await catalog.resolve_custom_field(name, path=path)
    except NameNotFound:
        raise ArgumentError(
            path,
            f"{name!r} is neither a lead field ({', '.join(SORTABLE_LEAD_FIELDS)}) nor a "
            "custom field's name or cf_ id; lookup(kind='custom_fields') lists them",
        ) from None
    return {"type": "custom_field", "custom_field_id": field.id}


async def resolve_selection(
    *,
    filter: LeadFilter | dict[str, Any] | None = None,
    s_query: dict[str, Any] | None = None,
    results_limit: int | None = None,
    sort: list[Any] | None = None,
    allow_all_leads: bool = False,
    catalog: Catalog,
) -> Selection:
    """Check and resolve a tool's selection arguments; `ArgumentError` says what to fix."""
    if (filter is None) == (s_query is None):
        got = "both" if filter is not None else "neither"
        raise ArgumentError(
            None,
            f"pass exactly one of `filter` (friendly fields) or `s_query` (a raw Close query "
            f"tree); got {got}",
        )
    if results_limit is not None and (
        isinstance(results_limit, bool)
        or not isinstance(results_limit, int)
        or not 1 <= results_limit <= MAX_RESULTS_LIMIT
    ):
        raise ArgumentError(
            "results_limit",
            f"must be a whole number from 1 to {MAX_RESULTS_LIMIT}, not {results_limit!r}",
        )
    if sort is not None:
        sort = await _named_sort(sort, catalog)
        validate_sort(sort)

    source: Literal["filter", "s_query"]
    if filter is not None:
        source = "filter"
        if not isinstance(filter, LeadFilter):
            try:
                filter = LeadFilter.model_validate(filter)
            except ValidationError as exc:
                raise _filter_error(exc) from None
        tree = await resolve_filter(filter, catalog)
        if filter.smart_view is not None:
            view = await catalog.resolve_smart_view(filter.smart_view)
            results_limit, sort = _limited_view(filter, view, results_limit, sort)
    else:
        source = "s_query"
        validate_s_query(s_query)
        assert isinstance(s_query, dict)
        tree = _with_lead_node(await _inline_views(s_query, catalog, "s_query", ()))

    everything = matches_everything(tree)
    if everything and not allow_all_leads:
        raise all_leads_refused(source)
    return Selection(
        s_query=tree,
        results_limit=results_limit,
        sort=[dict(key) for key in sort] if sort else None,
        source=source,
        matches_everything=everything,
    )
