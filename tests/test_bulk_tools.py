"""Bulk actions through the MCP client, both eras: previews, bound confirmation, exact requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from close_mcp.errors import ERROR_CRM_NOTICE
from close_mcp.sandbox import Sandbox
from tests.harness import MODES, Harness, StartHarness, accept, cancel, decline, run_to_done
from tests.ids import email_template, field_id, status_id
from tests.queries import lead_and, status_condition

pytestmark = pytest.mark.anyio

QUALIFIED = {"lead_status": "Qualified"}
LEAD_NODE = {"type": "object_type", "object_type": "lead"}


def leads_with_status(sb: Sandbox, label: str) -> list[str]:
    sid = status_id(sb, label)
    return [lead.id for lead in sb.store.leads.values() if lead.status_id == sid]


def status_query(sb: Sandbox, label: str) -> dict[str, Any]:
    return lead_and(status_condition(status_id(sb, label)))


def posted(h: Harness) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.json) for r in h.writes()]


# -- preview first: by default no write tool sends on its first call -------------------------

EVERY_ACTION_BUT_EDIT = {"CLOSE_MCP_CONFIRM": "email,sequences,send,delete"}


@pytest.mark.parametrize("mode", MODES)
async def test_by_default_edit_and_revert_send_nothing_on_their_first_call(h: Harness) -> None:
    """Issue 16: with default settings the first call of every write tool is a preview."""
    assert h.client.instructions is not None
    assert "The first call of a write tool sends nothing" in h.client.instructions
    assert "run at once (CLOSE_MCP_CONFIRM" not in h.client.instructions
    args = {"filter": QUALIFIED, "edit": {"type": "set_lead_status", "lead_status": "Customer"}}
    first = await h.call("create_bulk_edit", args)
    assert first["status"] == "confirmation_required"
    assert first["confirmation_token"]
    assert h.writes() == []

    done = await h.call(
        "create_bulk_edit", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "submitted"
    await run_to_done(h, done["job"]["id"])
    h.clear()

    revert = {"job_id": done["job"]["id"]}
    first_revert = await h.call("revert_bulk_edit", revert)
    assert first_revert["status"] == "confirmation_required"
    assert first_revert["confirmation_token"]
    assert h.writes() == []
    reverted = await h.call(
        "revert_bulk_edit", {**revert, "confirmation_token": first_revert["confirmation_token"]}
    )
    assert reverted["status"] == "submitted"
    assert h.writes() != []


@pytest.mark.harness(env=EVERY_ACTION_BUT_EDIT)
async def test_a_person_may_knowingly_remove_edit_from_the_confirmation_list(
    h: Harness,
) -> None:
    assert "edit" not in h.runtime.settings.confirm
    # The server tells the model which tools run on their first call here.
    assert h.client.instructions is not None
    assert h.client.instructions.endswith(
        "On this server these actions run at once (CLOSE_MCP_CONFIRM leaves them out): edit. "
        "The first call of their tools sends; call them with dry_run: true first and show the "
        "preview to the user."
    )
    args = {"filter": QUALIFIED, "edit": {"type": "set_lead_status", "lead_status": "Customer"}}
    done = await h.call("create_bulk_edit", args)
    assert done["status"] == "submitted"
    assert [(r.method, r.path) for r in h.writes()] == [("POST", "/api/v1/bulk_action/edit/")]


# -- each kind: dry run sends nothing, the confirmed call sends exactly the documented body ---


@pytest.mark.parametrize("mode", MODES)
async def test_bulk_edit_status_previews_then_submits_exact_body(h: Harness) -> None:
    sb = h.sandbox
    args = {"filter": QUALIFIED, "edit": {"type": "set_lead_status", "lead_status": "Customer"}}
    preview = await h.call("create_bulk_edit", {**args, "dry_run": True})
    expected_body = {
        "s_query": status_query(sb, "Qualified"),
        "send_done_email": True,
        "type": "set_lead_status",
        "lead_status_id": status_id(sb, "Customer"),
    }
    matched = len(leads_with_status(sb, "Qualified"))
    assert preview["status"] == "preview"
    assert preview["preview"]["path"] == "/bulk_action/edit/"
    assert preview["preview"]["request"] == expected_body
    assert preview["preview"]["matched"] == matched
    assert len(preview["preview"]["sample"]) == 5
    assert {s["status_label"] for s in preview["preview"]["sample"]} == {"Qualified"}
    assert preview["confirmation_token"] is None
    assert h.writes() == []

    # edit is in the default confirmation list: the first call sends nothing, the second does.
    done = await h.confirmed("create_bulk_edit", args)
    assert done["status"] == "submitted"
    assert done["job"]["id"].startswith("bulkedit_")
    assert posted(h) == [("POST", "/api/v1/bulk_action/edit/", expected_body)]


@pytest.mark.parametrize("mode", MODES)
async def test_bulk_edit_custom_fields(h: Harness) -> None:
    sb = h.sandbox
    single = await h.confirmed(
        "create_bulk_edit",
        {
            "filter": QUALIFIED,
            "edit": {"type": "set_custom_field", "custom_field": "Industry", "value": "retail"},
        },
    )
    multi = await h.confirmed(
        "create_bulk_edit",
        {
            "filter": QUALIFIED,
            "results_limit": 3,
            "edit": {
                "type": "set_custom_field",
                "custom_field": "Products",
                "values": ["API", "CRM"],
                "operation": "add",
            },
        },
    )
    cleared = await h.confirmed(
        "create_bulk_edit",
        {
            "filter": QUALIFIED,
            "edit": {"type": "clear_custom_field", "custom_field": "Deal Size"},
        },
    )
    assert [r["status"] for r in (single, multi, cleared)] == ["submitted"] * 3
    query = status_query(sb, "Qualified")
    assert [body for _, _, body in posted(h)] == [
        {
            "s_query": query,
            "send_done_email": True,
            "type": "set_custom_field",
            "custom_field_id": field_id(sb, "Industry"),
            "custom_field_value": "Retail",
        },
        {
            "s_query": query,
            "results_limit": 3,
            "send_done_email": True,
            "type": "set_custom_field",
            "custom_field_id": field_id(sb, "Products"),
            "custom_field_values": ["API", "CRM"],
            "custom_field_operation": "add",
        },
        {
            "s_query": query,
            "send_done_email": True,
            "type": "clear_custom_field",
            "custom_field_id": field_id(sb, "Deal Size"),
        },
    ]
    assert multi["preview"]["matched"] == 3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            {"type": "set_custom_field", "custom_field": "Industry", "value": "Spaceflight"},
            "edit.value: 'Spaceflight' is not a choice of this field; allowed: 'Software', "
            "'Manufacturing', 'Healthcare', 'Finance', 'Retail', 'Education'",
        ),
        (
            {
                "type": "set_custom_field",
                "custom_field": "Industry",
                "value": "Retail",
                "operation": "add",
            },
            "edit.operation: only multi-value fields take an operation, and 'Industry' holds one "
            "value; leave it out",
        ),
        (
            {"type": "set_custom_field", "custom_field": "Products", "value": "API"},
            "edit.value: 'Products' holds several values; pass them as edit.values",
        ),
        (
            {"type": "set_custom_field", "custom_field": "Deal Size", "value": "lots"},
            "edit.value: this is a number field; 'lots' is not a number",
        ),
        (
            {"type": "set_lead_status", "lead_status": "Qualifed"},
            "No lead status named 'Qualifed'.",
        ),
    ],
)
async def test_bulk_edit_rules_are_enforced_before_sending(
    edit: dict[str, Any], message: str, h: Harness
) -> None:
    error = await h.error("create_bulk_edit", {"filter": QUALIFIED, "edit": edit})
    assert error.startswith(message)
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
async def test_bulk_email_needs_confirmation_and_renders_template(h: Harness) -> None:
    sb = h.sandbox
    template = email_template(sb, "Intro")
    args = {"filter": QUALIFIED, "template": "Intro", "contact_preference": "contact"}
    first = await h.call("create_bulk_email", args)
    assert first["status"] == "confirmation_required"
    assert first["confirmation_token"]
    sample = [sb.store.leads[s["id"]] for s in first["preview"]["sample"]]
    # The first sample lead has no contact with an address, so Close sends it nothing: the
    # email the preview shows is the next lead's, to its first contact with an address.
    assert [c.emails for c in sample[0].contacts] == [[], []]
    lead = sample[1]
    contact = next(c for c in lead.contacts if c.emails)
    assert (lead.display_name, contact.name, contact.emails[0]["email"]) == (
        "Café Systems",
        "Ben Łukasz",
        "ben.614@caf.example",
    )
    # The seeded 'Intro' template rendered by hand (not by the sandbox's renderer).
    assert first["preview"]["rendering"] == {
        "lead_id": lead.id,
        "contact_id": contact.id,
        "contact_name": "Ben Łukasz",
        "email": "ben.614@caf.example",
        "subject": "Quick question for Café Systems",
        "body": "Hi Ben,\n\nI work with teams like Café Systems on their sales process. "
        "Worth a chat?\n\nSandra",
    }
    assert first["preview"]["notes"][-1] == (
        f"The rendering is the email to ben.614@caf.example (contact {contact.id} of lead "
        f"{lead.id}); contact_preference contact sends to every contact with an email address "
        "(each one's first address)."
    )
    renders = [r for r in sb.requests if r.path.endswith("/render/")]
    assert [r.query for r in renders] == [{"lead_id": lead.id, "contact_id": contact.id}]
    assert h.writes() == []

    done = await h.call(
        "create_bulk_email", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "submitted"
    assert posted(h) == [
        (
            "POST",
            "/api/v1/bulk_action/email/",
            {
                "s_query": status_query(sb, "Qualified"),
                "send_done_email": True,
                "template_id": template.id,
                "contact_preference": "contact",
            },
        )
    ]


async def test_bulk_email_refuses_an_archived_template_as_send_email_does(h: Harness) -> None:
    """One check for both tools that send a template: refused before any lead is read."""
    error = f"template: 'Old newsletter' is archived; pick an active one ({ERROR_CRM_NOTICE})"
    assert (
        await h.error("create_bulk_email", {"filter": QUALIFIED, "template": "Old newsletter"})
        == error
    )
    assert not [r for r in h.sandbox.requests if r.path == "/api/v1/data/search/"]
    lead = leads_with_status(h.sandbox, "Qualified")[0]
    sent = {"lead_id": lead, "template": "Old newsletter"}
    assert await h.error("send_email", sent) == error
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
async def test_bulk_sequence_subscribe_exact_body(h: Harness) -> None:
    sb = h.sandbox
    account = next(iter(sb.store.email_accounts.values()))
    sequence = next(s for s in sb.store.sequences.values() if s.name == "Onboarding")
    args = {
        "filter": QUALIFIED,
        "action_type": "subscribe",
        "sequence": "Onboarding",
        "sender_account": account.id,
        "sender_email": "sales@sandbox.example",
    }
    first = await h.call("create_bulk_sequence_subscription", args)
    assert first["status"] == "confirmation_required"
    done = await h.call(
        "create_bulk_sequence_subscription",
        {**args, "confirmation_token": first["confirmation_token"]},
    )
    assert done["status"] == "submitted"
    assert posted(h) == [
        (
            "POST",
            "/api/v1/bulk_action/sequence_subscription/",
            {
                "s_query": status_query(sb, "Qualified"),
                "send_done_email": True,
                "action_type": "subscribe",
                "sequence_id": sequence.id,
                "sender_account_id": account.id,
                "sender_name": "Sandbox Sales",
                "sender_email": "sales@sandbox.example",
                "contact_preference": "lead",
            },
        )
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"action_type": "subscribe"},
            "sequence, sender_account: required when action_type is subscribe",
        ),
        (
            {
                "action_type": "subscribe",
                "sequence": "Onboarding",
                "sender_account": "tomas@sandbox.example",
                "sender_email": "x@y.example",
            },
            "sender_email: 'x@y.example' is not an identity of",
        ),
        (
            {"action_type": "pause", "all_sequences": True, "sender_name": "Me"},
            "sender_name: only for action_type subscribe; leave out for pause",
        ),
        # Issue 18: "every sequence" is never what a left-out argument means.
        (
            {"action_type": "pause"},
            "sequence: give a sequence, or all_sequences: true to pause every sequence",
        ),
        (
            {"action_type": "resume_finished"},
            "sequence: give a sequence, or all_sequences: true to resume finished every",
        ),
        (
            {"action_type": "resume", "sequence": "Onboarding", "all_sequences": True},
            "sequence: give a sequence or all_sequences: true, not both",
        ),
        (
            {
                "action_type": "subscribe",
                "all_sequences": True,
                "sequence": "Onboarding",
                "sender_account": "tomas@sandbox.example",
            },
            "all_sequences: not for subscribe, which takes one sequence; leave it out",
        ),
    ],
)
async def test_sequence_rules_are_enforced_before_sending(
    args: dict[str, Any], message: str, h: Harness
) -> None:
    error = await h.error("create_bulk_sequence_subscription", {"filter": QUALIFIED, **args})
    assert error.startswith(message)
    assert h.writes() == []


@pytest.mark.parametrize(
    ("args", "sequence_id"),
    [
        ({"all_sequences": True}, None),
        ({"sequence": "Onboarding"}, "Onboarding"),
    ],
)
async def test_pausing_every_sequence_takes_all_sequences_and_sends_no_sequence_id(
    args: dict[str, Any], sequence_id: str | None, h: Harness
) -> None:
    sb = h.sandbox
    call = {"filter": QUALIFIED, "action_type": "pause", **args}
    first = await h.call("create_bulk_sequence_subscription", call)
    done = await h.call(
        "create_bulk_sequence_subscription",
        {**call, "confirmation_token": first["confirmation_token"]},
    )
    assert done["status"] == "submitted"
    body: dict[str, Any] = {
        "s_query": status_query(sb, "Qualified"),
        "send_done_email": True,
        "action_type": "pause",
    }
    if sequence_id is not None:
        body["sequence_id"] = next(
            s.id for s in sb.store.sequences.values() if s.name == sequence_id
        )
    assert posted(h) == [("POST", "/api/v1/bulk_action/sequence_subscription/", body)]


async def test_sequence_schema_states_the_required_when_rules(h: Harness) -> None:
    tools = {t.name: t for t in (await h.client.list_tools()).tools}
    props = tools["create_bulk_sequence_subscription"].input_schema["properties"]
    assert "Required for subscribe" in props["sequence"]["description"]
    assert "Required for subscribe" in props["sender_account"]["description"]
    assert "resume_finished finished ones" in props["action_type"]["description"]
    assert "every sequence" in props["all_sequences"]["description"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(audited=True)
async def test_bulk_delete_end_to_end(tmp_path: Path, h: Harness) -> None:
    sb = h.sandbox
    doomed = leads_with_status(sb, "Qualified")
    dry = await h.call("create_bulk_delete", {"filter": QUALIFIED, "dry_run": True})
    assert dry["status"] == "preview"
    first = await h.call("create_bulk_delete", {"filter": QUALIFIED})
    assert first["status"] == "confirmation_required"
    assert first["preview"]["matched"] == len(doomed)
    assert h.writes() == []
    done = await h.call(
        "create_bulk_delete",
        {"filter": QUALIFIED, "confirmation_token": first["confirmation_token"]},
    )
    assert done["status"] == "submitted"
    body = {"s_query": status_query(sb, "Qualified"), "send_done_email": True}
    assert posted(h) == [("POST", "/api/v1/bulk_action/delete/", body)]
    await run_to_done(h, done["job"]["id"])
    assert not set(doomed) & set(sb.store.leads)
    entries = h.audit.entries()
    assert [(e["tool"], e["outcome"], e["matched"], e["request"]) for e in entries] == [
        ("create_bulk_delete", "submitted", len(doomed), body)
    ]
    assert entries[0]["job_id"] == done["job"]["id"]
    assert sb.api_key not in (tmp_path / "audit.jsonl").read_text()


# -- a delete cannot happen without a matching, valid confirmation -------------------------


async def _token(h: Harness, args: dict[str, Any] | None = None) -> str:
    first = await h.call("create_bulk_delete", args or {"filter": QUALIFIED})
    assert first["status"] == "confirmation_required"
    token: str = first["confirmation_token"]
    return token


async def _refused(
    h: Harness, token: str, reason: str, args: dict[str, Any] | None = None
) -> dict[str, Any]:
    result = await h.call(
        "create_bulk_delete", {**(args or {"filter": QUALIFIED}), "confirmation_token": token}
    )
    assert result["status"] == "refused"
    assert result["reason"].startswith(reason), result["reason"]
    assert result["confirmation_token"] not in (None, token)
    assert result["preview"]["request"]["s_query"]
    assert h.writes() == []
    return result


@pytest.mark.parametrize("mode", MODES)
async def test_forged_token_is_refused(h: Harness) -> None:
    token = await _token(h)
    payload, mac = token.split(".")
    await _refused(h, f"{payload}.{mac[:-2]}AA", "the confirmation token is not valid")
    await _refused(h, "not-a-token", "the confirmation token is malformed")


async def test_token_from_another_secret_is_refused(start_harness: StartHarness) -> None:
    other = await start_harness(env={"CLOSE_MCP_SECRET": "another-secret-0123456789"})
    foreign = await _token(other)

    h = await start_harness()
    await _refused(h, foreign, "the confirmation token is not valid")


@pytest.mark.parametrize("mode", MODES)
async def test_expired_token_is_refused(h: Harness) -> None:
    token = await _token(h)
    h.clock.advance(601)
    await _refused(h, token, "the confirmation token has expired")


# A token minted at these offsets past the harness clock's whole-second start expires 600 s
# later, its "e" rounded to the millisecond: down, exact, or up.
@pytest.mark.parametrize(
    ("minted_past", "expires_after"),
    [(0.0, 600.0), (0.0004, 600.0), (0.0006, 600.001)],
    ids=["exact", "rounded-down", "rounded-up"],
)
@pytest.mark.parametrize("used_before_expiry", [0.0, 0.001], ids=["at-expiry", "1ms-before"])
@pytest.mark.harness(n_leads=40)
async def test_token_expires_at_its_rounded_expiry_and_not_before(
    minted_past: float, expires_after: float, used_before_expiry: float, h: Harness
) -> None:
    start = h.clock.time()
    assert start == 1_767_225_600.0  # 2026-01-01T00:00:00Z
    h.clock.advance(minted_past)
    first = await h.call("create_bulk_delete", {"filter": QUALIFIED})
    assert first["expires_at"] == "2026-01-01T00:10:00+00:00"
    use_at = start + expires_after - used_before_expiry
    h.clock.advance(use_at - h.clock.time())
    assert h.clock.time() == use_at
    args = {"filter": QUALIFIED, "confirmation_token": first["confirmation_token"]}
    if used_before_expiry == 0.0:  # used at the instant it expires: refused
        refused = await _refused(h, first["confirmation_token"], "")
        assert refused["reason"] == ("the confirmation token has expired (tokens last 10 minutes)")
        assert h.writes() == []
    else:  # a millisecond before: accepted, and sent once
        done = await h.call("create_bulk_delete", args)
        assert done["status"] == "submitted"
        body = {"s_query": status_query(h.sandbox, "Qualified"), "send_done_email": True}
        assert posted(h) == [("POST", "/api/v1/bulk_action/delete/", body)]


@pytest.mark.parametrize("mode", MODES)
async def test_reused_token_is_refused(h: Harness) -> None:
    token = await _token(h, {"filter": {"lead_status": "Bad Fit"}})
    ok = await h.call(
        "create_bulk_delete",
        {"filter": {"lead_status": "Bad Fit"}, "confirmation_token": token},
    )
    assert ok["status"] == "submitted"
    h.clear()
    replay = await h.call(
        "create_bulk_delete",
        {"filter": {"lead_status": "Bad Fit"}, "confirmation_token": token},
    )
    # The leads are gone by now or not; either way the same token never sends twice.
    assert replay["status"] in ("refused",)
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
async def test_token_for_other_arguments_is_refused(h: Harness) -> None:
    token = await _token(h)
    await _refused(
        h,
        token,
        "the confirmation token was issued for different arguments",
        {"filter": {"lead_status": "Customer"}},
    )
    edit_token = (
        await h.call(
            "create_bulk_edit",
            {
                "filter": QUALIFIED,
                "allow_all_leads": False,
                "edit": {"type": "set_lead_status", "lead_status": "Customer"},
                "dry_run": True,
            },
        )
    )["confirmation_token"]
    assert edit_token is None
    email = await h.call("create_bulk_email", {"filter": QUALIFIED, "template": "Intro"})
    await _refused(
        h,
        email["confirmation_token"],
        "the confirmation token was issued for 'create_bulk_email'",
    )


@pytest.mark.parametrize("mode", MODES)
async def test_changed_count_is_refused_with_fresh_preview(h: Harness) -> None:
    sb = h.sandbox
    before = len(leads_with_status(sb, "Qualified"))
    token = await _token(h)
    newcomer = next(
        lead
        for lead in sb.store.leads.values()
        if lead.id not in leads_with_status(sb, "Qualified")
    )
    newcomer.status_id = status_id(sb, "Qualified")
    refused = await _refused(
        h,
        token,
        f"the selection now matches {before + 1} leads, not the {before} that were previewed",
    )
    assert refused["preview"]["matched"] == before + 1
    # The fresh token fits the new count.
    done = await h.call(
        "create_bulk_delete",
        {"filter": QUALIFIED, "confirmation_token": refused["confirmation_token"]},
    )
    assert done["status"] == "submitted"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("answer", "reason"), [(decline(), "the person declined"), (cancel(), "the person cancelled")]
)
async def test_elicitation_declined_or_cancelled_refuses(
    answer: Any, reason: str, start_harness: StartHarness
) -> None:
    h = await start_harness(elicit=answer)
    token = await _token(h)
    await _refused(h, token, reason)
    assert len(h.questions) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_elicitation_with_the_right_number_deletes(start_harness: StartHarness) -> None:
    probe = await start_harness(n_leads=60)
    count = len(leads_with_status(probe.sandbox, "Qualified"))

    h = await start_harness(n_leads=60, elicit=accept({"count": count}))
    first = await h.call("create_bulk_delete", {"filter": QUALIFIED})
    token = first["confirmation_token"]
    done = await h.call("create_bulk_delete", {"filter": QUALIFIED, "confirmation_token": token})
    assert done["status"] == "submitted"
    # The person is told which leads: the first three the preview showed, by name.
    shown = ", ".join(repr(lead["display_name"]) for lead in first["preview"]["sample"][:3])
    assert h.questions == [
        f"Bulk delete: permanently delete {count} leads ({shown} and {count - 3} more). This "
        f"cannot be undone in Close. To confirm, type the number of leads that will be deleted "
        f"({count})."
    ]
    assert len(h.writes()) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("typed", ["8", "12", 8.0, 3.5, True, None])
async def test_a_count_that_is_not_an_integer_is_refused(
    typed: Any, start_harness: StartHarness
) -> None:
    """A lenient reading would take "8" or 8.0 for 8 (and True for 1): the answer must be
    the integer itself, or nothing is sent."""
    h = await start_harness(n_leads=60, elicit=accept({"count": typed}))
    token = await _token(h)
    await _refused(h, token, f"the person's answer {typed!r} is not a whole number of leads")


@pytest.mark.parametrize("approve", ["yes", "on", 1, "true"])
@pytest.mark.harness(confirm="edit")
async def test_an_approval_that_is_not_a_boolean_is_refused(
    approve: Any, start_harness: StartHarness
) -> None:
    h = await start_harness(n_leads=60, elicit=accept({"approve": approve}))
    args = {"filter": QUALIFIED, "edit": {"type": "set_lead_status", "lead_status": "Bad Fit"}}
    first = await h.call("create_bulk_edit", args)
    refused = await h.call(
        "create_bulk_edit", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert refused["status"] == "refused"
    assert refused["reason"] == f"the person's answer {approve!r} is not a yes or no"
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(elicit=accept({"count": 1}))
async def test_elicitation_with_a_wrong_number_refuses(h: Harness) -> None:
    token = await _token(h)
    await _refused(h, token, "the person typed 1, but the action would delete")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(elicit=accept({"approve": False}))
async def test_approval_elicitation_for_other_actions(h: Harness) -> None:
    args = {"filter": QUALIFIED, "template": "Intro"}
    first = await h.call("create_bulk_email", args)
    refused = await h.call(
        "create_bulk_email", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert refused["status"] == "refused"
    assert refused["reason"] == "the person did not approve the action"
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
async def test_without_elicitation_token_suffices_unless_human_required(
    start_harness: StartHarness,
) -> None:
    h = await start_harness()
    token = await _token(h)
    done = await h.call("create_bulk_delete", {"filter": QUALIFIED, "confirmation_token": token})
    assert done["status"] == "submitted"

    # Issue 26: said on the first call, with no token (a token could never be confirmed here).
    h = await start_harness(require_human=True)
    first = await h.call("create_bulk_delete", {"filter": QUALIFIED})
    assert (first["status"], first["confirmation_token"], first["reason"]) == (
        "refused",
        None,
        "CLOSE_MCP_REQUIRE_HUMAN is set and this client cannot ask its user (no elicitation "
        "support), so confirmed actions are refused",
    )
    assert first["message"].startswith("Refused: CLOSE_MCP_REQUIRE_HUMAN is set")
    assert h.writes() == []


# -- the all-leads rule, read-only mode and toolsets ------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(env=EVERY_ACTION_BUT_EDIT)  # confirmed even with edit taken out
async def test_all_leads_needs_allow_all_leads_and_then_confirmation(h: Harness) -> None:
    everything = {
        "s_query": {"type": "match_all"},
        "edit": {"type": "set_lead_status", "lead_status": "Customer"},
    }
    error = await h.error("create_bulk_edit", everything)
    assert "matches every lead in the organization" in error
    first = await h.call("create_bulk_edit", {**everything, "allow_all_leads": True})
    assert first["status"] == "confirmation_required"
    assert first["preview"]["matched"] == len(h.sandbox.store.leads)
    assert first["preview"]["notes"] == [
        "This selection matches every lead in the organization.",
        "Before sending, the current status of the 120 leads is saved so revert_bulk_edit "
        "can put it back (1 more Close request).",
    ]
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
async def test_read_only_and_toolsets_hide_and_block_write_tools(
    start_harness: StartHarness,
) -> None:
    writes = {
        "create_bulk_edit",
        "create_bulk_email",
        "create_bulk_sequence_subscription",
        "create_bulk_delete",
    }
    h = await start_harness(read_only=True)
    names = {t.name for t in (await h.client.list_tools()).tools}
    assert not names & writes
    assert {"search_leads", "lookup", "get_bulk_job"} <= names
    error = await h.error("create_bulk_delete", {"filter": QUALIFIED})
    assert "create_bulk_delete" in error
    assert h.writes() == []

    h = await start_harness(toolsets="search,edit")
    names = {t.name for t in (await h.client.list_tools()).tools}
    assert "create_bulk_edit" in names
    assert not names & (writes - {"create_bulk_edit"})
    assert "list_bulk_jobs" not in names
    await h.error("create_bulk_email", {"filter": QUALIFIED, "template": "Intro"})
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
async def test_annotations_are_explicit(h: Harness) -> None:
    tools = {t.name: t for t in (await h.client.list_tools()).tools}
    expected = {
        "create_bulk_edit": (False, True, False, False),
        "create_bulk_email": (False, True, False, True),
        "create_bulk_sequence_subscription": (False, True, False, True),
        "create_bulk_delete": (False, True, False, False),
    }
    for name, hints in expected.items():
        a = tools[name].annotations
        assert a is not None
        assert (
            a.read_only_hint,
            a.destructive_hint,
            a.idempotent_hint,
            a.open_world_hint,
        ) == hints
    # The two steps are told once, in the instructions, not in every description.
    assert h.client.instructions is not None
    assert "Every write tool works in two steps." in h.client.instructions
    assert "the `confirmation_token` only after they agree" in h.client.instructions


async def test_zero_matches_submit_nothing(h: Harness) -> None:
    result = await h.call(
        "create_bulk_edit",
        {
            "filter": {"name": "zzzz-nobody"},
            "edit": {"type": "set_lead_status", "lead_status": "Customer"},
        },
    )
    assert result["status"] == "refused"
    assert result["reason"] == "the selection matches no leads"
    assert h.writes() == []


class OddJobIds(httpx.AsyncBaseTransport):
    """The sandbox, except that a created job comes back with an id of no known kind."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and "/bulk_action/" in request.url.path:
            await response.aread()
            body = {**response.json(), "id": "job_0dd"}
            return httpx.Response(response.status_code, json=body)
        return response


