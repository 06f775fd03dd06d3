"""cancel_email through the MCP client: an outbox or scheduled email back to draft, confirmed
like send_email, refused for what Close cannot cancel; the exact PUT that reaches Close."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.close.jobs import CRM_DATA_NOTICE
from close_mcp.sandbox import emails
from close_mcp.sandbox.store import Lead
from tests.harness import MODES, Harness, Mode, accept

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=20, toolsets="send")]

SENDER = '"Sandra Box" <sandra@sandbox.example>'
LATER = "2026-01-02T09:30:00+00:00"  # the FakeClock starts at 2026-01-01T00:00:00Z
FIELDS = "id,lead_id,contact_id,status,to,cc,bcc,subject,sender,body_text,date_scheduled,date_sent"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Mode:
    return request.param  # type: ignore[no-any-return]


def a_lead(h: Harness) -> Lead:
    return next(lead for lead in h.sandbox.store.leads.values() if lead.contacts)


def an_email(h: Harness, status: str, **fields: Any) -> dict[str, Any]:
    """An email made in Close (straight in the sandbox), as send_email would have made it."""
    data: dict[str, Any] = {
        "lead_id": a_lead(h).id,
        "status": status,
        "to": ["ann@example.com"],
        "subject": "Offer",
        "body_text": "Our offer.",
        "sender": SENDER,
        **fields,
    }
    if status == "scheduled":
        data.setdefault("date_scheduled", LATER)
    if status == "outbox":
        data.setdefault("send_in", 30)
    return emails.create(h.sandbox.store, data, h.clock.time())


def label(h: Harness, lead: Lead) -> str:
    return h.sandbox.store.statuses[lead.status_id].label


def puts(h: Harness) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.json) for r in h.writes()]


@pytest.mark.parametrize("status", ["outbox", "scheduled"])
@pytest.mark.harness(audited=True)
async def test_cancel_previews_then_sets_the_email_back_to_draft(status: str, h: Harness) -> None:
    email = an_email(h, status)
    lead = h.sandbox.store.leads[email["lead_id"]]
    path = f"/api/v1/activity/email/{email['id']}/"
    first = await h.call("cancel_email", {"activity_id": email["id"]})
    when = (
        f", scheduled for {email['date_scheduled']}" if status == "scheduled" else ", in the outbox"
    )
    summary = f"Cancel the email to ann@example.com (subject 'Offer'){when}: set it back to draft"
    preview = {
        "path": f"/activity/email/{email['id']}/",
        "request": {"status": "draft"},
        "matched": 1,
        "sample": [
            {"id": lead.id, "display_name": lead.display_name, "status_label": label(h, lead)}
        ],
        "rendering": {
            "status": status,
            "to": ["ann@example.com"],
            "cc": [],
            "bcc": [],
            "sender": SENDER,
            "subject": "Offer",
            "body": "Our offer.",
            "date_scheduled": email["date_scheduled"],
        },
        "notes": [
            "The email stays in Close as a draft (nothing is deleted); send it later with "
            "send_email, or edit it in Close.",
            "An outbox email goes once its send delay (send_in) has passed: if Close has sent "
            "it by the time this is confirmed, the cancel is refused.",
        ],
    }
    assert first == {
        "status": "confirmation_required",
        "tool": "cancel_email",
        "message": f"{summary}. Show this preview to the user; if they agree, call cancel_email "
        "again with the same arguments and confirmation_token.",
        "preview": preview,
        "confirmation_token": first["confirmation_token"],
        "expires_at": "2026-01-01T00:10:00+00:00",
        "reason": None,
        "job": None,
        "result": None,
        "snapshot": None,
        "crm_data_notice": CRM_DATA_NOTICE,
    }
    assert [(r.method, r.path, r.query) for r in h.sandbox.requests] == [
        ("GET", path, {"_fields": FIELDS}),
        ("GET", f"/api/v1/lead/{lead.id}/", {"_fields": "id,display_name,status_label"}),
    ]
    assert h.writes() == []

    token = first["confirmation_token"]
    done = await h.call("cancel_email", {"activity_id": email["id"], "confirmation_token": token})
    assert done["status"] == "submitted"
    assert done["message"] == f"Submitted: {summary} ({email['id']})."
    assert puts(h) == [("PUT", path, {"status": "draft"})]
    assert done["result"]["status"] == "draft"
    h.clock.advance(2 * 86_400)  # past send_in and date_scheduled: nothing goes out
    stored = await h.runtime.client_for().get(f"activity/email/{email['id']}/")
    assert (stored["status"], stored["date_sent"]) == ("draft", None)

    # The token again: the email is a draft now, so there is nothing left to cancel. The
    # tool is idempotent: the repeat is an answer without a write, not an error.
    again = await h.call("cancel_email", {"activity_id": email["id"], "confirmation_token": token})
    reason = f"{email['id']} is already a draft: there is nothing to cancel"
    assert (again["status"], again["reason"], again["message"], again["confirmation_token"]) == (
        "refused",
        reason,
        f"Refused: {reason}. Nothing was sent.",
        None,
    )
    assert again["preview"]["matched"] == 0
    assert len(h.writes()) == 1
    assert h.audit.entries() == [
        {
            "time": "2026-01-01T00:00:00+00:00",
            "tool": "cancel_email",
            "outcome": "submitted",
            "path": f"/activity/email/{email['id']}/",
            "request": {"status": "draft"},
            "matched": 1,
            "job_id": email["id"],
        },
        {
            "time": "2026-01-03T00:00:00+00:00",
            "tool": "cancel_email",
            "outcome": "refused",
            "path": f"/activity/email/{email['id']}/",
            "request": {"status": "draft"},
            "matched": 0,
            "reason": reason,
        },
    ]


REFUSALS = [
    ("sent", "it was already sent; Close cannot take back a sent email"),
    ("inbox", "it is a received email (inbox), which sends nothing"),
]


@pytest.mark.parametrize(("status", "reason"), REFUSALS)
async def test_what_close_cannot_cancel_is_refused(status: str, reason: str, h: Harness) -> None:
    email = an_email(h, status)
    error = await h.error("cancel_email", {"activity_id": email["id"]})
    assert error == f"activity_id: cannot cancel {email['id']}: {reason}"
    assert [r.path for r in h.sandbox.requests] == [f"/api/v1/activity/email/{email['id']}/"]


async def test_an_outbox_email_whose_delay_has_passed_is_sent_and_refused(h: Harness) -> None:
    email = an_email(h, "outbox", send_in=10)
    first = await h.call("cancel_email", {"activity_id": email["id"]})
    h.clock.advance(11)  # Close sends it while the person reads the preview
    args = {"activity_id": email["id"], "confirmation_token": first["confirmation_token"]}
    error = await h.error("cancel_email", args)
    assert error == (
        f"activity_id: cannot cancel {email['id']}: it was already sent; Close cannot take "
        "back a sent email"
    )
    assert h.writes() == []
    assert h.sandbox.store.emails[email["id"]]["status"] == "sent"


async def test_close_refusing_the_put_is_a_clear_error(h: Harness) -> None:
    """Sent between the read and the PUT: Close's 400 is the tool error, audited as failed."""
    email = an_email(h, "outbox")
    h.sandbox.inject_faults("5xx", path_prefix=f"activity/email/{email['id']}/", method="PUT",
                            status=400)  # fmt: skip
    first = await h.call("cancel_email", {"activity_id": email["id"]})
    args = {"activity_id": email["id"], "confirmation_token": first["confirmation_token"]}
    error = await h.error("cancel_email", args)
    assert error == (
        f"cannot cancel {email['id']}: Close rejected the request: Sandbox fault: HTTP 400"
    )
    assert [r.method for r in h.writes()] == ["PUT"]


