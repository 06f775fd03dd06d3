"""The JSON Schema of Close's `/data/search/` query tree, and validation with precise errors.

A raw `s_query` comes from a language model and goes into a bulk action that Close starts
at once, so it is checked before anything is sent: against `SQUERY_SCHEMA` (the grammar of
`close-api.md`, written out as `tool_schemas/s_query.schema.json`) and against size limits
that JSON Schema cannot express (nesting depth, node count). Each node kind is picked by its
`type` with `if`/`then`, not `oneOf`, so an error points at the one wrong key instead of
listing every alternative. Errors read `s_query.queries[1].condition.mode: ...`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final, cast

from jsonschema import Draft202012Validator
from jsonschema import ValidationError as SchemaError
from jsonschema.exceptions import best_match

from close_mcp.errors import SQueryError

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
MAX_NUMBER: Final = sys.float_info.max
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
_UNION_ROLES: Final = {
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


@functools.cache
def _validator(which: str) -> Draft202012Validator:
    schema = SQUERY_SCHEMA if which == "s_query" else SORT_SCHEMA
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_s_query(tree: object, *, root: str = "s_query") -> None:
    """Raise `SQueryError` unless `tree` is a query tree Close's grammar allows, within limits."""
    _check_size(tree, root)
    # An assistant sends the same tree to search, preview and confirm: check it once. The
    # memo holds a digest of each accepted tree, never the tree: 256 of them are a few KiB
    # whatever the trees weigh (trees of 0.9 MB each once held 257 MiB).
    try:
        key = hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).digest()
    except (TypeError, ValueError):  # not JSON at all: the schema says why
        key = b""
    if key and key in _VALID:
        _VALID.move_to_end(key)
        return
    _raise_first(_validator("s_query").iter_errors(tree), root)
    _check_moments(tree, root)
    if not key:
        return
    _VALID[key] = None
    if len(_VALID) > _VALID_KEEP:
        _VALID.popitem(last=False)


_VALID: OrderedDict[bytes, None] = OrderedDict()  # SHA-256 of trees already accepted
_VALID_KEEP: Final = 256


def validate_sort(sort: object, *, root: str = "sort") -> None:
    """Raise `SQueryError` unless `sort` is a list of `{direction, field}` sort keys."""
    _check_size(sort, root, count_nodes=False)
    _raise_first(_validator("sort").iter_errors(sort), root)


def format_path(root: str, parts: Iterable[str | int]) -> str:
    """`s_query`, `queries`, 1, `mode` -> `s_query.queries[1].mode`."""
    out = root
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


# -- limits JSON Schema cannot state ------------------------------------------------------