async def test_an_unexpected_job_id_still_reports_the_submission(
    tmp_path: Path, start_harness: StartHarness
) -> None:
    sandbox = Sandbox(n_leads=40)
    args = {"filter": QUALIFIED, "edit": {"type": "set_lead_status", "lead_status": "Customer"}}
    h = await start_harness(
        sandbox=sandbox, transport=OddJobIds(sandbox.transport()), audit_dir=tmp_path
    )
    result = await h.confirmed("create_bulk_edit", args)
    assert result["status"] == "submitted"
    assert result["job"] is None
    assert result["result"]["id"] == "job_0dd"
    assert [(e["outcome"], e["job_id"]) for e in h.audit.entries()] == [("submitted", "job_0dd")]


@pytest.mark.harness(n_leads=60)
async def test_a_relative_selection_that_moved_on_before_the_confirmation_is_refused(
    h: Harness,
) -> None:
    """`created_within` is read against the clock at each call: a lead that left the span
    between preview and confirmation changes the count, and the confirmation is refused."""
    now = datetime.fromtimestamp(h.clock.time(), tz=UTC)
    edge = next(iter(h.sandbox.store.leads.values()))
    edge.date_created = now - timedelta(days=30) + timedelta(seconds=60)
    args = {"filter": {"created_within": "720h"}}  # hours: not rounded to a day's start
    first = await h.call("create_bulk_delete", args)
    assert first["status"] == "confirmation_required"
    h.clock.advance(120)  # the edge lead is now 720 hours and a minute old
    token = first["confirmation_token"]
    refused = await h.call("create_bulk_delete", {**args, "confirmation_token": token})
    assert refused["status"] == "refused"
    matched = first["preview"]["matched"]
    assert refused["preview"]["matched"] == matched - 1
    assert refused["reason"] == (
        f"the selection now matches {matched - 1} leads, not the {matched} that were previewed"
    )
    assert h.writes() == []
