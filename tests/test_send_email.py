"""send_email through the MCP client, both eras: Close's rules, each status, exact POST bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from close_mcp.close.jobs import CRM_DATA_NOTICE
from close_mcp.errors import ERROR_CRM_NOTICE
from close_mcp.sandbox.store import Lead
from tests.harness import MODES, Harness, Mode, accept, decline
from tests.ids import email_template, template_id

# Only the send toolset: building every tool's schema is the slow part.
pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=40, toolsets="send")]

EMAIL_PATH = "/api/v1/activity/email/"
SENDER = '"Sandra Box" <sandra@sandbox.example>'  # an identity of the sandbox's email account
LATER = "2026-01-02T09:30:00+01:00"  # the FakeClock starts at 2026-01-01T00:00:00Z
KEEP = (
    "id", "status", "thread_id", "lead_id", "contact_id", "subject", "to", "cc", "bcc", "sender",
    "date_scheduled", "date_created",
)  # fmt: skip


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Mode:
    return request.param  # type: ignore[no-any-return]


def a_lead(h: Harness, *, contacts: int = 1) -> Lead:
    """The first lead with at least `contacts` contacts that all have an address."""
    return next(
        lead
        for lead in h.sandbox.store.leads.values()
        if len(lead.contacts) >= contacts and all(c.emails for c in lead.contacts)
    )


def posted(h: Harness) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.json) for r in h.writes()]


def stored(h: Harness, body: dict[str, Any]) -> dict[str, Any]:
    """The one email the sandbox holds, as send_email's compact result shows it."""
    (email,) = h.sandbox.store.emails.values()
    assert all(email.get(k) == v for k, v in body.items() if k not in ("send_in", "date_scheduled"))
    return {k: email[k] for k in KEEP}


def sample(lead: Lead, h: Harness) -> list[dict[str, Any]]:
    label = h.sandbox.store.statuses[lead.status_id].label
    return [{"id": lead.id, "display_name": lead.display_name, "status_label": label}]


# -- each status -------------------------------------------------------------------------------


async def test_draft_is_created_at_once_with_the_exact_body(h: Harness) -> None:
    lead = a_lead(h)
    args = {
        "lead_id": lead.id,
        "to": ["ann@example.com"],
        "cc": ["cc@example.com"],
        "subject": "Hello",
        "body_text": "Hi Ann",
    }
    result = await h.call("send_email", args)
    body = {
        "lead_id": lead.id,
        "status": "draft",
        "to": ["ann@example.com"],
        "cc": ["cc@example.com"],
        "subject": "Hello",
        "body_text": "Hi Ann",
    }
    assert posted(h) == [("POST", EMAIL_PATH, body)]
    saved = stored(h, body)
    assert result == {
        "status": "submitted",
        "tool": "send_email",
        "message": "Submitted: Create a draft email to ann@example.com (subject 'Hello') on "
        f"lead {lead.display_name!r} ({saved['id']}).",
        "preview": {
            "path": "/activity/email/",
            "request": body,
            "matched": 2,
            "sample": sample(lead, h),
            "rendering": {
                "to": ["ann@example.com"],
                "cc": ["cc@example.com"],
                "bcc": [],
                "subject": "Hello",
                "body": "Hi Ann",
            },
            "notes": [
                f"Not contacts of lead {lead.id}: ann@example.com, cc@example.com. Check they "
                "should get this email."
            ],
        },
        "confirmation_token": None,
        "expires_at": None,
        "reason": None,
        "job": None,
        "result": saved,
        "snapshot": None,
        "crm_data_notice": CRM_DATA_NOTICE,
    }
    assert saved["status"] == "draft"


@pytest.mark.parametrize("status", ["sent", "inbox"])
async def test_logged_emails_need_no_confirmation(status: str, h: Harness) -> None:
    lead = a_lead(h)
    args = {
        "lead_id": lead.id,
        "status": status,
        "to": ["me@sandbox.example"],
        "subject": "Re: pricing",
        "body_html": "<p>Thanks!</p>",
        "sender": "Ann <ann@example.com>",
    }
    if status == "sent":
        args["followup_date"] = "2026-01-09T09:00:00Z"
    result = await h.call("send_email", args)
    body = {k: v for k, v in args.items() if k != "followup_date"}
    body = {"lead_id": lead.id, "status": status, **body}
    if status == "sent":
        body["followup_date"] = "2026-01-09T09:00:00+00:00"
    assert result["status"] == "submitted"
    assert posted(h) == [("POST", EMAIL_PATH, body)]
    assert result["result"] == stored(h, body)
    assert result["result"]["status"] == status


