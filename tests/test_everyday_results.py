"""Issue 26: results that stay small whatever the selection, and write answers that say what
happens (nothing to do, a used token, a server that requires a person the client cannot ask).

Through a real MCP client against the sandbox; token counts are o200k_base over the text a
client hands the model (bench/tokens.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError, types

from bench.tokens import count_tokens
from close_mcp.sandbox import Sandbox
from close_mcp.server.idlists import shortened
from tests.harness import MODES, Harness, StartHarness, text_of
from tests.ids import status_id

pytestmark = pytest.mark.anyio

RESULT_TOKENS = 1500


def sha256_of(ids: list[str]) -> str:
    return hashlib.sha256(json.dumps(ids, separators=(",", ":")).encode()).hexdigest()


def short_ids(ids: list[str]) -> dict[str, Any]:
    sha = sha256_of(ids)
    return {"count": len(ids), "first": ids[:3], "sha256": sha, "all": f"close://id-lists/{sha}"}


def ids_query(ids: Any) -> dict[str, Any]:
    return {
        "type": "and",
        "queries": [
            {"type": "object_type", "object_type": "lead"},
            {
                "type": "field_condition",
                "field": {"type": "regular_field", "object_type": "lead", "field_name": "id"},
                "condition": {"type": "reference", "reference_type": "lead", "object_ids": ids},
            },
        ],
    }


async def sized(h: Harness, tool: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], int]:
    result = await h.call_raw(tool, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert json.loads(text_of(result)) == result.structured_content
    return result.structured_content, count_tokens(text_of(result))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=1050)
async def test_a_1000_id_selection_answers_small_and_sends_every_id(h: Harness) -> None:
    ids = sorted(h.sandbox.store.leads)[:1000]
    selection = {"filter": {"lead_ids": ids}}
    sizes: dict[str, int] = {}

    found, sizes["search_leads"] = await sized(h, "search_leads", selection)
    assert (found["total"], found["s_query"]) == (1000, ids_query(short_ids(ids)))

    previews = {
        "create_bulk_edit": {"edit": {"type": "set_lead_status", "lead_status": "Qualified"}},
        "create_bulk_email": {"template": "Intro"},
        "create_bulk_sequence_subscription": {"action_type": "pause", "all_sequences": True},
        "create_bulk_delete": {},
    }
    for tool, extra in previews.items():
        first, sizes[tool] = await sized(h, tool, {**selection, **extra})
        assert first["status"] == "confirmation_required"
        assert first["preview"]["request"]["s_query"] == ids_query(short_ids(ids))
    assert h.writes() == []

    args = {**selection, **previews["create_bulk_edit"]}
    first, _ = await sized(h, "create_bulk_edit", args)
    done, sizes["submitted"] = await sized(
        h, "create_bulk_edit", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "submitted"
    # What reached Close is the whole list; only the result shortens it.
    [sent] = h.writes()
    assert sent.json["s_query"] == ids_query(ids)
    job, sizes["get_bulk_job"] = await sized(h, "get_bulk_job", {"job_id": done["job"]["id"]})
    assert job["s_query"] == ids_query(short_ids(ids))

    read = await h.client.read_resource(f"close://id-lists/{sha256_of(ids)}")
    [content] = read.contents
    assert isinstance(content, types.TextResourceContents)
    assert json.loads(content.text) == ids
    print(f"\nresult tokens with a 1,000-id selection: {sizes}")
    assert {tool: n for tool, n in sizes.items() if n > RESULT_TOKENS} == {}


@pytest.mark.harness(n_leads=60)
async def test_short_id_lists_stay_whole_and_an_unknown_list_is_a_clear_error(h: Harness) -> None:
    ids = sorted(h.sandbox.store.leads)[:10]
    found = await h.call("search_leads", {"filter": {"lead_ids": ids}})
    assert found["s_query"] == ids_query(ids)
    with pytest.raises(Exception, match="no id list"):
        await h.client.read_resource(f"close://id-lists/{'0' * 64}")


@pytest.mark.harness(n_leads=60, confirm="email")
async def test_a_submitted_result_does_not_repeat_the_sample_or_the_rendering(h: Harness) -> None:
    args = {"filter": {"lead_status": "Qualified"}, "template": "Intro"}
    first = await h.call("create_bulk_email", args)
    assert first["preview"]["sample"]
    assert first["preview"]["rendering"]
    done = await h.call(
        "create_bulk_email", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "submitted"
    assert done["preview"] == {
        **first["preview"],
        "sample": [],
        "rendering": None,
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=60)
async def test_a_selection_that_now_matches_nothing_answers_nothing_to_do_without_a_token(
    h: Harness,
) -> None:
    store = h.sandbox.store
    qualified = [
        lead for lead in store.leads.values() if lead.status_id == status_id(h, "Qualified")
    ]
    args = {"filter": {"lead_status": "Qualified"}}
    first = await h.call("create_bulk_delete", args)
    assert first["preview"]["matched"] == len(qualified) > 0
    for lead in qualified:  # someone else moves them meanwhile
        lead.status_id = status_id(h, "Bad Fit")
    again = await h.call(
        "create_bulk_delete", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert (again["status"], again["confirmation_token"], again["reason"]) == (
        "refused",
        None,
        "the selection matches no leads",
    )
    assert again["message"] == (
        "Nothing to do: the selection matches no leads. Nothing was sent and no token is given."
    )
    fresh = await h.call("create_bulk_delete", args)
    assert (fresh["status"], fresh["confirmation_token"]) == ("refused", None)
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=60)
async def test_a_used_token_is_refused_without_a_fresh_one(h: Harness) -> None:
    args = {
        "filter": {"lead_status": "Qualified"},
        "edit": {"type": "set_lead_status", "lead_status": "Bad Fit"},
    }
    first = await h.call("create_bulk_edit", args)
    token = first["confirmation_token"]
    done = await h.call("create_bulk_edit", {**args, "confirmation_token": token})
    assert done["status"] == "submitted"
    # The same leads again (the edit has not run yet): the token is what is refused.
    again = await h.call("create_bulk_edit", {**args, "confirmation_token": token})
    assert (again["status"], again["confirmation_token"], again["expires_at"]) == (
        "refused",
        None,
        None,
    )
    assert again["reason"].startswith("the confirmation token was already used")
    assert "no new token is given" in again["message"]
    assert len(h.writes()) == 1


def addressed(lead: Any) -> list[Any]:
    return [c for c in lead.contacts if c.emails]


@pytest.mark.harness(n_leads=120)
async def test_the_bulk_email_preview_counts_the_emails_that_go_out_and_says_from_whom(
    h: Harness,
) -> None:
    store = h.sandbox.store
    chosen = [lead for lead in store.leads.values() if lead.status_id == status_id(h, "Qualified")]
    emails = {
        "lead": sum(1 for lead in chosen if addressed(lead)),
        "contact": sum(len(addressed(lead)) for lead in chosen),
        "all": sum(len(c.emails) for lead in chosen for c in addressed(lead)),
    }
    without = sum(1 for lead in chosen if not addressed(lead))
    assert without > 0
    assert emails["lead"] < emails["contact"] < emails["all"]
    mine = [
        a.identities[0]["email"] for a in store.email_accounts.values() if a.user_id == store.me.id
    ]
    for preference, n in emails.items():
        first = await h.call(
            "create_bulk_email",
            {
                "filter": {"lead_status": "Qualified"},
                "template": "Intro",
                "contact_preference": preference,
            },
        )
        reached = sum(1 for lead in chosen if addressed(lead))
        assert first["preview"]["notes"][0] == (
            f"{n} emails go out, to {reached} leads of {len(chosen)}; {without} leads with no "
            "contact with an email address are skipped. Close sends them now, as the job runs "
            "(a bulk email has no schedule), from one of the API key user's email accounts "
            f"(Close picks it): {', '.join(mine)}."
        )
        assert first["message"].startswith(f"Bulk email: send 'Intro' now, {n} emails to ")
    assert h.writes() == []


@pytest.mark.harness(n_leads=120)
async def test_the_subscribe_preview_names_whom_it_reaches_and_why_leads_are_skipped(
    h: Harness,
) -> None:
    store = h.sandbox.store
    onboarding = next(s.id for s in store.sequences.values() if s.name == "Onboarding")
    chosen = [lead for lead in store.leads.values() if lead.status_id == status_id(h, "Qualified")]
    taken = {s.contact_id for s in store.subscriptions.values() if s.sequence_id == onboarding}
    primary = {lead.id: addressed(lead)[0].id for lead in chosen if addressed(lead)}
    reached = [lead_id for lead_id, contact in primary.items() if contact not in taken]
    had = len(primary) - len(reached)
    without = len(chosen) - len(primary)
    assert had > 0
    assert without > 0
    account = next(a for a in store.email_accounts.values() if a.user_id == store.me.id)
    args = {
        "filter": {"lead_status": "Qualified"},
        "action_type": "subscribe",
        "sequence": "Onboarding",
        "sender_account": account.id,
    }
    first = await h.call("create_bulk_sequence_subscription", {**args, "dry_run": True})
    n = len(reached)
    assert first["preview"]["notes"][0] == (
        f"Subscribes {n} contacts on {n} leads of {len(chosen)}: the primary contact (the first "
        "with an email address) of each lead (contact_preference lead). Skipped: "
        f"{without} leads with no contact with an email address; {had} "
        f"contact{'s' if had != 1 else ''} that had this sequence before."
    )
    assert f"Bulk sequence: subscribe {n} contacts of {len(chosen)} leads" in first["message"]
    before = set(store.subscriptions)
    done = await h.call("create_bulk_sequence_subscription", args)
    done = await h.call(
        "create_bulk_sequence_subscription",
        {**args, "confirmation_token": done["confirmation_token"]},
    )
    assert done["status"] == "submitted"
    h.clock.advance(600)
    h.sandbox.jobs.advance_all(h.clock.time())
    new = [store.subscriptions[i] for i in set(store.subscriptions) - before]
    assert sorted((s.lead_id, s.contact_id) for s in new) == sorted(
        (lead_id, primary[lead_id]) for lead_id in reached
    )
    again = await h.call("create_bulk_sequence_subscription", {**args, "dry_run": True})
    assert again["preview"]["notes"][0] == (
        f"Subscribes 0 contacts on 0 leads of {len(chosen)}: the primary contact (the first "
        "with an email address) of each lead (contact_preference lead). Skipped: "
        f"{without} leads with no contact with an email address; {len(primary)} contacts that "
        "had this sequence before."
    )


# -- errors that name the fix (issue 26) ------------------------------------------------------

QUALIFIED = {"lead_status": "Qualified"}
SET_CUSTOMER = {"type": "set_lead_status", "lead_status": "Customer"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=60)
async def test_a_wrong_field_inside_filter_or_edit_names_its_path_a_close_match_and_the_allowed(
    h: Harness,
) -> None:
    wrong_edit = {"filter": QUALIFIED, "edit": {"type": "set_lead_status", "status": "Customer"}}
    assert await h.error("create_bulk_edit", wrong_edit) == (
        "edit.status: unknown field; did you mean 'lead_status'? Allowed: type, lead_status"
    )
    wrong_filter = {"filter": {"status": "Qualified"}, "edit": SET_CUSTOMER}
    assert await h.error("create_bulk_edit", wrong_filter) == (
        "filter.status: unknown field; did you mean 'lead_status'? Allowed: smart_view, "
        "lead_ids, lead_status, name, text, custom_fields, created_after, created_before, "
        "updated_after, updated_before, has_email, created_within, updated_within, "
        "name_starts_with, emailed_within, not_emailed_within, called_within, not_called_within, "
        "last_activity_after, last_activity_before, opportunity_status"
    )
    listed = {"filter": {"custom_fields": [{"field": "Region", "value": "EU"}]}}
    assert await h.error("search_leads", listed) == (
        "filter.custom_fields.0.field: unknown field. Allowed: custom_field, value"
    )
    misplaced = {"filter": QUALIFIED, "lead_status": "Customer"}
    error = await h.error("create_bulk_edit", misplaced)
    assert error.startswith("lead_status: unknown argument; did you mean 'edit.lead_status'?")
    assert h.writes() == []


@pytest.mark.parametrize(
    ("job_id", "says"),
    [
        ("bulkdelete_abc", "restore_leads with backup bulkdelete_abc"),
        ("bulkemail_abc", "emails sent cannot be called back"),
        ("bulkseqsub_abc", "action_type pause"),
    ],
)
@pytest.mark.harness(n_leads=60)
async def test_a_revert_of_another_kind_of_job_says_what_undoes_it(
    h: Harness, job_id: str, says: str
) -> None:
    error = await h.error("revert_bulk_edit", {"job_id": job_id})
    assert error.startswith(f"job_id: {job_id} is a ")
    assert says in error
    assert error.endswith("revert_bulk_edit undoes bulk edits (bulkedit_...) only")
    assert h.sandbox.requests == []


@pytest.mark.harness(n_leads=60)
async def test_send_email_takes_the_sender_from_an_account_with_one_identity(h: Harness) -> None:
    store = h.sandbox.store
    single = next(
        a
        for a in store.email_accounts.values()
        if a.user_id == store.me.id and len(a.identities) == 1
    )
    double = next(a for a in store.email_accounts.values() if len(a.identities) == 2)
    lead = next(lead for lead in store.leads.values() if addressed(lead))
    args = {
        "lead_id": lead.id,
        "subject": "Hello",
        "body_text": "Hi",
        "status": "outbox",
        "email_account": single.id,
    }
    first = await h.call("send_email", args)
    identity = single.identities[0]
    sender = f'"{identity["name"]}" <{identity["email"]}>'
    assert first["preview"]["request"]["sender"] == sender
    assert first["preview"]["request"]["email_account_id"] == single.id
    assert f"The sender is {sender}, the one identity of {single.id}." in first["preview"]["notes"]
    done = await h.call("send_email", {**args, "confirmation_token": first["confirmation_token"]})
    assert done["status"] == "submitted"
    [sent] = h.writes()
    assert sent.json["sender"] == sender
    error = await h.error("send_email", {**args, "email_account": double.id})
    assert error == (
        f"sender: required for status outbox: {double.id} has 2 identities "
        f"({', '.join(i['email'] for i in double.identities)}); pass the one to send as"
    )


def test_only_lists_of_close_ids_are_shortened() -> None:
    fields = [f"date_field_{i}" for i in range(20)]
    ids = [f"lead_{i:022d}" for i in range(20)]
    found: dict[str, list[str]] = {}
    assert shortened({"a": fields, "b": ids[:10]}, found) == {"a": fields, "b": ids[:10]}
    assert found == {}
    assert shortened({"a": [ids]}, found) == {"a": [short_ids(ids)]}
    assert found == {sha256_of(ids): ids}


async def test_an_id_list_is_read_only_by_the_caller_whose_result_showed_it(
    tmp_path: Path, start_harness: StartHarness
) -> None:
    """The store is shared by replicas and by every key a team sends: a list a result shortened
    is read back only by the caller (Close key) it was shown to, not by another key that learns
    its sha256."""
    store = {"CLOSE_MCP_STORE": str(tmp_path / "state.sqlite3")}
    owner = await start_harness(env=store)
    ids = sorted(owner.sandbox.store.leads)[:20]
    found = await owner.call("search_leads", {"filter": {"lead_ids": ids}})
    assert found["s_query"] == ids_query(short_ids(ids))
    uri = f"close://id-lists/{sha256_of(ids)}"
    [content] = (await owner.client.read_resource(uri)).contents
    assert isinstance(content, types.TextResourceContents)
    assert json.loads(content.text) == ids

    other_org = Sandbox(n_leads=20, seed=99, api_key="api_other_org_012345", clock=owner.clock)
    stranger = await start_harness(
        env={**store, "CLOSE_API_KEY": "api_other_org_012345"}, sandbox=other_org
    )
    with pytest.raises(MCPError, match="no id list") as refused:
        await stranger.client.read_resource(uri)
    assert not [i for i in ids if i in str(refused.value)]
