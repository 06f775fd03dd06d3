"""The friendly filter's activity fields: the exact `has_related` tree each one builds, and
the errors that name the field at fault (nothing is sent to Close but the name lookups)."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.close.catalog import Catalog
from close_mcp.errors import ArgumentError
from close_mcp.sandbox import Sandbox
from close_mcp.selection.filter import LeadFilter
from close_mcp.selection.resolve import resolve_selection
from close_mcp.selection.tree import resolve_filter
from tests.queries import ago, any_activity_since, has_opportunity, regular, sent_since

pytestmark = pytest.mark.anyio

LEAD = {"type": "object_type", "object_type": "lead"}


async def tree(catalog: Catalog, **fields: Any) -> dict[str, Any]:
    return await resolve_filter(LeadFilter(**fields), catalog)


async def test_emailed_and_not_emailed_within_are_closes_ui_form(
    sandbox_catalog: Catalog,
) -> None:
    emailed = sent_since("activity.email", "outgoing", ago(days=30))
    assert await tree(sandbox_catalog, emailed_within="30d") == {
        "type": "and",
        "queries": [LEAD, emailed],
    }
    assert await tree(sandbox_catalog, not_emailed_within="P30D") == {
        "type": "and",
        "queries": [LEAD, {**emailed, "negate": True}],
    }


async def test_called_and_not_called_within(sandbox_catalog: Catalog) -> None:
    called = sent_since("activity.call", "outbound", ago(weeks=2))
    assert await tree(sandbox_catalog, called_within="2w", not_called_within="12h") == {
        "type": "and",
        "queries": [
            LEAD,
            called,
            {**sent_since("activity.call", "outbound", ago(hours=12)), "negate": True},
        ],
    }


async def test_last_activity_after_and_before(sandbox_catalog: Catalog) -> None:
    day = {"type": "fixed_local_date", "value": "2025-01-31", "which": "start"}
    instant = {"type": "fixed_utc", "value": "2025-03-01T08:00:00+00:00"}
    assert await tree(
        sandbox_catalog,
        last_activity_after="2025-01-31",
        last_activity_before="2025-03-01T10:00:00+02:00",
    ) == {
        "type": "and",
        "queries": [LEAD, any_activity_since(day), {**any_activity_since(instant), "negate": True}],
    }


async def test_opportunity_status_by_label_or_id(
    sandbox: Sandbox, sandbox_catalog: Catalog
) -> None:
    ids = {s.label: s.id for s in sandbox.store.opportunity_statuses.values()}
    built = await tree(sandbox_catalog, opportunity_status=["won", ids["Lost"], "Won"])
    assert built == {
        "type": "and",
        "queries": [
            LEAD,
            has_opportunity(ids["Won"], ids["Lost"]),
        ],
    }


async def test_an_unknown_opportunity_status_names_the_entry_and_how_to_list_them(
    sandbox: Sandbox, sandbox_catalog: Catalog
) -> None:
    won = next(s.id for s in sandbox.store.opportunity_statuses.values() if s.label == "Won")
    with pytest.raises(ArgumentError) as info:
        await tree(sandbox_catalog, opportunity_status=["Won", "Wonn"])
    assert str(info.value) == (
        f"filter.opportunity_status[1]: No opportunity status named 'Wonn'. Closest: 'Won' "
        f'({won}). Use lookup(kind="opportunity_statuses") to list them.'
    )
    lead_status = next(iter(sandbox.store.statuses))  # the same stat_ prefix, not this kind
    with pytest.raises(ArgumentError) as info:
        await tree(sandbox_catalog, opportunity_status=lead_status)
    assert str(info.value) == (
        f"filter.opportunity_status: No opportunity status has the id {lead_status!r}. "
        'Use lookup(kind="opportunity_statuses") to list them.'
    )


async def test_name_starts_with_is_a_prefix_of_a_word(sandbox_catalog: Catalog) -> None:
    assert await tree(sandbox_catalog, name_starts_with="Acm") == {
        "type": "and",
        "queries": [
            LEAD,
            {
                "type": "field_condition",
                "field": regular("name", "lead"),
                "condition": {"type": "text", "mode": "beginning_of_words", "value": "Acm"},
            },
        ],
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"emailed_within": "a month"},
            "filter.emailed_within: 'a month' is not a duration; use a number of hours, days or "
            "weeks like 12h, 90d, 2w, or an ISO-8601 duration like P90D, PT12H, P1Y",
        ),
        (
            {"not_called_within": "0d"},
            "filter.not_called_within: '0d' is an empty span; give a duration longer than zero",
        ),
        (
            {"last_activity_before": "2025-01-31 10:00"},
            "filter.last_activity_before: '2025-01-31 10:00' has no timezone; add Z (UTC) or an "
            "offset like +02:00",
        ),
    ],
)
async def test_bad_values_name_the_field(
    sandbox_catalog: Catalog, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ArgumentError) as info:
        await resolve_selection(filter=fields, catalog=sandbox_catalog)
    assert str(info.value) == message