@pytest.mark.parametrize("status", ["outbox", "scheduled"])
async def test_sending_needs_confirmation_then_sends_once(status: str, h: Harness) -> None:
    lead = a_lead(h)
    address = lead.contacts[0].emails[0]["email"]
    args: dict[str, Any] = {
        "lead_id": lead.id,
        "status": status,
        "subject": "Demo",
        "body_text": "See you then.",
        "sender": SENDER,
    }
    body: dict[str, Any] = {
        "lead_id": lead.id,
        "status": status,
        "contact_id": lead.contacts[0].id,
        "to": [address],
        "subject": "Demo",
        "body_text": "See you then.",
        "sender": SENDER,
    }
    if status == "scheduled":
        args["date_scheduled"] = LATER
        body["date_scheduled"] = LATER
    else:
        args["send_in"] = 30
        body["send_in"] = 30

    first = await h.call("send_email", args)
    assert first["status"] == "confirmation_required"
    assert first["preview"]["request"] == body
    assert first["preview"]["rendering"]["to"] == [address]
    assert first["preview"]["rendering"]["body"] == "See you then."
    assert first["expires_at"] == "2026-01-01T00:10:00+00:00"
    assert h.writes() == []

    done = await h.call("send_email", {**args, "confirmation_token": first["confirmation_token"]})
    assert done["status"] == "submitted"
    assert posted(h) == [("POST", EMAIL_PATH, body)]
    assert done["result"] == stored(h, body)
    assert done["result"]["status"] == status

    again = await h.call("send_email", {**args, "confirmation_token": first["confirmation_token"]})
    assert again["status"] == "refused"
    assert again["reason"] == "the confirmation token was already used"
    assert len(h.writes()) == 1


async def test_a_token_for_other_arguments_is_refused(h: Harness) -> None:
    args = {"lead_id": a_lead(h).id, "status": "outbox", "body_text": "x", "sender": SENDER}
    first = await h.call("send_email", args)
    token = first["confirmation_token"]
    other = await h.call("send_email", {**args, "body_text": "y", "confirmation_token": token})
    assert other["status"] == "refused"
    assert other["reason"] == (
        "the confirmation token was issued for different arguments; confirm the new preview instead"
    )
    assert h.writes() == []


@pytest.mark.parametrize("status", ["draft", "outbox"])
async def test_dry_run_previews_and_sends_nothing(status: str, h: Harness) -> None:
    args = {
        "lead_id": a_lead(h).id,
        "status": status,
        "to": ["ann@example.com"],
        "body_text": "x",
        "sender": SENDER,
        "dry_run": True,
    }
    result = await h.call("send_email", args)
    assert result["status"] == "preview"
    assert result["confirmation_token"] is None
    assert result["preview"]["request"]["status"] == status
    assert h.writes() == []
    assert h.sandbox.store.emails == {}


@pytest.mark.harness(confirm="delete")
async def test_sending_without_confirmation_when_the_policy_allows_it(h: Harness) -> None:
    args = {
        "lead_id": a_lead(h).id,
        "status": "outbox",
        "to": ["ann@example.com"],
        "body_text": "x",
        "sender": SENDER,
    }
    result = await h.call("send_email", args)
    assert result["status"] == "submitted"
    assert len(h.writes()) == 1


# -- elicitation -------------------------------------------------------------------------------


@pytest.mark.harness(elicit=accept({"approve": True}))
async def test_the_person_approves_a_send(h: Harness) -> None:
    args = {"lead_id": a_lead(h).id, "status": "outbox", "body_text": "x", "sender": SENDER}
    first = await h.call("send_email", args)
    assert h.questions == []
    done = await h.call("send_email", {**args, "confirmation_token": first["confirmation_token"]})
    assert done["status"] == "submitted"
    assert len(h.questions) == 1
    assert h.questions[0].startswith("Send an email now to ")
    assert len(h.writes()) == 1


@pytest.mark.harness(elicit=decline(), audited=True)
async def test_the_person_declines_a_send(h: Harness) -> None:
    args = {"lead_id": a_lead(h).id, "status": "outbox", "body_text": "x", "sender": SENDER}
    first = await h.call("send_email", args)
    done = await h.call("send_email", {**args, "confirmation_token": first["confirmation_token"]})
    assert done["status"] == "refused"
    assert done["reason"] == "the person declined the action"
    assert h.writes() == []
    assert [e["outcome"] for e in h.audit.entries()] == ["refused"]


# -- templates, recipients, lead and contact ---------------------------------------------------


