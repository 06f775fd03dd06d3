"""Sort keys by name, expanded to fields that exist, then checked against the grammar."""

from __future__ import annotations

import pytest

from close_mcp.close.catalog import Catalog
from close_mcp.selection.resolve import resolve_selection
from tests.catalog import FakeClose
from tests.queries import custom, regular
from tests.unit.selection.support import selection_error

pytestmark = pytest.mark.anyio


async def test_sort_is_validated(catalog: Catalog) -> None:
    assert (
        await selection_error(
            catalog, filter={"name": "x"}, sort=[{"direction": "up", "field": regular("name")}]
        )
        == "sort[0].direction: 'up' is not one of 'asc', 'desc'"
    )


async def test_a_sort_field_may_be_named(catalog: Catalog) -> None:
    """A sort key may be a lead field, a custom field's name or cf_ id, "-" first for
    descending (what tools/list shows), or an object whose field is named so."""
    selection = await resolve_selection(
        filter={"name": "x"},
        sort=[
            "-date_created",
            "Industry",
            {"direction": "desc", "field": "cf_size"},
            {"direction": "asc", "field": regular("display_name")},
        ],
        catalog=catalog,
    )
    assert selection.sort == [
        {"direction": "desc", "field": regular("date_created")},
        {"direction": "asc", "field": custom("cf_ind")},
        {"direction": "desc", "field": custom("cf_size")},
        {"direction": "asc", "field": regular("display_name")},
    ]


@pytest.mark.parametrize("name", ["-no such!", "A", "cf_nosuchfield"])
async def test_a_sort_field_that_does_not_exist_is_refused_before_close(
    catalog: Catalog, fake: FakeClose, name: str
) -> None:
    """Close answers 400 to a sort on a field it does not have (the fuzz found "A")."""
    field = name.removeprefix("-")
    assert await selection_error(catalog, filter={"name": "x"}, sort=[name]) == (
        f"sort[0]: {field!r} is neither a lead field (date_created, date_updated, display_name, "
        "name) nor a custom field's name or cf_ id; lookup(kind='custom_fields') lists them"
    )
