"""Finding this write's job or email again, as a real Close lists them (issue 17).

Against the strict sandbox: a bulk edit job echoes only `type`, `lead_status_id`,
`custom_field_name` and `custom_field_value`, and job and email-activity lists come in no
documented order. The replay check and the reconciliation after an ambiguous failure must
still find a custom-field edit's job, and must read past a page that holds nothing recent.
Each test asserts the exact requests that reached Close, and fails on the code before it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from close_mcp.sandbox import SANDBOX_API_KEY
from close_mcp.server.runtime import SANDBOX_BASE_URL
from tests.harness import Harness
from tests.ids import custom_field, status_id
from tests.queries import status_query
from tests.test_recent_lookup import two_servers

pytestmark = pytest.mark.anyio

N_LEADS = 40
EDIT_PATH = "/api/v1/bulk_action/edit/"
DELETE_PATH = "/api/v1/bulk_action/delete/"
EMAIL_PATH = "/api/v1/activity/email/"
QUALIFIED = {"filter": {"lead_status": "Qualified"}}


def calls(h: Harness, path: str) -> list[str]:
    return [r.method for r in h.sandbox.requests if r.path == path]


def set_deal_size(value: int) -> dict[str, Any]:
    return {
        **QUALIFIED,
        "edit": {"type": "set_custom_field", "custom_field": "Deal Size", "value": value},
    }


def edit_body(h: Harness, value: int) -> dict[str, Any]:
    return {
        "s_query": status_query(status_id(h, "Qualified")),
        "send_done_email": True,
        "type": "set_custom_field",
        "custom_field_id": custom_field(h, "Deal Size").id,
        "custom_field_value": value,
    }


# -- what an edit job echoes ---------------------------------------------------------------------


@pytest.mark.harness(n_leads=N_LEADS)
async def test_reconciliation_finds_a_custom_field_edit_by_what_close_echoes(h: Harness) -> None:
    args = set_deal_size(250)
    first = await h.call("create_bulk_edit", args)
    h.clear()
    h.sandbox.inject_faults("after_commit", 1, "bulk_action/edit/", "POST")
    done = await h.call(
        "create_bulk_edit", {**args, "confirmation_token": first["confirmation_token"]}
    )
    (job,) = h.sandbox.store.jobs.values()
    assert done["status"] == "submitted"
    assert done["job"]["id"] == job.id
    assert done["job"]["details"] == {
        "type": "set_custom_field",
        "custom_field_name": "Deal Size",
        "custom_field_value": "250",
    }
    assert calls(h, EDIT_PATH) == ["GET", "POST", "GET"]  # replay check, the send, the lookup
    assert [(r.method, r.json) for r in h.writes()] == [("POST", edit_body(h, 250))]


@pytest.mark.harness(n_leads=N_LEADS)
async def test_reconciliation_passes_over_an_edit_of_another_value(h: Harness) -> None:
    other = await h.call("create_bulk_edit", set_deal_size(999))
    made = await h.call(
        "create_bulk_edit",
        {**set_deal_size(999), "confirmation_token": other["confirmation_token"]},
    )
    h.sandbox.fail_job(made["job"]["id"])
    args = set_deal_size(250)
    first = await h.call("create_bulk_edit", args)
    h.clear()
    h.sandbox.inject_faults("5xx", 1, "bulk_action/edit/", "POST")
    error = await h.error(
        "create_bulk_edit", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert "Nothing matching was found among the recent bulk edit jobs" in error
    assert calls(h, EDIT_PATH) == ["GET", "POST", "GET"]
    assert [r.json for r in h.writes()] == [edit_body(h, 250)]


async def test_a_custom_field_edit_token_used_on_one_server_is_refused_by_the_other() -> None:
    async with two_servers() as (a, b):
        args = set_deal_size(250)
        first = await a.call("create_bulk_edit", args)
        token = first["confirmation_token"]
        done = await a.call("create_bulk_edit", {**args, "confirmation_token": token})
        a.clear()
        replay = await b.call("create_bulk_edit", {**args, "confirmation_token": token})
        assert replay["status"] == "refused"
        assert replay["reason"] == f"the confirmation token was already used ({done['job']['id']})"
        assert calls(b, EDIT_PATH) == ["GET"]
        assert b.writes() == []


# -- lists in no documented order ----------------------------------------------------------------


async def made_in_close(h: Harness, path: str, body: dict[str, Any]) -> str:
    async with httpx.AsyncClient(
        transport=h.sandbox.transport(), base_url=SANDBOX_BASE_URL, auth=(SANDBOX_API_KEY, "")
    ) as close:
        answer = await close.post(path, json=body)
    assert answer.status_code == 200, answer.text
    made: str = answer.json()["id"]
    return made


@pytest.mark.harness(n_leads=N_LEADS)
async def test_reconciliation_reads_past_a_page_with_nothing_recent(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("close_mcp.writes.reconcile.LOOKUP_PAGE", 2)
    nothing = {"s_query": {"type": "or", "queries": []}}
    for _ in range(6):  # old deletes, made straight in Close
        await made_in_close(h, "bulk_action/delete/", nothing)
    h.clock.advance(600)
    first = await h.call("create_bulk_delete", QUALIFIED)
    h.clear()
    h.sandbox.inject_faults("after_commit", 1, "bulk_action/delete/", "POST")
    done = await h.call(
        "create_bulk_delete", {**QUALIFIED, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "submitted"
    ours = done["job"]["id"]
    listed = [j["id"] for j in (await list_jobs(h, "delete"))]
    assert listed.index(ours) >= 2  # not on the first page, which holds only old jobs
    # the replay check reads the 6 old jobs (3 pages), the lookup every page up to ours
    assert calls(h, DELETE_PATH)[:4] == ["GET", "GET", "GET", "POST"]
    assert calls(h, DELETE_PATH)[4:-1] == ["GET"] * (listed.index(ours) // 2 + 1)
    assert [r.path for r in h.writes()] == [DELETE_PATH]


async def list_jobs(h: Harness, kind: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        transport=h.sandbox.transport(), base_url=SANDBOX_BASE_URL, auth=(SANDBOX_API_KEY, "")
    ) as close:
        answer = await close.get(f"bulk_action/{kind}/")
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


@pytest.mark.harness(n_leads=N_LEADS)
async def test_an_emails_reconciliation_reads_past_a_page_with_nothing_recent(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("close_mcp.writes.reconcile.LOOKUP_PAGE", 2)
    lead = next(
        lead for lead in h.sandbox.store.leads.values() if lead.contacts and lead.contacts[0].emails
    )
    for i in range(6):  # old drafts on the lead
        await made_in_close(
            h, "activity/email/", {"lead_id": lead.id, "status": "draft", "subject": f"old {i}"}
        )
    h.clock.advance(600)
    sender = h.sandbox.store.me.email
    args = {
        "lead_id": lead.id,
        "subject": "Hi",
        "body_text": "Hello",
        "status": "outbox",
        "sender": sender,
    }
    first = await h.call("send_email", args)
    h.clear()
    h.sandbox.inject_faults("after_commit", 1, "activity/email/", "POST")
    done = await h.call("send_email", {**args, "confirmation_token": first["confirmation_token"]})
    assert done["status"] == "submitted"
    ours = done["result"]["id"]
    async with httpx.AsyncClient(
        transport=h.sandbox.transport(), base_url=SANDBOX_BASE_URL, auth=(SANDBOX_API_KEY, "")
    ) as close:
        listed = [
            e["id"]
            for e in (await close.get("activity/email/", params={"lead_id": lead.id})).json()[
                "data"
            ]
        ]
    assert listed.index(ours) >= 2
    # Unfiltered, the list puts ours after the old drafts; the replay check and the lookup
    # ask Close only for emails created since (`date_created__gte`), so each reads one page
    # (issue 25), then the listing above.
    methods = [r.method for r in h.sandbox.requests if r.path == EMAIL_PATH]
    assert methods == ["GET", "POST", "GET", "GET"]
    gets = [r.query for r in h.sandbox.requests if r.path == EMAIL_PATH and r.method == "GET"]
    assert all("date_created__gte" in query for query in gets[:2])
    assert [r.path for r in h.writes()] == [EMAIL_PATH]


@pytest.mark.harness(n_leads=N_LEADS)
async def test_a_lookup_cut_short_says_how_much_it_read(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("close_mcp.writes.reconcile.LOOKUP_PAGE", 2)
    monkeypatch.setattr("close_mcp.writes.reconcile.LOOKUP_MAX_PAGES", 1)
    for _ in range(3):
        await made_in_close(h, "bulk_action/delete/", {"s_query": {"type": "or", "queries": []}})
    h.clock.advance(600)
    first = await h.call("create_bulk_delete", QUALIFIED)
    h.clear()
    h.sandbox.inject_faults("5xx", 1, "bulk_action/delete/", "POST")
    error = await h.error(
        "create_bulk_delete", {**QUALIFIED, "confirmation_token": first["confirmation_token"]}
    )
    assert error == (
        "Close answered the write with 503, so it is unknown whether it was carried out. Check "
        "before trying again. Nothing matching was found among the recent bulk delete jobs "
        "(list_bulk_jobs) (only the first 2 Close listed); look there before trying again. "
        "(POST bulk_action/delete/)"
    )
    assert calls(h, DELETE_PATH) == ["GET", "POST", "GET"]
