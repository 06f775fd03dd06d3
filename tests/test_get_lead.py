"""`get_lead` through a real MCP client, in both protocol eras, against the sandbox: a lead
with its status, contacts and subscriptions as the store holds it, the requests Close gets,
and clear errors."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from close_mcp.sandbox.store import Lead, Store, iso
from tests.harness import MODES, Harness
from tests.read_tools import N_LEADS, NOTICE, label

# Only the read toolsets: the same tools, a faster server build.
pytestmark = [pytest.mark.anyio, pytest.mark.harness(toolsets="search,jobs")]


def lead_view(store: Store, lead: Lead) -> dict[str, Any]:
    """A lead as get_lead should show it, from the store's record."""
    return {
        "id": lead.id,
        "display_name": lead.display_name,
        "status_label": label(store, lead),
        "status_id": lead.status_id,
        "date_created": iso(lead.date_created),
        "date_updated": iso(lead.date_updated),
        "contacts": [
            {
                "id": contact.id,
                "name": contact.name or None,
                "title": contact.title or None,
                "emails": [e["email"] for e in contact.emails],
                "phones": [p["phone"] for p in contact.phones],
            }
            for contact in lead.contacts
        ],
        "contacts_total": len(lead.contacts),
        "subscriptions": [
            {
                "sequence": store.sequences[s.sequence_id].name,
                "status": s.status,
                "contact_id": s.contact_id,
            }
            for s in store.subscriptions.values()
            if s.lead_id == lead.id
        ],
        "subscriptions_total": sum(s.lead_id == lead.id for s in store.subscriptions.values()),
        "crm_data_notice": NOTICE,
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_get_lead_shows_status_contacts_emails_and_phones(h: Harness) -> None:
    store = h.sandbox.store
    lead = max(
        store.leads.values(),
        key=lambda lead: (
            len(lead.contacts) > 1,
            any(c.emails for c in lead.contacts),
            any(c.phones for c in lead.contacts),
        ),
    )
    assert len(lead.contacts) > 1
    assert any(c.emails for c in lead.contacts)
    assert any(c.phones for c in lead.contacts)
    got = await h.call("get_lead", {"lead_id": lead.id})
    assert got == lead_view(store, lead)
    assert [(r.method, r.path) for r in h.sandbox.requests] == [
        ("GET", f"/api/v1/lead/{lead.id}/"),
        ("GET", "/api/v1/sequence_subscription/"),
        *([("GET", "/api/v1/sequence/")] if got["subscriptions"] else []),  # names, once
    ]
    assert h.writes() == []


@pytest.mark.harness(n_leads=5)
async def test_get_lead_of_an_unknown_or_malformed_id_is_a_clear_tool_error(h: Harness) -> None:
    message = await h.error("get_lead", {"lead_id": "lead_doesnotexist"})
    assert message == (
        "lead_id: Close has no lead 'lead_doesnotexist' (or this key cannot see it); find "
        "leads with search_leads"
    )
    h.clear()
    malformed = await h.error("get_lead", {"lead_id": "cont_123"})
    assert "lead_id" in malformed
    assert h.sandbox.requests == []


@pytest.mark.harness(n_leads=5)
async def test_get_lead_lists_at_most_50_contacts_and_says_how_many_there_are(
    h: Harness,
) -> None:
    store = h.sandbox.store
    lead = next(iter(store.leads.values()))
    template = lead.contacts[0]
    lead.contacts = [
        replace(template, id=f"cont_many{i}", name=f"Person {i}", emails=[], phones=[])
        for i in range(60)
    ]
    got = await h.call("get_lead", {"lead_id": lead.id})
    assert got["contacts_total"] == 60
    assert [c["id"] for c in got["contacts"]] == [f"cont_many{i}" for i in range(50)]


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


@pytest.mark.harness(n_leads=5)
async def test_get_lead_lists_at_most_10_subscriptions_and_says_how_many(h: Harness) -> None:
    store = h.sandbox.store
    sub = next(iter(store.subscriptions.values()))
    for i in range(14):
        store.subscriptions[f"sub_more{i}"] = replace(sub, id=f"sub_more{i}")
    got = await h.call("get_lead", {"lead_id": sub.lead_id})
    mine = sum(s.lead_id == sub.lead_id for s in store.subscriptions.values())
    assert (len(got["subscriptions"]), got["subscriptions_total"]) == (10, mine)
