"""Argument errors as one line a model can act on: where, what was given, what is allowed.

Two validators see a call: jsonschema (the enforced input schema, first) and pydantic (the
tool's argument model: value checks such as dates, or a filter with no field). Neither
speaks to a model well on its own: jsonschema answers a union it could not match with "is
not valid under any of the given schemas", and pydantic with "1 validation error for
search_leadsArguments" and a link to its documentation. Both are rewritten here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match
from pydantic import ValidationError as ModelError

_SHOWN = 80  # longest value quoted back as given
_UNION_TAG = re.compile(r"[\[\]()]")  # pydantic names union members like `list[str]` in paths
_PREFIXES = ("Value error, ", "Assertion failed, ")


def shown(value: Any) -> str:
    """A value as the message quotes it, cut short when long (a megabyte helps no one)."""
    text = repr(value)
    if len(text) <= _SHOWN:
        return text
    size = len(value) if isinstance(value, str | list | dict) else len(text)
    return f"{text[:40]}... (length {size})"


def path_of(parts: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in parts) or "arguments"


def schema_problem(error: SchemaError) -> tuple[str, str]:
    """(where, what is wrong) for the error jsonschema found most relevant."""
    union = _union_problem(error)
    if union is not None:
        return union
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        return _unknown_field(error)
    message = str(error.message)
    full = repr(error.instance)
    if len(full) > _SHOWN:
        message = message.replace(full, shown(error.instance))
    return path_of(list(error.absolute_path)), message


def _union_problem(error: SchemaError) -> tuple[str, str] | None:
    """A value no arm of a oneOf/anyOf took: the arm it meant, or what the arms allow.

    The arm it meant is the only one whose constants (such as `type: set_lead_status`) it
    matches; its own first error is the answer. If it matches no arm's constant, the
    constants are what is allowed; if every arm failed on the JSON type, the types are.
    """
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return None
    arms: dict[Any, list[SchemaError]] = {}
    for sub in error.context:
        arms.setdefault(sub.relative_schema_path[0], []).append(sub)
    constants = [e for errors in arms.values() for e in errors if e.validator == "const"]
    meant = [errors for errors in arms.values() if not any(e.validator == "const" for e in errors)]
    where = path_of(list(error.absolute_path))
    if constants and len(meant) == 1:
        inner = best_match(meant[0])
        return schema_problem(inner) if inner is not None else None
    if constants and not meant and len({path_of(list(e.absolute_path)) for e in constants}) == 1:
        allowed = ", ".join(repr(e.validator_value) for e in constants)
        return (
            path_of(list(constants[0].absolute_path)),
            f"{shown(constants[0].instance)} is not one of {allowed}",
        )
    # The one arm whose JSON type the value has (a list where a map or a list is taken): its
    # own first error says more than "not valid under any of the given schemas".
    typed = [
        errors
        for errors in arms.values()
        if not any(e.validator == "type" and not e.relative_path for e in errors)
    ]
    if len(typed) == 1 and len(arms) > 1:
        inner = best_match(typed[0])
        if inner is not None:
            return schema_problem(inner)
    if all(e.validator == "type" and not e.relative_path for e in error.context):
        kinds = [_type_name(e.validator_value, e.schema) for e in error.context]
        return where, f"{shown(error.instance)} is not {_one_of_words(kinds)}"
    return None


def _unknown_field(error: SchemaError) -> tuple[str, str]:
    """A field an object does not take, by its path, with the close match and the allowed
    names (jsonschema says only "Additional properties are not allowed")."""
    schema, instance = error.schema, error.instance
    allowed = list(schema.get("properties", {})) if isinstance(schema, dict) else []
    extra = [name for name in instance if name not in allowed] if isinstance(instance, dict) else []
    first = str(extra[0]) if extra else "?"
    where = path_of([*error.absolute_path, first])
    folded = {_fold(name): name for name in allowed}
    guess = folded.get(_fold(first)) or next(
        iter(difflib.get_close_matches(first, allowed, 1)), None
    )
    hint = f"; did you mean {guess!r}?" if guess else ""
    more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
    return where, f"unknown field{more}{hint or '.'} Allowed: {', '.join(allowed)}"


def _fold(name: str) -> str:
    """leadStatus, lead-status and LEAD_STATUS fold to the same key."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _type_name(kind: Any, schema: Any) -> str:
    if kind == "array" and isinstance(schema, dict):
        items = schema.get("items")
        if isinstance(items, dict) and isinstance(items.get("type"), str):
            return f"a list of {items['type']}s"
    article = "an" if str(kind)[:1] in "aeiou" else "a"
    return f"{article} {kind}"


def _one_of_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def model_problem(exc: ModelError) -> str:
    """pydantic's first error as `where: message (given: value)`, without its noise."""
    errors = exc.errors(include_url=False)
    if not errors:
        return "invalid arguments"
    first = errors[0]
    where = path_of([p for p in first["loc"] if not (isinstance(p, str) and _UNION_TAG.search(p))])
    message = str(first["msg"])
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    given = first.get("input")
    if repr(given) not in message:
        message = f"{message} (given: {shown(given)})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"