async def test_template_is_rendered_in_the_preview_and_by_close(h: Harness) -> None:
    store = h.sandbox.store
    lead = a_lead(h, contacts=2)
    contact = lead.contacts[1]
    template = email_template(store, "Intro")
    args = {"lead_id": lead.id, "contact_id": contact.id, "template": "Intro"}
    preview = await h.call("send_email", {**args, "dry_run": True})
    # The seeded 'Intro' template for this lead and contact, rendered by hand (not by the
    # sandbox's renderer, which also fills the email Close saves).
    assert (lead.display_name, contact.name, store.me.first_name) == (
        "Initech Inc.",
        "Olga Cohen",
        "Sandra",
    )
    expected = {
        "subject": "Quick question for Initech Inc.",
        "body": "Hi Olga,\n\nI work with teams like Initech Inc. on their sales process. "
        "Worth a chat?\n\nSandra",
    }
    address = contact.emails[0]["email"]
    assert address == "olga.173@initech.example"
    assert preview["preview"]["rendering"] == {
        "to": [address],
        "cc": [],
        "bcc": [],
        "subject": expected["subject"],
        "body": expected["body"],
        "contact_id": contact.id,
        "template": "Intro",
    }
    assert preview["preview"]["notes"] == [
        f"to was empty: the email goes to {address}, the first address of contact "
        f"{contact.id} ({contact.name}).",
        "Close renders the template 'Intro' for this lead when it saves.",
    ]
    render = [r for r in h.sandbox.requests if r.path.endswith("/render/")]
    assert [(r.path, r.query) for r in render] == [
        (
            f"/api/v1/email_template/{template.id}/render/",
            {"lead_id": lead.id, "contact_id": contact.id},
        )
    ]
    assert h.writes() == []

    result = await h.call("send_email", args)
    body = {
        "lead_id": lead.id,
        "status": "draft",
        "contact_id": contact.id,
        "to": [address],
        "template_id": template.id,
    }
    assert posted(h) == [("POST", EMAIL_PATH, body)]
    (email,) = store.emails.values()
    assert email["subject"] == expected["subject"]
    assert email["body_text"] == expected["body"]
    assert result["result"]["subject"] == expected["subject"]


async def test_a_template_is_rendered_for_a_contact_chosen_and_named(h: Harness) -> None:
    """Close renders a template only for a lead and a contact: with `to` given and no
    contact_id, the contact holding the recipient is chosen, rendered for and posted."""
    store = h.sandbox.store
    lead = a_lead(h, contacts=2)
    contact = lead.contacts[1]
    address = contact.emails[0]["email"]
    template = email_template(store, "Intro")
    args = {"lead_id": lead.id, "to": [address], "template": "Intro"}
    preview = await h.call("send_email", {**args, "dry_run": True})
    assert preview["preview"]["rendering"]["contact_id"] == contact.id
    assert preview["preview"]["rendering"]["body"].startswith(f"Hi {contact.name.split()[0]},")
    assert preview["preview"]["notes"] == [
        f"The template is rendered for contact {contact.id} ({contact.name}), the email filed "
        "under it.",
        "Close renders the template 'Intro' for this lead when it saves.",
    ]
    render = [r.query for r in h.sandbox.requests if r.path.endswith("/render/")]
    assert render == [{"lead_id": lead.id, "contact_id": contact.id}]
    await h.call("send_email", args)
    body = {
        "lead_id": lead.id,
        "status": "draft",
        "contact_id": contact.id,
        "to": [address],
        "template_id": template.id,
    }
    assert posted(h) == [("POST", EMAIL_PATH, body)]


async def test_a_template_for_a_lead_without_contacts_is_refused(h: Harness) -> None:
    lead = next(iter(h.sandbox.store.leads.values()))
    lead.contacts.clear()  # as Close allows: a lead with no contact
    args = {"lead_id": lead.id, "to": ["x@example.com"], "template": "Intro"}
    error = await h.error("send_email", args)
    assert error == (
        f"template: lead {lead.id} has no contact, and Close renders a template for a lead and "
        "one of its contacts; write the body instead"
    )
    assert h.sandbox.requests[-1].path == f"/api/v1/lead/{lead.id}/"


async def test_template_given_by_id_keeps_the_subject_given(h: Harness) -> None:
    template = email_template(h, "Follow-up")
    args = {
        "lead_id": a_lead(h).id,
        "template": template.id,
        "subject": "Mine",
        "dry_run": True,
    }
    preview = await h.call("send_email", args)
    assert preview["preview"]["rendering"]["subject"] == "Mine"
    assert preview["preview"]["request"]["template_id"] == template.id
    assert preview["preview"]["request"]["subject"] == "Mine"


async def test_to_defaults_to_the_given_contact(h: Harness) -> None:
    lead = a_lead(h, contacts=2)
    contact = lead.contacts[1]
    args = {"lead_id": lead.id, "contact_id": contact.id, "body_text": "x", "dry_run": True}
    preview = await h.call("send_email", args)
    assert preview["preview"]["request"] == {
        "lead_id": lead.id,
        "status": "draft",
        "contact_id": contact.id,
        "to": [contact.emails[0]["email"]],
        "body_text": "x",
    }


async def test_inbox_keeps_to_as_given(h: Harness) -> None:
    lead = a_lead(h)
    args = {
        "lead_id": lead.id,
        "status": "inbox",
        "body_text": "x",
        "sender": "ann@example.com",
        "dry_run": True,
    }
    preview = await h.call("send_email", args)
    assert preview["preview"]["request"] == {
        "lead_id": lead.id,
        "status": "inbox",
        "body_text": "x",
        "sender": "ann@example.com",
    }
    assert preview["message"] == (
        "Preview only, nothing was sent: Log a received email from ann@example.com on lead "
        f"{lead.display_name!r}."
    )


