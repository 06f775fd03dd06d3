"""The lookup, lead and template endpoints: paths, shapes, paging, `_fields` and errors."""

from __future__ import annotations

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import iso
from tests.ids import custom_field, email_template, status_id
from tests.queries import custom, fc, lead_and

pytestmark = pytest.mark.anyio


async def test_me(sb: Sandbox, http: httpx.AsyncClient) -> None:
    store = sb.store
    answer = (await http.get("me/")).json()
    assert answer == {
        "id": store.me.id,
        "email": "sandra@sandbox.example",
        "first_name": "Sandra",
        "last_name": "Box",
        "display_name": "Sandra Box",
        "organizations": [
            {
                "id": store.org.id,
                "name": "Sandbox Sales Co.",
                "lead_statuses": [{"id": s.id, "label": s.label} for s in store.statuses.values()],
            }
        ],
        "email_accounts": [
            a.to_json() for a in store.email_accounts.values() if a.user_id == store.me.id
        ],
    }


async def test_statuses_are_not_paged(sb: Sandbox, http: httpx.AsyncClient) -> None:
    answer = (await http.get("status/lead/")).json()
    assert answer == {"data": [{"id": s.id, "label": s.label} for s in sb.store.statuses.values()]}
    one = answer["data"][2]
    assert (await http.get(f"status/lead/{one['id']}/")).json() == one


@pytest.mark.parametrize(
    ("path", "items"),
    [
        (
            "custom_field/lead/",
            lambda s: [cf.to_json() for cf in s.custom_fields.values() if not cf.is_shared],
        ),
        ("email_template/", lambda s: [t.to_json(s.org) for t in s.templates.values()]),
        ("sequence/", lambda s: [q.to_json(s.org) for q in s.sequences.values()]),
        (
            "connected_account/",
            lambda s: (
                [a.to_json() for a in s.email_accounts.values()] + list(s.other_accounts.values())
            ),
        ),
        ("user/", lambda s: [u.to_json(s.org) for u in s.users.values()]),
        ("saved_search/", lambda s: [v.to_json(s.org) for v in s.saved_searches.values()]),
    ],
)
async def test_lists_page_with_skip_and_limit(
    sb: Sandbox, http: httpx.AsyncClient, path: str, items: object
) -> None:
    expected = items(sb.store)  # type: ignore[operator]
    assert (await http.get(path)).json() == {"data": expected, "has_more": False}
    first = (await http.get(path, params={"_limit": 1})).json()
    assert first == {"data": expected[:1], "has_more": len(expected) > 1}
    rest = (await http.get(path, params={"_skip": 1, "_limit": 200})).json()
    assert rest == {"data": expected[1:], "has_more": False}
    one = (await http.get(f"{path}{expected[0]['id']}/")).json()
    assert one == expected[0]


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("status/lead/", "Lead status"),
        ("custom_field/lead/", "Custom field"),
        ("email_template/", "Email template"),
        ("sequence/", "Sequence"),
        ("connected_account/", "Connected account"),
        ("user/", "User"),
        ("saved_search/", "Saved search"),
        ("lead/", "Lead"),
        ("opportunity/", "Opportunity"),
        ("task/", "Task"),
        ("export/", "Export"),
        ("activity/email/", "Email activity"),
    ],
)
async def test_unknown_ids_are_404(http: httpx.AsyncClient, path: str, what: str) -> None:
    answer = await http.get(f"{path}nope_1/")
    assert (answer.status_code, answer.json()) == (404, {"error": f"{what} not found."})


async def test_custom_field_shape(sb: Sandbox, http: httpx.AsyncClient) -> None:
    answer = (await http.get("custom_field/lead/")).json()["data"]
    products = next(cf for cf in answer if cf["name"] == "Products")
    assert products == {
        "id": products["id"],
        "name": "Products",
        "type": "choices",
        "accepts_multiple_values": True,
        "choices": ["CRM", "Dialer", "Email", "Reporting", "API"],
        "description": "",
        "editable_with_roles": [],
    }


