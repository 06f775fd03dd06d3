"""The friendly filter -> Close's tree: every field alone and together, each custom field type,
values that do not fit their field."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.close.catalog import Catalog
from close_mcp.errors import ArgumentError
from tests.catalog import HOT_TREE
from tests.queries import HAS_EMAIL, ago, custom, fc, lead_and, local, regular, utc
from tests.unit.selection.support import resolve

pytestmark = pytest.mark.anyio


ALONE: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("smart_view by name", {"smart_view": "Hot leads"}, lead_and(HOT_TREE)),
    ("smart_view by id", {"smart_view": "save_hot"}, lead_and(HOT_TREE)),
    (
        "lead_ids",
        {"lead_ids": ["lead_a1", "lead_B2"]},
        lead_and(
            fc(
                regular("id"),
                {
                    "type": "reference",
                    "reference_type": "lead",
                    "object_ids": ["lead_a1", "lead_B2"],
                },
            )
        ),
    ),
    (
        "lead_status label",
        {"lead_status": "Qualified"},
        lead_and(
            fc(
                regular("status_id"),
                {"type": "reference", "reference_type": "status.lead", "object_ids": ["stat_qual"]},
            )
        ),
    ),
    (
        "lead_status list of labels and ids, duplicates dropped",
        {"lead_status": ["new", "stat_won", "New"]},
        lead_and(
            fc(
                regular("status_id"),
                {
                    "type": "reference",
                    "reference_type": "status.lead",
                    "object_ids": ["stat_new", "stat_won"],
                },
            )
        ),
    ),
    (
        "name",
        {"name": "Acme Corp"},
        lead_and(fc(regular("name"), {"type": "text", "mode": "full_words", "value": "Acme Corp"})),
    ),
    (
        "text",
        {"text": "renewal budget"},
        lead_and({"type": "text", "mode": "full_words", "value": "renewal budget"}),
    ),
    (
        "created_after date",
        {"created_after": "2025-01-31"},
        lead_and(
            fc(
                regular("date_created"),
                {"type": "moment_range", "on_or_after": local("2025-01-31")},
            )
        ),
    ),
    (
        "created_before datetime Z",
        {"created_before": "2025-01-31T10:00:00Z"},
        lead_and(
            fc(
                regular("date_created"),
                {"type": "moment_range", "before": utc("2025-01-31T10:00:00+00:00")},
            )
        ),
    ),
    (
        "created_after and created_before in one node",
        {"created_after": "2025-01-01", "created_before": "2025-02-01T00:30:00+02:00"},
        lead_and(
            fc(
                regular("date_created"),
                {
                    "type": "moment_range",
                    "on_or_after": local("2025-01-01"),
                    "before": utc("2025-01-31T22:30:00+00:00"),
                },
            )
        ),
    ),
    (
        "updated_after datetime with offset",
        {"updated_after": "2025-03-10T09:15:30.250-05:00"},
        lead_and(
            fc(
                regular("date_updated"),
                {"type": "moment_range", "on_or_after": utc("2025-03-10T14:15:30.250000+00:00")},
            )
        ),
    ),
    (
        "updated_before date",
        {"updated_before": "2024-12-31"},
        lead_and(
            fc(regular("date_updated"), {"type": "moment_range", "before": local("2024-12-31")})
        ),
    ),
    (
        "created_within 90d: now minus 90 days",
        {"created_within": "90d"},
        lead_and(
            fc(regular("date_created"), {"type": "moment_range", "on_or_after": ago(days=90)})
        ),
    ),
    (
        "updated_within ISO PT12H, with updated_before in the same node",
        {"updated_within": "PT12H", "updated_before": "2025-02-01"},
        lead_and(
            fc(
                regular("date_updated"),
                {
                    "type": "moment_range",
                    "on_or_after": ago(hours=12),
                    "before": local("2025-02-01"),
                },
            )
        ),
    ),
    ("has_email true", {"has_email": True}, lead_and(HAS_EMAIL)),
    ("has_email false", {"has_email": False}, lead_and({**HAS_EMAIL, "negate": True})),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [(f, e) for _, f, e in ALONE], ids=[n for n, _, _ in ALONE]
)
async def test_each_field_alone(
    catalog: Catalog, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert await resolve(catalog, **fields) == expected


CUSTOM: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "text field: phrase",
        {"Notes": "call back"},
        fc(custom("cf_notes"), {"type": "text", "mode": "phrase", "value": "call back"}),
    ),
    (
        "text field: any of several",
        {"cf_notes": ["a", "b"]},
        {
            "type": "or",
            "queries": [
                fc(custom("cf_notes"), {"type": "text", "mode": "phrase", "value": "a"}),
                fc(custom("cf_notes"), {"type": "text", "mode": "phrase", "value": "b"}),
            ],
        },
    ),
    (
        "number field",
        {"Employees": 50},
        fc(custom("cf_size"), {"type": "number_range", "gte": 50, "lte": 50}),
    ),
    (
        "number field from a numeric string",
        {"employees": "12.5"},
        fc(custom("cf_size"), {"type": "number_range", "gte": 12.5, "lte": 12.5}),
    ),
    (
        "date field: the whole day",
        {"Renewal Date": "2025-02-28"},
        fc(
            custom("cf_renew"),
            {
                "type": "moment_range",
                "on_or_after": local("2025-02-28"),
                "before": local("2025-03-01"),
            },
        ),
    ),
    (
        "choices field, case fixed to the real choice",
        {"Industry": "software"},
        fc(custom("cf_ind"), {"type": "term", "values": ["Software"]}),
    ),
    (
        "multi-choices field: any of",
        {"Tags": ["Hot", "Partner"]},
        fc(custom("cf_tags"), {"type": "term", "values": ["Hot", "Partner"]}),
    ),
    (
        "user field: names, emails and ids",
        {"Account Owner": ["Ana Lopez", "bo@example.com", "user_cy"]},
        fc(
            custom("cf_owner"),
            {
                "type": "reference",
                "reference_type": "user_or_group",
                "object_ids": ["user_ana", "user_bo", "user_cy"],
            },
        ),
    ),
    (
        "other type: term",
        {"Referrer": "cont_123"},
        fc(custom("cf_ref"), {"type": "term", "values": ["cont_123"]}),
    ),
    (
        "ambiguous name passed as id",
        {"cf_reg2": "EU"},
        fc(custom("cf_reg2"), {"type": "term", "values": ["EU"]}),
    ),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [(f, e) for _, f, e in CUSTOM], ids=[n for n, _, _ in CUSTOM]
)
async def test_each_custom_field_type(
    catalog: Catalog, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert await resolve(catalog, custom_fields=fields) == lead_and(expected)


async def test_all_fields_together_in_declared_order(catalog: Catalog) -> None:
    tree = await resolve(
        catalog,
        has_email=True,
        updated_before="2025-06-01",
        updated_after="2025-05-01",
        created_before="2025-04-01",
        created_after="2025-01-01T00:00:00Z",
        custom_fields={"Industry": "Retail", "Employees": 10},
        text="budget",
        name="Acme",
        lead_status="Qualified",
        lead_ids=["lead_1"],
        smart_view="Hot leads",
    )
    assert tree == lead_and(
        HOT_TREE,
        fc(
            regular("id"), {"type": "reference", "reference_type": "lead", "object_ids": ["lead_1"]}
        ),
        fc(
            regular("status_id"),
            {"type": "reference", "reference_type": "status.lead", "object_ids": ["stat_qual"]},
        ),
        fc(regular("name"), {"type": "text", "mode": "full_words", "value": "Acme"}),
        {"type": "text", "mode": "full_words", "value": "budget"},
        fc(custom("cf_ind"), {"type": "term", "values": ["Retail"]}),
        fc(custom("cf_size"), {"type": "number_range", "gte": 10, "lte": 10}),
        fc(
            regular("date_created"),
            {
                "type": "moment_range",
                "on_or_after": utc("2025-01-01T00:00:00+00:00"),
                "before": local("2025-04-01"),
            },
        ),
        fc(
            regular("date_updated"),
            {
                "type": "moment_range",
                "on_or_after": local("2025-05-01"),
                "before": local("2025-06-01"),
            },
        ),
        HAS_EMAIL,
    )


BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    (
        "not a choice",
        {"Industry": "Spaceflight"},
        "filter.custom_fields.Industry: 'Spaceflight' is not a choice of this field; "
        "allowed: 'Software', 'Retail', 'Manufacturing'",
    ),
    (
        "one bad choice in a list",
        {"Tags": ["Hot", "Lukewarm"]},
        "filter.custom_fields.Tags: 'Lukewarm' is not a choice of this field; "
        "allowed: 'Hot', 'Cold', 'Partner'",
    ),
    (
        "number for a choices field",
        {"Industry": 3},
        "filter.custom_fields.Industry: this is a choices field; expected a string, not 3",
    ),
    (
        "text for a number field",
        {"Employees": "fifty"},
        "filter.custom_fields.Employees: this is a number field; 'fifty' is not a number",
    ),
    (
        "bool for a number field",
        {"Employees": True},
        "filter.custom_fields.Employees: this is a number field; True is not a number",
    ),
    (
        "not a date",
        {"Renewal Date": "next week"},
        "filter.custom_fields['Renewal Date']: this is a date field; 'next week' is not an "
        "ISO date like 2025-01-31",
    ),
    (
        "impossible date",
        {"Renewal Date": "2025-02-30"},
        "filter.custom_fields['Renewal Date']: '2025-02-30' is not a real date; use an ISO date "
        "like 2025-01-31 or a datetime with a timezone like 2025-01-31T10:00:00Z",
    ),
    (
        "number for a text field",
        {"Notes": 5},
        "filter.custom_fields.Notes: this is a text field; expected a string, not 5",
    ),
    (
        "unknown user",
        {"Account Owner": "Ana Lopes"},
        "filter.custom_fields['Account Owner']: No user named 'Ana Lopes'. Closest: "
        "'Ana Lopez' (user_ana). Use lookup(kind=\"users\") to list them.",
    ),
    (
        "unknown field",
        {"Industy": "Retail"},
        "filter.custom_fields.Industy: No custom field named 'Industy'. Closest: 'Industry' "
        '(cf_ind). Use lookup(kind="custom_fields") to list them.',
    ),
    (
        "ambiguous field",
        {"region": "EU"},
        "filter.custom_fields.region: Several custom fields are named 'region': cf_reg1, "
        "cf_reg2. Pass the id instead.",
    ),
    (
        "empty list",
        {"Tags": []},
        "filter.custom_fields.Tags: an empty list matches nothing; give at least one value",
    ),
]


@pytest.mark.parametrize(
    ("fields", "message"), [(f, m) for _, f, m in BAD_VALUES], ids=[n for n, _, _ in BAD_VALUES]
)
async def test_custom_values_that_do_not_fit(
    catalog: Catalog, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ArgumentError) as info:
        await resolve(catalog, custom_fields=fields)
    assert str(info.value) == message


async def test_unknown_names_in_the_filter(catalog: Catalog) -> None:
    with pytest.raises(ArgumentError) as info:
        await resolve(catalog, lead_status=["New", "Qualifed"])
    assert str(info.value) == (
        "filter.lead_status[1]: No lead status named 'Qualifed'. Closest: 'Qualified' "
        "(stat_qual), 'Unqualified' (stat_unq). Use lookup(kind=\"lead_statuses\") to list them."
    )
    with pytest.raises(ArgumentError) as info:
        await resolve(catalog, smart_view="Hot")
    assert str(info.value) == (
        "filter.smart_view: No smart view named 'Hot'. Use lookup(kind=\"smart_views\") to "
        "list them."
    )
    with pytest.raises(ArgumentError) as info:
        await resolve(catalog, smart_view="My contacts")
    assert str(info.value) == (
        "filter.smart_view: smart view 'My contacts' (save_contacts) selects contact objects, "
        "not leads"
    )


@pytest.mark.parametrize(
    ("after", "before"),
    [
        ("2025-02-01", "2025-01-31T22:00:00Z"),  # Feb 1 begins at 19:00 UTC on Jan 31 in UTC+5
        ("2025-01-31T10:00:00Z", "2025-01-31"),  # Jan 31 begins at 12:00 UTC in UTC-12
    ],
)
async def test_a_range_some_time_zone_allows_is_not_refused(
    catalog: Catalog, after: str, before: str
) -> None:
    """Days are read in CLOSE_MCP_TIMEZONE, which the filter cannot see: no false refusal."""
    tree = await resolve(catalog, created_after=after, created_before=before)
    assert tree["queries"][1]["condition"]["type"] == "moment_range"