@pytest.mark.parametrize(
    ("sender", "why"),
    [
        # A colleague's connected identity: Close lists it, but it is not the caller's.
        ('"Tomás Ortega" <tomas@sandbox.example>', " (it is another user's identity)"),
        # Another address at a connected domain: the whole address must match.
        ('"The CEO" <ceo@sandbox.example>', ""),
        ("sandra@sandbox.example.evil.example", ""),
    ],
    ids=["colleague", "same-domain", "domain-suffix"],
)
async def test_only_the_callers_own_identities_may_send(h: Harness, sender: str, why: str) -> None:
    lead = a_lead(h)
    base = {"lead_id": lead.id, "to": [lead.contacts[0].emails[0]["email"]], "body_text": "x"}
    address = sender.split("<")[-1].rstrip(">")
    for status, extra in (("outbox", {}), ("scheduled", {"date_scheduled": LATER}), ("draft", {})):
        error = await h.error("send_email", {**base, "status": status, "sender": sender, **extra})
        assert error == (
            f"sender: {address!r} is not one of your connected email identities{why}; allowed: "
            "sandra@sandbox.example, sales@sandbox.example, sandra.box@gmail.example"
        ), status
    assert h.writes() == []


async def test_a_colleagues_email_account_is_refused(h: Harness) -> None:
    store = h.sandbox.store
    theirs = next(a for a in store.email_accounts.values() if a.user_id != store.me.id)
    lead = a_lead(h)
    args = {
        "lead_id": lead.id,
        "to": [lead.contacts[0].emails[0]["email"]],
        "body_text": "x",
        "status": "outbox",
        "sender": "tomas@sandbox.example",
    }
    for account in (theirs.id, "tomas@sandbox.example"):
        error = await h.error("send_email", {**args, "email_account": account})
        assert error == (
            f"email_account: {theirs.id} is another user's account; send from one of your own: "
            "sandra@sandbox.example, sandra.box@gmail.example"
        )
    assert h.writes() == []


async def test_email_account_is_resolved_and_must_own_the_sender(h: Harness) -> None:
    account = next(
        a
        for a in h.sandbox.store.email_accounts.values()
        if a.identities[0]["email"] == "sandra.box@gmail.example"
    )
    args = {
        "lead_id": a_lead(h).id,
        "body_text": "x",
        "email_account": "sandra.box@gmail.example",
        "dry_run": True,
    }
    preview = await h.call("send_email", {**args, "sender": "sandra.box@gmail.example"})
    assert preview["preview"]["request"]["email_account_id"] == account.id
    assert preview["preview"]["request"]["sender"] == "sandra.box@gmail.example"

    error = await h.error("send_email", {**args, "sender": "other@example.com"})
    assert error == (
        f"sender: 'other@example.com' is not an identity of {account.id}; "
        "allowed: sandra.box@gmail.example"
    )
    assert h.writes() == []


async def test_a_sender_must_be_a_connected_identity_unless_the_email_is_only_logged(
    h: Harness,
) -> None:
    lead = a_lead(h)
    address = lead.contacts[0].emails[0]["email"]
    base = {"lead_id": lead.id, "to": [address], "body_text": "x"}
    allowed = "sandra@sandbox.example, sales@sandbox.example, sandra.box@gmail.example"
    cases = [
        ("draft", {}),
        ("outbox", {}),
        ("scheduled", {"date_scheduled": LATER}),
    ]
    for status, extra in cases:
        args = {**base, "status": status, "sender": '"CEO" <ceo@bigcorp.example>', **extra}
        error = await h.error("send_email", args)
        assert error == (
            "sender: 'ceo@bigcorp.example' is not one of your connected email identities; "
            f"allowed: {allowed}"
        ), status
    assert h.writes() == []
    # Any connected identity will do (its case does not matter); the email goes as given.
    sender = '"Sales" <Sales@Sandbox.example>'
    sent = await h.call("send_email", {**base, "status": "outbox", "sender": sender})
    assert sent["status"] == "confirmation_required"
    assert sent["preview"]["request"]["sender"] == sender
    assert sent["preview"]["notes"] == []  # the recipient is the lead's own contact
    # A logged email records what happened elsewhere: its sender is taken as given.
    for status in ("sent", "inbox"):
        logged = await h.call(
            "send_email", {**base, "status": status, "sender": "ceo@bigcorp.example"}
        )
        assert logged["status"] == "submitted", status
    assert [r.json["status"] for r in h.writes()] == ["sent", "inbox"]


LINE_BREAK = "a line break (CR or LF); a header field must be one line"
HEADER_INJECTIONS: list[tuple[dict[str, Any], str]] = [
    ({"subject": "Hello\r\nBcc: spy@evil.example"}, "subject: 'Hello\\r\\nBcc: spy@evil.example'"),
    ({"subject": "Hello\n"}, "subject: 'Hello\\n'"),
    ({"sender": "S <sandra@sandbox.example>\r"}, "sender: 'S <sandra@sandbox.example>\\r'"),
    ({"to": ["ann@example.com", "bob@example.com\n"]}, "to[1]: 'bob@example.com\\n'"),
    ({"cc": ["\rcc@example.com"]}, "cc[0]: '\\rcc@example.com'"),
    ({"bcc": ["bcc@example.com\r\n"]}, "bcc[0]: 'bcc@example.com\\r\\n'"),
]  # fmt: skip