async def test_shared_fields_are_in_the_schema_not_the_lead_field_list(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    """Close: `/custom_field/lead/` lists regular lead fields only; the custom field schema
    lists every field leads can hold, regular and shared, as `{"fields": [...]}`."""
    region = custom_field(sb, "Region")
    assert region.is_shared
    listed = (await http.get("custom_field/lead/")).json()["data"]
    assert region.id not in [cf["id"] for cf in listed]
    assert (await http.get(f"custom_field/lead/{region.id}/")).status_code == 404
    schema = (await http.get("custom_field_schema/lead/")).json()
    assert schema == {
        "fields": [
            {**cf.to_json(), "is_shared": cf.is_shared} for cf in sb.store.custom_fields.values()
        ]
    }
    assert {"id": region.id, "name": "Region", "type": "choices", "is_shared": True}.items() <= (
        next(f for f in schema["fields"] if f["id"] == region.id).items()
    )
    assert [f["name"] for f in schema["fields"] if not f["is_shared"]] == [
        cf["name"] for cf in listed
    ]


async def test_shared_field_values_are_read_written_and_filtered_like_others(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    region = custom_field(sb, "Region")
    lead = next(lead for lead in sb.store.leads.values() if lead.custom.get(region.id))
    key = f"custom.{region.id}"
    answer = (await http.get(f"lead/{lead.id}/", params={"_fields": key})).json()
    assert answer == {key: lead.custom[region.id]}
    changed = await http.put(f"lead/{lead.id}/", json={key: "APAC"})
    assert changed.json()[key] == "APAC"
    refused = await http.put(f"lead/{lead.id}/", json={key: "Mars"})
    assert refused.status_code == 400
    query = lead_and(fc(custom(region.id), {"type": "term", "values": ["APAC"]}))
    found = (await http.post("data/search/", json={"query": query, "_limit": 200})).json()
    assert {hit["id"] for hit in found["data"]} == {
        x.id for x in sb.store.leads.values() if x.custom.get(region.id) == "APAC"
    }


async def test_bad_paging_parameters(http: httpx.AsyncClient) -> None:
    answer = await http.get("user/", params={"_limit": "x"})
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [], "field-errors": {"_limit": "Must be an integer."}},
    )
    answer = await http.get("user/", params={"_skip": "-1"})
    assert answer.json() == {"errors": [], "field-errors": {"_skip": "Must be at least 0."}}


async def test_fields_narrow_a_get(sb: Sandbox, http: httpx.AsyncClient) -> None:
    lead = next(iter(sb.store.leads.values()))
    answer = (await http.get(f"lead/{lead.id}/", params={"_fields": "id,display_name"})).json()
    assert answer == {"id": lead.id, "display_name": lead.display_name}
    users = (await http.get("user/", params={"_fields": "id"})).json()
    assert users == {"data": [{"id": u} for u in sb.store.users], "has_more": False}


async def test_get_lead_in_close_shape(sb: Sandbox, http: httpx.AsyncClient) -> None:
    store = sb.store
    lead = next(lead for lead in store.leads.values() if len(lead.custom) >= 2)
    answer = (await http.get(f"lead/{lead.id}/")).json()
    contact = lead.contacts[0]
    assert answer["contacts"][0] == {
        "id": contact.id,
        "lead_id": lead.id,
        "name": contact.name,
        "display_name": contact.name,
        "title": contact.title,
        "emails": [{**e, "is_unsubscribed": False} for e in contact.emails],
        "phones": contact.phones,
        "urls": [],
        "date_created": iso(contact.date_created),
        "date_updated": iso(contact.date_updated),
        "created_by": None,
        "updated_by": None,
        "organization_id": store.org.id,
    }
    assert answer["contact_ids"] == [c.id for c in lead.contacts]
    custom_keys = {k: v for k, v in answer.items() if k.startswith("custom.")}
    assert custom_keys == {f"custom.{k}": v for k, v in lead.custom.items()}
    assert answer["custom"] == {store.custom_fields[k].name: v for k, v in lead.custom.items()}
    assert {k: answer[k] for k in ("id", "name", "display_name", "status_id", "status_label")} == {
        "id": lead.id,
        "name": lead.name,
        "display_name": lead.name,
        "status_id": lead.status_id,
        "status_label": store.statuses[lead.status_id].label,
    }
    assert answer["date_created"] == iso(lead.date_created)
    assert answer["url"] == lead.url


async def test_lead_list_pages(sb: Sandbox, http: httpx.AsyncClient) -> None:
    answer = (await http.get("lead/", params={"_limit": 30, "_skip": 90})).json()
    assert [lead["id"] for lead in answer["data"]] == list(sb.store.leads)[90:]
    assert answer["has_more"] is False


