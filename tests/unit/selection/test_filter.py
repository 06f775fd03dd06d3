"""The friendly filter model: dates, spans, ranges that cannot match, the shape of the filter."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from close_mcp.close.catalog import Catalog
from close_mcp.selection.activity import ActivityFields
from close_mcp.selection.filter import LeadFilter
from tests.unit.selection.support import selection_error

pytestmark = pytest.mark.anyio


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


def test_dates_are_stored_normalized() -> None:
    f = LeadFilter(created_after="2025-01-31T12:00:00+02:00", created_before=" 2025-02-01 ")
    assert (f.created_after, f.created_before) == ("2025-01-31T10:00:00+00:00", "2025-02-01")


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
    # every field, the activity ones (selection.activity) after the everyday ones
    assert sorted(schema["properties"]) == sorted(LeadFilter.model_fields)
    assert list(schema["properties"])[-8:] == list(ActivityFields.model_fields)
    assert all(prop.get("description") for prop in schema["properties"].values())


def test_custom_values_keep_their_type() -> None:
    f = LeadFilter(custom_fields={"a": True, "b": 1, "c": 1.5, "d": "1", "e": ["x"]})
    assert f.custom_fields == {"a": True, "b": 1, "c": 1.5, "d": "1", "e": ["x"]}
    with pytest.raises(ValidationError):
        LeadFilter(custom_fields={})