@pytest.mark.parametrize("status", ["draft", "outbox", "sent"])
async def test_line_breaks_in_header_fields_are_refused(status: str, h: Harness) -> None:
    """A CR or LF would start another header (a hidden Bcc): refused before anything is read."""
    base = {"lead_id": a_lead(h).id, "status": status, "body_text": "x", "sender": SENDER}
    for args, start in HEADER_INJECTIONS:
        error = await h.error("send_email", {**base, **args})
        assert error == f"{start} contains {LINE_BREAK}", args
    assert h.sandbox.requests == []


async def test_recipients_who_are_not_contacts_of_the_lead_are_named(h: Harness) -> None:
    lead = a_lead(h, contacts=2)
    first, second = (c.emails[0]["email"] for c in lead.contacts[:2])
    args = {
        "lead_id": lead.id,
        "status": "outbox",
        "sender": SENDER,
        "to": [first, "stranger@example.com"],
        "cc": [second.upper()],
        "bcc": ["audit@example.com", "stranger@example.com"],
        "body_text": "x",
    }
    result = await h.call("send_email", args)
    assert result["status"] == "confirmation_required"
    assert result["preview"]["notes"] == [
        f"Not contacts of lead {lead.id}: stranger@example.com, audit@example.com. Check they "
        "should get this email."
    ]
    assert h.writes() == []
    # A received email's recipients are this side's own addresses: nothing to say.
    inbox = await h.call(
        "send_email",
        {"lead_id": lead.id, "status": "inbox", "sender": first, "to": ["me@sandbox.example"],
         "body_text": "x", "dry_run": True},
    )  # fmt: skip
    assert inbox["preview"]["notes"] == []


async def test_contact_of_another_lead_is_refused(h: Harness) -> None:
    leads = list(h.sandbox.store.leads.values())
    lead, other = leads[0], leads[1]
    args = {"lead_id": lead.id, "contact_id": other.contacts[0].id, "body_text": "x"}
    error = await h.error("send_email", args)
    listed = ", ".join(f"{c.id} ({c.name!r})" for c in lead.contacts)
    assert error == (
        f"contact_id: {other.contacts[0].id!r} is not a contact of lead {lead.id}; "
        f"its contacts: {listed} ({ERROR_CRM_NOTICE})"
    )
    assert h.writes() == []


async def test_unknown_lead_is_refused(h: Harness) -> None:
    error = await h.error("send_email", {"lead_id": "lead_nope", "body_text": "x"})
    assert error == "lead_id: Close has no lead 'lead_nope' (or this key cannot see it)"
    assert h.writes() == []


async def test_sending_to_a_lead_without_addresses_is_refused(h: Harness) -> None:
    lead = a_lead(h)
    for contact in lead.contacts:
        contact.emails = []
    args = {"lead_id": lead.id, "status": "outbox", "body_text": "x", "sender": SENDER}
    error = await h.error("send_email", args)
    assert error == (
        f"to: status outbox sends the email, so it needs a recipient, and lead "
        f"{lead.id} has no contact with an email address; pass to"
    )
    assert h.writes() == []
    # A draft may wait for its recipient.
    draft = await h.call("send_email", {"lead_id": lead.id, "body_text": "x"})
    assert draft["preview"]["request"] == {
        "lead_id": lead.id,
        "status": "draft",
        "body_text": "x",
    }


# -- Close's rules: each a tool error naming the field, and nothing sent ------------------------

