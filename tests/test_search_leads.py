"""`search_leads` through a real MCP client, in both protocol eras, against the sandbox: the
tree, total and sample of each kind of filter, results_limit and sort, the clock, and errors.

Expected answers are computed with plain Python over the sandbox's store (never through
the code under test): which leads match, in which order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.tokens import count_tokens
from close_mcp.errors import ERROR_CRM_NOTICE
from close_mcp.sandbox.store import Lead, Store
from tests.harness import MODES, Harness, text_of
from tests.ids import field_id, status_id
from tests.queries import (
    BY_CREATED,
    HAS_EMAIL,
    ago,
    created_from,
    custom,
    fc,
    lead_and,
    lead_ids_query,
    local,
    name_has,
    negated,
    status_condition,
    utc,
)
from tests.read_tools import N_LEADS, NOTICE, label

# Only the read toolsets: the same tools, a faster server build.
pytestmark = [pytest.mark.anyio, pytest.mark.harness(toolsets="search,jobs")]

BY_NAME = ["display_name"]


LEAD: dict[str, Any] = {"type": "object_type", "object_type": "lead"}


PREFIX = "Error executing tool {}: "


TODAY = "2026-01-01"  # the harness's FakeClock starts at 2026-01-01T00:00:00Z


class AnyHandle:
    """Equal to any selection handle; what one names is pinned in test_selection_handles.py."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(r"sel_[0-9a-f]{32}", other) is not None

    def __repr__(self) -> str:
        return "<a sel_ handle>"


HANDLE = AnyHandle()


# -- plain-Python views of the store -------------------------------------------------------


def words(*texts: str) -> set[str]:
    return {w for text in texts for w in re.findall(r"\w+", text.casefold())}


def has_email(lead: Lead) -> bool:
    return any(contact.emails for contact in lead.contacts)


def full_text(lead: Lead) -> set[str]:
    texts = [lead.name]
    for contact in lead.contacts:
        texts += [contact.name, contact.title, *(e["email"] for e in contact.emails)]
    return words(*texts)


def sample_of(store: Store, leads: list[Lead], n: int) -> list[dict[str, Any]]:
    return [
        {"id": lead.id, "display_name": lead.display_name, "status_label": label(store, lead)}
        for lead in leads[:n]
    ]


def newest_first(leads: list[Lead]) -> list[Lead]:
    return sorted(leads, key=lambda lead: lead.date_created, reverse=True)


def status_node(*ids: str) -> dict[str, Any]:
    return status_condition(*ids)


def custom_node(field_id: str, condition: dict[str, Any]) -> dict[str, Any]:
    return fc(custom(field_id), condition)


def has_email_node(negate: bool) -> dict[str, Any]:
    return negated(HAS_EMAIL) if negate else dict(HAS_EMAIL)


def and_lead(*nodes: dict[str, Any]) -> dict[str, Any]:
    return lead_and(*nodes)


# -- search_leads cases ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Arguments, the exact expected tree, and the matching rule, all from the store."""

    id: str
    arguments: Callable[[Store], dict[str, Any]]
    tree: Callable[[Store], dict[str, Any]]
    matches: Callable[[Store, Lead], bool]


def _first_ids(store: Store) -> list[str]:
    return list(store.leads)[3:6]


MAY_2025 = datetime(2025, 6, 1, tzinfo=UTC)


UI_COPIED_RANGE = {
    "type": "field_condition",
    "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"},
    "condition": {
        "type": "moment_range",
        "on_or_after": None,
        "before": {"type": "fixed_local_date", "value": "2025-06-01", "which": "start"},
    },
}


JAN_2025_10H = datetime(2025, 1, 1, 10, tzinfo=UTC)