async def test_unknown_email_is_refused(h: Harness) -> None:
    error = await h.error("cancel_email", {"activity_id": "acti_nope"})
    assert (
        error == "activity_id: Close has no email activity 'acti_nope' (or this key cannot see it)"
    )
    bad = await h.error("cancel_email", {"activity_id": "lead_x"})
    assert bad == "activity_id: 'lead_x' does not match '^acti_[A-Za-z0-9]+$'"
    assert h.writes() == []


async def test_dry_run_only_previews(h: Harness) -> None:
    email = an_email(h, "scheduled")
    result = await h.call("cancel_email", {"activity_id": email["id"], "dry_run": True})
    assert result["status"] == "preview"
    assert result["confirmation_token"] is None
    assert h.writes() == []


@pytest.mark.harness(elicit=accept({"approve": True}))
async def test_the_person_is_asked_before_the_cancel(h: Harness) -> None:
    email = an_email(h, "scheduled")
    first = await h.call("cancel_email", {"activity_id": email["id"]})
    args = {"activity_id": email["id"], "confirmation_token": first["confirmation_token"]}
    done = await h.call("cancel_email", args)
    assert done["status"] == "submitted"
    assert h.questions == [
        f"Cancel the email to ann@example.com (subject 'Offer'), scheduled for "
        f"{email['date_scheduled']}: set it back to draft "
        f"({a_lead(h).display_name!r}; subject 'Offer'). Run it now?"
    ]