RULES: list[tuple[str, dict[str, Any], str]] = [
    (
        "sender for outbox",
        {"status": "outbox", "body_text": "x"},
        "sender: required for status outbox (outbox, scheduled and inbox need one; or an "
        "email_account with one identity)",
    ),
    (
        "sender for scheduled",
        {"status": "scheduled", "body_text": "x", "date_scheduled": LATER},
        "sender: required for status scheduled (outbox, scheduled and inbox need one; or an "
        "email_account with one identity)",
    ),
    (
        "sender for inbox",
        {"status": "inbox", "body_text": "x"},
        "sender: required for status inbox (outbox, scheduled and inbox need one)",
    ),
    (
        "sender syntax",
        {"status": "outbox", "body_text": "x", "sender": "Sandra <nobody>"},
        "sender: 'Sandra <nobody>' is not a sender; use \"Name\" <name@example.com> or a bare "
        "address",
    ),
    (
        "date_scheduled required",
        {"status": "scheduled", "body_text": "x", "sender": SENDER},
        "date_scheduled: required for status scheduled",
    ),
    (
        "date_scheduled only when scheduled",
        {"body_text": "x", "date_scheduled": LATER},
        "date_scheduled: only for status scheduled; with draft it would be ignored",
    ),
    (
        "date_scheduled in the past",
        {
            "status": "scheduled",
            "body_text": "x",
            "sender": SENDER,
            "date_scheduled": "2025-12-31T23:59:00+00:00",
        },
        "date_scheduled: '2025-12-31T23:59:00+00:00' is not in the future (it is now "
        "2026-01-01T00:00:00+00:00)",
    ),
    (
        "date_scheduled without timezone",
        {
            "status": "scheduled",
            "body_text": "x",
            "sender": SENDER,
            "date_scheduled": "2026-01-02T09:00:00",
        },
        "date_scheduled: '2026-01-02T09:00:00' is not an ISO datetime with a timezone, e.g. "
        "2026-03-02T09:00:00+00:00",
    ),
    (
        "send_in only for outbox",
        {"body_text": "x", "send_in": 10},
        "send_in: only for status outbox (a delay before sending), not draft",
    ),
    (
        "followup_date not for drafts",
        {"body_text": "x", "followup_date": "2026-01-09T09:00:00Z"},
        "followup_date: only for status outbox, scheduled or sent, not draft",
    ),
    (
        "followup_date syntax",
        {"status": "sent", "body_text": "x", "followup_date": "next week"},
        "followup_date: 'next week' is not an ISO datetime with a timezone, e.g. "
        "2026-03-09T09:00:00+00:00",
    ),
    (
        # Close types followup_date as a date-time: a bare date would be refused by Close.
        "followup_date is a datetime, not a date",
        {"status": "sent", "body_text": "x", "followup_date": "2026-01-09"},
        "followup_date: '2026-01-09' is not an ISO datetime with a timezone, e.g. "
        "2026-03-09T09:00:00+00:00",
    ),
    ("body or template", {"subject": "x"}, "body_text: give body_text, body_html or a template"),
    (
        "template and body",
        {"template": "Intro", "body_html": "<p>x</p>"},
        "template: give a template or body_html, not both: Close renders the template only "
        "when no body is given",
    ),
    (
        "recipient syntax",
        {"body_text": "x", "to": ["ann@example.com", "bob@"]},
        "to[1]: 'bob@' is not a valid email address; give bare addresses like name@example.com",
    ),
    (
        "cc syntax",
        {"body_text": "x", "cc": ["Ann <ann@example.com>"]},
        "cc[0]: 'Ann <ann@example.com>' is not a valid email address; give bare addresses like "
        "name@example.com",
    ),
    (
        "bcc syntax",
        {"body_text": "x", "bcc": ["ann@localhost"]},
        "bcc[0]: 'ann@localhost' is not a valid email address; give bare addresses like "
        "name@example.com",
    ),
    (
        "archived template",
        {"template": "Old newsletter"},
        f"template: 'Old newsletter' is archived; pick an active one ({ERROR_CRM_NOTICE})",
    ),
    (
        "unknown template",
        {"template": "Intr"},
        "No email template named 'Intr'. Closest: 'Intro' (ID). Use "
        f'lookup(kind="email_templates") to list them. ({ERROR_CRM_NOTICE})',
    ),
]


async def test_rules_are_enforced_before_sending(h: Harness) -> None:
    intro = template_id(h, "Intro")
    lead_id = a_lead(h).id
    for name, args, message in RULES:
        error = await h.error("send_email", {"lead_id": lead_id, **args})
        assert error == message.replace("(ID)", f"({intro})"), name
    assert h.writes() == []


SCHEMA_RULES: list[tuple[str, dict[str, Any], str]] = [
    (
        "subject length",
        {"subject": "s" * 1001},
        "subject: '" + "s" * 39 + "... (length 1001) is too long",
    ),
    (
        "body_text size",
        {"body_text": "b" * 1_048_577},
        "body_text: '" + "b" * 39 + "... (length 1048577) is too long",
    ),
    (
        "body_html size",
        {"body_html": "b" * 1_048_577},
        "body_html: '" + "b" * 39 + "... (length 1048577) is too long",
    ),
    (
        "send_in range",
        {"status": "outbox", "send_in": 60},
        "send_in: 60 is greater than or equal to the maximum of 60",
    ),
    (
        "send_in negative",
        {"status": "outbox", "send_in": -1},
        "send_in: -1 is less than the minimum of 0",
    ),
    (
        "status",
        {"status": "queued"},
        "status: 'queued' is not one of ['draft', 'outbox', 'scheduled', 'sent', 'inbox']",
    ),
    ("lead id", {"lead_id": "cont_x"}, "lead_id: 'cont_x' does not match '^lead_[A-Za-z0-9]+$'"),
    (
        "contact id",
        {"contact_id": "lead_x"},
        "contact_id: 'lead_x' does not match '^cont_[A-Za-z0-9]+$'",
    ),
]


async def test_schema_limits_are_checked_before_anything_is_read(h: Harness) -> None:
    base = {"lead_id": a_lead(h).id, "body_text": "x", "sender": SENDER}
    for name, args, message in SCHEMA_RULES:
        error = await h.error("send_email", {**base, **args})
        assert error == message, name
    assert h.sandbox.requests == []


async def test_a_body_of_exactly_one_mebibyte_is_accepted(h: Harness) -> None:
    big = "b" * 1_048_576
    args = {"lead_id": a_lead(h).id, "to": ["ann@example.com"], "body_text": big}
    result = await h.call("send_email", {**args, "subject": "s" * 1000})
    assert result["status"] == "submitted"
    assert result["preview"]["rendering"]["body"] == "b" * 2000 + "… (1048576 characters in all)"
    ((_, _, body),) = posted(h)
    assert body["body_text"] == big