def _check_size(tree: object, root: str, *, count_nodes: bool = True) -> None:
    """Depth, node count, string and array sizes, walked without recursion in document order.

    `role` on the stack: n > 0 for a query node at depth n, -n for the `queries` list of a
    node at depth n, 0 for anything else.
    """
    nodes = 0
    stack: list[tuple[object, tuple[str | int, ...], int, int]] = [
        (tree, (), 1, 1 if count_nodes else 0)
    ]
    while stack:
        value, path, depth, role = stack.pop()
        where = format_path(root, path)
        if depth > MAX_JSON_DEPTH:
            raise SQueryError(root, f"nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise SQueryError(where, f"longer than {MAX_STRING} characters")
        if isinstance(value, int | float) and not isinstance(value, bool):
            _check_number(value, where)
        children: list[tuple[str | int, object, int]]
        if isinstance(value, list):
            if len(value) > MAX_ITEMS:
                raise SQueryError(where, f"has more than {MAX_ITEMS} items")
            item_role = -role + 1 if role < 0 else 0
            children = [(i, item, item_role) for i, item in enumerate(value)]
        elif isinstance(value, dict):
            if role > 0:
                nodes += 1
                if role > MAX_DEPTH:
                    raise SQueryError(
                        where, f"the query is nested more than {MAX_DEPTH} levels deep"
                    )
                if nodes > MAX_NODES:
                    raise SQueryError(root, f"the query has more than {MAX_NODES} nodes")
            children = [(str(k), v, _child_role(role, str(k))) for k, v in value.items()]
        else:
            continue
        for key, child, child_role in reversed(children):
            stack.append((child, (*path, key), depth + 1, child_role))


def _check_number(value: int | float, where: str) -> None:
    """Finite and within a double's range: a JSON number Close (and JSON itself) can hold."""
    if isinstance(value, float) and math.isnan(value):
        raise SQueryError(where, "NaN is not a number")
    try:
        finite = math.isfinite(float(value))
    except OverflowError:  # an int beyond any double (float() never prints it)
        finite = False
    if not finite:
        digits = int(value.bit_length() * math.log10(2)) + 1 if isinstance(value, int) else 0
        sign = "a negative" if value < 0 else "a"
        shown = f"{sign} number of about {digits} digits" if digits else repr(value)
        raise SQueryError(
            where, f"{shown} is out of range; numbers are finite, at most {MAX_NUMBER:.3g}"
        )


def _check_moments(tree: object, root: str) -> None:
    """Dates the pattern lets through but the calendar does not: 2025-02-30, or an instant
    outside the years 1-9999 once in UTC (9999-12-31T23:59:59-14:00). Run after the schema,
    so every `fixed_utc` and `fixed_local_date` object is a moment with a string value."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(tree, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
            continue
        if not isinstance(value, dict):
            continue
        kind, text = value.get("type"), value.get("value")
        if kind in ("fixed_utc", "fixed_local_date") and isinstance(text, str):
            _check_moment(kind, text, value.get("which"), format_path(root, (*path, "value")))
        stack.extend((child, (*path, str(key))) for key, child in value.items())


def _check_moment(kind: str, text: str, which: object, where: str) -> None:
    try:
        if kind == "fixed_utc":
            datetime.fromisoformat(text).astimezone(UTC)
        elif date.fromisoformat(text) == date.max and which == "end":
            raise OverflowError
    except ValueError:
        raise SQueryError(where, f"{text!r} is not a real date") from None
    except OverflowError:
        raise SQueryError(
            where, f"{text!r} is out of range: in UTC it falls outside the years 1 to 9999"
        ) from None


def _child_role(role: int, key: str) -> int:
    if role <= 0:
        return 0
    if key == "queries":
        return -role
    if key == "related_query":
        return role + 1
    return 0


# -- turning jsonschema errors into one precise message ------------------------------------

_JSON_TYPES: Final = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _quoted(values: Iterable[object]) -> str:
    return ", ".join(repr(v) for v in values)


def _deepest(errors: Iterable[SchemaError]) -> SchemaError | None:
    """The most specific error, descending into `anyOf`/`oneOf` alternatives."""
    error: SchemaError | None = best_match(errors)
    while error is not None and error.context and not _is_at_least_one(error):
        error = best_match(error.context)
    return error


def _is_at_least_one(error: SchemaError) -> bool:
    return error.validator in ("anyOf", "oneOf") and all(
        sub.validator == "required" for sub in error.context or ()
    )


def _raise_first(errors: Iterator[SchemaError], root: str) -> None:
    error = _deepest(errors)
    if error is not None:
        raise SQueryError(format_path(root, error.absolute_path), _message(error))


def _message(error: SchemaError) -> str:
    value = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    validator = error.validator
    expected: Any = error.validator_value
    if validator == "enum":
        role = _UNION_ROLES.get(tuple(expected))
        hint = f" ({role} types; lookup kind s_query shows their keys)" if role else ""
        return f"{value!r} is not one of {_quoted(expected)}{hint}"
    if validator == "const":
        return f"must be {expected!r}, not {value!r}"
    if validator == "required":
        missing = [key for key in expected if isinstance(value, dict) and key not in value]
        return f"missing required key {missing[0]!r}" if missing else error.message
    if validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extra = [key for key in value if key not in allowed] if isinstance(value, dict) else []
        return f"unexpected key {extra[0]!r} (allowed: {_quoted(allowed)})"
    if validator == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        words = [_JSON_TYPES.get(name, name) for name in names]
        wanted = (
            " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]
        )
        return f"must be {wanted}, not {_json_type(value)}"
    if validator == "pattern":
        what = schema.get("description") or f"a string matching {expected!r}"
        return f"{value!r} is not {what}"
    if validator in ("anyOf", "oneOf") and _is_at_least_one(error):
        keys = [cast(list[str], sub.validator_value)[0] for sub in error.context or ()]
        return f"needs at least one of {_quoted(keys)}"
    if validator == "minimum":
        return f"must be >= {expected}, not {value!r}"
    if validator == "minItems":
        return f"needs at least {expected} item{'s' if expected != 1 else ''}"
    if validator == "maxItems":
        return f"has more than {expected} items"
    if validator == "maxLength":
        return f"longer than {expected} characters"
    return error.message
