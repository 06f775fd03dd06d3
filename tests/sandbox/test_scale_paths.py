"""The sandbox's paths for large organizations answer what the plain scans answered.

Selecting by lead id looks the ids up instead of testing every lead, job catch-ups index the
subscriptions, list pages render only their items and a cursor walk stops at Close's cap:
each is checked here against sets computed by hand from the store (no timing).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.sandbox import Sandbox, routes
from tests.ids import status_id
from tests.queries import lead_ids_condition, status_condition
from tests.sandbox.conftest import LEAD_QUERY

pytestmark = pytest.mark.anyio

JSON = dict[str, Any]


def id_term(ids: list[str], **extra: Any) -> JSON:
    """Leads by id, as `close_mcp.selection.nodes.lead_ids_node` selects them."""
    return {**lead_ids_condition(ids), **extra}


def status_is(sb: Sandbox, label: str) -> JSON:
    return status_condition(status_id(sb, label))


async def ids_of(http: httpx.AsyncClient, query: JSON) -> set[str]:
    answer = await http.post("data/search/", json={"query": query, "_limit": 200})
    assert answer.status_code == 200, answer.text
    return {hit["id"] for hit in answer.json()["data"]}


async def test_selecting_by_id_matches_exactly_the_named_leads(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    every = list(sb.store.leads)
    named = every[:40:3]
    qualified = {i for i in named if sb.store.leads[i].status_id == status_id(sb, "Qualified")}
    assert 0 < len(qualified) < len(named), "pick leads that split on the status"
    both = [LEAD_QUERY, id_term([*named, "lead_missing"])]
    assert await ids_of(http, {"type": "and", "queries": both}) == set(named)
    with_status = {"type": "and", "queries": [*both, status_is(sb, "Qualified")]}
    assert await ids_of(http, with_status) == qualified
    nested = {"type": "and", "queries": [LEAD_QUERY, {"type": "and", "queries": both}]}
    assert await ids_of(http, nested) == set(named)
    two_lists = {"type": "and", "queries": [id_term(named), id_term(every[:10])]}
    assert await ids_of(http, two_lists) == set(named) & set(every[:10])
    negated = {"type": "and", "queries": [LEAD_QUERY, id_term(named, negate=True)]}
    assert await ids_of(http, negated) == set(every[:200]) - set(named)
    either = {"type": "or", "queries": [id_term(named), status_is(sb, "Qualified")]}
    expected = set(named) | {
        lead.id for lead in sb.store.leads.values() if lead.status_id == status_id(sb, "Qualified")
    }
    assert await ids_of(http, either) == expected


async def test_an_edit_by_ids_edits_only_those_leads(sb: Sandbox, http: httpx.AsyncClient) -> None:
    named = list(sb.store.leads)[5:25]
    before = {lead.id: lead.status_id for lead in sb.store.leads.values()}
    canceled = status_id(sb, "Canceled")
    query = {"type": "and", "queries": [LEAD_QUERY, id_term(named)]}
    body = {"s_query": query, "type": "set_lead_status", "lead_status_id": canceled}
    job = (await http.post("bulk_action/edit/", json=body)).json()
    sb.advance(60)
    done = (await http.get(f"bulk_action/edit/{job['id']}/")).json()
    assert (done["status"], done["n_leads"]) == ("done", len(named))
    after = {lead.id: lead.status_id for lead in sb.store.leads.values()}
    assert after == {i: canceled if i in named else status for i, status in before.items()}


async def test_a_delete_removes_the_subscriptions_of_its_leads_only(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    subscribed = list(dict.fromkeys(s.lead_id for s in sb.store.subscriptions.values()))
    doomed = subscribed[:3]
    kept = {k: s.lead_id for k, s in sb.store.subscriptions.items() if s.lead_id not in doomed}
    query = {"type": "and", "queries": [LEAD_QUERY, id_term(doomed)]}
    await http.post("bulk_action/delete/", json={"s_query": query})
    sb.advance(60)
    await http.get("me/")  # jobs catch up with the clock on a request
    assert {k: s.lead_id for k, s in sb.store.subscriptions.items()} == kept
    assert not set(doomed) & set(sb.store.leads)


async def test_subscribing_twice_in_one_catch_up_subscribes_each_contact_once(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    seq_id = list(sb.store.sequences)[1]  # the seeded subscriptions are all in the first
    account = next(iter(sb.store.email_accounts.values()))
    body = {
        "s_query": LEAD_QUERY,
        "action_type": "subscribe",
        "sequence_id": seq_id,
        "sender_account_id": account.id,
        "sender_name": "Sandra",
        "sender_email": account.identities[0]["email"],
        "contact_preference": "contact",
    }
    await http.post("bulk_action/sequence_subscription/", json=body)
    await http.post("bulk_action/sequence_subscription/", json=body)
    sb.advance(3600)
    await http.get("me/")
    pairs = [(s.contact_id, s.sequence_id) for s in sb.store.subscriptions.values()]
    assert len(pairs) == len(set(pairs))
    with_email = {c.id for lead in sb.store.leads.values() for c in lead.contacts if c.emails}
    assert {c for c, s in pairs if s == seq_id} == with_email


async def test_list_pages_render_the_same_items(sb: Sandbox, http: httpx.AsyncClient) -> None:
    page = (await http.get("lead/", params={"_skip": 40, "_limit": 25})).json()
    expected = [lead.to_json(sb.store) for lead in list(sb.store.leads.values())[40:65]]
    assert page == {"data": expected, "has_more": True}
    last = (await http.get("lead/", params={"_skip": 90, "_limit": 25})).json()
    assert (len(last["data"]), last["has_more"]) == (10, False)
    seq_id = next(iter(sb.store.subscriptions.values())).sequence_id
    params = {"sequence_id": seq_id, "_limit": 5}
    subs = (await http.get("sequence_subscription/", params=params)).json()
    firsts = [
        s.to_json(sb.store.org)
        for s in list(sb.store.subscriptions.values())
        if s.sequence_id == seq_id
    ][:5]
    assert subs == {"data": firsts, "has_more": True}


async def test_search_hits_carry_contacts_only_when_asked(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    lead = next(iter(sb.store.leads.values()))
    query = {"type": "and", "queries": [LEAD_QUERY, id_term([lead.id])]}
    for fields in (["id", "name"], ["id", "contacts"]):
        body = {"query": query, "_fields": {"lead": fields}}
        hit = (await http.post("data/search/", json=body)).json()["data"][0]
        full = (await http.get(f"lead/{lead.id}/")).json()
        assert hit == {"__object_type": "lead", **{name: full[name] for name in fields}}


async def test_a_cursor_walk_ends_at_the_cap(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes, "MAX_WALK", 45)
    body: JSON = {"query": LEAD_QUERY, "_limit": 20, "include_counts": True}
    seen: list[str] = []
    cursor = None
    while True:
        answer = (await http.post("data/search/", json={**body, "cursor": cursor})).json()
        assert answer["count"] == {"total": 100}
        seen += [hit["id"] for hit in answer["data"]]
        cursor = answer["cursor"]
        if cursor is None:
            break
    newest = sorted(sb.store.leads.values(), key=lambda lead: lead.date_created, reverse=True)
    assert seen == [lead.id for lead in newest[:45]]