# -- audit and annotations ---------------------------------------------------------------------


@pytest.mark.harness(audited=True)
async def test_audit_lines_for_submitted_and_refused_emails(h: Harness) -> None:
    lead = a_lead(h)
    draft = {"lead_id": lead.id, "to": ["ann@example.com"], "body_text": "x"}
    created = await h.call("send_email", draft)
    send = {**draft, "status": "outbox", "sender": SENDER}
    first = await h.call("send_email", send)
    await h.call("send_email", {**send, "confirmation_token": first["confirmation_token"]})
    await h.call("send_email", {**send, "confirmation_token": first["confirmation_token"]})
    entries = h.audit.entries()
    sent_id = next(e for e in h.sandbox.store.emails if e != created["result"]["id"])
    body = {"lead_id": lead.id, "status": "draft", "to": ["ann@example.com"], "body_text": "x"}
    outbox = {**body, "status": "outbox", "sender": SENDER}
    base: dict[str, Any] = {"time": "2026-01-01T00:00:00+00:00", "tool": "send_email"}
    base |= {"path": "/activity/email/", "matched": 1}
    assert entries == [
        {**base, "outcome": "submitted", "request": body, "job_id": created["result"]["id"]},
        {**base, "outcome": "submitted", "request": outbox, "job_id": sent_id},
        {
            **base,
            "outcome": "refused",
            "request": outbox,
            "reason": "the confirmation token was already used",
        },
    ]


async def test_send_email_is_listed_with_explicit_annotations(h: Harness) -> None:
    tools = {t.name: t for t in (await h.client.list_tools()).tools}
    tool = tools["send_email"]
    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is False
    assert tool.annotations.destructive_hint is True
    assert tool.annotations.idempotent_hint is False
    assert tool.annotations.open_world_hint is True
    props = tool.input_schema["properties"]
    assert set(props) == {
        "lead_id", "contact_id", "to", "cc", "bcc", "subject", "body_text", "body_html",
        "template", "status", "sender", "email_account", "date_scheduled", "send_in",
        "followup_date", "in_reply_to_id", "followup_sequence", "followup_sequence_delay",
        "dry_run", "confirmation_token",
    }  # fmt: skip
    assert tool.input_schema["required"] == ["lead_id"]
    # Listed lean (limits enforced, not spelled out) and nullable, for strict clients.
    assert props["send_in"] == {
        "description": "outbox: send after 0-59 seconds.",
        "type": ["integer", "null"],
    }
    assert props["subject"] == {
        "description": "Subject (a template supplies one).",
        "type": ["string", "null"],
    }
    enforced = json.loads(
        (Path(__file__).parent.parent / "tool_schemas/enforced/send_email.json").read_text()
    )["properties"]
    assert enforced["send_in"] == {
        "description": "outbox: send after 0-59 seconds.",
        "exclusiveMaximum": 60,
        "minimum": 0,
        "type": "integer",
    }
    assert enforced["subject"] == {
        "description": "Subject (a template supplies one).",
        "maxLength": 1000,
        "type": "string",
    }


@pytest.mark.harness(toolsets="search,jobs")
async def test_send_toolset_off_removes_the_tool(h: Harness) -> None:
    names = {t.name for t in (await h.client.list_tools()).tools}
    assert "send_email" not in names
    assert {"pause_bulk_job", "resume_bulk_job"} <= names


# -- replies and follow-up sequences -----------------------------------------------------------


def an_email(h: Harness, lead: Lead, **fields: Any) -> dict[str, Any]:
    """An email activity put straight into the sandbox, as if made in Close's app."""
    from close_mcp.sandbox import emails

    data = {"lead_id": lead.id, "status": "inbox", "sender": "ann@example.com", **fields}
    return emails.create(h.sandbox.store, data, h.clock.time())


def sequence_id(h: Harness, name: str) -> str:
    return next(s.id for s in h.sandbox.store.sequences.values() if s.name == name)


async def test_a_reply_is_sent_in_the_thread_of_the_email_it_answers(h: Harness) -> None:
    lead = a_lead(h)
    received = an_email(h, lead, subject="Pricing?", to=["sandra@sandbox.example"])
    h.clear()
    args = {
        "lead_id": lead.id,
        "status": "outbox",
        "sender": SENDER,
        "subject": "Re: Pricing?",
        "body_text": "Here it is.",
        "in_reply_to_id": received["id"],
    }
    first = await h.call("send_email", args)
    assert first["status"] == "confirmation_required"
    address = lead.contacts[0].emails[0]["email"]
    body = {
        "lead_id": lead.id,
        "status": "outbox",
        "contact_id": lead.contacts[0].id,
        "to": [address],
        "subject": "Re: Pricing?",
        "body_text": "Here it is.",
        "sender": SENDER,
        "in_reply_to_id": received["id"],
    }
    assert first["preview"]["request"] == body
    assert first["preview"]["rendering"]["in_reply_to"] == {
        "id": received["id"],
        "subject": "Pricing?",
        "thread_id": received["thread_id"],
        "direction": "incoming",
    }
    assert (
        f"A reply to {received['id']} (subject 'Pricing?'): Close keeps it in thread "
        f"{received['thread_id']}." in first["preview"]["notes"]
    )
    reads = [(r.method, r.path, r.query) for r in h.sandbox.requests if "activity" in r.path]
    assert reads == [
        (
            "GET",
            f"/api/v1/activity/email/{received['id']}/",
            {"_fields": "id,lead_id,thread_id,subject,status,direction"},
        )
    ]
    assert h.writes() == []

    done = await h.call("send_email", {**args, "confirmation_token": first["confirmation_token"]})
    assert done["status"] == "submitted"
    assert posted(h) == [("POST", EMAIL_PATH, body)]
    reply = h.sandbox.store.emails[done["result"]["id"]]
    assert reply["in_reply_to_id"] == received["id"]
    assert reply["thread_id"] == received["thread_id"] == done["result"]["thread_id"]


