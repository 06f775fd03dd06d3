"""Raw s_query trees and sorts checked: the whole grammar accepted, mistakes rejected at their
exact path, limits JSON Schema cannot state enforced."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

from close_mcp.errors import SQueryError
from close_mcp.selection.grammar import MAX_DEPTH
from close_mcp.selection.raw_query import validate_s_query, validate_sort
from tests.queries import LEAD, custom, fc, lead_and, regular

NAME = regular("name")
CF = custom("cf_abc123")


def cond(condition: dict[str, Any], field: dict[str, Any] = CF, **extra: Any) -> dict[str, Any]:
    return fc(field, condition, **extra)


def moment(m: dict[str, Any]) -> dict[str, Any]:
    return cond({"type": "moment_range", "on_or_after": m})


VALID: dict[str, Any] = {
    "object_type alone": LEAD,
    "match_all": {"type": "match_all"},
    "and/or": lead_and({"type": "or", "queries": [{"type": "match_all"}, LEAD]}),
    "negate everywhere": lead_and(
        {"type": "or", "negate": False, "queries": [cond({"type": "exists"}, negate=True)]}
    ),
    "saved_search": lead_and({"type": "saved_search", "saved_search_id": "save_XYZ9"}),
    "field-less text": lead_and({"type": "text", "mode": "beginning_of_words", "value": "acm"}),
    "has_related": lead_and(
        {
            "type": "has_related",
            "this_object_type": "lead",
            "related_object_type": "contact",
            "related_query": {
                "type": "has_related",
                "this_object_type": "contact",
                "related_object_type": "contact_email",
                "related_query": cond(
                    {"type": "text", "mode": "exact_value", "value": "a@b.c"},
                    {
                        "type": "regular_field",
                        "object_type": "contact_email",
                        "field_name": "email",
                    },
                ),
            },
        }
    ),
    "text modes": {
        "type": "or",
        "queries": [
            cond({"type": "text", "mode": mode, "value": "x"}, NAME)
            for mode in ("full_words", "phrase", "beginning_of_words", "exact_value")
        ],
    },
    "term": cond({"type": "term", "values": ["Software", 3, True]}),
    "reference": cond(
        {"type": "reference", "reference_type": "status.lead", "object_ids": ["stat_1"]},
        {"type": "regular_field", "object_type": "lead", "field_name": "status_id"},
    ),
    "lead ids (a reference typed lead)": cond(
        {"type": "reference", "reference_type": "lead", "object_ids": ["lead_1", "lead_2"]},
        {"type": "regular_field", "object_type": "lead", "field_name": "id"},
    ),
    # Close documents both reference forms for user fields.
    "user field as user": cond(
        {"type": "reference", "reference_type": "user", "object_ids": ["user_1"]},
        {"type": "regular_field", "object_type": "lead", "field_name": "created_by"},
    ),
    "user field as user_or_group": cond(
        {"type": "reference", "reference_type": "user_or_group", "object_ids": ["user_1"]}
    ),
    # As Close's UI copies a filter: the unused bounds are null.
    "null bounds": lead_and(
        cond(
            {
                "type": "moment_range",
                "on_or_after": None,
                "before": {"type": "fixed_local_date", "value": "2025-01-01", "which": "start"},
                "after": None,
                "on_or_before": None,
            }
        ),
        cond({"type": "number_range", "gte": 5, "lte": None, "gt": None, "lt": None}),
    ),
    "number_range one bound": cond({"type": "number_range", "gt": 1.5}),
    "number_range all bounds": cond(
        {"type": "number_range", "gte": 1, "lte": 10, "gt": 0, "lt": 11}
    ),
    "exists": cond({"type": "exists"}),
    "moment now": moment({"type": "now"}),
    "moment fixed_utc": moment({"type": "fixed_utc", "value": "2025-12-08T21:12:12+00:00"}),
    "moment fixed_utc Z": moment({"type": "fixed_utc", "value": "2025-12-08T21:12:12.5Z"}),
    "moment fixed_local_date": moment(
        {"type": "fixed_local_date", "value": "2023-01-01", "which": "end"}
    ),
    "moment fixed_local_date without which": moment(
        {"type": "fixed_local_date", "value": "2023-01-01"}
    ),
    "moment offset": cond(
        {
            "type": "moment_range",
            "after": {
                "type": "offset",
                "direction": "past",
                "moment": {"type": "now"},
                "offset": {"days": 14, "hours": 0},
                "which_day_end": "start",
            },
            "on_or_before": {
                "type": "offset",
                "direction": "future",
                "moment": {"type": "fixed_local_date", "value": "2025-01-01", "which": "start"},
                "offset": {
                    "years": 1,
                    "months": 1,
                    "weeks": 1,
                    "days": 1,
                    "hours": 1,
                    "minutes": 1,
                    "seconds": 1,
                },
            },
            "before": {"type": "now"},
        }
    ),
}


@pytest.mark.parametrize("tree", VALID.values(), ids=VALID.keys())
def test_valid_trees_are_accepted(tree: dict[str, Any]) -> None:
    validate_s_query(tree)


def nest(depth: int) -> dict[str, Any]:
    tree: dict[str, Any] = LEAD
    for _ in range(depth - 1):
        tree = {"type": "and", "queries": [tree]}
    return tree


INVALID: list[tuple[str, object, str]] = [
    (
        "wrong text mode",
        lead_and(cond({"type": "text", "mode": "fuzzy", "value": "x"})),
        "s_query.queries[1].condition.mode: 'fuzzy' is not one of 'full_words', 'phrase', "
        "'beginning_of_words', 'exact_value'",
    ),
    (
        "missing field",
        lead_and({"type": "field_condition", "condition": {"type": "exists"}}),
        "s_query.queries[1]: missing required key 'field'",
    ),
    (
        "extra key",
        lead_and(cond({"type": "exists", "value": 1})),
        "s_query.queries[1].condition: unexpected key 'value' (allowed: 'type')",
    ),
    (
        "extra key on a node",
        {"type": "match_all", "query": {}},
        "s_query: unexpected key 'query' (allowed: 'type', 'negate')",
    ),
    (
        "unknown node type",
        lead_and({"type": "near", "value": "x"}),
        "s_query.queries[1].type: 'near' is not one of 'and', 'or', 'object_type', "
        "'field_condition', 'has_related', 'match_all', 'saved_search', 'text' (node types; "
        "lookup kind s_query shows their keys)",
    ),
    (
        "bad moment type",
        moment({"type": "yesterday"}),
        "s_query.condition.on_or_after.type: 'yesterday' is not one of 'now', 'fixed_utc', "
        "'fixed_local_date', 'offset' (moment types; lookup kind s_query shows their keys)",
    ),
    (
        "bad fixed_utc value",
        moment({"type": "fixed_utc", "value": "2025-12-08 21:12"}),
        "s_query.condition.on_or_after.value: '2025-12-08 21:12' is not a date-time such as "
        "2025-01-31T10:00:00+00:00",
    ),
    (
        "bad which",
        moment({"type": "fixed_local_date", "value": "2025-01-01", "which": "middle"}),
        "s_query.condition.on_or_after.which: 'middle' is not one of 'start', 'end'",
    ),
    (
        "negative offset",
        moment(
            {
                "type": "offset",
                "direction": "past",
                "moment": {"type": "now"},
                "offset": {"days": -1},
            }
        ),
        "s_query.condition.on_or_after.offset.days: must be >= 0, not -1",
    ),
    (
        "fractional offset",
        moment(
            {
                "type": "offset",
                "direction": "past",
                "moment": {"type": "now"},
                "offset": {"days": 1.5},
            }
        ),
        "s_query.condition.on_or_after.offset.days: must be an integer, not a number",
    ),
    (
        "empty offset",
        moment({"type": "offset", "direction": "past", "moment": {"type": "now"}, "offset": {}}),
        "s_query.condition.on_or_after.offset: needs at least one of 'years', 'months', "
        "'weeks', 'days', 'hours', 'minutes', 'seconds'",
    ),
    (
        "empty moment_range",
        cond({"type": "moment_range"}),
        "s_query.condition: needs at least one of 'on_or_after', 'before', 'after', 'on_or_before'",
    ),
    (
        "empty number_range",
        cond({"type": "number_range"}),
        "s_query.condition: needs at least one of 'gte', 'lte', 'gt', 'lt'",
    ),
    (
        "number as string",
        cond({"type": "number_range", "gte": "5"}),
        "s_query.condition.gte: must be a number or null, not a string",
    ),
    (
        "a bad bound beside a null one",
        cond({"type": "moment_range", "on_or_after": None, "before": {"type": "yesterday"}}),
        "s_query.condition.before.type: 'yesterday' is not one of 'now', 'fixed_utc', "
        "'fixed_local_date', 'offset' (moment types; lookup kind s_query shows their keys)",
    ),
    (
        "a bound that is neither a moment nor null",
        cond({"type": "moment_range", "before": "2025-01-01"}),
        "s_query.condition.before: must be an object, not a string",
    ),
    (
        "bad custom field id",
        cond({"type": "exists"}, {"type": "custom_field", "custom_field_id": "Industry"}),
        "s_query.field.custom_field_id: 'Industry' is not a custom field id (cf_...)",
    ),
    (
        "bad saved search id",
        {"type": "saved_search", "saved_search_id": "Hot leads"},
        "s_query.saved_search_id: 'Hot leads' is not a smart view id (save_...)",
    ),
    (
        "term value object",
        cond({"type": "term", "values": [{"a": 1}]}),
        "s_query.condition.values[0]: must be a string, a number or a boolean, not an object",
    ),
    (
        "empty queries",
        {"type": "or", "queries": []},
        "s_query.queries: needs at least 1 item",
    ),
    (
        "negate not a bool",
        {"type": "match_all", "negate": "yes"},
        "s_query.negate: must be a boolean, not a string",
    ),
    ("not a dict", "lead", "s_query: must be an object, not a string"),
    ("a list", [LEAD], "s_query: must be an object, not an array"),
    ("no type", {"queries": [LEAD]}, "s_query: missing required key 'type'"),
    (
        "too deep",
        nest(MAX_DEPTH + 1),
        "s_query" + ".queries[0]" * MAX_DEPTH + ": the query is nested more than 12 levels deep",
    ),
    (
        "too many nodes",
        {"type": "or", "queries": [LEAD] * 500},
        "s_query: the query has more than 500 nodes",
    ),
    (
        "string too long",
        lead_and({"type": "text", "mode": "phrase", "value": "x" * 1001}),
        "s_query.queries[1].value: longer than 1000 characters",
    ),
    (
        "too many values",
        cond({"type": "term", "values": ["x"] * 1001}),
        "s_query.condition.values: has more than 1000 items",
    ),
]


@pytest.mark.parametrize(
    ("tree", "message"), [(t, m) for _, t, m in INVALID], ids=[n for n, _, _ in INVALID]
)
def test_invalid_trees_are_rejected_at_their_path(tree: object, message: str) -> None:
    with pytest.raises(SQueryError) as info:
        validate_s_query(tree)
    assert str(info.value) == message
    path, _, rest = message.partition(": ")
    assert (info.value.path, info.value.message) == (path, rest)


def test_depth_limit_is_inclusive() -> None:
    validate_s_query(nest(MAX_DEPTH))


def test_deep_moment_chains_fail_before_jsonschema_recurses() -> None:
    m: dict[str, Any] = {"type": "now"}
    for _ in range(5000):
        m = {"type": "offset", "direction": "past", "moment": m, "offset": {"days": 1}}
    with pytest.raises(SQueryError) as info:
        validate_s_query(moment(m))
    assert str(info.value) == "s_query: nested more than 96 levels deep"


def test_root_name_is_configurable() -> None:
    with pytest.raises(SQueryError) as info:
        validate_s_query({"type": "or"}, root="smart_view.query")
    assert str(info.value) == "smart_view.query: missing required key 'queries'"


def test_sort() -> None:
    validate_sort([{"direction": "asc", "field": NAME}, {"direction": "desc", "field": CF}])
    validate_sort([])
    with pytest.raises(SQueryError) as info:
        validate_sort([{"direction": "down", "field": NAME}])
    assert str(info.value) == "sort[0].direction: 'down' is not one of 'asc', 'desc'"
    with pytest.raises(SQueryError) as info:
        validate_sort([{"direction": "asc", "field": "name"}])
    assert str(info.value) == "sort[0].field: must be an object, not a string"
    with pytest.raises(SQueryError) as info:
        validate_sort({"direction": "asc"})
    assert str(info.value) == "sort: must be an array, not an object"


def test_an_accepted_tree_is_remembered_and_a_refused_one_is_not() -> None:
    tree = {"type": "and", "queries": [LEAD, {"type": "match_all", "negate": True}]}
    validate_s_query(tree)
    validate_s_query(dict(reversed(list(tree.items()))))  # same tree, keys in another order
    bad = {"type": "and", "queries": [LEAD, {"type": "match_all", "negate": "yes"}]}
    for _ in range(2):
        with pytest.raises(SQueryError) as info:
            validate_s_query(bad)
        assert info.value.path == "s_query.queries[1].negate"


def _heavy_tree(n: int) -> dict[str, Any]:
    """An accepted tree of about 4 KB, different for every n."""
    ids = [f"lead_{n:06d}{i:04d}{'x' * 20}" for i in range(100)]
    return {
        "type": "and",
        "queries": [
            LEAD,
            {
                "type": "field_condition",
                "field": {"type": "regular_field", "object_type": "lead", "field_name": "id"},
                "condition": {"type": "term", "values": ids},
            },
        ],
    }


def test_the_memo_of_accepted_trees_holds_no_tree() -> None:
    """300 distinct 4 KB trees (1.2 MB of JSON) leave the memo holding a few KiB."""
    validate_s_query(_heavy_tree(0))  # the validator and its schema compiled before measuring
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(1, 301):
            validate_s_query(_heavy_tree(n))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 128 * 1024, f"the memo holds {held / 1024:.0f} KiB after 300 trees"
