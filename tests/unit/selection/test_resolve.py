"""The selection every tool takes, resolved: exactly one of filter or s_query, limits, the lead
node, errors, and the catalog read once."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.close.catalog import Catalog
from close_mcp.selection.resolve import Selection, resolve_selection
from tests.catalog import TOP_SORT, FakeClose
from tests.queries import LEAD, ago, custom, fc, lead_and, regular
from tests.unit.selection.support import selection_error

pytestmark = pytest.mark.anyio


async def test_filter_selection(catalog: Catalog) -> None:
    selection = await resolve_selection(
        filter={"lead_status": "Qualified"}, s_query=None, results_limit=25,
        sort=TOP_SORT, allow_all_leads=False, catalog=catalog,
    )  # fmt: skip
    assert selection == Selection(
        s_query=lead_and(
            fc(
                regular("status_id"),
                {"type": "reference", "reference_type": "status.lead", "object_ids": ["stat_qual"]},
            )
        ),
        results_limit=25,
        sort=TOP_SORT,
        source="filter",
    )


async def test_exactly_one_of_filter_or_s_query(catalog: Catalog) -> None:
    both = await selection_error(catalog, filter={"name": "x"}, s_query={"type": "match_all"})
    neither = await selection_error(catalog)
    expected = (
        "pass exactly one of `filter` (friendly fields) or `s_query` (a raw Close query tree); "
        "got {}"
    )
    assert (both, neither) == (expected.format("both"), expected.format("neither"))


@pytest.mark.parametrize("limit", [0, -1, 100_001, True, 2.5])
async def test_results_limit_range(catalog: Catalog, limit: Any) -> None:
    assert await selection_error(catalog, filter={"name": "x"}, results_limit=limit) == (
        f"results_limit: must be a whole number from 1 to 100000, not {limit!r}"
    )


RAW = fc(custom("cf_ind"), {"type": "term", "values": ["Retail"]})


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (RAW, lead_and(RAW)),
        (lead_and(RAW), lead_and(RAW)),
        ({"type": "and", "queries": [RAW, LEAD]}, {"type": "and", "queries": [RAW, LEAD]}),
        (
            {"type": "or", "queries": [LEAD, RAW]},
            lead_and({"type": "or", "queries": [LEAD, RAW]}),
        ),
        ({**LEAD, "negate": True}, lead_and({**LEAD, "negate": True})),
    ],
    ids=["bare", "already led", "lead node later", "or is wrapped", "negated lead is wrapped"],
)
async def test_raw_s_query_gets_the_lead_node(
    catalog: Catalog, tree: dict[str, Any], expected: dict[str, Any]
) -> None:
    selection = await resolve_selection(s_query=tree, allow_all_leads=True, catalog=catalog)
    assert (selection.s_query, selection.source) == (expected, "s_query")
    assert selection.s_query is not tree


async def test_raw_s_query_errors(catalog: Catalog) -> None:
    assert await selection_error(
        catalog,
        s_query=lead_and(fc(regular("name"), {"type": "text", "mode": "fuzzy", "value": "x"})),
    ) == (
        "s_query.queries[1].condition.mode: 'fuzzy' is not one of 'full_words', 'phrase', "
        "'beginning_of_words', 'exact_value'"
    )
    assert (
        await selection_error(
            catalog,
            s_query={
                "type": "and",
                "queries": [{"type": "object_type", "object_type": "contact"}, RAW],
            },
        )
        == "s_query: the query selects 'contact' objects; bulk actions and searches here "
        "select leads"
    )
    assert await selection_error(catalog, s_query="everything") == (
        "s_query: must be an object, not a string"
    )


async def test_a_relative_filter_resolves_to_a_tree_the_s_query_schema_accepts(
    catalog: Catalog,
) -> None:
    """The relative moment is Close's own form: passing the resolved tree back as a raw
    s_query gives the same tree."""
    first = await resolve_selection(catalog=catalog, filter={"created_within": "P1Y2M"})
    again = await resolve_selection(catalog=catalog, s_query=first.s_query)
    assert (
        again.s_query
        == first.s_query
        == lead_and(
            fc(
                regular("date_created"),
                {"type": "moment_range", "on_or_after": ago(years=1, months=2)},
            )
        )
    )


async def test_resolving_reuses_the_catalog(catalog: Catalog, fake: FakeClose) -> None:
    await resolve_selection(
        filter={"lead_status": ["New", "Qualified"], "custom_fields": {"Industry": "Retail"}},
        catalog=catalog,
    )
    await resolve_selection(
        filter={"lead_status": "stat_won", "smart_view": "Hot leads"}, catalog=catalog
    )
    assert fake.listings() == {
        "status/lead/": 1,
        "custom_field_schema/lead/": 1,
        "saved_search/": 1,
    }