async def test_a_reply_to_an_unknown_email_or_another_leads_email_is_refused(h: Harness) -> None:
    leads = [lead for lead in h.sandbox.store.leads.values() if lead.contacts]
    lead, other = leads[0], leads[1]
    elsewhere = an_email(h, other, subject="Hi")
    base = {"lead_id": lead.id, "body_text": "x", "to": ["ann@example.com"]}
    unknown = await h.error("send_email", {**base, "in_reply_to_id": "acti_nope"})
    assert unknown == (
        "in_reply_to_id: Close has no email activity 'acti_nope' (or this key cannot see it)"
    )
    foreign = await h.error("send_email", {**base, "in_reply_to_id": elsewhere["id"]})
    assert foreign == (
        f"in_reply_to_id: {elsewhere['id']!r} is an email of lead {other.id}, not of "
        f"{lead.id}; a reply stays on the lead of the email it answers"
    )
    shape = await h.error("send_email", {**base, "in_reply_to_id": "lead_x"})
    assert shape == "in_reply_to_id: 'lead_x' does not match '^acti_[A-Za-z0-9]+$'"
    assert h.writes() == []


async def test_a_followup_sequence_is_resolved_by_name_with_its_delay(h: Harness) -> None:
    lead = a_lead(h)
    onboarding = sequence_id(h, "Onboarding")
    args = {
        "lead_id": lead.id,
        "status": "scheduled",
        "date_scheduled": LATER,
        "sender": SENDER,
        "body_text": "x",
        "followup_sequence": "onboarding",
        "followup_sequence_delay": 3 * 86_400,
    }
    first = await h.call("send_email", args)
    request = first["preview"]["request"]
    assert request["followup_sequence_id"] == onboarding
    assert request["followup_sequence_delay"] == 259_200
    assert "followup_sequence" not in request
    assert first["preview"]["rendering"]["followup_sequence"] == "Onboarding"
    assert (
        f"If nobody replies, Close subscribes the recipient to the sequence 'Onboarding' "
        f"({onboarding}) after 72 hours; that sequence then emails them."
    ) in first["preview"]["notes"]
    done = await h.call("send_email", {**args, "confirmation_token": first["confirmation_token"]})
    ((_, _, body),) = posted(h)
    assert body == request
    saved = h.sandbox.store.emails[done["result"]["id"]]
    assert (saved["followup_sequence_id"], saved["followup_sequence_delay"]) == (
        onboarding,
        259_200,
    )


FOLLOWUP_RULES: list[tuple[str, dict[str, Any], str]] = [
    (
        "delay without a sequence",
        {"followup_sequence_delay": 86_400},
        "followup_sequence_delay: only with followup_sequence (the sequence it starts)",
    ),
    (
        "logged email",
        {"status": "sent", "followup_sequence": "Onboarding"},
        "followup_sequence: only for an email that goes out (draft, outbox, scheduled), not sent",
    ),
    (
        "unknown sequence",
        {"followup_sequence": "Onboardin"},
        "followup_sequence: No sequence named 'Onboardin'. Closest: 'Onboarding' (ID). Use "
        f'lookup(kind="sequences") to list them. ({ERROR_CRM_NOTICE})',
    ),
]


async def test_followup_sequence_rules_are_enforced_before_sending(h: Harness) -> None:
    onboarding = sequence_id(h, "Onboarding")
    base = {"lead_id": a_lead(h).id, "body_text": "x", "to": ["ann@example.com"]}
    for name, args, message in FOLLOWUP_RULES:
        error = await h.error("send_email", {**base, **args})
        assert error == message.replace("(ID)", f"({onboarding})"), name
    short = await h.error(
        "send_email", {**base, "followup_sequence": "Onboarding", "followup_sequence_delay": 3600}
    )
    assert short == "followup_sequence_delay: 3600 is less than the minimum of 86400"
    h.sandbox.store.sequences[onboarding].status = "paused"
    paused = await h.error("send_email", {**base, "followup_sequence": onboarding})
    assert paused == (
        f"followup_sequence: 'Onboarding' is paused; pick an active sequence ({ERROR_CRM_NOTICE})"
    )
    assert h.writes() == []
