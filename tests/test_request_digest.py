"""A token binds every field of the request it was minted for: an email confirmed from one
identity, at one time, to one Bcc list cannot go from another identity, at another time, or
to a swapped Bcc; a subscription confirmed with one sender cannot run with another.

Each test previews with one value, confirms with the token and another value of the same
field (a value the tool accepts on its own), and expects `refused` with nothing sent: only
the request digest in the token tells the two calls apart.
"""

from __future__ import annotations

from typing import Any, Final

import pytest

from close_mcp.sandbox.store import EmailAccount, Lead
from tests.harness import MODES, Harness

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=40)]

OTHER_ARGUMENTS: Final = (
    "the confirmation token was issued for different arguments; confirm the new preview instead"
)


def _lead(h: Harness) -> Lead:
    return next(
        lead
        for lead in h.sandbox.store.leads.values()
        if lead.contacts[:1] and all(c.emails for c in lead.contacts)
    )


async def _swapped(h: Harness, tool: str, args: dict[str, Any], swap: dict[str, Any]) -> None:
    """Preview `args`, then confirm `args | swap` with the preview's token: refused."""
    first = await h.call(tool, args)
    assert first["status"] == "confirmation_required", first
    h.clear()
    answer = await h.call(tool, {**args, **swap, "confirmation_token": first["confirmation_token"]})
    assert answer["status"] == "refused", answer
    assert answer["reason"] == OTHER_ARGUMENTS
    assert h.writes() == []
    # The same swap with the token of its own preview goes through: the value itself is fine.
    own = await h.call(tool, {**args, **swap})
    done = await h.call(tool, {**args, **swap, "confirmation_token": own["confirmation_token"]})
    assert done["status"] == "submitted", done
    assert len(h.writes()) == 1


def _email(h: Harness, **fields: Any) -> dict[str, Any]:
    lead = _lead(h)
    return {
        "lead_id": lead.id,
        "to": [lead.contacts[0].emails[0]["email"]],
        "subject": "Hello",
        "body_text": "x",
        **fields,
    }


@pytest.mark.parametrize("mode", MODES)
async def test_an_email_token_does_not_send_from_another_identity(h: Harness) -> None:
    args = _email(h, status="outbox", sender='"Sandra Box" <sandra@sandbox.example>')
    await _swapped(h, "send_email", args, {"sender": '"Sandbox Sales" <sales@sandbox.example>'})


async def test_an_email_token_does_not_send_at_another_time(h: Harness) -> None:
    args = _email(
        h,
        status="scheduled",
        sender="sandra@sandbox.example",
        date_scheduled="2026-01-02T09:30:00+00:00",
    )
    await _swapped(h, "send_email", args, {"date_scheduled": "2026-01-01T00:05:00+00:00"})


async def test_an_email_token_does_not_send_to_a_swapped_bcc(h: Harness) -> None:
    args = _email(
        h, status="outbox", sender="sandra@sandbox.example", bcc=["audit@sandbox.example"]
    )
    await _swapped(h, "send_email", args, {"bcc": ["leak@elsewhere.example"]})


SUBSCRIBE: Final = {
    "filter": {"lead_status": "Qualified"},
    "action_type": "subscribe",
    "sequence": "Onboarding",
    "sender_account": "sandra@sandbox.example",
    "sender_email": "sandra@sandbox.example",
    "sender_name": "Sandra Box",
}


@pytest.mark.parametrize(
    "swap",
    [
        {"sender_account": "SECOND_ACCOUNT"},
        {"sender_email": "sales@sandbox.example"},
        {"sender_name": "The CEO"},
    ],
    ids=["sender_account", "sender_email", "sender_name"],
)
async def test_a_subscription_token_does_not_run_with_another_sender(
    h: Harness, swap: dict[str, Any]
) -> None:
    if swap.get("sender_account") == "SECOND_ACCOUNT":
        # A second account of the same person with the same identity: only the account id
        # tells the two requests apart.
        store = h.sandbox.store
        second = EmailAccount(
            store.new_id("emailacct"),
            store.me.id,
            [{"email": "sandra@sandbox.example", "name": "Sandra Box"}],
        )
        store.email_accounts[second.id] = second
        first = next(a for a in store.email_accounts.values() if a.id != second.id)
        args = {**SUBSCRIBE, "sender_account": first.id}
        await _swapped(h, "create_bulk_sequence_subscription", args, {"sender_account": second.id})
        return
    await _swapped(h, "create_bulk_sequence_subscription", SUBSCRIBE, swap)