async def test_create_update_delete_lead(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    store = sb.store
    industry, products = custom_field(sb, "Industry"), custom_field(sb, "Products")
    customer = status_id(store, "Customer")
    body = {
        "name": "Zürich Rückversicherung AG",
        "status_id": customer,
        "url": "https://zr.example",
        "date_created": "2025-03-01T10:00:00+00:00",
        f"custom.{industry.id}": "Finance",
        f"custom.{products.id}": ["CRM", "API"],
        "contacts": [
            {
                "name": "Anaïs Dupont",
                "title": "CFO",
                "emails": [{"email": "anais@zr.example", "type": "office"}],
                "phones": [{"phone": "+41445550000", "type": "office"}],
            }
        ],
    }
    created = await http.post("lead/", json=body)
    assert created.status_code == 200
    lead = created.json()
    assert store.leads[lead["id"]].to_json(store) == lead
    assert lead["date_created"] == "2025-03-01T10:00:00.000000+00:00"
    assert lead["status_label"] == "Customer"
    assert lead[f"custom.{products.id}"] == ["CRM", "API"]
    assert lead["contacts"][0]["emails"] == [
        {"email": "anais@zr.example", "type": "office", "is_unsubscribed": False}
    ]

    clock.advance(60)
    changed = await http.put(
        f"lead/{lead['id']}/",
        json={f"custom.{industry.id}": None, f"custom.{products.id}": ["Email"], "name": "ZR"},
    )
    assert changed.status_code == 200
    stored = store.leads[lead["id"]]
    assert (stored.name, stored.custom) == ("ZR", {products.id: ["Email"]})
    assert changed.json()["date_updated"] == "2026-01-01T00:01:00.000000+00:00"

    assert (await http.delete(f"lead/{lead['id']}/")).json() == {}
    assert lead["id"] not in store.leads
    assert (await http.get(f"lead/{lead['id']}/")).status_code == 404
    assert (await http.delete(f"lead/{lead['id']}/")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field_errors"),
    [
        ({"status_id": "stat_nope"}, {"status_id": "Lead status not found."}),
        ({"custom.cf_nope": 1}, {"custom.cf_nope": "Unknown custom field."}),
        ({"colour": "red"}, {"colour": "Unknown field."}),
    ],
)
async def test_lead_write_errors(
    sb: Sandbox, http: httpx.AsyncClient, body: dict[str, object], field_errors: dict[str, str]
) -> None:
    lead_id = next(iter(sb.store.leads))
    for answer in (
        await http.post("lead/", json=body),
        await http.put(f"lead/{lead_id}/", json=body),
    ):
        assert (answer.status_code, answer.json()) == (
            400,
            {"errors": [], "field-errors": field_errors},
        )


async def test_custom_values_are_checked(sb: Sandbox, http: httpx.AsyncClient) -> None:
    store = sb.store
    cases = {
        "Industry": "Mining",
        "Deal Size": "lots",
        "Renewal Date": "next week",
        "Account Owner": "user_nope",
    }
    lead_id = next(iter(store.leads))
    for name, value in cases.items():
        cf = custom_field(sb, name)
        answer = await http.put(f"lead/{lead_id}/", json={f"custom.{cf.id}": value})
        assert answer.status_code == 400
        assert list(answer.json()["field-errors"]) == [f"custom.{cf.id}"]
    industry = custom_field(sb, "Industry")
    answer = await http.put(
        f"lead/{lead_id}/", json={f"custom.{industry.id}": ["Retail", "Finance"]}
    )
    assert answer.json()["field-errors"] == {
        f"custom.{industry.id}": "'Industry' does not accept multiple values."
    }


async def test_render_template(sb: Sandbox, http: httpx.AsyncClient) -> None:
    store = sb.store
    template = email_template(store, "Intro")
    lead = next(lead for lead in store.leads.values() if len(lead.contacts) > 1)
    contact = lead.contacts[1]
    answer = await http.get(
        f"email_template/{template.id}/render/",
        params={"lead_id": lead.id, "contact_id": contact.id},
    )
    email = contact.emails[0]["email"] if contact.emails else None
    assert answer.json() == {
        "id": template.id,
        "name": "Intro",
        "template_id": template.id,
        "lead_id": lead.id,
        "contact_id": contact.id,
        "email": email,
        "to": [email] if email else [],
        "subject": f"Quick question for {lead.display_name}",
        "body": f"Hi {contact.name.split(' ')[0]},\n\nI work with teams like {lead.display_name} "
        "on their sales process. Worth a chat?\n\nSandra",
        "attachments": [],
    }


async def test_render_errors(sb: Sandbox, http: httpx.AsyncClient) -> None:
    template_id = next(iter(sb.store.templates))
    lead_id = next(iter(sb.store.leads))
    required = "This field is required (or give query for the search form)."
    missing = await http.get(f"email_template/{template_id}/render/")
    assert missing.json() == {
        "errors": [],
        "field-errors": {"lead_id": required, "contact_id": required},
    }
    bad_contact = await http.get(
        f"email_template/{template_id}/render/", params={"lead_id": lead_id, "contact_id": "x"}
    )
    assert bad_contact.json()["field-errors"] == {"contact_id": "Contact not found on this lead."}
    assert (await http.get(f"email_template/tmpl_x/render/?lead_id={lead_id}")).status_code == 404


async def test_missing_trailing_slash_redirects(http: httpx.AsyncClient) -> None:
    answer = await http.get("me", params={"_fields": "id"})
    assert answer.status_code == 308
    assert answer.headers["location"] == "http://sandbox/api/v1/me/?_fields=id"
    followed = await http.get("me", follow_redirects=True)
    assert followed.status_code == 200


async def test_unknown_path_and_wrong_method(http: httpx.AsyncClient) -> None:
    unknown = await http.get("note/")
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": "No such endpoint: /api/v1/note/"},
    )
    wrong = await http.delete("me/")
    assert (wrong.status_code, wrong.json()) == (405, {"error": "Method DELETE not allowed."})
    outside = await http.get("http://sandbox/health/")
    assert outside.status_code == 404


async def test_invalid_json_body(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "lead/", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": ["Request body is not valid JSON."], "field-errors": {}},
    )


async def test_sequence_subscriptions_list_filters(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sub = next(iter(sb.store.subscriptions.values()))
    answer = (await http.get("sequence_subscription/", params={"lead_id": sub.lead_id})).json()
    assert answer == {"data": [sub.to_json(sb.store.org)], "has_more": False}
