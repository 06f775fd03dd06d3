"""`get_lead`'s sequence subscriptions and `search_leads`' pages, through a real MCP client
against the sandbox: what the model sees, what Close is asked, and every result small."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.tokens import count_tokens
from tests.harness import MODES, Harness, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.harness(toolsets="search")]

BY_NAME = ["display_name"]
REPO = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=60)
async def test_get_lead_shows_its_subscriptions_by_sequence_name(h: Harness) -> None:
    store = h.sandbox.store
    sub = next(iter(store.subscriptions.values()))
    got = await h.call("get_lead", {"lead_id": sub.lead_id})
    mine = [s for s in store.subscriptions.values() if s.lead_id == sub.lead_id]
    assert got["subscriptions"] == [
        {"sequence": store.sequences[s.sequence_id].name, "status": s.status,
         "contact_id": s.contact_id}
        for s in mine
    ]  # fmt: skip
    assert got["subscriptions_total"] == len(mine) >= 1
    subs = [r for r in h.sandbox.requests if r.path == "/api/v1/sequence_subscription/"]
    assert [r.query for r in subs] == [
        {"lead_id": sub.lead_id, "_fields": "id,sequence_id,contact_id,status", "_skip": "0",
         "_limit": "200"}
    ]  # fmt: skip
    without = next(lead for lead in store.leads.values() if lead.id not in {
        s.lead_id for s in store.subscriptions.values()})  # fmt: skip
    h.clear()
    plain = await h.call("get_lead", {"lead_id": without.id})
    assert (plain["subscriptions"], plain["subscriptions_total"]) == ([], 0)
    assert "/api/v1/sequence/" not in [r.path for r in h.sandbox.requests]  # no names needed


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


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=5)
async def test_lookup_s_query_lists_the_grammar_from_its_schema(h: Harness) -> None:
    schema = json.loads((REPO / "tool_schemas" / "s_query.schema.json").read_text())
    unions = {
        role: [b["if"]["properties"]["type"]["const"] for b in schema["$defs"][role]["allOf"]]
        for role in ("node", "field", "condition", "moment")
    }
    result = await h.call_raw("lookup", {"kind": "s_query"})
    got = result.structured_content
    assert got is not None
    forms = [(i["name"], i["id"]) for i in got["items"] if i["name"] != "object_type"]
    assert forms == [(role, kind) for role, kinds in unions.items() for kind in kinds]
    items = {(i["name"], i["id"]): i["details"] for i in got["items"]}
    assert items[("node", "field_condition")] == {"field": "field", "condition": "condition"}
    assert items[("moment", "offset")] == {
        "direction": "past|future",
        "moment": "moment",
        "offset": "{years|months|weeks|days|hours|minutes|seconds: integer}",
        "which_day_end?": "start|end",
    }
    assert items[("condition", "moment_range")]["on_or_after?"] == "moment or null"
    examples = schema["$defs"]["field_regular"]["examples"]
    assert items[("object_type", "activity.email")] == {
        "fields": [e["field_name"] for e in examples if e["object_type"] == "activity.email"]
    }
    assert got["total"] == len(got["items"])
    assert "negate: true" in got["note"]
    assert "crm_data_notice" not in got  # the grammar is not CRM data
    assert h.sandbox.requests == []  # nothing asked of Close
    tokens = count_tokens(text_of(result))
    print(f"\nlookup s_query: {len(got['items'])} items, {tokens} o200k tokens")
    assert tokens <= 1500
    moments = await h.call("lookup", {"kind": "s_query", "name": "moment"})
    assert [i["id"] for i in moments["items"]] == ["moment_range", *unions["moment"]]


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


@pytest.mark.harness(n_leads=5)
async def test_get_lead_lists_at_most_10_subscriptions_and_says_how_many(h: Harness) -> None:
    store = h.sandbox.store
    sub = next(iter(store.subscriptions.values()))
    for i in range(14):
        store.subscriptions[f"sub_more{i}"] = replace(sub, id=f"sub_more{i}")
    got = await h.call("get_lead", {"lead_id": sub.lead_id})
    mine = sum(s.lead_id == sub.lead_id for s in store.subscriptions.values())
    assert (len(got["subscriptions"]), got["subscriptions_total"]) == (10, mine)
