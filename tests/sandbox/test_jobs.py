"""Bulk actions: request checks, progress on the fake clock, effects, pause and resume."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from close_mcp.clock import FakeClock, utc_datetime
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import Lead, iso
from tests.ids import custom_field, email_template, status_id
from tests.queries import fc, lead_and, local, regular, status_condition
from tests.sandbox.conftest import LEAD_QUERY, client_for

pytestmark = pytest.mark.anyio

JSON = dict[str, Any]
START = "2026-01-01T00:00:00.000000+00:00"


@pytest.fixture
def slow_sb(clock: FakeClock) -> Sandbox:
    """10 objects a second, so progress is visible step by step."""
    return Sandbox(n_leads=100, clock=clock, job_speed=10)


@pytest.fixture
async def slow_http(slow_sb: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(slow_sb) as client:
        yield client


def status_query(sb: Sandbox, label: str) -> JSON:
    return lead_and(status_condition(status_id(sb, label)))


def with_status(sb: Sandbox, label: str) -> list[Lead]:
    """The leads a job on this status selects, in a job's default order (newest first)."""
    wanted = status_id(sb, label)
    leads = [lead for lead in sb.store.leads.values() if lead.status_id == wanted]
    return sorted(leads, key=lambda lead: lead.date_created, reverse=True)


async def finish(sb: Sandbox, http: httpx.AsyncClient, path: str, seconds: float = 60) -> JSON:
    sb.advance(seconds)
    body: JSON = (await http.get(path)).json()
    assert body["status"] == "done", body
    return body


async def test_edit_job_progresses_with_the_clock(
    slow_sb: Sandbox, slow_http: httpx.AsyncClient
) -> None:
    sb, http = slow_sb, slow_http
    selected = with_status(sb, "Potential")
    others = {lead.id: lead.status_id for lead in sb.store.leads.values() if lead not in selected}
    query = status_query(sb, "Potential")
    request = {
        "s_query": query,
        "type": "set_lead_status",
        "lead_status_id": status_id(sb, "Qualified"),
        "send_done_email": False,
    }
    answer = await http.post("bulk_action/edit/", json=request)
    job = answer.json()
    assert job == {
        "id": job["id"],
        "status": "created",
        "n_leads": None,
        "n_leads_processed": 0,
        "n_objects": None,
        "n_objects_processed": 0,
        "query": None,
        "s_query": query,
        "results_limit": None,
        "sort": [],
        "send_done_email": False,
        "created_by": sb.store.me.id,
        "updated_by": sb.store.me.id,
        "date_created": START,
        "date_updated": START,
        "organization_id": sb.store.org.id,
        "type": "set_lead_status",
        "lead_status_id": status_id(sb, "Qualified"),
        "custom_field_name": None,
        "custom_field_value": None,
    }
    assert job["id"].startswith("bulkedit_")
    path = f"bulk_action/edit/{job['id']}/"

    async def progress() -> tuple[Any, ...]:
        body = (await http.get(path)).json()
        keys = ("status", "n_leads", "n_objects", "n_leads_processed", "n_objects_processed")
        return tuple(body[k] for k in keys)

    n = len(selected)
    assert n > 10
    sb.advance(0.4)
    assert await progress() == ("created", None, None, 0, 0)
    sb.advance(0.2)
    assert await progress() == ("loading", None, None, 0, 0)
    sb.advance(0.4)
    assert await progress() == ("processing", n, n, 0, 0)
    sb.advance(0.5)
    assert await progress() == ("processing", n, n, 5, 5)
    done_now = [lead for lead in selected if lead.status_id == status_id(sb, "Qualified")]
    assert done_now == selected[:5]
    sb.advance(n / 10)
    assert await progress() == ("done", n, n, n, n)
    assert all(lead.status_id == status_id(sb, "Qualified") for lead in selected)
    assert {lid: sb.store.leads[lid].status_id for lid in others} == others
    final = (await http.get(path)).json()
    assert final["date_updated"] == iso(utc_datetime(sb.clock))


