"""What a search or a bulk job selects from the compiled query: the leads, sorted (`sort`)
and capped (`results_limit`), and a search hit's projection (`_fields`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from close_mcp.sandbox.errors import QueryError
from close_mcp.sandbox.evaluator import Compiler
from close_mcp.sandbox.query_fields import LEAD_FIELDS, FieldSpec
from close_mcp.sandbox.store import JSON, Lead, Store

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_sort(store: Store, sort: Any, path: str) -> list[tuple[FieldSpec, bool]]:
    """Validate `sort`; answer (field, descending) pairs."""
    if sort is None:
        return []
    if not isinstance(sort, list):
        raise QueryError({path: "Must be a list."})
    keys = []
    compiler = Compiler(store, _EPOCH)  # sort fields never read the clock
    for i, item in enumerate(sort):
        if not isinstance(item, dict):
            raise QueryError({f"{path}.{i}": "Expected an object."})
        direction = item.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise QueryError({f"{path}.{i}.direction": "Must be 'asc' or 'desc'."})
        keys.append(
            (compiler.field(item.get("field"), f"{path}.{i}.field", "lead"), direction == "desc")
        )
    return keys


def _sort_value(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def sort_leads(leads: list[Lead], keys: list[tuple[FieldSpec, bool]]) -> list[Lead]:
    """Stable multi-key sort; leads without a value come last in either direction.

    Without keys, newest first (by `date_created`), a guess at Close's default order.
    """
    if not keys:
        keys = [(LEAD_FIELDS["date_created"], True)]
    ordered = sorted(leads, key=lambda lead: lead.id)
    for spec, desc in reversed(keys):
        # Each lead's value read once (a 100,000-lead walk sorts them all on every walk).
        present: list[tuple[Any, Lead]] = []
        missing: list[Lead] = []
        for lead in ordered:
            values = spec.get(lead)
            if values:
                present.append((_sort_value(values[0]), lead))
            else:
                missing.append(lead)
        present.sort(key=lambda pair: pair[0], reverse=desc)
        ordered = [lead for _, lead in present] + missing
    return ordered


def check_results_limit(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise QueryError({path: "Must be a non-negative integer or null."})
    return value


def select(
    store: Store,
    tree: Any,
    results_limit: int | None,
    sort: Any,
    now: datetime,
    prefix: str = "query",
    sort_path: str = "sort",
    tz: timedelta = timedelta(0),
) -> list[Lead]:
    """The leads a query selects, sorted and capped, as a bulk job or a search sees them."""
    pred = Compiler(store, now, tz).node(tree, prefix, "lead")
    keys = check_sort(store, sort, sort_path)
    ids = candidate_ids(tree)
    if ids is None:
        candidates: Iterable[Lead] = store.leads.values()
    else:  # the leads named by id, looked up instead of testing every lead
        candidates = (store.leads[i] for i in ids if i in store.leads)
    matched = sort_leads([lead for lead in candidates if pred(lead)], keys)
    return matched if results_limit is None else matched[:results_limit]


def candidate_ids(tree: Any) -> set[str] | None:
    """Lead ids that include every match of an already compiled `tree`, or None (any lead).

    A tree that is (or is an `and` with) a plain condition on the lead's `id` can only match
    the leads it names; `select` then tests just those, so selecting 1000 leads by id costs
    1000 tests, not one per lead of the organization. Sorting makes the order irrelevant.
    """
    if not isinstance(tree, dict) or tree.get("negate"):
        return None
    if tree.get("type") == "and":
        found = [candidate_ids(q) for q in tree.get("queries") or []]
        sets = [s for s in found if s is not None]
        return set.intersection(*sets) if sets else None
    field, condition = tree.get("field"), tree.get("condition")
    if (
        tree.get("type") != "field_condition"
        or not isinstance(field, dict)
        or not isinstance(condition, dict)
        or field.get("type") != "regular_field"
        or field.get("object_type", "lead") != "lead"
        or field.get("field_name") != "id"
    ):
        return None
    values = condition.get("values" if condition.get("type") == "term" else "object_ids")
    if condition.get("type") not in ("term", "reference") or not isinstance(values, list):
        return None
    return {v for v in values if isinstance(v, str)}


def project(lead: Lead, fields: list[str] | None, store: Store) -> JSON:
    """A search hit: `__object_type` and id, or exactly the `_fields` asked (unknown: left out)."""
    if fields is None:
        return {"__object_type": "lead", "id": lead.id}
    full = lead.to_json(store, with_contacts="contacts" in fields)
    answer: JSON = {"__object_type": "lead"}
    for name in fields:
        if name in full:
            answer[name] = full[name]
        elif name.startswith("custom.") and name[7:] in store.custom_fields:
            answer[name] = None
    return answer
