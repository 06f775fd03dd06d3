"""Smaller tool schemas: the whole `tools/list` is read by the model on every turn.

Pydantic's schemas repeat a `title` for every property and spell an optional argument as
`anyOf: [T, null]` with `default: null`. Neither tells a model anything, so input schemas
lose both (a `null` argument is treated as absent before validation, so the shorter schema
accepts what the longer one did): that is the full schema the server enforces. What
`tools/list` shows is leaner still (`listed_input`), and output schemas keep only the
fields every result has (`compact_output`).
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
    """An object with the fields every result has (README documents each result).

    What clients do with an output schema is check the structured result against it; that
    check is the same with the required fields alone, and no model reads output schemas,
    while `tools/list` (types, enums and all) is sent on every turn.
    """
    trimmed: dict[str, Any] = {"type": "object"}
    if schema.get("required"):
        trimmed["required"] = list(schema["required"])
    return trimmed


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


# -- what tools/list shows: lean, and accepted by the major clients' converters -----------

# Limits the server enforces (against the full schema, see `enforced`) but a model does not
# need spelled out on every turn.
_LIMITS = frozenset(
    {
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "maxProperties",
        "minProperties",
        "multipleOf",
        "uniqueItems",
    }
)


class SharedDefinitions:
    """What several tools share, described once across the whole tool list.

    Definitions (`$defs`, e.g. the lead filter): the first tool that uses one carries its
    field descriptions; later tools carry only the field names and types, and say where the
    descriptions are. Tool schemas cannot share definitions, and each copy of the filter cost
    about 400 tokens on every turn. Properties with the same name and description in several
    tools (`dry_run`, `s_query`...): described in the first tool only; the same for defaults
    (`send_done_email: true`).
    """

    def __init__(self) -> None:
        self.described: dict[str, tuple[str, str]] = {}  # definition -> (its JSON, where)
        self.properties: dict[tuple[str, str], str] = {}  # (name, description) -> first tool
        self.defaults: dict[tuple[str, str], str] = {}  # (where, default) -> first tool

    def default_given_before(self, where: str, value: Any, tool: str) -> bool:
        """True if an earlier tool already gives this argument the same default."""
        first = self.defaults.setdefault((where, repr(value)), tool)
        return first != tool

    def described_before(self, name: str, description: str, tool: str) -> bool:
        """True if an earlier tool already describes this property in the same words."""
        first = self.properties.setdefault((name, description), tool)
        return first != tool

    def first_use(self, name: str, definition: dict[str, Any], where: str) -> str | None:
        """None if this use is the first (it describes); else where the description is."""
        key = repr(sorted(definition.items()))
        if name not in self.described:
            self.described[name] = (key, where)
            return None
        seen_key, seen_where = self.described[name]
        return seen_where if seen_key == key else None


def listed_input(
    schema: dict[str, Any], *, tool: str, shared: SharedDefinitions | None = None
) -> dict[str, Any]:
    """The input schema as `tools/list` shows it, from the full one the server enforces.

    - `$ref`s inlined (no `$defs`): every client resolves plain schemas;
    - limits left out (the server enforces them and names them in its errors);
    - `oneOf` as `anyOf`, `const` as a one-value `enum`, no `discriminator` (Gemini's
      converter rejects them); no boolean `additionalProperties` (google-genai's MCP adapter
      crashes on it), `true` written as `{}`, which means the same;
    - a union arm that is a map (an object keyed by arbitrary names) left out when another
      arm says the same, since neither Gemini nor strict mode can express maps;
    - a union of objects told apart by a tag (`edit.type`) as one object: the tag's values
      as an enum, each field once, its description saying for which tags it is and whether
      it is required there;
    - every optional property nullable, so OpenAI's strict mode (which makes every property
      required) can leave it out with `null`; the server treats `null` as absent. Not in a
      tool with an open object (`s_query`, a map): strict mode cannot express that tool at
      all, clients then run it non-strict, and the nulls would only cost tokens.
    """
    shared = shared or SharedDefinitions()
    defs = schema.get("$defs", {})
    root = {k: v for k, v in schema.items() if k != "$defs"}
    result = _lean(root, defs, tool, shared, "", brief=False)
    assert isinstance(result, dict)
    return result if _has_open_object(result) else _with_nullable_options(result)


def _has_open_object(node: Any) -> bool:
    if isinstance(node, list):
        return any(_has_open_object(item) for item in node)
    if not isinstance(node, dict):
        return False
    if isinstance(node.get("additionalProperties"), dict):
        return True
    return any(_has_open_object(value) for value in node.values())


def _with_nullable_options(node: Any) -> Any:
    if isinstance(node, list):
        return [_with_nullable_options(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items()}
    for key in ("items", "anyOf"):
        if key in out:
            out[key] = _with_nullable_options(out[key])
    if isinstance(out.get("properties"), dict):
        required = set(out.get("required", []))
        out["properties"] = {
            name: (lambda sub: sub if name in required else _nullable(sub))(
                _with_nullable_options(sub)
            )
            for name, sub in out["properties"].items()
        }
    return out


def _lean(
    node: Any, defs: dict[str, Any], tool: str, shared: SharedDefinitions, where: str, brief: bool
) -> Any:
    if isinstance(node, list):
        return [_lean(item, defs, tool, shared, where, brief) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        definition = defs[name]
        described_in = shared.first_use(name, definition, f"{where} of {tool}")
        inlined = _lean(definition, defs, tool, shared, where, brief or described_in is not None)
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        merged = {**inlined, **_lean(siblings, defs, tool, shared, where, brief)}
        if described_in is not None:
            merged["description"] = f"Fields as in {described_in}."
        return merged
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _LIMITS or key == "discriminator":
            continue
        if brief and key in ("description", "required"):
            continue  # a later copy of a shared definition: names and types only
        if key == "additionalProperties" and isinstance(value, bool):
            if value:
                out[key] = {}
            continue
        if key == "default" and value is False:
            continue  # an absent boolean is false anyway
        if key == "default" and shared.default_given_before(where, value, tool):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("oneOf", "anyOf"):
            arms = [_lean(arm, defs, tool, shared, where, brief) for arm in value]
            kept = [arm for arm in arms if not _is_map(arm)] or arms
            kept = _merge_plain_types(kept)
            tagged = _flatten_tagged(kept)
            if tagged is not None:
                out.update(tagged)
            elif len(kept) == 1:
                out.update(kept[0])
            else:
                out["anyOf"] = kept
        elif key == "properties" and isinstance(value, dict):
            out[key] = {
                name: _described_once(
                    _lean(sub, defs, tool, shared, _path(where, name), brief), name, tool, shared
                )
                for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties"):
            out[key] = _lean(value, defs, tool, shared, where, brief)
        else:
            out[key] = value
    return out


def _merge_plain_types(arms: list[Any]) -> list[Any]:
    """Arms that differ only in type, as one arm with a list of types:
    `[{type: string}, {type: array, items: S}]` -> `{type: [string, array], items: S}`
    (`items` applies to arrays only, so this accepts exactly the same values)."""
    plain = [
        a
        for a in arms
        if isinstance(a, dict)
        and set(a) <= {"type", "items"}
        and isinstance(a.get("type"), str | list)
        and ("items" not in a or a["type"] == "array")
    ]
    with_items = [a for a in plain if "items" in a]
    if len(plain) < 2 or len(with_items) > 1:
        return arms
    kinds: list[str] = []
    for arm in plain:
        for kind in arm["type"] if isinstance(arm["type"], list) else [arm["type"]]:
            if kind not in kinds:
                kinds.append(kind)
    if "number" in kinds and "integer" in kinds:
        kinds.remove("integer")  # JSON Schema's numbers include the integers
    merged: dict[str, Any] = {"type": kinds if len(kinds) > 1 else kinds[0]}
    if with_items:
        merged["items"] = with_items[0]["items"]
    return [merged, *(a for a in arms if a not in plain)]


def _flatten_tagged(arms: list[Any]) -> dict[str, Any] | None:
    """A union of objects that one property tells apart, as one object (see listed_input)."""
    if len(arms) < 2 or not all(
        isinstance(a, dict) and a.get("type") == "object" and isinstance(a.get("properties"), dict)
        for a in arms
    ):
        return None
    shared = set.intersection(*(set(a["properties"]) for a in arms))
    tags = [n for n in shared if all(len(a["properties"][n].get("enum", ())) == 1 for a in arms)]
    if len(tags) != 1:
        return None
    tag = tags[0]
    values = [a["properties"][tag]["enum"][0] for a in arms]
    if not all(isinstance(v, str) for v in values) or len(set(values)) != len(values):
        return None
    fields: dict[str, dict[str, Any]] = {}
    users: dict[str, list[tuple[str, bool]]] = {}
    for arm, value in zip(arms, values, strict=True):
        for name, schema in arm["properties"].items():
            if name == tag:
                continue
            shape = {k: v for k, v in schema.items() if k != "description"}
            known = fields.setdefault(name, schema)
            if {k: v for k, v in known.items() if k != "description"} != shape:
                return None  # one name, two shapes: the union stays as it is
            users.setdefault(name, []).append((value, name in arm.get("required", [])))
    properties: dict[str, Any] = {tag: {"type": "string", "enum": values}}
    required = [tag]
    for name, schema in fields.items():
        used = users[name]
        if len(used) == len(arms) and all(needed for _, needed in used):
            required.append(name)
            properties[name] = schema
            continue
        which = "/".join(value for value, _ in used)
        needed = ", required" if all(n for _, n in used) else ""
        text = schema.get("description")
        properties[name] = {
            **schema,
            "description": f"{which}{needed}" + (f": {text}" if text else ""),
        }
    return {"type": "object", "properties": properties, "required": required}


def _described_once(schema: Any, name: str, tool: str, shared: SharedDefinitions) -> Any:
    """A property without its description if an earlier tool has the same one, same words."""
    if not isinstance(schema, dict):
        return schema
    text = schema.get("description")
    if isinstance(text, str) and shared.described_before(name, text, tool):
        return {k: v for k, v in schema.items() if k != "description"}
    return schema


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _is_map(schema: dict[str, Any]) -> bool:
    extra = schema.get("additionalProperties")
    return (
        schema.get("type") == "object" and isinstance(extra, dict) and not schema.get("properties")
    )


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` or null. A plain `type` gains "null"; anything else becomes `anyOf` with a
    null arm (an `enum` with null in it would break Gemini, whose enums are strings)."""
    kind = schema.get("type")
    if isinstance(kind, str) and "enum" not in schema and "anyOf" not in schema:
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return schema if "null" in kind else {**schema, "type": [*kind, "null"]}
    if "anyOf" in schema and "type" not in schema:
        return {**schema, "anyOf": [*schema["anyOf"], _NULL]}
    return {"anyOf": [schema, _NULL]}
