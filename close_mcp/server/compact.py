"""Smaller tool schemas: the whole `tools/list` is read by the model on every turn.

Pydantic's schemas repeat a `title` for every property and spell an optional argument as
`anyOf: [T, null]` with `default: null`. Neither tells a model anything, so input schemas
lose both (a `null` argument is treated as absent before validation, so the shorter schema
accepts what the longer one did). Output schemas keep their nulls, since results carry
them, but lose titles and descriptions, which no model reads.
"""

from __future__ import annotations

from typing import Any

_NULL = {"type": "null"}
_MAPPINGS = ("properties", "$defs", "patternProperties")


def compact_input(schema: dict[str, Any]) -> dict[str, Any]:
    result = _walk(schema, drop=("title",), collapse_null=True)
    assert isinstance(result, dict)
    return result


def compact_output(schema: dict[str, Any]) -> dict[str, Any]:
    """The result's top level in full; nested models only as `object` (their shape is the
    same in every write tool and is documented in README)."""
    flat = {k: v for k, v in schema.items() if k != "$defs"}
    result = _walk(_shallow(flat), drop=("title", "description"), collapse_null=False)
    assert isinstance(result, dict)
    return result


def _shallow(node: Any) -> Any:
    if isinstance(node, list):
        return [_shallow(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"type": "object"}
    node = {
        k: v
        for k, v in node.items()
        if k != "default" and not (k == "additionalProperties" and v is True)
    }
    arms = node.get("anyOf")
    if isinstance(arms, list) and len(arms) == 2 and _NULL in arms:
        (other,) = [_shallow(arm) for arm in arms if arm != _NULL]
        if set(other) == {"type"} and isinstance(other["type"], str):
            rest = {k: _shallow(v) for k, v in node.items() if k != "anyOf"}
            return {"type": [other["type"], "null"], **rest}
    return {k: _shallow(v) for k, v in node.items()}


def _walk(node: Any, *, drop: tuple[str, ...], collapse_null: bool) -> Any:
    if isinstance(node, list):
        return [_walk(item, drop=drop, collapse_null=collapse_null) for item in node]
    if not isinstance(node, dict):
        return node
    if collapse_null and "default" in node and node["default"] is None and "anyOf" in node:
        arms = [arm for arm in node["anyOf"] if arm != _NULL]
        rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
        node = {**arms[0], **rest} if len(arms) == 1 else {"anyOf": arms, **rest}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in drop and isinstance(value, str):
            continue
        if key in _MAPPINGS and isinstance(value, dict):
            out[key] = {
                name: _walk(sub, drop=drop, collapse_null=collapse_null)
                for name, sub in value.items()
            }
        else:
            out[key] = _walk(value, drop=drop, collapse_null=collapse_null)
    return out


def without_nulls(value: Any) -> Any:
    """Arguments with every `null` object member removed: null means 'not given'."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value