async def test_selection_is_fixed_at_load_with_sort_and_limit(
    slow_sb: Sandbox, slow_http: httpx.AsyncClient
) -> None:
    sb, http = slow_sb, slow_http
    deal = custom_field(sb, "Deal Size")
    sort = [{"direction": "desc", "field": {"type": "custom_field", "custom_field_id": deal.id}}]
    request = {
        "s_query": LEAD_QUERY,
        "results_limit": 5,
        "sort": sort,
        "type": "set_custom_field",
        "custom_field_id": deal.id,
        "custom_field_value": 1,
    }
    biggest = sorted(
        (lead for lead in sb.store.leads.values() if deal.id in lead.custom),
        key=lambda lead: lead.custom[deal.id],
        reverse=True,
    )[:5]
    job = (await http.post("bulk_action/edit/", json=request)).json()
    assert (job["results_limit"], job["sort"]) == (5, sort)
    sb.advance(1.0)  # loaded: the five biggest are chosen now
    newcomer = next(lead for lead in sb.store.leads.values() if lead not in biggest)
    await http.put(f"lead/{newcomer.id}/", json={f"custom.{deal.id}": 10**9})
    await finish(sb, http, f"bulk_action/edit/{job['id']}/")
    assert [lead.custom[deal.id] for lead in biggest] == [1] * 5
    assert newcomer.custom[deal.id] == 10**9


async def test_custom_field_edits(sb: Sandbox, http: httpx.AsyncClient) -> None:
    products, industry = custom_field(sb, "Products"), custom_field(sb, "Industry")
    before = {lead.id: list(lead.custom.get(products.id, [])) for lead in sb.store.leads.values()}
    jobs: list[JSON] = [
        {
            "type": "set_custom_field",
            "custom_field_name": "Products",
            "custom_field_values": ["API", "Dialer"],
            "custom_field_operation": "add",
        },
        {
            "type": "set_custom_field",
            "custom_field_id": products.id,
            "custom_field_value": "CRM",
            "custom_field_operation": "remove",
        },
    ]
    for request in jobs:
        job = (await http.post("bulk_action/edit/", json={"s_query": LEAD_QUERY, **request})).json()
        await finish(sb, http, f"bulk_action/edit/{job['id']}/")
    for lead in sb.store.leads.values():
        expected = [v for v in before[lead.id] if v != "CRM"]
        expected += [v for v in ("API", "Dialer") if v not in before[lead.id]]
        assert lead.custom[products.id] == expected

    replace = {
        "type": "set_custom_field",
        "custom_field_id": industry.id,
        "custom_field_value": "Retail",
    }
    job = (await http.post("bulk_action/edit/", json={"s_query": LEAD_QUERY, **replace})).json()
    echo = {k: job.get(k) for k in ("type", "custom_field_name", "custom_field_value")}
    assert echo == {
        "type": "set_custom_field",
        "custom_field_name": "Industry",
        "custom_field_value": "Retail",
    }
    await finish(sb, http, f"bulk_action/edit/{job['id']}/")
    assert {lead.custom[industry.id] for lead in sb.store.leads.values()} == {"Retail"}

    clear = {"type": "clear_custom_field", "custom_field_name": "Industry"}
    job = (await http.post("bulk_action/edit/", json={"s_query": LEAD_QUERY, **clear})).json()
    assert (job["custom_field_name"], job["custom_field_value"]) == ("Industry", None)
    await finish(sb, http, f"bulk_action/edit/{job['id']}/")
    assert not any(industry.id in lead.custom for lead in sb.store.leads.values())


@pytest.mark.parametrize(
    ("request_body", "field_errors"),
    [
        (
            {"type": "set_lead_status", "lead_status_id": "stat_x"},
            {"lead_status_id": "Lead status not found."},
        ),
        ({"type": "set_lead_status"}, {"lead_status_id": "This field is required."}),
        (
            {"type": "paint"},
            {"type": "Must be one of: set_lead_status, set_custom_field, clear_custom_field."},
        ),
        (
            {"type": "clear_custom_field", "custom_field_id": "cf_x"},
            {"custom_field_id": "Custom field not found."},
        ),
        (
            {"type": "clear_custom_field", "custom_field_name": "industry"},
            {"custom_field_name": "No custom field has this exact name."},
        ),
        (
            {"type": "clear_custom_field"},
            {"custom_field_id": "custom_field_id or custom_field_name is required."},
        ),
        (
            {
                "type": "set_custom_field",
                "custom_field_name": "Industry",
                "custom_field_value": "Retail",
                "custom_field_operation": "add",
            },
            {
                "custom_field_operation": (
                    "Only applicable for custom fields that accept multiple values."
                )
            },
        ),
        (
            {
                "type": "set_custom_field",
                "custom_field_name": "Products",
                "custom_field_value": "CRM",
                "custom_field_operation": "merge",
            },
            {"custom_field_operation": "Must be one of: replace, add, remove."},
        ),
        (
            {
                "type": "set_custom_field",
                "custom_field_name": "Industry",
                "custom_field_values": ["Retail"],
            },
            {"custom_field_values": "'Industry' does not accept multiple values."},
        ),
        (
            {"type": "set_custom_field", "custom_field_name": "Industry"},
            {"custom_field_value": "This field is required."},
        ),
        (
            {
                "type": "set_custom_field",
                "custom_field_name": "Industry",
                "custom_field_value": "Mining",
            },
            {
                "custom_field_value": (
                    "Not a valid value for choices field 'Industry'. Allowed: Software, "
                    "Manufacturing, Healthcare, Finance, Retail, Education."
                )
            },
        ),
        (
            {
                "type": "set_custom_field",
                "custom_field_name": "Deal Size",
                "custom_field_value": "9",
            },
            {"custom_field_value": "Not a valid value for number field 'Deal Size'."},
        ),
    ],
)
async def test_edit_requests_are_checked(
    sb: Sandbox, http: httpx.AsyncClient, request_body: JSON, field_errors: dict[str, str]
) -> None:
    answer = await http.post("bulk_action/edit/", json={"s_query": LEAD_QUERY, **request_body})
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": field_errors},
    )
    assert sb.store.jobs == {}


