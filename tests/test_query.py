"""Selections: every filter field resolved to the exact s_query, raw trees, the all-leads rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from close_mcp.close.catalog import Catalog
from close_mcp.errors import ArgumentError
from close_mcp.selection.query import (
    LeadFilter,
    Selection,
    has_email_node,
    lead_ids_node,
    matches_everything,
    parse_duration,
    parse_when,
    resolve_filter,
    resolve_selection,
)
from tests.test_catalog import HOT_TREE, TOP_SORT, FakeClose, make_catalog

pytestmark = pytest.mark.anyio

LEAD = {"type": "object_type", "object_type": "lead"}


def regular(name: str) -> dict[str, Any]:
    return {"type": "regular_field", "object_type": "lead", "field_name": name}


def custom(cf_id: str) -> dict[str, Any]:
    return {"type": "custom_field", "custom_field_id": cf_id}


def fc(field: dict[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
    return {"type": "field_condition", "field": field, "condition": condition}


def lead_and(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "and", "queries": [LEAD, *nodes]}


def local(day: str) -> dict[str, Any]:
    return {"type": "fixed_local_date", "value": day, "which": "start"}


def utc(value: str) -> dict[str, Any]:
    return {"type": "fixed_utc", "value": value}


UNITS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")


def ago(**offset: int) -> dict[str, Any]:
    """The relative moment as Close's UI exports it: all seven units, and `which_day_end`."""
    return {
        "type": "offset",
        "direction": "past",
        "moment": {"type": "now"},
        "offset": {unit: offset.get(unit, 0) for unit in UNITS},
        "which_day_end": "start",
    }


HAS_EMAIL = {
    "type": "has_related",
    "this_object_type": "lead",
    "related_object_type": "contact",
    "related_query": {
        "type": "has_related",
        "this_object_type": "contact",
        "related_object_type": "contact_email",
        "related_query": {"type": "match_all"},
    },
}


@pytest.fixture
def fake() -> FakeClose:
    return FakeClose()


@pytest.fixture
def catalog(fake: FakeClose) -> Catalog:
    return make_catalog(fake)


async def resolve(catalog: Catalog, **fields: Any) -> dict[str, Any]:
    return await resolve_filter(LeadFilter(**fields), catalog)


async def selection_error(catalog: Catalog, **kwargs: Any) -> str:
    with pytest.raises(ArgumentError) as info:
        await resolve_selection(catalog=catalog, **kwargs)
    return str(info.value)


# -- every filter field alone --------------------------------------------------------------

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


def test_helpers_reused_elsewhere() -> None:
    assert lead_ids_node(["lead_x"]) == fc(
        regular("id"), {"type": "reference", "reference_type": "lead", "object_ids": ["lead_x"]}
    )
    assert has_email_node(True) == HAS_EMAIL
    assert has_email_node(False) == {**HAS_EMAIL, "negate": True}


# -- values that do not fit ----------------------------------------------------------------

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


# -- dates ---------------------------------------------------------------------------------


def test_parse_when() -> None:
    assert parse_when("2025-01-31").isoformat() == "2025-01-31"
    assert parse_when("2025-01-31T10:00:00Z").isoformat() == "2025-01-31T10:00:00+00:00"
    assert parse_when("2025-01-31T10:00+01:30").isoformat() == "2025-01-31T08:30:00+00:00"


DATE_ERRORS = [
    (
        "2025-13-01",
        "'2025-13-01' is not a real date; use an ISO date like 2025-01-31 or a datetime with a "
        "timezone like 2025-01-31T10:00:00Z",
    ),
    (
        "31/01/2025",
        "'31/01/2025' is not a date; use an ISO date like 2025-01-31 or a datetime with a "
        "timezone like 2025-01-31T10:00:00Z",
    ),
    (
        "2025-01-31T10:00:00",
        "'2025-01-31T10:00:00' has no timezone; add Z (UTC) or an offset like +02:00",
    ),
]


@pytest.mark.parametrize(("value", "message"), DATE_ERRORS)
async def test_invalid_dates(catalog: Catalog, value: str, message: str) -> None:
    error = await selection_error(catalog, filter={"created_after": value})
    assert error == f"filter.created_after: {message}"


