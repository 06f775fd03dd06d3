"""The grammar of Close's `/data/search/` query tree, written as JSON Schema.

`SQUERY_SCHEMA` is the grammar of `close-api.md` (published as
`tool_schemas/s_query.schema.json` and as a resource), `SORT_SCHEMA` the sort keys; the
limits here are the ones `raw_query` enforces beyond what JSON Schema can say. Each node kind
is picked by its `type` with `if`/`then`, not `oneOf`, so an error points at the one wrong
key instead of listing every alternative.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Final

MAX_DEPTH: Final = 12
MAX_NODES: Final = 500
MAX_STRING: Final = 1000
MAX_ITEMS: Final = 1000
MAX_SORT_KEYS: Final = 10
# JSON containers nested deeper than this cannot be a sensible query (moments and
# conditions add a few levels per node); checked before jsonschema recurses.
MAX_JSON_DEPTH: Final = 8 * MAX_DEPTH

TEXT_MODES: Final = ("full_words", "phrase", "beginning_of_words", "exact_value")
MOMENT_BOUNDS: Final = ("on_or_after", "before", "after", "on_or_before")
NUMBER_BOUNDS: Final = ("gte", "lte", "gt", "lt")
OFFSET_UNITS: Final = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")
# An offset of at most 10,000 years in each unit: more leaves the calendar Close can count in.
MAX_OFFSET: Final = {
    "years": 10_000,
    "months": 120_000,
    "weeks": 521_775,
    "days": 3_652_425,
    "hours": 87_658_200,
    "minutes": 5_259_492_000,
    "seconds": 315_569_520_000,
}
# The largest number a query may hold: a JSON number Close reads as a double.
MAX_JSON_NUMBER: Final = sys.float_info.max
# Fields of Close's object types that close-mcp's filters and checks name (close-api.md;
# activity.email as Close's UI exports "emailed in the last 30 days"): the schema's examples,
# which `lookup(kind="s_query")` lists. Close knows more; these are the ones relied on.
NAMED_FIELDS: Final = (
    ("lead", "name"), ("lead", "display_name"), ("lead", "status_id"),
    ("lead", "date_created"), ("lead", "date_updated"), ("lead", "url"),
    ("contact", "name"), ("contact", "title"), ("contact_email", "email"),
    ("activity.email", "direction"), ("activity.email", "date"),
)  # fmt: skip

_DATE_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DATETIME_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)


def _string(description: str | None = None, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": MAX_STRING}
    if pattern is not None:
        schema["pattern"] = pattern
    if description is not None:
        schema["description"] = description
    return schema


def _id(prefix: str, what: str) -> dict[str, Any]:
    return _string(f"{what} id ({prefix}...)", f"^{prefix}[A-Za-z0-9_]+$")


_OBJECT_TYPE: Final = _string("an object type such as lead or contact", r"^[a-z][a-z_.]*$")


def _kind(
    name: str, required: Sequence[str], properties: dict[str, Any], *, negate: bool = False
) -> dict[str, Any]:
    """One variant of a `type`-discriminated union; `negate` is allowed on query nodes."""
    props: dict[str, Any] = {"type": {"const": name}}
    if negate:
        props["negate"] = {"type": "boolean"}
    props.update(properties)
    return {
        "type": "object",
        "required": ["type", *required],
        "properties": props,
        "additionalProperties": False,
    }


def _union(description: str, variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Dispatch on `type`: an unknown type fails on `type` alone, a known one on its own keys."""
    return {
        "description": description,
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": list(variants)}},
        "allOf": [
            {
                "if": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"const": name}},
                },
                "then": variant,
            }
            for name, variant in variants.items()
        ],
    }


def _at_least_one(keys: Sequence[str]) -> dict[str, Any]:
    return {"anyOf": [{"required": [key]} for key in keys]}