@pytest.mark.harness(confirm="delete")
async def test_without_confirmation_when_the_policy_leaves_send_out(h: Harness) -> None:
    email = an_email(h, "outbox")
    done = await h.call("cancel_email", {"activity_id": email["id"]})
    assert done["status"] == "submitted"
    assert puts(h) == [("PUT", f"/api/v1/activity/email/{email['id']}/", {"status": "draft"})]


async def test_cancel_email_is_listed_in_the_send_toolset(h: Harness) -> None:
    tools = {t.name: t for t in (await h.client.list_tools()).tools}
    tool = tools["cancel_email"]
    assert tool.annotations is not None
    assert (
        tool.annotations.read_only_hint,
        tool.annotations.destructive_hint,
        tool.annotations.idempotent_hint,
        tool.annotations.open_world_hint,
    ) == (False, False, True, False)
    assert set(tool.input_schema["properties"]) == {"activity_id", "dry_run", "confirmation_token"}
    assert tool.input_schema["required"] == ["activity_id"]


@pytest.mark.harness(read_only=True)
async def test_read_only_removes_cancel_email(h: Harness) -> None:
    names = {t.name for t in (await h.client.list_tools()).tools}
    assert "cancel_email" not in names


async def test_a_token_for_one_email_does_not_cancel_another(h: Harness) -> None:
    """The token binds the path, so it names the email: another email's cancel is refused."""
    first, second = an_email(h, "scheduled"), an_email(h, "scheduled", subject="Other")
    token = (await h.call("cancel_email", {"activity_id": first["id"]}))["confirmation_token"]
    other = await h.call("cancel_email", {"activity_id": second["id"], "confirmation_token": token})
    assert other["status"] == "refused"
    assert other["reason"] == (
        "the confirmation token was issued for different arguments; confirm the new preview instead"
    )
    assert h.writes() == []
    assert {e["status"] for e in h.sandbox.store.emails.values()} == {"scheduled"}


async def test_an_email_whose_lead_is_gone_is_previewed_by_its_lead_id(h: Harness) -> None:
    email = an_email(h, "scheduled")
    del h.sandbox.store.leads[email["lead_id"]]
    result = await h.call("cancel_email", {"activity_id": email["id"], "dry_run": True})
    assert result["preview"]["sample"] == [
        {"id": email["lead_id"], "display_name": None, "status_label": None}
    ]
    assert h.writes() == []