@pytest.mark.parametrize(
    ("body", "field_errors"),
    [
        ({}, {"s_query": "This field is required."}),
        (
            {"s_query": {"type": "and", "queries": [LEAD_QUERY, {"type": "x"}]}},
            {"s_query.queries.1.type": "Unknown query type 'x'."},
        ),
        (
            {"s_query": LEAD_QUERY, "results_limit": -3},
            {"results_limit": "Must be a non-negative integer or null."},
        ),
        ({"s_query": LEAD_QUERY, "sort": {}}, {"sort": "Must be a list."}),
        (
            {"s_query": LEAD_QUERY, "send_done_email": "no"},
            {"send_done_email": "Must be a boolean."},
        ),
        (
            {"s_query": LEAD_QUERY, "bulk_object_type": "contact"},
            {"bulk_object_type": "The sandbox deletes leads only."},
        ),
    ],
)
async def test_selection_is_checked(
    http: httpx.AsyncClient, body: JSON, field_errors: dict[str, str]
) -> None:
    answer = await http.post("bulk_action/delete/", json=body)
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": field_errors},
    )


async def test_delete_removes_the_selected_leads(sb: Sandbox, http: httpx.AsyncClient) -> None:
    doomed = {lead.id for lead in with_status(sb, "Bad Fit")}
    kept = set(sb.store.leads) - doomed
    job = (
        await http.post("bulk_action/delete/", json={"s_query": status_query(sb, "Bad Fit")})
    ).json()
    assert (job["id"][:11], job["bulk_object_type"]) == ("bulkdelete_", "lead")
    done = await finish(sb, http, f"bulk_action/delete/{job['id']}/")
    assert (done["n_leads"], done["n_objects_processed"]) == (len(doomed), len(doomed))
    assert set(sb.store.leads) == kept
    assert not any(s.lead_id in doomed for s in sb.store.subscriptions.values())
    gone = next(iter(doomed))
    assert (await http.get(f"lead/{gone}/")).status_code == 404


@pytest.mark.parametrize("preference", ["lead", "contact"])
async def test_bulk_email_creates_activities(
    sb: Sandbox, http: httpx.AsyncClient, preference: str
) -> None:
    store = sb.store
    template = email_template(store, "Follow-up")
    account = next(iter(store.email_accounts.values()))
    selected = with_status(sb, "Customer")
    expected = []
    for lead in selected:
        contacts = [c for c in lead.contacts if c.emails]
        for contact in contacts[:1] if preference == "lead" else contacts:
            expected.append((lead.id, contact.id, [contact.emails[0]["email"]]))
    request = {
        "s_query": status_query(sb, "Customer"),
        "template_id": template.id,
        "contact_preference": preference,
    }
    job = (await http.post("bulk_action/email/", json=request)).json()
    assert {
        k: job[k] for k in ("template_id", "contact_preference", "email_account_id", "sender")
    } == {
        "template_id": template.id,
        "contact_preference": preference,
        "email_account_id": account.id,
        "sender": "sandra@sandbox.example",
    }
    done = await finish(sb, http, f"bulk_action/email/{job['id']}/")
    assert (done["n_leads"], done["n_objects"]) == (len(selected), len(expected))
    sent = list(store.emails.values())
    assert [(e["lead_id"], e["contact_id"], e["to"]) for e in sent] == expected
    first = sent[0]
    recipient = store.contact(first["contact_id"])
    lead = store.leads[first["lead_id"]]
    assert recipient is not None
    assert {
        k: first[k]
        for k in ("status", "subject", "body_text", "bulk_email_action_id", "sender", "template_id")
    } == {
        "status": "sent",
        "subject": f"Following up, {recipient.first_name}",
        "body_text": f"Hi {recipient.first_name},\n\nJust following up on my last note about "
        f"{lead.display_name}.\n\nSandra Box",
        "bulk_email_action_id": job["id"],
        "sender": "sandra@sandbox.example",
        "template_id": template.id,
    }