def _array(items: dict[str, Any], *, min_items: int = 1) -> dict[str, Any]:
    return {"type": "array", "minItems": min_items, "maxItems": MAX_ITEMS, "items": items}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or null for "no bound": filters copied from Close's UI carry
    `"on_or_after": null` and the like. (`if`/`else`, not `anyOf`, so an error names the
    wrong key of the bound instead of "is not null".)"""
    return {"if": {"type": "null"}, "else": schema}


_NODE_VARIANTS: Final = {
    "and": _ref("node_and"),
    "or": _ref("node_or"),
    "object_type": _ref("node_object_type"),
    "field_condition": _ref("node_field_condition"),
    "has_related": _ref("node_has_related"),
    "match_all": _ref("node_match_all"),
    "saved_search": _ref("node_saved_search"),
    "text": _ref("node_text"),
}
_FIELD_VARIANTS: Final = {
    "regular_field": _ref("field_regular"),
    "custom_field": _ref("field_custom"),
}
_CONDITION_VARIANTS: Final = {
    "text": _ref("condition_text"),
    "term": _ref("condition_term"),
    "reference": _ref("condition_reference"),
    "number_range": _ref("condition_number_range"),
    "moment_range": _ref("condition_moment_range"),
    "exists": _ref("condition_exists"),
}
_MOMENT_VARIANTS: Final = {
    "now": _ref("moment_now"),
    "fixed_utc": _ref("moment_fixed_utc"),
    "fixed_local_date": _ref("moment_fixed_local_date"),
    "offset": _ref("moment_offset"),
}

# A `type` outside a union is named with what the node is, and where to see each form.
UNION_ROLES: Final = {
    tuple(_NODE_VARIANTS): "node",
    tuple(_FIELD_VARIANTS): "field",
    tuple(_CONDITION_VARIANTS): "condition",
    tuple(_MOMENT_VARIANTS): "moment",
}
_TEXT_MODE: Final = {"enum": list(TEXT_MODES)}
_WHICH: Final = {"enum": ["start", "end"]}
_TERM_VALUE: Final = {"type": ["string", "number", "boolean"], "maxLength": MAX_STRING}

_DEFS: Final[dict[str, Any]] = {
    "node": _union("A query node; every node may carry negate: true.", _NODE_VARIANTS),
    "node_and": _kind("and", ["queries"], {"queries": _array(_ref("node"))}, negate=True),
    "node_or": _kind("or", ["queries"], {"queries": _array(_ref("node"))}, negate=True),
    "node_object_type": _kind(
        "object_type", ["object_type"], {"object_type": _OBJECT_TYPE}, negate=True
    ),
    "node_field_condition": _kind(
        "field_condition",
        ["field", "condition"],
        {"field": _ref("field"), "condition": _ref("condition")},
        negate=True,
    ),
    "node_has_related": _kind(
        "has_related",
        ["this_object_type", "related_object_type", "related_query"],
        {
            "this_object_type": _OBJECT_TYPE,
            "related_object_type": _OBJECT_TYPE,
            "related_query": _ref("node"),
        },
        negate=True,
    ),
    "node_match_all": _kind("match_all", [], {}, negate=True),
    "node_saved_search": _kind(
        "saved_search",
        ["saved_search_id"],
        {"saved_search_id": _id("save_", "a smart view")},
        negate=True,
    ),
    "node_text": _kind(
        "text", ["mode", "value"], {"mode": _TEXT_MODE, "value": _string()}, negate=True
    ),
    "field": _union("A field reference.", _FIELD_VARIANTS),
    "field_regular": {
        **_kind(
            "regular_field",
            ["object_type", "field_name"],
            {
                "object_type": _OBJECT_TYPE,
                "field_name": _string(
                    "a field name such as status_id", r"^[A-Za-z_][A-Za-z0-9_.]*$"
                ),
            },
        ),
        "examples": [
            {"type": "regular_field", "object_type": kind, "field_name": name}
            for kind, name in NAMED_FIELDS
        ],
    },
    "field_custom": _kind(
        "custom_field", ["custom_field_id"], {"custom_field_id": _id("cf_", "a custom field")}
    ),
    "condition": _union("A condition on a field.", _CONDITION_VARIANTS),
    "condition_text": _kind("text", ["mode", "value"], {"mode": _TEXT_MODE, "value": _string()}),
    "condition_term": _kind("term", ["values"], {"values": _array(_TERM_VALUE)}),
    "condition_reference": _kind(
        "reference",
        ["reference_type", "object_ids"],
        {
            "reference_type": _string(
                "the referenced ID's type, such as lead, status.lead, or user or "
                "user_or_group for user fields",
                r"^[a-z][a-z_.]*$",
            ),
            "object_ids": _array(_string("an object id", r"^[A-Za-z]+_[A-Za-z0-9_]+$")),
        },
    ),
    "condition_number_range": {
        **_kind("number_range", [], {key: {"type": ["number", "null"]} for key in NUMBER_BOUNDS}),
        **_at_least_one(NUMBER_BOUNDS),
    },
    "condition_moment_range": {
        **_kind("moment_range", [], {key: _or_null(_ref("moment")) for key in MOMENT_BOUNDS}),
        **_at_least_one(MOMENT_BOUNDS),
    },
    "condition_exists": _kind("exists", [], {}),
    "moment": _union("A point in time.", _MOMENT_VARIANTS),
    "moment_now": _kind("now", [], {}),
    "moment_fixed_utc": _kind(
        "fixed_utc",
        ["value"],
        {"value": _string("a date-time such as 2025-01-31T10:00:00+00:00", _DATETIME_PATTERN)},
    ),
    "moment_fixed_local_date": _kind(
        "fixed_local_date",
        ["value"],
        {"value": _string("a date such as 2025-01-31", _DATE_PATTERN), "which": _WHICH},
    ),
    "moment_offset": _kind(
        "offset",
        ["direction", "moment", "offset"],
        {
            "direction": {"enum": ["past", "future"]},
            "moment": _ref("moment"),
            "offset": {
                "type": "object",
                "properties": {
                    unit: {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET[unit]}
                    for unit in OFFSET_UNITS
                },
                "additionalProperties": False,
                **_at_least_one(OFFSET_UNITS),
            },
            "which_day_end": _WHICH,
        },
    ),
}

SQUERY_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Close s_query",
    "description": (
        "A Close Advanced Filtering query tree (the body field `query` of /data/search/, "
        "called `s_query` in bulk actions). Nested at most "
        f"{MAX_DEPTH} levels deep, at most {MAX_NODES} nodes."
    ),
    "$ref": "#/$defs/node",
    "$defs": _DEFS,
}

SORT_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Close sort",
    "description": "Sort keys for a search or bulk action, first key first.",
    "type": "array",
    "maxItems": MAX_SORT_KEYS,
    "items": {
        "type": "object",
        "required": ["direction", "field"],
        "properties": {"direction": {"enum": ["asc", "desc"]}, "field": _ref("field")},
        "additionalProperties": False,
    },
    "$defs": _DEFS,
}
