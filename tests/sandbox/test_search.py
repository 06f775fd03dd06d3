"""`/data/search/`: every node and condition against sets computed by hand from the store."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from close_mcp.clock import FakeClock, utc_datetime
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import Lead
from tests.ids import custom_field, status_id
from tests.queries import created_from, custom, fc, lead_and, regular
from tests.sandbox.conftest import LEAD_QUERY

pytestmark = pytest.mark.anyio

JSON = dict[str, Any]


async def search_ids(http: httpx.AsyncClient, query: JSON, **extra: Any) -> list[str]:
    answer = await http.post("data/search/", json={"query": query, "_limit": 200, **extra})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["cursor"] is None
    return [hit["id"] for hit in body["data"]]


async def matched(http: httpx.AsyncClient, query: JSON) -> set[str]:
    return set(await search_ids(http, query))


def where(sb: Sandbox, test: Any) -> set[str]:
    found = {lead.id for lead in sb.store.leads.values() if test(lead)}
    assert 0 < len(found) < len(sb.store.leads), "pick a value that splits the leads"
    return found


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


async def test_object_type_alone_matches_every_lead(sb: Sandbox, http: httpx.AsyncClient) -> None:
    answer = await http.post("data/search/", json={"query": LEAD_QUERY, "include_counts": True})
    body = answer.json()
    assert body["count"] == {"total": 100}
    assert body["data"][0] == {"__object_type": "lead", "id": body["data"][0]["id"]}
    assert await matched(http, LEAD_QUERY) == set(sb.store.leads)
    assert await matched(http, {"type": "match_all"}) == set(sb.store.leads)


async def test_text_modes_on_lead_name(sb: Sandbox, http: httpx.AsyncClient) -> None:
    name = next(iter(sb.store.leads.values())).name  # e.g. "Acme Inc."
    first, second = name.split(" ")
    name_field = regular("name")

    def text(mode: str, value: str) -> JSON:
        return lead_and(fc(name_field, {"type": "text", "mode": mode, "value": value}))

    expected = where(sb, lambda lead: words(first)[0] in words(lead.name))
    assert await matched(http, text("full_words", first.upper())) == expected
    expected = where(sb, lambda lead: lead.name.lower() == name.lower())
    assert await matched(http, text("exact_value", name.swapcase())) == expected
    assert await matched(http, text("phrase", f"{first} {second}")) == expected
    assert await matched(http, text("phrase", f"{second} {first}")) == set()
    prefix = first[:3]
    expected = where(sb, lambda lead: any(w.startswith(prefix.lower()) for w in words(lead.name)))
    assert await matched(http, text("beginning_of_words", prefix)) == expected
    if prefix.lower() != first.lower():
        assert await matched(http, text("full_words", prefix)) == set()


async def test_term_on_single_and_multi_choices(sb: Sandbox, http: httpx.AsyncClient) -> None:
    industry, products = custom_field(sb, "Industry"), custom_field(sb, "Products")
    query = lead_and(fc(custom(industry.id), {"type": "term", "values": ["Retail", "Finance"]}))
    expected = where(sb, lambda lead: lead.custom.get(industry.id) in ("Retail", "Finance"))
    assert await matched(http, query) == expected
    query = lead_and(fc(custom(products.id), {"type": "term", "values": ["CRM"]}))
    expected = where(sb, lambda lead: "CRM" in lead.custom.get(products.id, []))
    assert await matched(http, query) == expected


async def test_reference_on_status_and_user_fields(sb: Sandbox, http: httpx.AsyncClient) -> None:
    store = sb.store
    qualified = status_id(store, "Qualified")
    query = lead_and(
        fc(
            regular("status_id"),
            {"type": "reference", "reference_type": "status.lead", "object_ids": [qualified]},
        )
    )
    assert await matched(http, query) == where(sb, lambda lead: lead.status_id == qualified)
    owner = custom_field(sb, "Account Owner")
    query = lead_and(
        fc(
            custom(owner.id),
            {"type": "reference", "reference_type": "user_or_group", "object_ids": [store.me.id]},
        )
    )
    assert await matched(http, query) == where(
        sb, lambda lead: lead.custom.get(owner.id) == store.me.id
    )


async def test_number_range(sb: Sandbox, http: httpx.AsyncClient) -> None:
    deal = custom_field(sb, "Deal Size")

    def size(lead: Lead) -> float | None:
        value = lead.custom.get(deal.id)
        return None if value is None else float(value)

    def ranged(**bounds: float) -> JSON:
        return lead_and(fc(custom(deal.id), {"type": "number_range", **bounds}))

    assert await matched(http, ranged(gte=20000, lte=60000)) == where(
        sb, lambda lead: (s := size(lead)) is not None and 20000 <= s <= 60000
    )
    edge = next(size(lead) for lead in sb.store.leads.values() if size(lead) is not None)
    assert edge is not None
    assert await matched(http, ranged(gt=edge)) == where(
        sb, lambda lead: (s := size(lead)) is not None and s > edge
    )
    assert await matched(http, ranged(lt=edge)) == {
        lead.id for lead in sb.store.leads.values() if (s := size(lead)) is not None and s < edge
    }


async def test_moment_ranges(sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock) -> None:
    now = utc_datetime(clock)
    created = regular("date_created")

    def moment_range(field: JSON, **ends: JSON) -> JSON:
        return lead_and(fc(field, {"type": "moment_range", **ends}))

    cut = now - timedelta(days=200, hours=5)
    fixed = {"type": "fixed_utc", "value": cut.isoformat()}
    assert await matched(http, moment_range(created, on_or_after=fixed)) == where(
        sb, lambda lead: lead.date_created >= cut
    )
    assert await matched(http, moment_range(created, before=fixed)) == where(
        sb, lambda lead: lead.date_created < cut
    )
    # fixed_local_date: "start" is midnight UTC of that day, "end" the next midnight.
    day = (now - timedelta(days=300)).date()
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    local = {"type": "fixed_local_date", "value": day.isoformat()}
    query = moment_range(
        created, on_or_after={**local, "which": "start"}, before={**local, "which": "end"}
    )
    expected = {
        lead.id
        for lead in sb.store.leads.values()
        if start <= lead.date_created < start + timedelta(days=1)
    }
    assert await matched(http, query) == expected
    # offset: 90 days before now, rounded down to the start of that day.
    since = (now - timedelta(days=90)).replace(hour=0, minute=0, second=0, microsecond=0)
    offset = {
        "type": "offset",
        "direction": "past",
        "moment": {"type": "now"},
        "offset": {"days": 90},
        "which_day_end": "start",
    }
    assert await matched(http, moment_range(created, on_or_after=offset)) == where(
        sb, lambda lead: lead.date_created >= since
    )
    assert await matched(http, moment_range(created, before={"type": "now"})) == set(sb.store.leads)


async def test_moment_offset_in_months_on_a_date_custom_field(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    renewal = custom_field(sb, "Renewal Date")
    now = utc_datetime(clock)  # 2026-01-01T00:00Z
    query = lead_and(
        fc(
            custom(renewal.id),
            {
                "type": "moment_range",
                "on_or_after": {"type": "now"},
                "before": {
                    "type": "offset",
                    "direction": "future",
                    "moment": {"type": "now"},
                    "offset": {"months": 3, "weeks": 1},
                },
            },
        )
    )
    end = datetime(2026, 4, 8, tzinfo=UTC)
    assert now + timedelta(days=97) == end

    def renews(lead: Lead) -> bool:
        value = lead.custom.get(renewal.id)
        if value is None:
            return False
        moment = datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
        return now <= moment < end

    assert await matched(http, query) == where(sb, renews)


async def test_exists_and_negate(sb: Sandbox, http: httpx.AsyncClient) -> None:
    source = custom_field(sb, "Lead Source")
    has_source = fc(custom(source.id), {"type": "exists"})
    expected = where(sb, lambda lead: source.id in lead.custom)
    assert await matched(http, lead_and(has_source)) == expected
    assert await matched(http, lead_and({**has_source, "negate": True})) == (
        set(sb.store.leads) - expected
    )
    url_missing = fc(regular("url"), {"type": "exists"}, negate=True)
    assert await matched(http, lead_and(url_missing)) == where(sb, lambda lead: lead.url is None)


async def test_and_or_negated(sb: Sandbox, http: httpx.AsyncClient) -> None:
    industry = custom_field(sb, "Industry")
    statuses = list(sb.store.statuses)

    def status_is(status_id: str) -> JSON:
        return fc(
            regular("status_id"),
            {"type": "reference", "reference_type": "status.lead", "object_ids": [status_id]},
        )

    retail = fc(custom(industry.id), {"type": "term", "values": ["Retail"]})
    either = {"type": "or", "queries": [status_is(statuses[0]), status_is(statuses[1])]}
    query = lead_and({**either, "negate": True}, {"type": "and", "queries": [retail]})
    assert await matched(http, query) == where(
        sb,
        lambda lead: (
            lead.status_id not in statuses[:2] and lead.custom.get(industry.id) == "Retail"
        ),
    )
    nothing = {"type": "or", "queries": []}
    assert await matched(http, lead_and(nothing)) == set()
    assert await matched(http, lead_and({**nothing, "negate": True})) == set(sb.store.leads)


async def test_has_related_contacts_and_emails(sb: Sandbox, http: httpx.AsyncClient) -> None:
    def contacts(query: JSON, **extra: Any) -> JSON:
        return {
            "type": "has_related",
            "this_object_type": "lead",
            "related_object_type": "contact",
            "related_query": query,
            **extra,
        }

    def emails(query: JSON) -> JSON:
        return {
            "type": "has_related",
            "this_object_type": "contact",
            "related_object_type": "contact_email",
            "related_query": query,
        }

    ceo = fc(
        {"type": "regular_field", "object_type": "contact", "field_name": "title"},
        {"type": "text", "mode": "exact_value", "value": "ceo"},
    )
    assert await matched(http, lead_and(contacts(ceo))) == where(
        sb, lambda lead: any(c.title == "CEO" for c in lead.contacts)
    )
    home = fc(
        {"type": "regular_field", "object_type": "contact_email", "field_name": "email"},
        {"type": "text", "mode": "phrase", "value": "home.example"},
    )
    assert await matched(http, lead_and(contacts(emails(home)))) == where(
        sb,
        lambda lead: any(
            e["email"].endswith("@home.example") for c in lead.contacts for e in c.emails
        ),
    )
    any_email = contacts(emails({"type": "match_all"}))
    with_email = where(sb, lambda lead: any(c.emails for c in lead.contacts))
    assert await matched(http, lead_and(any_email)) == with_email
    no_email = {**any_email, "negate": True}
    assert await matched(http, lead_and(no_email)) == set(sb.store.leads) - with_email
    direct = {
        "type": "has_related",
        "this_object_type": "lead",
        "related_object_type": "contact_email",
        "related_query": {"type": "match_all"},
    }
    assert await matched(http, lead_and(direct)) == with_email


async def test_full_text_node(sb: Sandbox, http: httpx.AsyncClient) -> None:
    contact_name = next(iter(sb.store.leads.values())).contacts[0].name
    last = contact_name.split(" ")[1]

    def texts(lead: Lead) -> list[str]:
        out = [lead.name]
        for c in lead.contacts:
            out += [c.name, c.title, *(e["email"] for e in c.emails)]
        return out

    query = lead_and({"type": "text", "mode": "full_words", "value": last})
    assert await matched(http, query) == where(
        sb, lambda lead: any(words(last)[0] in words(t) for t in texts(lead))
    )


async def test_saved_search_resolves_the_smart_view(sb: Sandbox, http: httpx.AsyncClient) -> None:
    view = next(v for v in sb.store.saved_searches.values() if v.name == "Qualified leads")
    via_view = await matched(http, {"type": "saved_search", "saved_search_id": view.id})
    assert via_view == await matched(http, view.s_query["query"])
    qualified = status_id(sb, "Qualified")
    assert via_view == where(sb, lambda lead: lead.status_id == qualified)
    negated = {"type": "saved_search", "saved_search_id": view.id, "negate": True}
    assert await matched(http, lead_and(negated)) == set(sb.store.leads) - via_view


async def test_sort_and_results_limit(sb: Sandbox, http: httpx.AsyncClient) -> None:
    deal = custom_field(sb, "Deal Size")
    sort = [
        {"direction": "desc", "field": custom(deal.id)},
        {"direction": "asc", "field": regular("name")},
    ]
    got = await search_ids(http, LEAD_QUERY, sort=sort)
    leads = sorted(sb.store.leads.values(), key=lambda lead: lead.id)
    leads.sort(key=lambda lead: lead.name.casefold())
    with_size = [lead for lead in leads if deal.id in lead.custom]
    with_size.sort(key=lambda lead: lead.custom[deal.id], reverse=True)
    without = [lead for lead in leads if deal.id not in lead.custom]
    assert got == [lead.id for lead in with_size + without]
    answer = await http.post(
        "data/search/",
        json={"query": LEAD_QUERY, "sort": sort, "results_limit": 7, "include_counts": True},
    )
    assert answer.json() == {
        "data": [{"__object_type": "lead", "id": i} for i in got[:7]],
        "cursor": None,
        "count": {"total": 7},
    }
    count_only = await http.post(
        "data/search/", json={"query": LEAD_QUERY, "results_limit": 0, "include_counts": True}
    )
    # Close's count-only form: every match is counted, none is returned.
    assert count_only.json() == {"data": [], "cursor": None, "count": {"total": 100}}


async def test_default_order_is_newest_first(sb: Sandbox, http: httpx.AsyncClient) -> None:
    got = await search_ids(http, LEAD_QUERY)
    newest = sorted(sb.store.leads.values(), key=lambda lead: lead.date_created, reverse=True)
    assert got == [lead.id for lead in newest]


async def test_fields_projection(sb: Sandbox, http: httpx.AsyncClient) -> None:
    industry = custom_field(sb, "Industry")
    fields = ["id", "display_name", "status_label", f"custom.{industry.id}", "nonsense"]
    answer = await http.post(
        "data/search/",
        json={"query": LEAD_QUERY, "_fields": {"lead": fields}, "_limit": 200},
    )
    expected = [
        {
            "__object_type": "lead",
            "id": lead.id,
            "display_name": lead.display_name,
            "status_label": sb.store.statuses[lead.status_id].label,
            f"custom.{industry.id}": lead.custom.get(industry.id),
        }
        for lead in sorted(sb.store.leads.values(), key=lambda x: x.date_created, reverse=True)
    ]
    assert answer.json()["data"] == expected


async def test_cursor_walks_pages_and_expires(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    body: JSON = {"query": LEAD_QUERY, "_limit": 30, "include_counts": True}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        answer = (await http.post("data/search/", json={**body, "cursor": cursor})).json()
        assert answer["count"] == {"total": 100}
        seen += [hit["id"] for hit in answer["data"]]
        pages += 1
        cursor = answer["cursor"]
        if cursor is None:
            break
        clock.advance(29)
    assert (pages, len(seen), set(seen)) == (4, 100, set(sb.store.leads))
    first = (await http.post("data/search/", json=body)).json()
    clock.advance(31)
    expired = await http.post("data/search/", json={**body, "cursor": first["cursor"]})
    assert (expired.status_code, expired.json()) == (
        400,
        {"errors": [], "field-errors": {"cursor": "Invalid or expired cursor."}},
    )
    forged = await http.post("data/search/", json={**body, "cursor": "abc"})
    assert forged.status_code == 400


async def test_deleted_leads_drop_out_of_a_cursor_walk(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    first = (await http.post("data/search/", json={"query": LEAD_QUERY, "_limit": 50})).json()
    rest_ids = await http.post(
        "data/search/", json={"query": LEAD_QUERY, "_limit": 50, "cursor": first["cursor"]}
    )
    victim = rest_ids.json()["data"][0]["id"]
    again = (await http.post("data/search/", json={"query": LEAD_QUERY, "_limit": 50})).json()
    await http.delete(f"lead/{victim}/")
    rest = await http.post(
        "data/search/", json={"query": LEAD_QUERY, "_limit": 50, "cursor": again["cursor"]}
    )
    assert [h["id"] for h in rest.json()["data"]] == [
        h["id"] for h in rest_ids.json()["data"] if h["id"] != victim
    ]


@pytest.mark.parametrize(
    ("query", "field_errors"),
    [
        ({"type": "nope"}, {"query.type": "Unknown query type 'nope'."}),
        ({"queries": []}, {"query.type": "Missing data for required field."}),
        (
            {"type": "and", "queries": [LEAD_QUERY, {"type": "bogus"}]},
            {"query.queries.1.type": "Unknown query type 'bogus'."},
        ),
        ({"type": "and"}, {"query.queries": "Expected a list of queries."}),
        (
            {"type": "and", "queries": [fc(regular("name"), {"type": "fuzzy"})]},
            {"query.queries.0.condition.type": "Unknown condition type 'fuzzy'."},
        ),
        (
            fc(regular("name"), {"type": "text", "mode": "soundex", "value": "x"}),
            {
                "query.condition.mode": (
                    "Must be one of: full_words, phrase, beginning_of_words, exact_value."
                )
            },
        ),
        (
            fc(regular("name"), {"type": "text", "mode": "phrase"}),
            {"query.condition.value": "Must be a non-empty string."},
        ),
        (
            fc(regular("colour"), {"type": "exists"}),
            {"query.field.field_name": "Unknown lead field 'colour'."},
        ),
        (
            fc(custom("cf_nope"), {"type": "exists"}),
            {"query.field.custom_field_id": "Unknown lead custom field 'cf_nope'."},
        ),
        (
            fc(regular("name"), {"type": "number_range", "gte": 1}),
            {"query.condition.type": "Condition 'number_range' does not apply to a text field."},
        ),
        (
            fc(
                regular("status_id"),
                {"type": "reference", "reference_type": "user_or_group", "object_ids": []},
            ),
            {"query.condition.reference_type": "Must be 'status.lead'."},
        ),
        (
            fc(
                regular("date_created"),
                {"type": "moment_range", "before": {"type": "fixed_utc", "value": "yesterday"}},
            ),
            {"query.condition.before.value": "Not a valid datetime."},
        ),
        (
            fc(
                regular("date_created"),
                {
                    "type": "moment_range",
                    "before": {"type": "offset", "direction": "past", "moment": {"type": "now"}},
                },
            ),
            {"query.condition.before.offset": "Missing data for required field."},
        ),
        (
            fc(
                regular("date_created"),
                {
                    "type": "moment_range",
                    "before": {"type": "fixed_local_date", "value": "2025-01-01", "which": "noon"},
                },
            ),
            {"query.condition.before.which": "Must be 'start' or 'end'."},
        ),
        (
            {"type": "object_type", "object_type": "contact"},
            {"query.object_type": "Expected 'lead' here; the sandbox searches leads only."},
        ),
        (
            {"type": "has_related", "related_object_type": "address", "related_query": {}},
            {"query.related_object_type": ("'lead' -> 'address' is not supported by the sandbox.")},
        ),
        (
            {"type": "saved_search", "saved_search_id": "save_nope"},
            {"query.saved_search_id": "Saved search 'save_nope' not found."},
        ),
        (
            {**LEAD_QUERY, "negate": "yes"},
            {"query.negate": "Must be a boolean."},
        ),
    ],
)
async def test_bad_queries_name_the_path(
    http: httpx.AsyncClient, query: JSON, field_errors: dict[str, str]
) -> None:
    answer = await http.post("data/search/", json={"query": query})
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": field_errors},
    )


@pytest.mark.parametrize(
    ("body", "field_errors"),
    [
        ({}, {"query": "This field is required."}),
        ({"query": LEAD_QUERY, "_limit": -1}, {"_limit": "Must be a non-negative integer."}),
        (
            {"query": LEAD_QUERY, "results_limit": "ten"},
            {"results_limit": "Must be a non-negative integer or null."},
        ),
        (
            {"query": LEAD_QUERY, "sort": [{"direction": "up", "field": regular("name")}]},
            {"sort.0.direction": "Must be 'asc' or 'desc'."},
        ),
        (
            {"query": LEAD_QUERY, "_fields": ["id"]},
            {"_fields": 'Expected {"lead": ["field", ...]}.'},
        ),
    ],
)
async def test_bad_search_bodies(
    http: httpx.AsyncClient, body: JSON, field_errors: dict[str, str]
) -> None:
    answer = await http.post("data/search/", json=body)
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": field_errors},
    )


def _date_created_from(moment: JSON) -> JSON:
    return lead_and(created_from(moment))


def _past(**offset: int) -> JSON:
    return {"type": "offset", "direction": "past", "moment": {"type": "now"}, "offset": offset}


OUT_OF_RANGE: list[tuple[str, JSON, str]] = [
    (
        "year 10000 once in UTC",
        _date_created_from({"type": "fixed_utc", "value": "9999-12-31T23:59:59-14:00"}),
        "query.queries.1.condition.on_or_after.value",
    ),
    (
        "year 0 once in UTC",
        _date_created_from({"type": "fixed_utc", "value": "0001-01-01T00:00:00+14:00"}),
        "query.queries.1.condition.on_or_after.value",
    ),
    (
        "the end of the last day",
        _date_created_from({"type": "fixed_local_date", "value": "9999-12-31", "which": "end"}),
        "query.queries.1.condition.on_or_after",
    ),
    (
        "5,000 years ago",
        _date_created_from(_past(years=5000)),
        "query.queries.1.condition.on_or_after",
    ),
    (
        "10**12 days ago",
        _date_created_from(_past(days=10**12)),
        "query.queries.1.condition.on_or_after",
    ),
    (
        "10**400 seconds ago",
        _date_created_from(_past(seconds=10**400)),
        "query.queries.1.condition.on_or_after",
    ),
    (
        "an offset of an offset",
        _date_created_from(
            {
                "type": "offset",
                "direction": "future",
                "moment": _past(months=10**6),
                "offset": {"days": 1},
            }
        ),
        "query.queries.1.condition.on_or_after.moment",
    ),
]


@pytest.mark.parametrize(
    ("query", "where"), [(q, w) for _, q, w in OUT_OF_RANGE], ids=[n for n, _, _ in OUT_OF_RANGE]
)
async def test_a_date_out_of_range_is_a_400_not_a_crash(
    http: httpx.AsyncClient, query: JSON, where: str
) -> None:
    answer = await http.post("data/search/", json={"query": query})
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": {where: "Date out of range."}},
    )


async def test_a_number_out_of_range_is_a_400_not_a_crash(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    deal = custom(custom_field(sb, "Deal Size").id)
    too_big = lead_and(fc(deal, {"type": "number_range", "gte": 10**400}))
    answer = await http.post("data/search/", json={"query": too_big})
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": {"query.queries.1.condition.gte": "Number out of range."}},
    )
    for literal in ("NaN", "Infinity", "-Infinity"):  # Python's json writes and reads them
        raw = json.dumps({"query": lead_and(fc(deal, {"type": "number_range", "lte": 0}))})
        answer = await http.post(
            "data/search/",
            content=raw.replace('"lte": 0', f'"lte": {literal}'),
            headers={"Content-Type": "application/json"},
        )
        assert (answer.status_code, answer.json()) == (
            400,
            {
                "errors": [],
                "field-errors": {"query.queries.1.condition.lte": "Must be a finite number."},
            },
        )


# -- Close's documented forms, and only those ------------------------------------------------


def ids_reference(ids: list[str], reference_type: str = "lead") -> JSON:
    return fc(
        regular("id"),
        {"type": "reference", "reference_type": reference_type, "object_ids": ids},
    )


async def test_lead_ids_take_the_documented_reference_form(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    """ID fields use a `reference` condition typed by the ID (Close's advanced filtering page);
    a `term` on `id` is documented nowhere, so the sandbox refuses it as Close may."""
    wanted = list(sb.store.leads)[3:9]
    assert await search_ids(http, lead_and(ids_reference(wanted))) == [
        lead.id
        for lead in sorted(sb.store.leads.values(), key=lambda lead: lead.date_created)[::-1]
        if lead.id in wanted
    ]
    term = fc(regular("id"), {"type": "term", "values": wanted})
    answer = await http.post("data/search/", json={"query": lead_and(term)})
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "errors": [],
            "field-errors": {
                "query.queries.1.condition.type": (
                    "Condition 'term' does not apply to a reference field."
                )
            },
        },
    )
    answer = await http.post(
        "data/search/", json={"query": lead_and(ids_reference(wanted, "contact"))}
    )
    assert answer.json()["field-errors"] == {
        "query.queries.1.condition.reference_type": "Must be 'lead'."
    }


@pytest.mark.parametrize("reference_type", ["user", "user_or_group"])
async def test_user_fields_take_both_documented_reference_types(
    sb: Sandbox, http: httpx.AsyncClient, reference_type: str
) -> None:
    store = sb.store
    owner = custom_field(sb, "Account Owner")
    condition = {"type": "reference", "reference_type": reference_type, "object_ids": [store.me.id]}
    assert await matched(http, lead_and(fc(custom(owner.id), condition))) == where(
        sb, lambda lead: lead.custom.get(owner.id) == store.me.id
    )
    other = next(u for u in store.users if u != store.me.id)
    next(iter(store.leads.values())).created_by = other
    by_me = {**condition, "object_ids": [store.me.id]}
    assert await matched(http, lead_and(fc(regular("created_by"), by_me))) == where(
        sb, lambda lead: lead.created_by == store.me.id
    )


async def test_null_bounds_are_no_bounds(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Filters copied from Close's UI carry `"on_or_after": null` and the like."""
    cut = utc_datetime(clock) - timedelta(days=200)
    fixed = {"type": "fixed_utc", "value": cut.isoformat()}
    created = regular("date_created")
    query = lead_and(
        fc(
            created,
            {"type": "moment_range", "on_or_after": None, "before": fixed, "on_or_before": None},
        )
    )
    assert await matched(http, query) == where(sb, lambda lead: lead.date_created < cut)
    deal = custom_field(sb, "Deal Size")
    query = lead_and(
        fc(custom(deal.id), {"type": "number_range", "gte": 20000, "lte": None, "gt": None})
    )
    assert await matched(http, query) == where(
        sb, lambda lead: (v := lead.custom.get(deal.id)) is not None and v >= 20000
    )


async def test_after_and_on_or_before_bounds(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """The other two bounds are honoured too, never read as 'no bound'."""
    lead = list(sb.store.leads.values())[5]
    at = {"type": "fixed_utc", "value": lead.date_created.isoformat()}
    created = regular("date_created")

    async def ids(**bounds: JSON) -> set[str]:
        return await matched(http, lead_and(fc(created, {"type": "moment_range", **bounds})))

    assert await ids(after=at) == where(sb, lambda x: x.date_created > lead.date_created)
    assert await ids(on_or_before=at) == where(sb, lambda x: x.date_created <= lead.date_created)
    assert lead.id in await ids(on_or_before=at)
    assert lead.id not in await ids(after=at)


# -- X-TZ-Offset: local dates are days in the request's offset ---------------------------------


def _day(value: str, which: str = "start") -> JSON:
    return {"type": "fixed_local_date", "value": value, "which": which}


async def _on_day(http: httpx.AsyncClient, day: str, offset: str | None) -> set[str]:
    query = lead_and(
        fc(
            regular("date_created"),
            {"type": "moment_range", "on_or_after": _day(day), "before": _day(day, "end")},
        )
    )
    headers = {} if offset is None else {"X-TZ-Offset": offset}
    answer = await http.post("data/search/", json={"query": query}, headers=headers)
    assert answer.status_code == 200, answer.text
    return {hit["id"] for hit in answer.json()["data"]}


async def test_local_dates_are_read_in_the_x_tz_offset(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    """A lead created at 02:30 UTC on June 10 was created on June 9 in New York (-4) and on
    June 10 in UTC or Berlin (+2); half-hour offsets (Newfoundland, -2.5) count too."""
    lead = next(iter(sb.store.leads.values()))
    lead.date_created = datetime(2025, 6, 10, 2, 30, tzinfo=UTC)
    assert lead.id in await _on_day(http, "2025-06-10", None)
    assert lead.id in await _on_day(http, "2025-06-10", "2")
    assert lead.id not in await _on_day(http, "2025-06-10", "-4")
    assert lead.id in await _on_day(http, "2025-06-09", "-4")
    assert lead.id not in await _on_day(http, "2025-06-09", None)
    assert lead.id in await _on_day(http, "2025-06-10", "-2.5")
    assert lead.id in await _on_day(http, "2025-06-09", "-3")


async def test_day_ends_and_date_fields_follow_the_offset(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Leads "created today" are those of the caller's today; a date field's day is the
    caller's day in any offset."""
    now = utc_datetime(clock)  # 2026-01-01T00:00Z: still Dec 31 in New York
    lead = next(iter(sb.store.leads.values()))
    lead.date_created = now - timedelta(hours=3)  # Dec 31, 21:00 UTC, 16:00 in New York
    today = {
        "type": "offset",
        "direction": "past",
        "moment": {"type": "now"},
        "offset": {"days": 0},
        "which_day_end": "start",
    }
    query = lead_and(created_from(today))

    async def created_today(offset: str) -> set[str]:
        answer = await http.post(
            "data/search/", json={"query": query}, headers={"X-TZ-Offset": offset}
        )
        return {hit["id"] for hit in answer.json()["data"]}

    assert lead.id in await created_today("-5")
    assert lead.id not in await created_today("0")
    renewal = custom_field(sb, "Renewal Date")
    lead.custom[renewal.id] = "2025-03-04"
    on_day = lead_and(
        fc(
            custom(renewal.id),
            {
                "type": "moment_range",
                "on_or_after": _day("2025-03-04"),
                "before": _day("2025-03-04", "end"),
            },
        )
    )
    for offset in ("-11", "0", "5.5", "14"):
        answer = await http.post(
            "data/search/", json={"query": on_day}, headers={"X-TZ-Offset": offset}
        )
        assert lead.id in {hit["id"] for hit in answer.json()["data"]}, offset


@pytest.mark.parametrize("offset", ["EST", "-4:00", "15", "nan", ""])
async def test_a_bad_x_tz_offset_is_a_400(http: httpx.AsyncClient, offset: str) -> None:
    answer = await http.post(
        "data/search/", json={"query": LEAD_QUERY}, headers={"X-TZ-Offset": offset}
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "errors": [],
            "field-errors": {"X-TZ-Offset": "Must be a UTC offset in hours, such as -4 or 5.5."},
        },
    )