async def test_bulk_email_checks(sb: Sandbox, http: httpx.AsyncClient) -> None:
    base = {"s_query": LEAD_QUERY}
    cases = [
        ({}, {"template_id": "This field is required."}),
        ({"template_id": "tmpl_x"}, {"template_id": "Email template not found."}),
        (
            {"template_id": next(iter(sb.store.templates)), "contact_preference": "everyone"},
            {"contact_preference": "Must be 'lead', 'contact' or 'all'."},
        ),
    ]
    for extra, field_errors in cases:
        answer = await http.post("bulk_action/email/", json={**base, **extra})
        assert answer.json() == {"errors": [], "field-errors": field_errors}


async def test_sequence_subscribe_skips_contacts_already_in_the_sequence(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    store = sb.store
    seq_id = next(iter(store.sequences))
    account = list(store.email_accounts.values())[1]
    before = dict(store.subscriptions)
    taken = {s.contact_id for s in before.values() if s.sequence_id == seq_id}
    assert taken
    newest_first = sorted(store.leads.values(), key=lambda lead: lead.date_created, reverse=True)
    expected = [
        c.id for lead in newest_first for c in lead.contacts if c.emails and c.id not in taken
    ]
    request = {
        "s_query": LEAD_QUERY,
        "action_type": "subscribe",
        "sequence_id": seq_id,
        "sender_account_id": account.id,
        "sender_name": "Sandra Box",
        "sender_email": "sandra.box@gmail.example",
        "contact_preference": "contact",
    }
    job = (await http.post("bulk_action/sequence_subscription/", json=request)).json()
    assert job["id"].startswith("bulkseqsub_")
    assert {k: job[k] for k in request if k != "s_query"} == {
        k: v for k, v in request.items() if k != "s_query"
    }
    assert (job["calls_assigned_to"], job["from_phone_number_id"]) == (None, None)
    await finish(sb, http, f"bulk_action/sequence_subscription/{job['id']}/")
    new = [s for s in store.subscriptions.values() if s.id not in before]
    assert [s.contact_id for s in new] == expected
    assert {(s.status, s.sequence_id, s.sender_account_id) for s in new} == {
        ("active", seq_id, account.id)
    }
    assert {k: v.status for k, v in before.items()} == {
        k: store.subscriptions[k].status for k in before
    }


async def test_sequence_pause_and_resume_change_subscriptions(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    store = sb.store
    statuses = {s.id: s.status for s in store.subscriptions.values()}
    assert set(statuses.values()) == {"active", "paused", "finished"}
    for action, (old, new) in {
        "pause": ("active", "paused"),
        "resume_finished": ("finished", "active"),
    }.items():
        job = (
            await http.post(
                "bulk_action/sequence_subscription/",
                json={"s_query": LEAD_QUERY, "action_type": action},
            )
        ).json()
        await finish(sb, http, f"bulk_action/sequence_subscription/{job['id']}/")
        statuses = {k: new if v == old else v for k, v in statuses.items()}
        assert {s.id: s.status for s in store.subscriptions.values()} == statuses
    subs = []  # Close lists subscriptions of a sequence, a contact or a lead, not all
    for seq in store.sequences:
        params = {"sequence_id": seq, "_limit": 200}
        subs += (await http.get("sequence_subscription/", params=params)).json()["data"]
    assert {s["id"]: s["status"] for s in subs} == statuses


async def test_subscribe_needs_its_sender_fields(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "bulk_action/sequence_subscription/",
        json={"s_query": LEAD_QUERY, "action_type": "subscribe"},
    )
    assert answer.json() == {
        "errors": [],
        "field-errors": {
            "sequence_id": "This field is required for subscribe.",
            "sender_account_id": "This field is required for subscribe.",
            "sender_name": "This field is required for subscribe.",
            "sender_email": "This field is required for subscribe.",
            "contact_preference": "Must be 'lead' or 'contact' for subscribe.",
        },
    }
    answer = await http.post(
        "bulk_action/sequence_subscription/", json={"s_query": LEAD_QUERY, "action_type": "stop"}
    )
    assert answer.json()["field-errors"] == {
        "action_type": "Must be one of: subscribe, pause, resume, resume_finished."
    }


async def test_pause_stops_progress_and_resume_continues(
    slow_sb: Sandbox, slow_http: httpx.AsyncClient
) -> None:
    sb, http = slow_sb, slow_http
    request = {
        "s_query": LEAD_QUERY,
        "type": "set_lead_status",
        "lead_status_id": status_id(sb, "Customer"),
    }
    job = (await http.post("bulk_action/edit/", json=request)).json()
    path = f"bulk_action/edit/{job['id']}/"
    sb.advance(3.0)  # loaded at 1 s, 20 objects by 3 s
    paused = (await http.put(path, json={"status": "paused"})).json()
    assert (paused["status"], paused["n_objects_processed"]) == ("paused", 20)
    assert (await http.put(path, json={"status": "paused"})).json()["status"] == "paused"
    sb.advance(6 * 86400)
    still = (await http.get(path)).json()
    assert (still["status"], still["n_objects_processed"]) == ("paused", 20)
    resumed = (await http.put(path, json={"status": "resuming"})).json()
    assert (resumed["status"], resumed["n_objects_processed"]) == ("resuming", 20)
    sb.advance(0.5)
    assert (await http.get(path)).json()["status"] == "resuming"
    sb.advance(1.5)  # the last 0.5 s of resuming, then 1 s of processing
    going = (await http.get(path)).json()
    assert (going["status"], going["n_objects_processed"]) == ("processing", 30)
    done = await finish(sb, http, path)
    assert done["n_objects_processed"] == 100
    refused = await http.put(path, json={"status": "paused"})
    assert (refused.status_code, refused.json()) == (
        400,
        {"errors": [], "field-errors": {"status": "A bulk action that is done cannot be paused."}},
    )


async def test_resume_refused_after_seven_days(
    slow_sb: Sandbox, slow_http: httpx.AsyncClient
) -> None:
    sb, http = slow_sb, slow_http
    job = (await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})).json()
    path = f"bulk_action/delete/{job['id']}/"
    paused = (await http.put(path, json={"status": "paused"})).json()
    assert (paused["status"], paused["n_leads"]) == ("paused", None)
    sb.advance(7 * 86400 + 1)
    answer = await http.put(path, json={"status": "resuming"})
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "errors": [],
            "field-errors": {
                "status": "A bulk action paused more than 7 days ago cannot be resumed."
            },
        },
    )
    assert len(sb.store.leads) == 100


