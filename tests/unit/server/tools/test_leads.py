"""`get_lead`'s sequence subscriptions and `search_leads`' pages, through a real MCP client
against the sandbox: what the model sees, what Close is asked, and every result small."""

from __future__ import annotations

import pytest

from bench.tokens import count_tokens
from tests.harness import MODES, Harness, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.harness(toolsets="search")]

BY_NAME = ["display_name"]


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