async def test_after_must_be_before(catalog: Catalog) -> None:
    error = await selection_error(
        catalog, filter={"updated_after": "2025-02-01", "updated_before": "2025-02-01"}
    )
    assert error == (
        "filter: updated_after (2025-02-01) must be earlier than updated_before "
        "(2025-02-01); no lead could match"
    )
    # A day against an instant: Feb 1 starts at Jan 31, 10:00 UTC at the earliest (UTC+14).
    error = await selection_error(
        catalog, filter={"updated_after": "2025-02-01", "updated_before": "2025-01-31T10:00:00Z"}
    )
    assert error == (
        "filter: updated_after (2025-02-01) must be earlier than updated_before "
        "(2025-01-31T10:00:00+00:00); no lead could match"
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


DURATIONS: list[tuple[str, dict[str, int]]] = [
    ("90d", {"days": 90}),
    (" 12H ", {"hours": 12}),
    ("2w", {"weeks": 2}),
    ("P90D", {"days": 90}),
    ("pt12h", {"hours": 12}),
    (
        "P1Y2M3W4DT5H6M7S",
        {"years": 1, "months": 2, "weeks": 3, "days": 4, "hours": 5, "minutes": 6, "seconds": 7},
    ),
    ("P0DT36H", {"hours": 36}),
]


@pytest.mark.parametrize(("text", "offset"), DURATIONS)
def test_parse_duration(text: str, offset: dict[str, int]) -> None:
    assert parse_duration(text) == offset


NOT_DURATIONS: list[tuple[str, str]] = [
    (
        "3m",
        "'3m' is not a duration; use a number of hours, days or weeks like 12h, 90d, 2w, or an "
        "ISO-8601 duration like P90D, PT12H, P1Y",
    ),
    (
        "P",
        "'P' is not a duration; use a number of hours, days or weeks like 12h, 90d, 2w, or an "
        "ISO-8601 duration like P90D, PT12H, P1Y",
    ),
    (
        "P1DT",
        "'P1DT' is not a duration; use a number of hours, days or weeks like 12h, 90d, 2w, or an "
        "ISO-8601 duration like P90D, PT12H, P1Y",
    ),
    (
        "-5d",
        "'-5d' is not a duration; use a number of hours, days or weeks like 12h, 90d, 2w, or an "
        "ISO-8601 duration like P90D, PT12H, P1Y",
    ),
    ("0d", "'0d' is an empty span; give a duration longer than zero"),
    ("P0D", "'P0D' is an empty span; give a duration longer than zero"),
    ("3652426d", "'3652426d' is out of range: at most 3652425 days"),
]


@pytest.mark.parametrize(("text", "message"), NOT_DURATIONS)
async def test_invalid_durations(catalog: Catalog, text: str, message: str) -> None:
    assert await selection_error(catalog, filter={"created_within": text}) == (
        f"filter.created_within: {message}"
    )
    assert await selection_error(catalog, filter={"updated_within": text}) == (
        f"filter.updated_within: {message}"
    )


async def test_within_and_after_conflict(catalog: Catalog) -> None:
    error = await selection_error(
        catalog, filter={"created_within": "90d", "created_after": "2025-01-01"}
    )
    assert error == (
        "filter: created_within (90d) and created_after (2025-01-01) both set where the range "
        "starts; give only one of them"
    )
    error = await selection_error(
        catalog, filter={"updated_within": "P1W", "updated_after": "2025-01-01T00:00:00Z"}
    )
    assert error == (
        "filter: updated_within (P1W) and updated_after (2025-01-01T00:00:00+00:00) both set "
        "where the range starts; give only one of them"
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


def test_dates_are_stored_normalized() -> None:
    f = LeadFilter(created_after="2025-01-31T12:00:00+02:00", created_before=" 2025-02-01 ")
    assert (f.created_after, f.created_before) == ("2025-01-31T10:00:00+00:00", "2025-02-01")


# -- the filter model ----------------------------------------------------------------------


async def test_empty_filter_is_refused(catalog: Catalog) -> None:
    assert await selection_error(catalog, filter={}) == (
        'filter: filter needs at least one field; to select every lead use s_query {"type": '
        '"match_all"} with allow_all_leads: true'
    )


async def test_filter_shape_errors(catalog: Catalog) -> None:
    assert await selection_error(catalog, filter={"status": "New"}) == (
        "filter.status: unknown field; the filter fields are: smart_view, lead_ids, "
        "lead_status, name, text, custom_fields, created_after, created_before, updated_after, "
        "updated_before, has_email, created_within, updated_within, name_starts_with, "
        "emailed_within, not_emailed_within, called_within, not_called_within, "
        "last_activity_after, last_activity_before, opportunity_status"
    )
    assert await selection_error(catalog, filter={"lead_ids": ["lead_1", "cont_2"]}) == (
        "filter.lead_ids[1]: String should match pattern '^lead_[A-Za-z0-9]+$'"
    )
    assert await selection_error(catalog, filter={"custom_fields": {"Tags": {"a": 1}}}) == (
        "filter.custom_fields.Tags: an object here is a range {gte, lte}, not 'a'"
    )
    assert await selection_error(catalog, filter={"name": "", "has_email": "maybe"}) == (
        "filter.name: String should have at least 1 character; "
        "filter.has_email: Input should be a valid boolean, unable to interpret input"
    )


def test_filter_schema_describes_every_field() -> None:
    schema = LeadFilter.model_json_schema()
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == list(LeadFilter.model_fields)
    assert all(prop.get("description") for prop in schema["properties"].values())


def test_custom_values_keep_their_type() -> None:
    f = LeadFilter(custom_fields={"a": True, "b": 1, "c": 1.5, "d": "1", "e": ["x"]})
    assert f.custom_fields == {"a": True, "b": 1, "c": 1.5, "d": "1", "e": ["x"]}
    with pytest.raises(ValidationError):
        LeadFilter(custom_fields={})


# -- resolve_selection ---------------------------------------------------------------------


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
        matches_everything=False,
    )


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


async def test_a_smart_view_matching_everything_is_refused(catalog: Catalog) -> None:
    assert await selection_error(catalog, filter={"smart_view": "Bare view"}) == (
        "filter: the selection matches every lead in the organization; pass "
        "`allow_all_leads: true` if that is really meant"
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


# -- matches everything --------------------------------------------------------------------

M = {"type": "match_all"}
CONTACT = {"type": "object_type", "object_type": "contact"}
EVERYTHING = {
    "lead node": LEAD,
    "match_all": M,
    "and of lead and match_all": {"type": "and", "queries": [LEAD, M]},
    "nested and": {"type": "and", "queries": [LEAD, {"type": "and", "queries": [M, LEAD]}]},
    "or with a match_all": {"type": "or", "queries": [RAW, M]},
    "or with the lead node": {"type": "or", "queries": [RAW, LEAD]},
    "X or not X": {"type": "or", "queries": [RAW, {**RAW, "negate": True}]},
    "not match nothing": {"type": "and", "queries": [M, {**CONTACT, "negate": True}]},
    "double negation": {
        "type": "and",
        "negate": True,
        "queries": [{"type": "match_all", "negate": True}],
    },
    "negated contradiction": {
        "type": "and",
        "negate": True,
        "queries": [RAW, {**RAW, "negate": True}],
    },
    "negated or of nothing": {"type": "or", "negate": True, "queries": [CONTACT]},
}
SOMETHING = {
    "a condition": lead_and(RAW),
    "negated match_all": {"type": "match_all", "negate": True},
    "and with a condition": {"type": "and", "queries": [M, RAW]},
    "or of conditions": {"type": "or", "queries": [RAW, fc(regular("name"), {"type": "exists"})]},
    "negated lead node": {**LEAD, "negate": True},
    "a saved search": {"type": "saved_search", "saved_search_id": "save_1"},
    "has_related": HAS_EMAIL,
    "not a dict": [],
}


@pytest.mark.parametrize("tree", EVERYTHING.values(), ids=EVERYTHING.keys())
def test_matches_everything(tree: dict[str, Any]) -> None:
    assert matches_everything(tree)


@pytest.mark.parametrize("tree", SOMETHING.values(), ids=SOMETHING.keys())
def test_does_not_match_everything(tree: object) -> None:
    assert not matches_everything(tree)


@pytest.mark.parametrize("tree", [M, LEAD, {"type": "or", "queries": [RAW, M]}])
async def test_all_leads_needs_allow_all_leads(catalog: Catalog, tree: dict[str, Any]) -> None:
    assert await selection_error(catalog, s_query=tree) == (
        "s_query: the selection matches every lead in the organization; pass "
        "`allow_all_leads: true` if that is really meant"
    )
    selection = await resolve_selection(s_query=tree, allow_all_leads=True, catalog=catalog)
    assert selection.matches_everything is True


async def test_allow_all_leads_does_not_mark_a_narrow_selection(catalog: Catalog) -> None:
    selection = await resolve_selection(s_query=RAW, allow_all_leads=True, catalog=catalog)
    assert selection.matches_everything is False


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