async def test_resume_right_at_seven_days_is_allowed(
    slow_sb: Sandbox, slow_http: httpx.AsyncClient
) -> None:
    sb, http = slow_sb, slow_http
    job = (await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})).json()
    path = f"bulk_action/delete/{job['id']}/"
    await http.put(path, json={"status": "paused"})
    sb.advance(7 * 86400)
    assert (await http.put(path, json={"status": "resuming"})).json()["status"] == "resuming"
    sb.advance(1.0)
    assert (await http.get(path)).json()["status"] == "created"
    await finish(sb, http, path, seconds=20)
    assert sb.store.leads == {}


async def test_status_changes_that_make_no_sense(sb: Sandbox, http: httpx.AsyncClient) -> None:
    job = (await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})).json()
    path = f"bulk_action/delete/{job['id']}/"
    for body, message in [
        ({"status": "resuming"}, "Only a paused bulk action can be resumed."),
        ({"status": "done"}, "Must be 'paused' or 'resuming'."),
        ({}, "Must be 'paused' or 'resuming'."),
    ]:
        answer = await http.put(path, json=body)
        assert answer.json() == {"errors": [], "field-errors": {"status": message}}
    assert (await http.get("bulk_action/delete/bulkdelete_nope/")).status_code == 404
    assert (
        await http.put("bulk_action/delete/bulkdelete_nope/", json={"status": "paused"})
    ).status_code == 404
    assert (await http.get(f"bulk_action/edit/{job['id']}/")).status_code == 404
    assert (await http.delete(path)).status_code == 405


