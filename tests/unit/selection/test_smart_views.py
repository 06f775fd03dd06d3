"""Smart views in a selection: a limited view brings its limit and order; views inlined."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.close.catalog import Catalog
from close_mcp.errors import ArgumentError
from close_mcp.selection.filter import LeadFilter
from close_mcp.selection.resolve import resolve_selection
from close_mcp.selection.smart_views import inline_views
from tests.catalog import HOT_TREE, TOP_SORT
from tests.queries import lead_and, regular
from tests.unit.selection.support import selection_error

pytestmark = pytest.mark.anyio


def saved(view_id: str) -> dict[str, Any]:
    return {"type": "saved_search", "saved_search_id": view_id}


async def test_a_limited_smart_view_brings_its_limit_and_order(catalog: Catalog) -> None:
    selection = await resolve_selection(filter={"smart_view": "Top 10"}, catalog=catalog)
    assert (selection.s_query, selection.results_limit, selection.sort) == (
        lead_and(HOT_TREE),
        10,
        TOP_SORT,
    )
    smaller = await resolve_selection(
        filter=LeadFilter(smart_view="save_top"), results_limit=3, catalog=catalog
    )
    assert (smaller.results_limit, smaller.sort) == (3, TOP_SORT)
    larger = await resolve_selection(
        filter=LeadFilter(smart_view="save_top"), results_limit=500, catalog=catalog
    )
    assert larger.results_limit == 10
    assert await selection_error(catalog, filter={"smart_view": "Top 10", "has_email": True}) == (
        "filter: smart view 'Top 10' (save_top) shows only its first 10 leads; combined with "
        "has_email the limit would pick other leads. Use the smart view alone, or pass an s_query"
    )
    assert await selection_error(
        catalog,
        filter={"smart_view": "Top 10"},
        sort=[{"direction": "asc", "field": regular("name")}],
    ) == (
        "sort: smart view 'Top 10' (save_top) shows only its first 10 leads in its own order; "
        "leave sort out to use the view's order"
    )


async def test_a_negated_saved_search_node_is_the_views_tree_negated(catalog: Catalog) -> None:
    node = {"type": "saved_search", "saved_search_id": "save_hot", "negate": True}
    inlined = await inline_views(node, catalog, "s_query", ())
    assert inlined == {"type": "and", "queries": [HOT_TREE], "negate": True}
    # A copy: changing what was inlined leaves the catalog's view as it was.
    inlined["queries"][0]["queries"][1]["condition"]["values"].append("Cold")
    assert await inline_views(node, catalog, "s_query", ()) == {
        "type": "and",
        "queries": [HOT_TREE],
        "negate": True,
    }


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            {"type": "or", "queries": [{"type": "match_all"}, saved("save_top")]},
            "s_query.queries[1]: smart view 'Top 10' (save_top) shows only its first 10 leads, "
            "which a saved_search node inside a query cannot keep; select it alone with "
            "filter.smart_view",
        ),
        (
            {
                "type": "has_related",
                "this_object_type": "lead",
                "related_object_type": "contact",
                "related_query": saved("save_hot"),
            },
            "s_query.related_query: a smart view selects leads; it cannot match contact objects",
        ),
        (
            {"type": "and", "queries": [saved("save_contacts")]},
            "s_query.queries[0]: smart view 'My contacts' (save_contacts) selects contact "
            "objects, not leads",
        ),
    ],
    ids=["a limited view", "inside a contact query", "a view of contacts"],
)
async def test_a_saved_search_node_that_cannot_be_inlined(
    catalog: Catalog, node: dict[str, Any], message: str
) -> None:
    with pytest.raises(ArgumentError) as info:
        await inline_views(node, catalog, "s_query", ())
    assert str(info.value) == message
