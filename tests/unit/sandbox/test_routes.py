"""The sandbox's email-activity and subscription lists, as strict as Close documents them:
only the documented filters (a 400 names any other, `_order_by` included), comma lists,
`activity_at` set when an email goes out; subscriptions need a sequence, contact or lead."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.sandbox import SANDBOX_API_KEY, Sandbox

pytestmark = pytest.mark.anyio


@pytest.fixture
async def env() -> AsyncIterator[tuple[Sandbox, FakeClock, httpx.AsyncClient]]:
    clock = FakeClock()
    sb = Sandbox(n_leads=30, clock=clock)
    async with httpx.AsyncClient(
        transport=sb.transport(),
        base_url="http://sandbox/api/v1/",
        auth=(SANDBOX_API_KEY, ""),
    ) as http:
        yield sb, clock, http


async def test_email_list_refuses_what_close_does_not_document(
    env: tuple[Sandbox, FakeClock, httpx.AsyncClient],
) -> None:
    _, _, http = env
    answer = await http.get("activity/email/", params={"lead_id": "lead_x", "_order_by": "-date"})
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "errors": [],
            "field-errors": {"_order_by": "Unknown parameter for listing email activities."},
        },
    )
    bad = await http.get("activity/email/", params={"activity_at__gte": "soon"})
    assert bad.json()["field-errors"] == {"activity_at__gte": "Not a valid date-time or date."}


async def test_email_list_filters_by_comma_lists_and_activity_at(
    env: tuple[Sandbox, FakeClock, httpx.AsyncClient],
) -> None:
    sb, clock, http = env
    a, b, c = list(sb.store.leads.values())[:3]
    made = {}
    for lead in (a, b, c):
        body = {"lead_id": lead.id, "status": "outbox", "sender": "s@x.example", "send_in": 10}
        made[lead.id] = (await http.post("activity/email/", json=body)).json()
        clock.advance(100)
    first = made[a.id]
    assert first["activity_at"] == first["date_created"]

    async def ids(**params: str) -> set[str]:
        answer = await http.get("activity/email/", params=params)
        assert answer.status_code == 200, answer.text
        return {e["id"] for e in answer.json()["data"]}

    assert await ids(lead_id=f"{a.id},{c.id}") == {made[a.id]["id"], made[c.id]["id"]}
    assert await ids(id__in=made[b.id]["id"], _type="Email") == {made[b.id]["id"]}
    assert await ids(lead_id=a.id, _type="Call") == set()
    # Sent 10 s after it was made: activity_at is when it went out (Close's reference).
    listed = (await http.get(f"activity/email/{first['id']}/")).json()
    assert listed["status"] == "sent"
    assert listed["activity_at"] == listed["date_sent"] != listed["date_created"]
    assert await ids(activity_at__gte=listed["date_sent"][:19], lead_id=a.id) == {first["id"]}
    assert await ids(activity_at__gt=listed["date_sent"][:19] + ".5", lead_id=a.id) == set()


async def test_subscriptions_need_a_sequence_contact_or_lead(
    env: tuple[Sandbox, FakeClock, httpx.AsyncClient],
) -> None:
    sb, _, http = env
    answer = await http.get("sequence_subscription/", params={"_limit": 5})
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "errors": ["At least one of sequence_id, contact_id, lead_id is required."],
            "field-errors": {},
        },
    )
    sub = next(iter(sb.store.subscriptions.values()))
    listed = (await http.get("sequence_subscription/", params={"lead_id": sub.lead_id})).json()
    assert [s["id"] for s in listed["data"]] == [
        s.id for s in sb.store.subscriptions.values() if s.lead_id == sub.lead_id
    ]