async def test_lists_are_paged(sb: Sandbox, http: httpx.AsyncClient) -> None:
    """Paged in the sandbox's one order (see test_strict for which it is not)."""
    ids = []
    for _ in range(3):
        ids.append(
            (
                await http.post(
                    "bulk_action/delete/", json={"s_query": {"type": "or", "queries": []}}
                )
            ).json()["id"]
        )
        sb.advance(1)
    await http.post(
        "bulk_action/edit/",
        json={"s_query": LEAD_QUERY, "type": "clear_custom_field", "custom_field_name": "Industry"},
    )
    listed = (await http.get("bulk_action/delete/")).json()
    order = [j["id"] for j in listed["data"]]
    assert sorted(order) == sorted(ids)
    assert listed["has_more"] is False
    assert [j["status"] for j in listed["data"]] == ["done", "done", "done"]
    page = (await http.get("bulk_action/delete/", params={"_skip": 1, "_limit": 1})).json()
    assert ([j["id"] for j in page["data"]], page["has_more"]) == ([order[1]], True)


async def test_job_errors_when_its_query_breaks_before_loading(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    view_id = next(iter(sb.store.saved_searches))
    query = {"type": "saved_search", "saved_search_id": view_id}
    job = (await http.post("bulk_action/delete/", json={"s_query": query})).json()
    del sb.store.saved_searches[view_id]
    sb.advance(5)
    answer = (await http.get(f"bulk_action/delete/{job['id']}/")).json()
    assert (answer["status"], answer["n_leads"]) == ("error", None)
    assert len(sb.store.leads) == 100


async def test_fail_job_for_tests(sb: Sandbox, http: httpx.AsyncClient) -> None:
    job = (await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})).json()
    sb.fail_job(job["id"])
    sb.advance(60)
    answer = (await http.get(f"bulk_action/delete/{job['id']}/")).json()
    assert answer["status"] == "error"
    assert len(sb.store.leads) == 100


async def test_default_size_and_speed(clock: FakeClock) -> None:
    """About a thousand leads at 200 a second: a job over all of them takes five seconds."""
    sb = Sandbox(clock=clock)
    async with client_for(sb) as http:
        job = (await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})).json()
        path = f"bulk_action/delete/{job['id']}/"
        sb.advance(3.5)
        half = (await http.get(path)).json()
        assert (half["status"], half["n_leads"], half["n_leads_processed"]) == (
            "processing",
            1000,
            500,
        )
        assert len(sb.store.leads) == 500
        sb.advance(2.5)
        assert (await http.get(path)).json()["status"] == "done"
        assert sb.store.leads == {}


async def test_a_job_reads_local_dates_in_the_offset_it_was_created_with(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    """The selection loads after the request, and still in that request's `X-TZ-Offset`."""
    lead = next(iter(sb.store.leads.values()))
    lead.date_created = datetime(2025, 6, 10, 2, 30, tzinfo=UTC)  # June 9, 22:30 in New York
    june_9 = {
        "type": "and",
        "queries": [
            LEAD_QUERY,
            fc(
                regular("date_created"),
                {
                    "type": "moment_range",
                    "on_or_after": local("2025-06-09"),
                    "before": {"type": "fixed_local_date", "value": "2025-06-09", "which": "end"},
                },
            ),
        ],
    }
    body = {
        "s_query": june_9,
        "type": "set_lead_status",
        "lead_status_id": status_id(sb, "Canceled"),
    }
    in_utc = (await http.post("bulk_action/edit/", json=body)).json()
    in_new_york = (
        await http.post("bulk_action/edit/", json=body, headers={"X-TZ-Offset": "-4"})
    ).json()
    sb.advance(60)
    utc_done = (await http.get(f"bulk_action/edit/{in_utc['id']}/")).json()
    ny_done = (await http.get(f"bulk_action/edit/{in_new_york['id']}/")).json()
    assert (utc_done["status"], ny_done["status"]) == ("done", "done")

    def created_between(start: datetime, hours: int = 24) -> set[str]:
        end = start + timedelta(hours=hours)
        return {x.id for x in sb.store.leads.values() if start <= x.date_created < end}

    ny_day = created_between(datetime(2025, 6, 9, 4, tzinfo=UTC))
    assert lead.id in ny_day
    assert set(sb.jobs.get("edit", in_new_york["id"]).lead_ids or []) == ny_day
    assert set(sb.jobs.get("edit", in_utc["id"]).lead_ids or []) == created_between(
        datetime(2025, 6, 9, tzinfo=UTC)
    )
    assert ny_done["n_leads"] == len(ny_day)
