"""The `s_query` grammar in a few lines per form, read from the schema itself
(`grammar.SQUERY_SCHEMA`, the one written to `tool_schemas/s_query.schema.json`), for
`lookup(kind="s_query")`.

A model that never reads the schema resource still meets the grammar where it looks names up:
each form (a node, field, condition or moment `type`) with its keys and what each takes, and
the object types and fields close-mcp names in queries (the schema's `examples`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from close_mcp.selection.grammar import SQUERY_SCHEMA

# The unions of the grammar, by the name of their `$defs` entry: what a form of each is.
ROLES: Final = ("node", "field", "condition", "moment")


@dataclass(frozen=True)
class Form:
    type: str  # the value of `type` that picks the form
    role: str  # node, field, condition or moment
    keys: dict[str, str]  # key -> what it takes; "?" after an optional key


def _role_of(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in ROLES:
        return ref.rsplit("/", 1)[-1]
    if "else" in schema:  # a bound that may be null
        inner = _takes(schema["else"])
        return f"{inner} or null"
    return None


def _takes(schema: dict[str, Any]) -> str:
    """What a key takes, in a word or a short pattern."""
    role = _role_of(schema)
    if role is not None:
        return role
    if "enum" in schema:
        return "|".join(str(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"[{_takes(schema.get('items', {}))}]"
    if kind == "object" and "properties" in schema:
        return (
            "{"
            + "|".join(schema["properties"])
            + ": "
            + _takes(next(iter(schema["properties"].values())))
            + "}"
        )
    if isinstance(schema.get("description"), str):
        return str(schema["description"])
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    return str(kind or "any")


def forms() -> list[Form]:
    """Every form of every union, in the schema's order; `negate` (allowed on every node)
    is left out of the keys."""
    defs: dict[str, Any] = SQUERY_SCHEMA["$defs"]
    found: list[Form] = []
    for role in ROLES:
        for branch in defs[role]["allOf"]:
            name = branch["if"]["properties"]["type"]["const"]
            variant = defs[branch["then"]["$ref"].rsplit("/", 1)[-1]]
            required = set(variant.get("required", ()))
            keys = {
                (key if key in required else f"{key}?"): _takes(schema)
                for key, schema in variant["properties"].items()
                if key not in ("type", "negate")
            }
            found.append(Form(type=name, role=role, keys=keys))
    return found


def named_fields() -> dict[str, list[str]]:
    """Object types and their fields close-mcp names in queries (the regular field's
    `examples` in the schema)."""
    examples = SQUERY_SCHEMA["$defs"]["field_regular"].get("examples", [])
    fields: dict[str, list[str]] = {}
    for example in examples:
        fields.setdefault(example["object_type"], []).append(example["field_name"])
    return fields
