"""Issue 16: what is confirmed is exactly what runs.

"Every lead" is decided by counting (the selection's count against the organization's), not
only by the query's wording; `saved_search` nodes are inlined from the view's stored tree, so
the body and its token carry what Close will run; hostile numbers and dates are tool errors
naming the field, never a crash. Everything goes through the MCP tools against the sandbox.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from close_mcp.sandbox import RecordedRequest
from close_mcp.sandbox.seed import STATUS_LABELS
from close_mcp.sandbox.store import SavedSearch
from tests.harness import Harness
from tests.ids import field_id, status_id
from tests.queries import LEAD, created_from, fc, name_has, regular, status_condition

pytestmark = pytest.mark.anyio

JSON = dict[str, Any]
SEARCH = "/api/v1/data/search/"
COUNT_ALL: JSON = {"query": LEAD, "include_counts": True, "results_limit": 0, "_limit": 0}
EDIT: JSON = {"type": "set_lead_status", "lead_status": "Qualified"}
REFUSAL = (
    "the selection matches every lead in the organization; pass `allow_all_leads: true` "
    "if that is really meant"
)


def status_is(h: Harness, label: str) -> JSON:
    return status_condition(status_id(h, label))


def add_view(h: Harness, name: str, tree: JSON, results_limit: int | None = None) -> str:
    store = h.sandbox.store
    view = SavedSearch(
        store.new_id("save"),
        name,
        {"query": tree, "results_limit": results_limit, "sort": []},
        store.me.id,
    )
    store.saved_searches[view.id] = view
    return view.id


def reads(h: Harness) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in h.sandbox.requests]


def searches(h: Harness) -> list[RecordedRequest]:
    return [r for r in h.sandbox.requests if r.path == SEARCH]


# -- 1. "every lead" decided by counting ----------------------------------------------------


def every_lead_selections(h: Harness) -> dict[str, JSON]:
    """Eight selections that match every lead but whose wording the old rules took as narrow."""
    x = {"type": "and", "queries": [status_is(h, "Qualified"), name_has("Acme")]}
    x_reordered = {"type": "and", "queries": [name_has("Acme"), status_is(h, "Qualified")]}
    all_view = add_view(h, "All leads", {"type": "and", "queries": [LEAD]})
    return {
        "created after 1900": {"filter": {"created_after": "1900-01-01"}},
        "every status": {"filter": {"lead_status": list(STATUS_LABELS)}},
        "exists on id": {"s_query": fc(regular("id"), {"type": "exists"})},
        "not an impossible id": {
            "s_query": fc(
                regular("id"),
                {"type": "reference", "reference_type": "lead", "object_ids": ["lead_nope"]},
                negate=True,
            )
        },
        "X or not X, reordered": {
            "s_query": {"type": "or", "queries": [x, {**x_reordered, "negate": True}]}
        },
        "X or not(and[X])": {
            "s_query": {
                "type": "or",
                "queries": [x, {"type": "and", "queries": [x], "negate": True}],
            }
        },
        "a saved_search whose view is every lead": {
            "s_query": {"type": "saved_search", "saved_search_id": all_view}
        },
        "created in the last 500 years": {
            "s_query": fc(
                regular("date_created"),
                {
                    "type": "moment_range",
                    "on_or_after": {
                        "type": "offset",
                        "direction": "past",
                        "moment": {"type": "now"},
                        "offset": {"years": 500},
                    },
                },
            )
        },
    }


@pytest.mark.parametrize("tool", ["create_bulk_delete", "create_bulk_edit"])
async def test_every_lead_selections_are_refused(h: Harness, tool: str) -> None:
    selections = every_lead_selections(h)
    assert len(selections) == 8
    extra = {"edit": EDIT} if tool == "create_bulk_edit" else {}
    for name, selection in selections.items():
        h.clear()
        error = await h.error(tool, {**selection, **extra})
        source = next(iter(selection))
        assert error == f"{source}: {REFUSAL}", name
        # Only reads reached Close: the searches of the preview and, once, the count.
        assert h.writes() == [], name
        assert {method for method, _ in reads(h)} <= {"GET", "POST"}, name
        assert all(path == SEARCH for method, path in reads(h) if method == "POST"), name


async def test_the_organization_is_counted_at_every_call(h: Harness) -> None:
    """Issue 23: never a kept total, which deletes made meanwhile would leave too high."""
    args = {"filter": {"created_after": "1900-01-01"}, "edit": EDIT}
    await h.error("create_bulk_edit", args)
    bodies = [r.json for r in searches(h)]
    assert bodies == [
        {
            "query": {
                "type": "and",
                "queries": [
                    LEAD,
                    fc(
                        regular("date_created"),
                        {
                            "type": "moment_range",
                            "on_or_after": {
                                "type": "fixed_local_date",
                                "value": "1900-01-01",
                                "which": "start",
                            },
                        },
                    ),
                ],
            },
            "_limit": 5,
            "_fields": {"lead": ["id", "display_name", "status_label"]},
            "include_counts": True,
        },
        COUNT_ALL,
    ]
    h.clear()
    await h.error("create_bulk_delete", {"filter": {"created_after": "1900-01-01"}})
    assert [r.json for r in searches(h)] == bodies  # at once: counted again


@pytest.mark.harness(confirm="email,sequences,send,delete")
async def test_with_allow_all_leads_a_counted_selection_needs_confirmation(h: Harness) -> None:
    # edit is taken out of the confirmation list here; matching every lead puts it back.
    args = {"filter": {"created_after": "1900-01-01"}, "edit": EDIT, "allow_all_leads": True}
    result = await h.call("create_bulk_edit", args)
    assert result["status"] == "confirmation_required"
    assert result["confirmation_token"]
    assert result["preview"]["matched"] == len(h.sandbox.store.leads)
    assert "This selection matches every lead in the organization." in result["preview"]["notes"]
    assert h.writes() == []


async def test_a_narrow_selection_is_not_every_lead(h: Harness) -> None:
    args = {"filter": {"lead_status": "Qualified"}, "edit": EDIT, "dry_run": True}
    result = await h.call("create_bulk_edit", args)
    assert result["status"] == "preview"
    assert [n for n in result["preview"]["notes"] if "every lead" in n] == []
    assert [r.json for r in searches(h)][1:] == [COUNT_ALL]


async def test_a_results_limit_below_the_total_is_not_every_lead(h: Harness) -> None:
    args = {"filter": {"created_after": "1900-01-01"}, "results_limit": 10, "edit": EDIT}
    result = await h.call("create_bulk_edit", {**args, "dry_run": True})
    assert result["preview"]["matched"] == 10
    assert [n for n in result["preview"]["notes"] if "every lead" in n] == []


async def test_search_leads_says_when_the_selection_is_every_lead(h: Harness) -> None:
    total = len(h.sandbox.store.leads)
    found = await h.call(
        "search_leads", {"filter": {"lead_status": list(STATUS_LABELS)}, "sample_size": 0}
    )
    assert found["total"] == total
    assert found["matches_every_lead"] is True
    narrow = await h.call("search_leads", {"filter": {"lead_status": "Qualified"}})
    assert narrow["matches_every_lead"] is False
    assert h.writes() == []


# -- 2. saved_search nodes are inlined -------------------------------------------------------


async def test_a_saved_search_node_is_inlined_into_body_and_token(h: Harness) -> None:
    qualified = next(v for v in h.sandbox.store.saved_searches.values() if "Qualified" in v.name)
    inner = add_view(
        h,
        "Qualified, through a view",
        {
            "type": "and",
            "queries": [
                LEAD,
                {"type": "saved_search", "saved_search_id": qualified.id},
            ],
        },
    )
    s_query = {
        "type": "and",
        "queries": [LEAD, {"type": "saved_search", "saved_search_id": inner, "negate": True}],
    }
    result = await h.call("create_bulk_edit", {"s_query": s_query, "edit": EDIT, "dry_run": True})
    expected = {
        "type": "and",
        "queries": [
            LEAD,
            {
                "type": "and",
                "queries": [
                    {
                        "type": "and",
                        "queries": [
                            LEAD,
                            copy.deepcopy(qualified.s_query["query"]),
                        ],
                    }
                ],
                "negate": True,
            },
        ],
    }
    assert result["preview"]["request"]["s_query"] == expected
    assert searches(h)[0].json["query"] == expected
    assert h.writes() == []


async def test_an_unknown_view_id_is_an_argument_error(h: Harness) -> None:
    s_query = {
        "type": "and",
        "queries": [LEAD, {"type": "saved_search", "saved_search_id": "save_x"}],
    }
    error = await h.error("create_bulk_delete", {"s_query": s_query})
    assert error == (
        "s_query.queries[1]: No smart view has the id 'save_x'. "
        'Use lookup(kind="smart_views") to list them.'
    )
    assert [path for _, path in reads(h)] == [
        "/api/v1/saved_search/",
        "/api/v1/saved_search/save_x/",
    ]


async def test_views_referring_to_each_other_are_refused(h: Harness) -> None:
    store = h.sandbox.store
    a = add_view(h, "A", {"type": "match_all"})
    b = add_view(h, "B", {"type": "saved_search", "saved_search_id": a})
    store.saved_searches[a].s_query["query"] = {"type": "saved_search", "saved_search_id": b}
    error = await h.error(
        "search_leads", {"s_query": {"type": "saved_search", "saved_search_id": a}}
    )
    assert error == f"s_query: smart views refer to each other in a cycle: {a} -> {b} -> {a}"
    assert h.sandbox.requests[-1].path == "/api/v1/saved_search/"
    assert searches(h) == []


async def test_a_limited_view_cannot_be_a_node(h: Harness) -> None:
    view = add_view(h, "Top 3", {"type": "and", "queries": [LEAD]}, results_limit=3)
    error = await h.error(
        "create_bulk_delete", {"s_query": {"type": "saved_search", "saved_search_id": view}}
    )
    assert error == (
        f"s_query: smart view 'Top 3' ({view}) shows only its first 3 leads, which a "
        "saved_search node inside a query cannot keep; select it alone with filter.smart_view"
    )
    assert searches(h) == []


# -- 3. hostile numbers and dates ------------------------------------------------------------

HUGE = 10**400
DIGITS_5000 = 10**4999  # 5,000 digits (int("9" * 5000) is refused by Python itself)
LATE = "9999-12-31T23:59:59-14:00"
EARLY = "0001-01-01T00:00:00+14:00"
OUT_OF_UTC = "is out of range: in UTC it falls outside the years 1 to 9999"
NUMBER_RANGE = "is out of range; a number field holds finite numbers between -1.8e+308 and 1.8e+308"


def hostile_filters() -> list[tuple[JSON, str]]:
    """(filter, the start of the tool error); a date field's error comes from the argument's
    own validation (pydantic's, rewritten as `where: message`)."""
    out: list[tuple[JSON, str]] = []
    for name in ("created_after", "created_before", "updated_after", "updated_before"):
        for value in (LATE, EARLY):
            out.append(({name: value}, f"filter.{name}: {value!r} {OUT_OF_UTC}"))
        out.append(({name: "NaN"}, f"filter.{name}: 'NaN' is not a date; use an"))
    number = "filter.custom_fields['Deal Size']"
    out += [
        (
            {"custom_fields": {"Deal Size": DIGITS_5000}},
            "filter.custom_fields.Deal Size: a number of more than 4300 digits is out of range",
        ),
        (
            {"custom_fields": {"Deal Size": HUGE}},
            f"{number}: a number of about 401 digits {NUMBER_RANGE}",
        ),
        (
            {"custom_fields": {"Deal Size": str(HUGE)}},
            f"{number}: '{str(HUGE)[:55]}...' {NUMBER_RANGE}",
        ),
        (
            {"custom_fields": {"Deal Size": "9" * 5000}},
            f"{number}: '{'9' * 55}...' {NUMBER_RANGE}",
        ),
        (
            {"custom_fields": {"Deal Size": "NaN"}},
            f"{number}: this is a number field; 'NaN' is not a number",
        ),
        (
            {"custom_fields": {"Deal Size": "-Infinity"}},
            f"{number}: this is a number field; '-Infinity' is not a number",
        ),
        ({"custom_fields": {"Deal Size": "1e999"}}, f"{number}: '1e999' {NUMBER_RANGE}"),
        (
            {"custom_fields": {"Renewal Date": "9999-12-31"}},
            "filter.custom_fields['Renewal Date']: '9999-12-31' is out of range; "
            "the last day allowed is 9999-12-30",
        ),
        (
            {"custom_fields": {"Renewal Date": "NaN"}},
            "filter.custom_fields['Renewal Date']: this is a date field; 'NaN' is not an ISO "
            "date like 2025-01-31",
        ),
    ]
    return out


@pytest.mark.parametrize(("filter", "message"), hostile_filters())
async def test_hostile_filter_values_are_tool_errors(
    h: Harness, filter: JSON, message: str
) -> None:
    for tool, extra in (("create_bulk_edit", {"edit": EDIT}), ("search_leads", {})):
        error = await h.error(tool, {"filter": filter, **extra})
        error = error.replace(f"{tool}Arguments", "")
        assert message in error, error
        assert len(error) < 600
    # Names may be looked up (GET); no search, no write reached Close.
    assert [r for r in h.sandbox.requests if r.method != "GET"] == []


def hostile_queries(deal_size: str) -> list[tuple[JSON, str]]:
    def deal(gte: Any) -> JSON:
        return fc(
            {"type": "custom_field", "custom_field_id": deal_size},
            {"type": "number_range", "gte": gte},
        )

    where = "s_query.condition.on_or_after"
    return [
        (deal(HUGE), "s_query.condition.gte: a number of about 401 digits is out of range"),
        (deal(DIGITS_5000), "s_query.condition.gte: a number of about 5000 digits is out of range"),
        (deal("Infinity"), "s_query.condition.gte: must be a number or null, not a string"),
        (
            deal(-(10**309)),
            "s_query.condition.gte: a negative number of about 310 digits is out of range",
        ),
        (deal(str(HUGE)), "s_query.condition.gte: must be a number or null, not a string"),
        (deal("NaN"), "s_query.condition.gte: must be a number or null, not a string"),
        (
            created_from({"type": "fixed_utc", "value": LATE}),
            f"{where}.value: {LATE!r} {OUT_OF_UTC}",
        ),
        (
            created_from({"type": "fixed_utc", "value": EARLY}),
            f"{where}.value: {EARLY!r} {OUT_OF_UTC}",
        ),
        (
            created_from({"type": "fixed_local_date", "value": "2025-02-30"}),
            f"{where}.value: '2025-02-30' is not a real date",
        ),
        (
            created_from({"type": "fixed_local_date", "value": "9999-12-31", "which": "end"}),
            f"{where}.value: '9999-12-31' {OUT_OF_UTC}",
        ),
        (
            created_from(
                {
                    "type": "offset",
                    "direction": "past",
                    "moment": {"type": "now"},
                    "offset": {"days": HUGE},
                }
            ),
            f"{where}.offset.days: a number of about 401 digits is out of range",
        ),
        (
            created_from(
                {
                    "type": "offset",
                    "direction": "past",
                    "moment": {"type": "now"},
                    "offset": {"years": 20_000},
                }
            ),
            f"{where}.offset.years: 20000 is greater than the maximum of 10000",
        ),
    ]


@pytest.mark.parametrize("case", range(len(hostile_queries("cf_"))))
async def test_hostile_s_query_values_are_tool_errors(h: Harness, case: int) -> None:
    s_query, message = hostile_queries(field_id(h, "Deal Size"))[case]
    for tool, extra in (("create_bulk_delete", {}), ("search_leads", {})):
        error = await h.error(tool, {"s_query": s_query, **extra})
        assert error.startswith(message), error
        assert len(error) < 300
    assert h.sandbox.requests == []