CASES = [
    Case(
        "lead_status",
        lambda s: {"filter": {"lead_status": "Qualified"}},
        lambda s: and_lead(status_node(status_id(s, "Qualified"))),
        lambda s, lead: lead.status_id == status_id(s, "Qualified"),
    ),
    Case(
        "lead_status_list_any_case",
        lambda s: {"filter": {"lead_status": ["qualified", "Customer"]}},
        lambda s: and_lead(status_node(status_id(s, "Qualified"), status_id(s, "Customer"))),
        lambda s, lead: label(s, lead) in ("Qualified", "Customer"),
    ),
    Case(
        "choice_field_case_fixed",
        lambda s: {"filter": {"custom_fields": {"Industry": "software"}}},
        lambda s: and_lead(
            custom_node(field_id(s, "Industry"), {"type": "term", "values": ["Software"]})
        ),
        lambda s, lead: lead.custom.get(field_id(s, "Industry")) == "Software",
    ),
    Case(
        # Shared fields are missing from /custom_field/lead/; the schema endpoint lists them.
        "shared_custom_field",
        lambda s: {"filter": {"custom_fields": {"Region": "emea"}}},
        lambda s: and_lead(
            custom_node(field_id(s, "Region"), {"type": "term", "values": ["EMEA"]})
        ),
        lambda s, lead: lead.custom.get(field_id(s, "Region")) == "EMEA",
    ),
    Case(
        "multi_choice_field_any_of",
        lambda s: {"filter": {"custom_fields": {"Products": ["CRM", "API"]}}},
        lambda s: and_lead(
            custom_node(field_id(s, "Products"), {"type": "term", "values": ["CRM", "API"]})
        ),
        lambda s, lead: bool({"CRM", "API"} & set(lead.custom.get(field_id(s, "Products"), []))),
    ),
    Case(
        "created_after_date",
        lambda s: {"filter": {"created_after": "2025-06-01"}},
        lambda s: and_lead(created_from(local("2025-06-01"))),
        lambda s, lead: lead.date_created >= MAY_2025,
    ),
    Case(
        "has_email_true",
        lambda s: {"filter": {"has_email": True}},
        lambda s: and_lead(has_email_node(negate=False)),
        lambda s, lead: has_email(lead),
    ),
    Case(
        "has_email_false",
        lambda s: {"filter": {"has_email": False}},
        lambda s: and_lead(has_email_node(negate=True)),
        lambda s, lead: not has_email(lead),
    ),
    Case(
        "name",
        lambda s: {"filter": {"name": "Acme"}},
        lambda s: and_lead(name_has("Acme")),
        lambda s, lead: "acme" in words(lead.name),
    ),
    Case(
        "text",
        lambda s: {"filter": {"text": "Anna"}},
        lambda s: and_lead({"type": "text", "mode": "full_words", "value": "Anna"}),
        lambda s, lead: "anna" in full_text(lead),
    ),
    Case(
        "lead_ids",
        lambda s: {"filter": {"lead_ids": _first_ids(s)}},
        lambda s: lead_ids_query(_first_ids(s)),
        lambda s, lead: lead.id in _first_ids(s),
    ),
    Case(
        "smart_view_inlined",
        lambda s: {"filter": {"smart_view": "Qualified leads"}},
        lambda s: and_lead(
            next(v for v in s.saved_searches.values() if v.name == "Qualified leads").s_query[
                "query"
            ]
        ),
        lambda s, lead: label(s, lead) == "Qualified",
    ),
    Case(
        "combined",
        lambda s: {
            "filter": {
                "lead_status": "Customer",
                "created_after": "2025-01-01T12:00:00+02:00",
                "has_email": True,
            }
        },
        lambda s: and_lead(
            status_node(status_id(s, "Customer")),
            created_from(utc("2025-01-01T10:00:00+00:00")),
            has_email_node(negate=False),
        ),
        lambda s, lead: (
            label(s, lead) == "Customer" and lead.date_created >= JAN_2025_10H and has_email(lead)
        ),
    ),
    Case(
        "raw_s_query_gets_lead_node",
        lambda s: {
            "s_query": custom_node(field_id(s, "Deal Size"), {"type": "number_range", "gte": 50000})
        },
        lambda s: and_lead(
            custom_node(field_id(s, "Deal Size"), {"type": "number_range", "gte": 50000})
        ),
        lambda s, lead: lead.custom.get(field_id(s, "Deal Size"), 0) >= 50000,
    ),
    Case(
        "raw_s_query_kept_as_is",
        lambda s: {
            "s_query": and_lead(
                custom_node(field_id(s, "Lead Source"), {"type": "exists"}),
                {"negate": True, **status_node(status_id(s, "Bad Fit"))},
            )
        },
        lambda s: and_lead(
            custom_node(field_id(s, "Lead Source"), {"type": "exists"}),
            {"negate": True, **status_node(status_id(s, "Bad Fit"))},
        ),
        lambda s, lead: field_id(s, "Lead Source") in lead.custom and label(s, lead) != "Bad Fit",
    ),
    Case(
        # As Close's UI copies a filter: the bounds not used are null, and mean no bound.
        "s_query_with_null_bounds",
        lambda s: {"s_query": and_lead(UI_COPIED_RANGE)},
        # the answer leaves nulls out (server.compact); Close received the tree as given
        lambda s: and_lead(
            {
                **UI_COPIED_RANGE,
                "condition": {k: v for k, v in UI_COPIED_RANGE["condition"].items() if v},
            }
        ),
        lambda s, lead: lead.date_created < MAY_2025,
    ),
    Case(
        "all_leads_allowed",
        lambda s: {"s_query": {"type": "match_all"}, "allow_all_leads": True},
        lambda s: and_lead({"type": "match_all"}),
        lambda s, lead: True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_search_leads_tree_total_and_sample_match_the_sandbox(case: Case, h: Harness) -> None:
    store = h.sandbox.store
    result = await h.call("search_leads", {**case.arguments(store), "sample_size": 4})
    matching = newest_first([lead for lead in store.leads.values() if case.matches(store, lead)])
    assert result == {
        "s_query": case.tree(store),
        "results_limit": None,
        "sort": None,
        "total": len(matching),
        "sample": sample_of(store, matching, 4),
        "next_cursor": cursor_if(result, len(matching) > 4),
        "matches_every_lead": len(matching) == N_LEADS,
        "today": TODAY,
        "selection": HANDLE,
        "crm_data_notice": NOTICE,
    }
    assert 0 < len(matching) < N_LEADS or case.id in ("lead_ids", "all_leads_allowed")
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_search_leads_results_limit_caps_matched_and_sort_orders_the_sample(
    h: Harness,
) -> None:
    store = h.sandbox.store
    result = await h.call(
        "search_leads",
        {
            "filter": {"has_email": True},
            "results_limit": 7,
            "sort": BY_CREATED,
            "sample_size": 3,
        },
    )
    matching = sorted(
        (lead for lead in store.leads.values() if has_email(lead)),
        key=lambda lead: lead.date_created,
    )
    assert result == {
        "s_query": and_lead(has_email_node(negate=False)),
        "results_limit": 7,
        "sort": BY_CREATED,
        "total": len(matching),
        "sample": sample_of(store, matching, 3),
        "next_cursor": cursor_if(result, min(len(matching), 7) > 3),
        "matches_every_lead": False,
        "today": TODAY,
        "selection": HANDLE,
        "crm_data_notice": NOTICE,
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_search_leads_sample_never_shows_leads_beyond_results_limit(h: Harness) -> None:
    store = h.sandbox.store
    result = await h.call(
        "search_leads", {"filter": {"has_email": True}, "results_limit": 2, "sample_size": 5}
    )
    matching = newest_first([lead for lead in store.leads.values() if has_email(lead)])
    assert len(matching) > 2
    assert (result["results_limit"], result["sample"]) == (2, sample_of(store, matching, 2))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_search_leads_sample_size_zero_still_counts(h: Harness) -> None:
    result = await h.call("search_leads", {"filter": {"lead_status": "Canceled"}, "sample_size": 0})
    store = h.sandbox.store
    total = sum(1 for lead in store.leads.values() if label(store, lead) == "Canceled")
    # No lead shown, no CRM text: no notice.
    assert result == {
        "s_query": result["s_query"],
        "results_limit": None,
        "sort": None,
        "total": total,
        "sample": [],
        "next_cursor": None,
        "matches_every_lead": False,
        "today": TODAY,
        "selection": HANDLE,
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_created_within_is_read_against_the_clock_when_the_query_runs(h: Harness) -> None:
    """`created_within: 90d` becomes Close's `now`-relative moment: the same selection matches
    fewer leads a month later, and the result says which day the server thinks it is."""
    store = h.sandbox.store

    def created_within(days: int) -> list[Lead]:
        """From the start of the day (UTC here) `days` days ago: `which_day_end: start`."""
        cutoff = datetime.fromtimestamp(h.clock.time(), tz=UTC) - timedelta(days=days)
        cutoff = cutoff.replace(hour=0, minute=0, second=0, microsecond=0)
        return newest_first([lead for lead in store.leads.values() if lead.date_created >= cutoff])

    arguments = {"filter": {"created_within": "90d"}, "sample_size": 3}
    now = await h.call("search_leads", arguments)
    recent = created_within(90)
    assert 0 < len(recent) < N_LEADS
    assert now == {
        "s_query": and_lead(created_from(ago(days=90))),
        "results_limit": None,
        "sort": None,
        "total": len(recent),
        "sample": sample_of(store, recent, 3),
        "next_cursor": cursor_if(now, len(recent) > 3),
        "matches_every_lead": False,
        "today": TODAY,
        "selection": HANDLE,
        "crm_data_notice": NOTICE,
    }
    h.clock.advance(30 * 86400)
    later = await h.call("search_leads", arguments)
    fewer = created_within(90)
    assert len(fewer) < len(recent)
    assert (later["today"], later["s_query"]) == ("2026-01-31", now["s_query"])
    assert (later["total"], later["sample"]) == (len(fewer), sample_of(store, fewer, 3))
    assert h.writes() == []


@pytest.mark.harness(n_leads=N_LEADS)
async def test_created_within_with_created_after_is_refused_before_close_is_asked(
    h: Harness,
) -> None:
    # The exact wording (path first, no validator noise) is issue 18's error-text work.
    message = await h.error(
        "search_leads", {"filter": {"created_within": "P90D", "created_after": "2025-10-01"}}
    )
    assert "filter" in message
    assert (
        "created_within (P90D) and created_after (2025-10-01) both set where the range "
        "starts; give only one of them"
    ) in message
    message = await h.error("search_leads", {"filter": {"updated_within": "90 days"}})
    assert "updated_within" in message
    assert (
        "'90 days' is not a duration; use a number of hours, days or weeks like 12h, 90d, 2w, "
        "or an ISO-8601 duration like P90D, PT12H, P1Y"
    ) in message
    assert h.sandbox.requests == []


def cursor_if(result: dict[str, Any], more: bool) -> str | None:
    """The result's next_cursor, which must be there exactly when more leads match than it
    shows (the paging tests at the end of this file follow cursors)."""
    cursor = result["next_cursor"]
    assert (cursor is not None) == more, cursor
    return cursor if isinstance(cursor, str) else None


def _errors(store: Store) -> list[tuple[dict[str, Any], str]]:
    qualified = status_id(store, "Qualified")
    one_of = (
        "pass exactly one of `filter` (friendly fields) or `s_query` (a raw Close query tree); "
    )
    return [
        ({"filter": {"name": "Acme"}, "s_query": {"type": "match_all"}}, one_of + "got both"),
        ({}, one_of + "got neither"),
        ({"sample_size": 3}, one_of + "got neither"),
        (
            {"filter": {"lead_status": "Qualifed"}},
            f"filter.lead_status: No lead status named 'Qualifed'. Closest: 'Qualified' "
            f'({qualified}). Use lookup(kind="lead_statuses") to list them. ({ERROR_CRM_NOTICE})',
        ),
        (
            {"filter": {"lead_status": ["Customer", "Custmer"]}},
            f"filter.lead_status[1]: No lead status named 'Custmer'. Closest: 'Customer' "
            f'({status_id(store, "Customer")}). Use lookup(kind="lead_statuses") to list them. '
            f"({ERROR_CRM_NOTICE})",
        ),
        (
            {
                "s_query": {
                    "type": "and",
                    "queries": [LEAD, {"type": "text", "mode": "bad", "value": "x"}],
                }
            },
            "s_query.queries[1].mode: 'bad' is not one of 'full_words', 'phrase', "
            "'beginning_of_words', 'exact_value'",
        ),
        (
            {"s_query": {"type": "match_all"}},
            "s_query: the selection matches every lead in the organization; pass "
            "`allow_all_leads: true` if that is really meant",
        ),
        (
            {"s_query": LEAD},
            "s_query: the selection matches every lead in the organization; pass "
            "`allow_all_leads: true` if that is really meant",
        ),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_search_leads_errors_say_what_to_fix_and_write_nothing(h: Harness) -> None:
    for arguments, message in _errors(h.sandbox.store):
        error = await h.error("search_leads", arguments)
        assert error.removeprefix(PREFIX.format("search_leads")) == message, arguments
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_renamed_status_is_seen_on_the_next_call(h: Harness) -> None:
    store = h.sandbox.store
    qualified = status_id(store, "Qualified")
    before = await h.call("search_leads", {"filter": {"lead_status": "Qualified"}})
    store.statuses[qualified].label = "Hot"
    after = await h.call("search_leads", {"filter": {"lead_status": "Hot"}})
    assert after["s_query"] == before["s_query"] == and_lead(status_node(qualified))
    assert after["total"] == before["total"]
    assert {item["status_label"] for item in after["sample"]} == {"Hot"}
    listed = await h.call("lookup", {"kind": "lead_statuses"})
    assert {"id": qualified, "name": "Hot", "details": {}} in listed["items"]
    message = await h.error("search_leads", {"filter": {"lead_status": "Qualified"}})
    assert "No lead status named 'Qualified'" in message


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=1000)
async def test_search_leads_lists_1000_leads_in_pages_that_stay_small(h: Harness) -> None:
    store = h.sandbox.store
    args = {"filter": {"created_after": "2000-01-01"}, "sort": BY_NAME, "sample_size": 200}
    seen: list[str] = []
    calls = 0
    largest = 0
    cursor: str | None = None
    while True:
        result = await h.call_raw(
            "search_leads", {**args, **({"cursor": cursor} if cursor else {})}
        )
        calls += 1
        largest = max(largest, count_tokens(text_of(result)))
        got = result.structured_content
        assert got is not None
        assert got["total"] == 1000
        seen += [lead["id"] for lead in got["sample"]]
        cursor = got["next_cursor"]
        if cursor is None:
            break
    expected = sorted(store.leads.values(), key=lambda lead: lead.display_name.casefold())
    assert len(seen) == 1000
    assert sorted(seen) == sorted(store.leads)  # every lead once
    assert [store.leads[i].display_name for i in seen] == [x.display_name for x in expected]
    assert largest <= 1500
    print(f"\n1,000 leads: {calls} calls, largest result {largest} o200k tokens")
    assert calls <= 36
    print(f"\n1,000 leads: {calls} calls, largest result {largest} o200k tokens")


@pytest.mark.harness(n_leads=60)
async def test_a_cursor_with_another_selection_is_a_clear_error(h: Harness) -> None:
    first = await h.call("search_leads", {"filter": {"lead_status": "Potential"},
                                          "sample_size": 2})  # fmt: skip
    assert first["next_cursor"]
    h.clear()
    message = await h.error(
        "search_leads", {"filter": {"lead_status": "Qualified"}, "cursor": first["next_cursor"]}
    )
    assert message.startswith("cursor: it belongs to another selection")
    assert [r.path for r in h.sandbox.requests if r.path.endswith("data/search/")] == []


@pytest.mark.harness(n_leads=60)
async def test_pages_stop_at_results_limit_and_total_counts_every_match(h: Harness) -> None:
    args = {"filter": {"created_after": "2000-01-01"}, "sort": BY_NAME, "results_limit": 7}
    first = await h.call("search_leads", {**args, "sample_size": 5})
    assert (first["total"], len(first["sample"])) == (60, 5)
    rest = await h.call("search_leads", {**args, "sample_size": 5, "cursor": first["next_cursor"]})
    assert (len(rest["sample"]), rest["next_cursor"]) == (2, None)
    store = h.sandbox.store
    names = sorted(lead.display_name.casefold() for lead in store.leads.values())[:7]
    shown = [s["display_name"].casefold() for s in first["sample"] + rest["sample"]]
    assert shown == names


@pytest.mark.harness(n_leads=5)
async def test_a_bad_s_query_type_names_the_node_and_points_to_the_grammar(h: Harness) -> None:
    tree = {"type": "and", "queries": [{"type": "object_type", "object_type": "lead"},
                                       {"type": "activity", "kind": "email"}]}  # fmt: skip
    message = await h.error("search_leads", {"s_query": tree})
    assert message == (
        "s_query.queries[1].type: 'activity' is not one of 'and', 'or', 'object_type', "
        "'field_condition', 'has_related', 'match_all', 'saved_search', 'text' (node types; "
        "lookup kind s_query shows their keys)"
    )
    assert h.sandbox.requests == []


@pytest.mark.harness(n_leads=60)
async def test_a_cursor_still_works_after_closes_own_expired(h: Harness) -> None:
    """A model may come back minutes later: Close's cursor lives 30 s, the page goes on."""
    args = {"filter": {"created_after": "2000-01-01"}, "sort": BY_NAME, "sample_size": 10}
    first = await h.call("search_leads", args)
    h.clock.advance(300)
    second = await h.call("search_leads", {**args, "cursor": first["next_cursor"]})
    names = sorted(lead.display_name.casefold() for lead in h.sandbox.store.leads.values())
    shown = [s["display_name"].casefold() for s in first["sample"] + second["sample"]]
    assert shown == names[:20]
    searches = [r for r in h.sandbox.requests if r.path.endswith("data/search/")]
    expired = next(i for i, r in enumerate(searches) if r.status == 400)
    walk, page = searches[expired + 1 : expired + 3]  # walk past the 10 shown, then the page
    assert (walk.json["_limit"], walk.json.get("cursor"), page.json["_limit"]) == (10, None, 10)
