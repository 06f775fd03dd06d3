"""close-mcp against the strict sandbox (issue 17): page sizes, connected accounts that are not
email accounts, and bulk email to every address.

Each test fails on the code before issue 17: a page of more than Close's maximum was asked
for (a 400 in Close), a zoom account was offered as a sender, `contact_preference: all` was
refused by the tool's schema.
"""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.clock import FakeClock
from close_mcp.close.client import CloseClient
from close_mcp.sandbox import SANDBOX_API_KEY, Sandbox
from close_mcp.server.runtime import SANDBOX_BASE_URL
from tests.harness import Harness
from tests.ids import status_id, template_id
from tests.queries import status_query

pytestmark = pytest.mark.anyio

N_LEADS = 40


def zoom_id(h: Harness) -> str:
    (account_id,) = h.sandbox.store.other_accounts
    return account_id


async def test_pages_never_exceed_closes_maximum() -> None:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=450, clock=clock)
    async with CloseClient(
        SANDBOX_API_KEY, SANDBOX_BASE_URL, transport=sandbox.transport(), clock=clock
    ) as client:
        leads = await client.list_all("lead/", page_size=1000)
        tree = {"type": "object_type", "object_type": "lead"}
        page = await client.search_page(tree, limit=500)
    assert [lead["id"] for lead in leads] == list(sandbox.store.leads)
    assert [r.query for r in sandbox.requests[:3]] == [
        {"_skip": "0", "_limit": "200"},
        {"_skip": "200", "_limit": "200"},
        {"_skip": "400", "_limit": "200"},
    ]
    assert sandbox.requests[3].json["_limit"] == 200
    assert len(page["data"]) == 200
    assert all(r.status == 200 for r in sandbox.requests)


@pytest.mark.harness(n_leads=N_LEADS)
async def test_only_email_accounts_are_offered_as_senders(h: Harness) -> None:
    store = h.sandbox.store
    listed = await h.call("lookup", {"kind": "email_accounts"})
    ids = [item["id"] for item in listed["items"]]
    assert ids == list(store.email_accounts)
    assert zoom_id(h) not in ids
    lead = next(iter(store.leads.values()))
    error = await h.error(
        "send_email",
        {"lead_id": lead.id, "subject": "x", "body_text": "y", "email_account": zoom_id(h)},
    )
    assert error == (
        f"email_account: No email account has the id {zoom_id(h)!r}. "
        'Use lookup(kind="email_accounts") to list them.'
    )
    error = await h.error(
        "create_bulk_sequence_subscription",
        {
            "filter": {"lead_status": "Qualified"},
            "action_type": "subscribe",
            "sequence": "Onboarding",
            "sender_account": zoom_id(h),
        },
    )
    assert error.startswith(f"sender_account: No email account has the id {zoom_id(h)!r}")
    assert h.writes() == []


@pytest.mark.harness(n_leads=N_LEADS)
async def test_bulk_email_to_every_address(h: Harness) -> None:
    sb = h.sandbox
    args: dict[str, Any] = {
        "filter": {"lead_status": "Qualified"},
        "template": "Intro",
        "contact_preference": "all",
    }
    first = await h.call("create_bulk_email", args)
    assert first["preview"]["notes"][-1].endswith(
        "the sandbox reads it as every email address of every contact)."
    )
    done = await h.call(
        "create_bulk_email", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "submitted"
    body = {
        "s_query": status_query(status_id(sb, "Qualified")),
        "send_done_email": True,
        "template_id": template_id(sb, "Intro"),
        "contact_preference": "all",
    }
    assert [(r.path, r.json) for r in h.writes()] == [("/api/v1/bulk_action/email/", body)]
    qualified = [
        lead for lead in sb.store.leads.values() if lead.status_id == status_id(sb, "Qualified")
    ]
    addresses = sorted(e["email"] for lead in qualified for c in lead.contacts for e in c.emails)
    h.clock.advance(60)
    waited = await h.call("wait_for_bulk_job", {"job_id": done["job"]["id"]})
    assert waited["job"]["n_objects"] == len(addresses)
    sent = [e["to"][0] for e in sb.store.emails.values()]
    assert sorted(sent) == addresses
