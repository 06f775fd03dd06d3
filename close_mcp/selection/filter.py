"""The friendly filter: the lead fields an assistant may select by, checked as it gives them.

`LeadFilter` is also the `filter` argument's schema, sent to the model on every turn: its
descriptions are short on purpose. `tree.resolve_filter` turns a checked filter into Close's
query tree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final

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

from close_mcp.errors import ArgumentError
from close_mcp.selection.activity import (
    SPAN_FIELDS,
    WHEN_FIELDS,
    ActivityFields,
    activity_fields_last,
)
from close_mcp.selection.parsers import parse_duration, parse_when, short_repr
from close_mcp.selection.ranges import FieldRange, schema_with_range


def _custom_value(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """One clear message instead of one error per member of the union."""
    if isinstance(value, dict):  # a range: its own message names gte / lte
        unknown = [key for key in value if key not in FieldRange.model_fields]
        if unknown:
            raise ValueError(
                f"an object here is a range {{gte, lte}}, not {short_repr(unknown[0])}"
            )
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

_DATE_DESCRIPTION: Final = "2025-01-31 (server time zone) or 2025-01-31T10:00Z"


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
                raise ValueError(f"{short_repr(item['custom_field'])} is given twice")
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


def filter_error(exc: ValidationError) -> ArgumentError:
    """The model's errors as one `ArgumentError` naming each field at fault (`filter.x`)."""
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
