"""Ranges on custom fields (`{"Deal Size": {"gte": 80}}`): the exact condition for number and
date fields, in the map and the list form, and a clear error for everything else."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.close.catalog import Catalog
from close_mcp.errors import ArgumentError
from close_mcp.sandbox import Sandbox
from close_mcp.selection.resolve import resolve_selection

pytestmark = pytest.mark.anyio

LEAD = {"type": "object_type", "object_type": "lead"}


def cf_id(sandbox: Sandbox, name: str) -> str:
    found = sandbox.store.custom_field_named(name)
    assert found is not None
    return found.id


async def condition(catalog: Catalog, custom_fields: Any) -> dict[str, Any]:
    selection = await resolve_selection(filter={"custom_fields": custom_fields}, catalog=catalog)
    lead, node = selection.s_query["queries"]
    assert lead == LEAD
    return node  # type: ignore[no-any-return]


async def error(catalog: Catalog, custom_fields: Any) -> str:
    with pytest.raises(ArgumentError) as info:
        await resolve_selection(filter={"custom_fields": custom_fields}, catalog=catalog)
    return str(info.value)


async def test_a_number_range_in_the_map_and_the_list_form(
    sandbox: Sandbox, sandbox_catalog: Catalog
) -> None:
    ref = {"type": "custom_field", "custom_field_id": cf_id(sandbox, "Deal Size")}
    at_least = {
        "type": "field_condition",
        "field": ref,
        "condition": {"type": "number_range", "gte": 80},
    }
    assert await condition(sandbox_catalog, {"Deal Size": {"gte": 80}}) == at_least
    listed = [{"custom_field": "Deal Size", "value": {"gte": 80}}]
    assert await condition(sandbox_catalog, listed) == at_least
    assert await condition(sandbox_catalog, {"Deal Size": {"gte": 1.5, "lte": 10}}) == {
        **at_least,
        "condition": {"type": "number_range", "gte": 1.5, "lte": 10},
    }


async def test_a_date_range_is_whole_local_days_both_ends_included(
    sandbox: Sandbox, sandbox_catalog: Catalog
) -> None:
    ref = {"type": "custom_field", "custom_field_id": cf_id(sandbox, "Renewal Date")}
    built = await condition(
        sandbox_catalog, {"Renewal Date": {"gte": "2026-01-01", "lte": "2026-03-31"}}
    )
    assert built == {
        "type": "field_condition",
        "field": ref,
        "condition": {
            "type": "moment_range",
            "on_or_after": {"type": "fixed_local_date", "value": "2026-01-01", "which": "start"},
            "before": {"type": "fixed_local_date", "value": "2026-04-01", "which": "start"},
        },
    }
    until = await condition(sandbox_catalog, {"Renewal Date": {"lte": "2026-12-31"}})
    assert until["condition"] == {
        "type": "moment_range",
        "before": {"type": "fixed_local_date", "value": "2027-01-01", "which": "start"},
    }


@pytest.mark.parametrize(
    ("custom_fields", "message"),
    [
        (
            {"Deal Size": {"gte": 90, "lte": 10}},
            "filter.custom_fields['Deal Size']: gte (90) is above lte (10)",
        ),
        (
            {"Deal Size": {"gte": "80"}},
            "filter.custom_fields['Deal Size'].gte: this is a number field; '80' is not a number",
        ),
        (
            {"Deal Size": {"gte": 10**400}},
            "filter.custom_fields['Deal Size'].gte: 10000000000000000000... (401 digits) is out "
            "of range for a number field",
        ),
        (
            {"Renewal Date": {"gte": "2026-02-30"}},
            "filter.custom_fields['Renewal Date'].gte: this is a date field; '2026-02-30' is not "
            "a date like 2025-01-31",
        ),
        (
            {"Renewal Date": {"gte": "2026-03-02", "lte": "2026-03-01"}},
            "filter.custom_fields['Renewal Date']: gte (2026-03-02) is after lte (2026-03-01)",
        ),
        (
            {"Lead Source": {"gte": 1}},
            "filter.custom_fields['Lead Source']: a range (gte/lte) applies to number, date, "
            "datetime fields; this is a text field: give its value instead",
        ),
        (
            {"Deal Size": {}},
            "filter.custom_fields.Deal Size: a range is {gte, lte} (numbers, or dates like "
            "2025-01-31): a range needs gte, lte or both",
        ),
        (
            {"Deal Size": {"min": 80}},
            "filter.custom_fields.Deal Size: an object here is a range {gte, lte}, not 'min'",
        ),
    ],
)
async def test_a_range_that_cannot_be_used_names_the_entry(
    sandbox_catalog: Catalog, custom_fields: Any, message: str
) -> None:
    assert await error(sandbox_catalog, custom_fields) == message
