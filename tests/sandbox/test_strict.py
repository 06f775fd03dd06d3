"""Where Close is stricter than the sandbox used to be (issue 17), the sandbox now is too.

Each test fails on the older, forgiving sandbox: a render without a contact, the search form of
the render, extra fields echoed on a bulk edit job, job and email lists newest first, a page size
over the maximum silently capped, connected accounts that are all email accounts, unknown
request fields accepted, bulk email's `contact_preference: all` refused.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.render import render_template
from close_mcp.sandbox.store import Lead
from tests.ids import custom_field, email_template, status_id
from tests.queries import status_query
from tests.sandbox.conftest import LEAD_QUERY

pytestmark = pytest.mark.anyio

JSON = dict[str, Any]
REQUIRED = "This field is required (or give query for the search form)."


def newest_first(leads: list[Lead]) -> list[Lead]:
    """A job's (and a search's) default order."""
    return sorted(leads, key=lambda lead: lead.date_created, reverse=True)


def status_tree(sb: Sandbox, label: str) -> JSON:
    return status_query(status_id(sb, label))


# -- template render ---------------------------------------------------------------------------


async def test_render_for_one_lead_needs_its_contact(sb: Sandbox, http: httpx.AsyncClient) -> None:
    template = email_template(sb, "Intro")
    lead = next(lead for lead in sb.store.leads.values() if lead.contacts)
    answer = await http.get(f"email_template/{template.id}/render/", params={"lead_id": lead.id})
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": {"contact_id": REQUIRED}},
    )
    only_contact = await http.get(
        f"email_template/{template.id}/render/", params={"contact_id": lead.contacts[0].id}
    )
    assert only_contact.json()["field-errors"] == {"lead_id": REQUIRED}


async def test_render_search_form_renders_the_bulk_emails_entries(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    store = sb.store
    template = email_template(sb, "Intro")
    tree = status_tree(sb, "Potential")
    leads = newest_first(
        [lead for lead in store.leads.values() if lead.status_id == status_id(sb, "Potential")]
    )
    reached = [lead for lead in leads if any(c.emails for c in lead.contacts)]
    assert len(reached) < len(leads)  # some leads have no address: mode lead skips them
    path = f"email_template/{template.id}/render/"
    params = {"s_query": json.dumps(tree)}

    first = (await http.get(path, params=params)).json()
    lead = reached[0]
    contact = next(c for c in lead.contacts if c.emails)
    assert first == render_template(store, template, lead, contact)

    second = (await http.get(path, params={**params, "entry": 1})).json()
    lead = reached[1]
    assert second == render_template(
        store, template, lead, next(c for c in lead.contacts if c.emails)
    )

    # mode contact, contact_preference all: entry n is the n-th address the bulk email reaches
    addresses = [
        (lead, contact, i)
        for lead in leads
        for contact in lead.contacts
        if contact.emails
        for i in range(len(contact.emails))
    ]
    n = next(n for n, (_, _, i) in enumerate(addresses) if i == 1)  # a second address
    lead, contact, _ = addresses[n]
    every = {**params, "mode": "contact", "contact_preference": "all", "entry": n}
    answer = (await http.get(path, params=every)).json()
    assert answer == render_template(store, template, lead, contact, 1)
    assert answer["email"] == contact.emails[1]["email"]

    past = (await http.get(path, params={**params, "entry": len(reached)})).json()
    assert past == {}
    too_far = await http.get(path, params={**params, "entry": 100})
    assert too_far.json() == {"errors": [], "field-errors": {"entry": "Must be between 0 and 99."}}
    bad_mode = await http.get(path, params={**params, "mode": "all"})
    assert bad_mode.json()["field-errors"] == {"mode": "Must be 'lead' or 'contact'."}
    bad_account = await http.get(path, params={**params, "email_account_id": "emailacct_x"})
    assert bad_account.json()["field-errors"] == {"email_account_id": "Email account not found."}


async def test_render_search_form_takes_a_text_query(sb: Sandbox, http: httpx.AsyncClient) -> None:
    store = sb.store
    template = email_template(sb, "Intro")
    lead = next(lead for lead in store.leads.values() if lead.contacts and lead.contacts[0].emails)
    word = lead.name.split()[0]
    with_word = newest_first(
        [
            other
            for other in store.leads.values()
            if word.casefold() in (w.casefold() for w in other.name.replace(",", " ").split())
            and any(c.emails for c in other.contacts)
        ]
    )
    answer = (
        await http.get(f"email_template/{template.id}/render/", params={"query": word})
    ).json()
    top = with_word[0]
    assert answer == render_template(
        store, template, top, next(c for c in top.contacts if c.emails)
    )


# -- what a bulk edit job echoes ----------------------------------------------------------------


async def test_bulk_edit_job_echoes_only_the_documented_fields(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    deal, products = custom_field(sb, "Deal Size"), custom_field(sb, "Products")
    documented = {"type", "lead_status_id", "custom_field_name", "custom_field_value"}
    common = {
        "id", "status", "n_leads", "n_leads_processed", "n_objects", "n_objects_processed",
        "query", "s_query", "results_limit", "sort", "send_done_email", "created_by",
        "updated_by", "date_created", "date_updated", "organization_id",
    }  # fmt: skip
    single = {"type": "set_custom_field", "custom_field_id": deal.id, "custom_field_value": 250}
    job = (await http.post("bulk_action/edit/", json={"s_query": LEAD_QUERY, **single})).json()
    assert set(job) == common | documented
    echoed = {k: job[k] for k in documented}
    assert echoed == {
        "type": "set_custom_field",
        "lead_status_id": None,
        "custom_field_name": "Deal Size",
        "custom_field_value": "250",  # documented as a string
    }
    listed = (await http.get("bulk_action/edit/")).json()["data"]
    assert listed == [job]
    several = {
        "type": "set_custom_field",
        "custom_field_id": products.id,
        "custom_field_values": ["API"],
        "custom_field_operation": "add",
    }
    job = (await http.post("bulk_action/edit/", json={"s_query": LEAD_QUERY, **several})).json()
    assert {k: job[k] for k in documented} == {
        "type": "set_custom_field",
        "lead_status_id": None,
        "custom_field_name": "Products",
        "custom_field_value": None,
    }


# -- list order and page size -------------------------------------------------------------------


async def test_job_and_email_lists_are_not_newest_first(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    lead = next(iter(sb.store.leads.values()))
    jobs, emails = [], []
    for _ in range(8):
        answer = await http.post(
            "bulk_action/delete/", json={"s_query": {"type": "or", "queries": []}}
        )
        jobs.append(answer.json()["id"])
        answer = await http.post(
            "activity/email/", json={"lead_id": lead.id, "status": "draft", "subject": "x"}
        )
        emails.append(answer.json()["id"])
        sb.advance(1)
    for path, made, params in (
        ("bulk_action/delete/", jobs, {}),
        ("activity/email/", emails, {"lead_id": lead.id}),
    ):
        listed = [item["id"] for item in (await http.get(path, params=params)).json()["data"]]
        assert sorted(listed) == sorted(made)
        assert listed not in (made, made[::-1])  # neither oldest nor newest first
        paged = []
        for skip in range(0, 8, 3):
            page = (await http.get(path, params={**params, "_skip": skip, "_limit": 3})).json()
            paged += [item["id"] for item in page["data"]]
        assert paged == listed  # the same order from one request to the next


@pytest.mark.parametrize(
    "path", ["bulk_action/edit/", "activity/email/", "user/", "email_template/"]
)
async def test_a_page_over_the_maximum_is_refused(http: httpx.AsyncClient, path: str) -> None:
    answer = await http.get(path, params={"_limit": 201})
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": {"_limit": "Must be at most 200."}},
    )
    assert (await http.get(path, params={"_limit": 200})).status_code == 200


async def test_a_search_page_over_the_maximum_is_refused(http: httpx.AsyncClient) -> None:
    answer = await http.post("data/search/", json={"query": LEAD_QUERY, "_limit": 201})
    assert answer.json() == {"errors": [], "field-errors": {"_limit": "Must be at most 200."}}


# -- connected accounts -------------------------------------------------------------------------


async def test_connected_accounts_include_a_zoom_account(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    listed = (await http.get("connected_account/")).json()["data"]
    zoom = [a for a in listed if a["_type"] == "zoom"]
    assert zoom == [
        {
            "id": zoom[0]["id"],
            "_type": "zoom",
            "user_id": sb.store.me.id,
            "email": sb.store.me.email,
            "identities": [],
            "zoom_account_plan": "pro",
        }
    ]
    assert zoom[0]["id"].startswith("emailacct_")  # the prefix does not tell it apart
    assert (await http.get(f"connected_account/{zoom[0]['id']}/")).json() == zoom[0]
    lead = next(iter(sb.store.leads.values()))
    email = {
        "lead_id": lead.id,
        "status": "draft",
        "subject": "x",
        "email_account_id": zoom[0]["id"],
    }
    answer = await http.post("activity/email/", json=email)
    assert answer.json()["field-errors"] == {"email_account_id": "Email account not found."}


# -- unknown request fields ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "extra", "unknown"),
    [
        (
            "bulk_action/edit/",
            {"type": "clear_custom_field", "custom_field_name": "Industry"},
            "dry_run",
        ),
        ("bulk_action/email/", {}, "email_account_id"),
        ("bulk_action/delete/", {}, "query"),
        ("bulk_action/sequence_subscription/", {"action_type": "pause"}, "sequence"),
    ],
)
async def test_bulk_requests_refuse_unknown_fields(
    sb: Sandbox, http: httpx.AsyncClient, path: str, extra: JSON, unknown: str
) -> None:
    if path == "bulk_action/email/":
        extra = {"template_id": email_template(sb, "Intro").id}
    body = {"s_query": LEAD_QUERY, **extra, unknown: "x"}
    answer = await http.post(path, json=body)
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": {unknown: "Unknown field."}},
    )
    assert sb.store.jobs == {}
    del body[unknown]
    assert (await http.post(path, json=body)).status_code == 200


async def test_email_activity_refuses_unknown_fields(sb: Sandbox, http: httpx.AsyncClient) -> None:
    lead = next(iter(sb.store.leads.values()))
    body = {"lead_id": lead.id, "status": "draft", "subject": "x", "body": "hello", "from": "me"}
    answer = await http.post("activity/email/", json=body)
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": {"body": "Unknown field.", "from": "Unknown field."}},
    )
    assert sb.store.emails == {}


# -- bulk email to every address ----------------------------------------------------------------


async def test_bulk_email_contact_preference_all_reaches_every_address(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    template = email_template(sb, "Intro")
    tree = status_tree(sb, "Qualified")
    leads = [
        lead for lead in sb.store.leads.values() if lead.status_id == status_id(sb, "Qualified")
    ]
    addresses = sorted(e["email"] for lead in leads for c in lead.contacts for e in c.emails)
    firsts = [c.emails[0]["email"] for lead in leads for c in lead.contacts if c.emails]
    assert len(addresses) > len(firsts)  # some contacts have a second address
    body = {"s_query": tree, "template_id": template.id, "contact_preference": "all"}
    job = (await http.post("bulk_action/email/", json=body)).json()
    assert job["contact_preference"] == "all"
    sb.advance(60)
    done = (await http.get(f"bulk_action/email/{job['id']}/")).json()
    assert (done["status"], done["n_objects"]) == ("done", len(addresses))
    sent = sorted(
        e["to"][0] for e in sb.store.emails.values() if e["bulk_email_action_id"] == job["id"]
    )
    assert sent == addresses
