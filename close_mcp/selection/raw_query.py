"""A raw `s_query` (or sort) checked against the grammar and limits, with precise errors.

A raw `s_query` comes from a language model and goes into a bulk action that Close starts
at once, so it is checked before anything is sent: against `grammar.SQUERY_SCHEMA` and
against size limits that JSON Schema cannot express (nesting depth, node count). Errors
read `s_query.queries[1].condition.mode: ...`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any, Final, cast

from jsonschema import Draft202012Validator
from jsonschema import ValidationError as SchemaError
from jsonschema.exceptions import best_match

from close_mcp.errors import SQueryError
from close_mcp.selection.grammar import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_JSON_DEPTH,
    MAX_JSON_NUMBER,
    MAX_NODES,
    MAX_STRING,
    SORT_SCHEMA,
    SQUERY_SCHEMA,
    UNION_ROLES,
)


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
        described = f"{sign} number of about {digits} digits" if digits else repr(value)
        raise SQueryError(
            where,
            f"{described} is out of range; numbers are finite, at most {MAX_JSON_NUMBER:.3g}",
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


# Python's types as JSON's, bool before int (a bool is an int in Python).
_AS_JSON: Final = (
    (type(None), "null"),
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _json_type(value: object) -> str:
    return next((name for kind, name in _AS_JSON if isinstance(value, kind)), type(value).__name__)


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
        role = UNION_ROLES.get(tuple(expected))
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
