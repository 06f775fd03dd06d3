"""Email activities: Close's status rules, template rendering, sending and cancelling."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import Lead
from tests.ids import email_template

pytestmark = pytest.mark.anyio

JSON = dict[str, Any]
SENDER = '"Sandra Box" <sandra@sandbox.example>'


def a_lead(sb: Sandbox) -> Lead:
    return next(lead for lead in sb.store.leads.values() if lead.contacts[0].emails)


async def test_draft_then_send(sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock) -> None:
    lead = a_lead(sb)
    contact = lead.contacts[0]
    answer = await http.post(
        "activity/email/",
        json={
            "lead_id": lead.id,
            "contact_id": contact.id,
            "status": "draft",
            "to": [contact.emails[0]["email"]],
            "subject": "Hello",
            "body_text": "Hi there",
        },
    )
    assert answer.status_code == 200
    draft = answer.json()
    assert draft["id"].startswith("acti_")
    assert draft["thread_id"].startswith("acti_")
    assert {
        k: draft[k]
        for k in ("_type", "status", "lead_id", "contact_id", "sender", "date_sent", "direction")
    } == {
        "_type": "Email",
        "status": "draft",
        "lead_id": lead.id,
        "contact_id": contact.id,
        "sender": None,
        "date_sent": None,
        "direction": "outgoing",
    }
    assert (await http.get(f"activity/email/{draft['id']}/")).json() == draft

    sent = await http.put(
        f"activity/email/{draft['id']}/", json={"status": "outbox", "sender": SENDER, "send_in": 30}
    )
    assert sent.json()["status"] == "outbox"
    clock.advance(29)
    assert (await http.get(f"activity/email/{draft['id']}/")).json()["status"] == "outbox"
    clock.advance(1)
    # Close answers an email's times without an offset (its example): UTC
    final = (await http.get(f"activity/email/{draft['id']}/")).json()
    assert (final["status"], final["date_sent"]) == ("sent", "2026-01-01T00:00:30.000000")
    refused = await http.put(f"activity/email/{draft['id']}/", json={"subject": "Edited"})
    assert (refused.status_code, refused.json()) == (
        400,
        {"errors": [], "field-errors": {"status": "Only drafts can be modified."}},
    )


async def test_cancel_a_scheduled_email(sb: Sandbox, http: httpx.AsyncClient) -> None:
    lead = a_lead(sb)
    body = {
        "lead_id": lead.id,
        "status": "scheduled",
        "sender": SENDER,
        "date_scheduled": "2026-01-02T09:00:00Z",
        "subject": "Later",
        "body_text": "...",
    }
    email = (await http.post("activity/email/", json=body)).json()
    assert (email["status"], email["date_scheduled"]) == (
        "scheduled",
        "2026-01-02T09:00:00.000000+00:00",
    )
    cancelled = (await http.put(f"activity/email/{email['id']}/", json={"status": "draft"})).json()
    assert cancelled["status"] == "draft"
    sb.advance(2 * 86400)
    assert (await http.get(f"activity/email/{email['id']}/")).json()["status"] == "draft"


async def test_scheduled_email_goes_out_on_time(sb: Sandbox, http: httpx.AsyncClient) -> None:
    body = {
        "lead_id": a_lead(sb).id,
        "status": "scheduled",
        "sender": SENDER,
        "date_scheduled": "2026-01-01T01:00:00+00:00",
    }
    email = (await http.post("activity/email/", json=body)).json()
    sb.advance(3600)
    now = (await http.get(f"activity/email/{email['id']}/")).json()
    assert (now["status"], now["date_sent"]) == ("sent", "2026-01-01T01:00:00.000000")
    late = await http.put(f"activity/email/{email['id']}/", json={"status": "draft"})
    assert late.status_code == 400


async def test_template_is_rendered_when_no_body(sb: Sandbox, http: httpx.AsyncClient) -> None:
    lead = a_lead(sb)
    contact = lead.contacts[0]
    template = email_template(sb, "Renewal reminder")
    email = (
        await http.post(
            "activity/email/",
            json={
                "lead_id": lead.id,
                "contact_id": contact.id,
                "status": "sent",
                "template_id": template.id,
            },
        )
    ).json()
    assert {k: email[k] for k in ("subject", "body_text", "template_name", "sender", "status")} == {
        "subject": f"Your renewal at {lead.name}",
        "body_text": f"Hello {contact.name},\n\nYour plan renews soon.\n\nSandbox Sales Co.",
        "template_name": "Renewal reminder",
        "sender": "sandra@sandbox.example",
        "status": "sent",
    }
    own_body = (
        await http.post(
            "activity/email/",
            json={
                "lead_id": lead.id,
                "status": "draft",
                "template_id": template.id,
                "body_text": "Mine",
            },
        )
    ).json()
    assert (own_body["body_text"], own_body["subject"]) == ("Mine", None)


@pytest.mark.parametrize(
    ("body", "field_errors"),
    [
        ({"status": "draft"}, {"lead_id": "This field is required."}),
        ({"lead_id": "lead_x", "status": "draft"}, {"lead_id": "Lead not found."}),
        (
            {"status": "queued"},
            {"status": "Must be one of: draft, inbox, scheduled, outbox, sent, error."},
        ),
        ({"status": "outbox"}, {"sender": "This field is required for status 'outbox'."}),
        ({"status": "inbox"}, {"sender": "This field is required for status 'inbox'."}),
        (
            {"status": "scheduled", "sender": SENDER},
            {"date_scheduled": "This field is required for status 'scheduled'."},
        ),
        (
            {"status": "outbox", "sender": SENDER, "send_in": 60},
            {"send_in": "Must be a number of seconds below 60."},
        ),
        (
            {"status": "draft", "subject": "x" * 1001},
            {"subject": "Must be a string of at most 1000 characters."},
        ),
        ({"status": "draft", "to": ["nobody"]}, {"to": "Must be a list of email addresses."}),
        (
            {"status": "draft", "contact_id": "cont_x"},
            {"contact_id": "Contact not found on this lead."},
        ),
        (
            {"status": "draft", "template_id": "tmpl_x"},
            {"template_id": "Email template not found."},
        ),
        (
            {"status": "draft", "attachments": [{"url": "https://evil.example/x"}]},
            {"attachments": "Each attachment needs a url starting https://app.close.com/go/file/."},
        ),
        (
            {"status": "draft", "email_account_id": "emailacct_x"},
            {"email_account_id": "Email account not found."},
        ),
        # Close types followup_date (and date_scheduled) as a date-time: a bare date is not one.
        (
            {"status": "sent", "followup_date": "2026-03-09"},
            {"followup_date": "Not a valid datetime."},
        ),
        (
            {"status": "scheduled", "sender": SENDER, "date_scheduled": "2026-03-09"},
            {"date_scheduled": "Not a valid datetime."},
        ),
    ],
)
async def test_email_rules(
    sb: Sandbox, http: httpx.AsyncClient, body: JSON, field_errors: dict[str, str]
) -> None:
    if "lead_id" not in body and "lead_id" not in field_errors:
        body = {"lead_id": a_lead(sb).id, **body}
    answer = await http.post("activity/email/", json=body)
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": field_errors},
    )
    assert sb.store.emails == {}


async def test_unknown_email_and_listing(sb: Sandbox, http: httpx.AsyncClient) -> None:
    assert (await http.get("activity/email/acti_x/")).status_code == 404
    assert (await http.put("activity/email/acti_x/", json={})).status_code == 404
    lead = a_lead(sb)
    email = (
        await http.post("activity/email/", json={"lead_id": lead.id, "status": "draft"})
    ).json()
    listed = (await http.get("activity/email/", params={"lead_id": lead.id})).json()
    assert listed == {"data": [email], "has_more": False}
    other = (await http.get("activity/email/", params={"lead_id": "lead_other"})).json()
    assert other == {"data": [], "has_more": False}


async def test_a_reply_joins_the_thread_of_the_email_it_answers(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    lead = a_lead(sb)
    base = {"lead_id": lead.id, "status": "draft", "body_text": "x"}
    first = (await http.post("activity/email/", json=base)).json()
    reply = await http.post("activity/email/", json={**base, "in_reply_to_id": first["id"]})
    assert reply.status_code == 200
    assert reply.json()["in_reply_to_id"] == first["id"]
    assert reply.json()["thread_id"] == first["thread_id"]
    other = (await http.post("activity/email/", json=base)).json()
    assert other["thread_id"] != first["thread_id"]
    assert other["in_reply_to_id"] is None


async def test_replies_and_followup_sequences_are_checked_as_close_does(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    """Close's reference: in_reply_to_id an email activity, followup_sequence_delay >= 86400."""
    lead = a_lead(sb)
    sequence = next(iter(sb.store.sequences))
    base = {"lead_id": lead.id, "status": "draft", "body_text": "x"}
    cases = [
        ({"in_reply_to_id": "acti_nope"}, {"in_reply_to_id": "Email activity not found."}),
        ({"followup_sequence_id": "seq_nope"}, {"followup_sequence_id": "Sequence not found."}),
        (
            {"followup_sequence_id": sequence, "followup_sequence_delay": 86_399},
            {"followup_sequence_delay": "Ensure this value is greater than or equal to 86400."},
        ),
        (
            {"followup_sequence_add_cc_bcc": "yes"},
            {"followup_sequence_add_cc_bcc": "Must be a boolean."},
        ),
    ]
    for extra, errors in cases:
        answer = await http.post("activity/email/", json={**base, **extra})
        assert (answer.status_code, answer.json()["field-errors"]) == (400, errors), extra
    assert sb.store.emails == {}
    ok = {"followup_sequence_id": sequence, "followup_sequence_delay": 86_400}
    created = (await http.post("activity/email/", json={**base, **ok})).json()
    assert {k: created[k] for k in (*ok, "followup_sequence_add_cc_bcc")} == {
        **ok,
        "followup_sequence_add_cc_bcc": False,
    }
