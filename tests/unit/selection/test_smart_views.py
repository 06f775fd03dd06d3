"""Smart views in a selection: a limited view brings its limit and order; views inlined."""

from __future__ import annotations

import pytest

from close_mcp.close.catalog import Catalog
from close_mcp.selection.filter import LeadFilter
from close_mcp.selection.resolve import resolve_selection
from tests.queries import lead_and, regular
from tests.test_catalog import HOT_TREE, TOP_SORT
from tests.unit.selection.support import selection_error

pytestmark = pytest.mark.anyio


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
