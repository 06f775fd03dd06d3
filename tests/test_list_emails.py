"""`list_emails` through a real MCP client against the sandbox, in both protocol eras: a
lead's emails newest first, paged, subjects clipped and marked as CRM data, the exact
requests Close gets, and clear errors that send nothing."""

from __future__ import annotations

import random
import re
import string
from typing import Any

import pytest

from bench.tokens import count_tokens
from close_mcp.close.jobs import CRM_DATA_NOTICE
from close_mcp.sandbox.store import Lead
from tests.harness import MODES, Harness, text_of
from tests.read_tools import post_email

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=20, toolsets="search")]

FIELDS = (
    "id,direction,status,subject,date_created,activity_at,date_sent,date_scheduled,"
    "thread_id,contact_id,sender,to"
)


def stamp(raw: str) -> str:
    """The sandbox's `2026-01-01T00:00:10.000000` as list_emails shows it."""
    return raw[:19] + "Z"


async def seven_emails(h: Harness, lead: Lead) -> list[dict[str, Any]]:
    """Seven emails a minute apart, of every kind a reply or an undo meets, oldest first."""
    contact = lead.contacts[0].id
    sender = "Sandra <sandra@sandbox.example>"
    kinds: list[dict[str, Any]] = [
        {"status": "sent", "subject": "Intro"},
        {"status": "inbox", "subject": "Re: Intro", "sender": "them@x.example"},
        {"status": "draft", "subject": "Draft " + "very long " * 20},
        {"status": "outbox", "subject": "Going now", "sender": sender, "send_in": 30},
        {"status": "sent", "subject": None},
        {"status": "scheduled", "subject": "Later", "sender": sender,
         "date_scheduled": "2030-01-01T09:00:00+00:00"},
        {"status": "inbox", "subject": "Re: Later", "sender": "them@x.example"},
    ]  # fmt: skip
    made = []
    for body in kinds:
        made.append(await post_email(h, {"lead_id": lead.id, "contact_id": contact, **body}))
        h.clock.advance(60)
    return made


@pytest.mark.parametrize("mode", MODES)
async def test_list_emails_newest_first_in_pages(h: Harness) -> None:
    lead = next(iter(h.sandbox.store.leads.values()))
    made = await seven_emails(h, lead)
    h.clear()
    first = await h.call("list_emails", {"lead_id": lead.id})
    store = h.sandbox.store.emails
    # By then the outbox email went (30 s after it was made): sent, at that moment.
    outbox = store[made[3]["id"]]
    assert outbox["status"] == "sent"

    def line(email: dict[str, Any], date: str) -> dict[str, Any]:
        subject = email["subject"]
        if subject and len(subject) > 80:
            subject = subject[:79] + "…"
        return {
            "id": email["id"],
            "direction": email["direction"],
            "status": store[email["id"]]["status"],
            "subject": subject,
            "date": date,
            "thread_id": email["thread_id"],
            "contact_id": lead.contacts[0].id,
        }

    dates = [stamp(m["date_created"]) for m in made]
    dates[3] = stamp(outbox["date_sent"])
    dates[5] = "2030-01-01T09:00:00Z"  # a scheduled email: when it will go
    expected = [line(m, d) for m, d in zip(made, dates, strict=True)]
    newest_first = [expected[i] for i in (6, 5, 4, 3, 2, 1, 0)]
    assert first == {
        "lead_id": lead.id,
        "emails": newest_first[:5],
        "total": 7,
        "next_offset": 5,
        "complete": True,
        "crm_data_notice": CRM_DATA_NOTICE,
    }
    rest = await h.call("list_emails", {"lead_id": lead.id, "offset": 5, "limit": 8})
    assert rest["emails"] == newest_first[5:]
    assert rest["next_offset"] is None
    params = {"lead_id": lead.id, "_fields": FIELDS, "_skip": "0", "_limit": "200"}
    assert [(r.method, r.path, r.query) for r in h.sandbox.requests] == [
        ("GET", "/api/v1/activity/email/", params)
    ] * 2
    assert h.writes() == []


async def test_list_emails_of_a_lead_without_any_says_so_and_a_wrong_id_is_an_error(
    h: Harness,
) -> None:
    lead = next(iter(h.sandbox.store.leads.values()))
    none = await h.call("list_emails", {"lead_id": lead.id})
    assert none == {"lead_id": lead.id, "emails": [], "total": 0, "next_offset": None,
                    "complete": True}  # fmt: skip
    message = await h.error("list_emails", {"lead_id": "lead_doesnotexist"})
    assert message == (
        "lead_id: Close has no lead 'lead_doesnotexist' (or this key cannot see it); find "
        "leads with search_leads"
    )
    h.clear()
    for bad, field in (
        ({"lead_id": "acti_123"}, "lead_id"),
        ({"lead_id": lead.id, "limit": 9}, "limit"),
        ({"lead_id": lead.id, "offset": -1}, "offset"),
    ):
        assert field in await h.error("list_emails", bad)
    assert h.sandbox.requests == []


async def test_a_full_page_of_long_subjects_stays_small_even_with_closes_longer_ids(
    h: Harness,
) -> None:
    lead = next(iter(h.sandbox.store.leads.values()))
    for i in range(12):
        subject = f"{i} " + "Quarterly business review and renewal pricing " * 20
        body = {"lead_id": lead.id, "contact_id": lead.contacts[0].id, "status": "sent"}
        await post_email(h, {**body, "subject": subject})
    result = await h.call_raw("list_emails", {"lead_id": lead.id, "limit": 8})
    assert result.structured_content is not None
    assert len(result.structured_content["emails"]) == 8
    assert all(len(e["subject"]) == 80 for e in result.structured_content["emails"])
    # Close's ids are 43 characters after the prefix (its reference's examples), the
    # sandbox's 22: the same page with ids that long.
    rnd = random.Random(7)
    text = re.sub(
        r"\b(acti|lead|cont)_[A-Za-z0-9]+",
        lambda m: (
            m.group(1) + "_" + "".join(rnd.choices(string.ascii_letters + string.digits, k=43))
        ),
        text_of(result),
    )
    assert count_tokens(text) <= 1500
