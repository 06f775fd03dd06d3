"""Opportunities, pipelines, tasks, lead merge, exports and the event log, over HTTP: filters
against the store computed in plain Python, Close's refusals, and what each write leaves."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.crm import EVENT_DAYS
from close_mcp.sandbox.seed import DELETED_ELSEWHERE
from close_mcp.sandbox.store import from_epoch
from tests.queries import lead_ids_query

pytestmark = pytest.mark.anyio


async def _all(http: httpx.AsyncClient, path: str, params: dict[str, Any]) -> list[Any]:
    items: list[Any] = []
    while True:
        answer = (await http.get(path, params={**params, "_skip": len(items)})).json()
        items += answer["data"]
        if not answer["has_more"]:
            return items


def _bad(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_seed_spreads_opportunities_over_statuses_pipelines_and_users(
    sb: Sandbox,
) -> None:
    store = sb.store
    kinds = Counter(
        store.opportunity_statuses[o.status_id].type for o in store.opportunities.values()
    )
    pipelines = {
        store.opportunity_statuses[o.status_id].pipeline_id for o in store.opportunities.values()
    }
    assert set(kinds) == {"active", "won", "lost"}
    assert pipelines == set(store.pipelines)
    assert {o.user_id for o in store.opportunities.values()} == set(store.users)
    assert {t.is_complete for t in store.tasks.values()} == {True, False}
    assert {t.assigned_to for t in store.tasks.values()} == set(store.users)


async def test_opportunities_filter_by_lead_status_user_and_date(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    store = sb.store
    opps = list(store.opportunities.values())
    some = opps[0]
    user = store.me.id
    won = [s.id for s in store.opportunity_statuses.values() if s.type == "won"]
    found = await _all(
        http, "opportunity/", {"user_id__in": user, "status_id__in": ",".join(won), "_limit": 7}
    )
    assert sorted(o["id"] for o in found) == sorted(
        o.id for o in opps if o.user_id == user and o.status_id in won
    )
    by_lead = await _all(http, "opportunity/", {"lead_id": some.lead_id})
    assert sorted(o["id"] for o in by_lead) == sorted(
        o.id for o in opps if o.lead_id == some.lead_id
    )
    cut = sorted(o.date_created for o in opps)[len(opps) // 2]
    later = await _all(
        http, "opportunity/", {"date_created__gte": cut.isoformat(), "status_type": "active"}
    )
    assert sorted(o["id"] for o in later) == sorted(
        o.id
        for o in opps
        if o.date_created >= cut and store.opportunity_statuses[o.status_id].type == "active"
    )
    page = (await http.get("opportunity/", params={"_limit": 1})).json()
    assert page["total_results"] == len(opps)
    periods = Counter(o.value_period for o in opps)
    assert page["count_by_value_period"] == {
        p: periods[p] for p in ("one_time", "monthly", "annual")
    }
    assert page["total_value_monthly"] == sum(
        o.value or 0 for o in opps if o.value_period == "monthly"
    )


async def test_opportunity_lists_refuse_what_close_does_not_document(
    http: httpx.AsyncClient,
) -> None:
    assert _bad(await http.get("opportunity/", params={"pipeline_id": "pipe_x"}))[
        "field-errors"
    ] == {"pipeline_id": "Unknown query parameter."}
    assert _bad(await http.get("opportunity/", params={"_limit": 201}))["field-errors"] == {
        "_limit": "Must be at most 200."
    }
    assert (
        "_order_by"
        in _bad(await http.get("opportunity/", params={"_order_by": "lead_name"}))["field-errors"]
    )


async def test_updating_an_opportunity_as_close_does(sb: Sandbox, http: httpx.AsyncClient) -> None:
    store = sb.store
    opp = next(
        o
        for o in store.opportunities.values()
        if store.opportunity_statuses[o.status_id].type == "active" and o.date_won is None
    )
    won = next(s for s in store.opportunity_statuses.values() if s.type == "won")
    other = next(u for u in store.users if u != opp.user_id)
    answer = (
        await http.put(
            f"opportunity/{opp.id}/",
            json={"status_id": won.id, "user_id": other, "confidence": 90, "value": 12_300},
        )
    ).json()
    today = from_epoch(sb.clock.time()).date().isoformat()
    shown = ("status_id", "status_type", "user_id", "confidence", "value", "date_won")
    assert {k: answer[k] for k in shown} == {
        "status_id": won.id, "status_type": "won", "user_id": other, "confidence": 90,
        "value": 12_300, "date_won": today,
    }  # fmt: skip
    assert (await http.get(f"opportunity/{opp.id}/")).json() == answer
    assert _bad(await http.put(f"opportunity/{opp.id}/", json={"lead_name": "x"}))[
        "field-errors"
    ] == {"lead_name": "Unknown field."}
    assert (
        "confidence"
        in _bad(await http.put(f"opportunity/{opp.id}/", json={"confidence": 101}))["field-errors"]
    )
    assert (
        "status_id"
        in _bad(await http.put(f"opportunity/{opp.id}/", json={"status_id": "stat_nope"}))[
            "field-errors"
        ]
    )
    event = (await http.get("event/", params={"object_id": opp.id, "action": "updated"})).json()[
        "data"
    ][0]
    assert (event["previous_data"]["status_type"], event["data"]) == ("active", answer)
    assert set(event["changed_fields"]) >= {
        "status_id",
        "user_id",
        "confidence",
        "value",
        "date_won",
    }


async def test_pipelines_and_statuses(sb: Sandbox, http: httpx.AsyncClient) -> None:
    pipelines = (await http.get("pipeline/")).json()
    statuses = (await http.get("status/opportunity/")).json()["data"]
    assert [p["name"] for p in pipelines["data"]] == ["Sales", "Renewals"]
    assert sorted(s["id"] for p in pipelines["data"] for s in p["statuses"]) == sorted(
        s["id"] for s in statuses
    )
    assert {s["type"] for s in statuses} == {"active", "won", "lost"}


async def test_tasks_filter_by_assignee_lead_due_date_and_completion(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    tasks = list(sb.store.tasks.values())
    user = sb.store.me.id
    found = await _all(
        http,
        "task/",
        {"assigned_to": user, "is_complete": "false", "due_date__lte": "2026-01-10", "_limit": 5},
    )
    bound = datetime(2026, 1, 10, tzinfo=UTC)  # a bare date is its midnight UTC
    assert sorted(t["id"] for t in found) == sorted(
        t.id
        for t in tasks
        if t.assigned_to == user and not t.is_complete and t.date is not None
        and datetime.fromisoformat(t.date).replace(tzinfo=UTC) <= bound
    )  # fmt: skip
    lead = tasks[0].lead_id
    assert sorted(t["id"] for t in await _all(http, "task/", {"lead_id": lead})) == sorted(
        t.id for t in tasks if t.lead_id == lead
    )
    archive = await _all(http, "task/", {"view": "archive"})
    assert sorted(t["id"] for t in archive) == sorted(t.id for t in tasks if t.is_complete)
    assert _bad(await http.get("task/", params={"owner": user}))["field-errors"] == {
        "owner": "Unknown query parameter."
    }


async def test_updating_and_deleting_a_task(sb: Sandbox, http: httpx.AsyncClient) -> None:
    task = next(t for t in sb.store.tasks.values() if not t.is_complete)
    other = next(u for u in sb.store.users if u != task.assigned_to)
    answer = (
        await http.put(
            f"task/{task.id}/",
            json={"assigned_to": other, "date": "2026-02-01", "is_complete": True},
        )
    ).json()
    assert (answer["assigned_to"], answer["date"], answer["due_date"], answer["is_complete"]) == (
        other,
        "2026-02-01",
        "2026-02-01",
        True,
    )
    assert _bad(await http.put(f"task/{task.id}/", json={"lead_id": "lead_x"}))["field-errors"] == {
        "lead_id": "This field cannot be changed."
    }
    assert _bad(await http.put(f"task/{task.id}/", json={"owner": other}))["field-errors"] == {
        "owner": "Unknown field."
    }
    assert _bad(await http.put(f"task/{task.id}/", json={"date": "soon"}))["field-errors"] == {
        "date": "Must be a date or a date-time (ISO 8601), or null."
    }
    assert (await http.delete(f"task/{task.id}/")).json() == {}
    assert (await http.get(f"task/{task.id}/")).status_code == 404
    events = (
        await http.get("event/", params={"object_id": task.id, "object_type": "task.lead"})
    ).json()["data"]
    assert [e["action"] for e in events] == ["deleted", "completed"]
    assert events[0]["previous_data"]["assigned_to"] == other


async def test_merging_moves_everything_to_the_destination_and_deletes_the_source(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    store = sb.store
    source_id = next(o.lead_id for o in store.opportunities.values())
    destination_id = next(lead for lead in store.leads if lead != source_id)
    source = store.leads[source_id]
    contacts = [c.id for c in store.leads[destination_id].contacts + source.contacts]
    opps = sorted(
        o.id for o in store.opportunities.values() if o.lead_id in (source_id, destination_id)
    )
    tasks = sorted(t.id for t in store.tasks.values() if t.lead_id in (source_id, destination_id))
    before = (await http.get(f"lead/{source_id}/")).json()
    body = {"source": source_id, "destination": destination_id}
    assert (await http.post("lead/merge/", json=body)).json() == {}
    assert (await http.get(f"lead/{source_id}/")).status_code == 404
    assert [
        c["id"] for c in (await http.get(f"lead/{destination_id}/")).json()["contacts"]
    ] == contacts
    assert (
        sorted(o["id"] for o in await _all(http, "opportunity/", {"lead_id": destination_id}))
        == opps
    )
    assert sorted(t["id"] for t in await _all(http, "task/", {"lead_id": destination_id})) == tasks
    events = (
        await http.get("event/", params={"lead_id": source_id, "object_type": "lead"})
    ).json()["data"]
    assert [(e["action"], e["previous_data"]) for e in events] == [("deleted", before)]
    assert events[0]["meta"] == {
        "merge_source_lead_id": source_id,
        "merge_destination_lead_id": destination_id,
    }
    merged = (
        await http.get(
            "event/", params={"lead_id": destination_id, "object_type": "lead", "action": "merged"}
        )
    ).json()["data"]
    assert len(merged) == 1
    refused = await http.post("lead/merge/", json={**body, "keep": "source"})
    assert _bad(refused)["field-errors"] == {"keep": "Unknown field."}
    assert _bad(await http.post("lead/merge/", json=body))["field-errors"] == {
        "source": "Lead not found."
    }
    assert _bad(
        await http.post(
            "lead/merge/", json={"source": destination_id, "destination": destination_id}
        )
    )["field-errors"] == {"destination": "A lead cannot be merged into itself."}


async def test_an_export_finishes_and_its_file_is_served(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    chosen = list(sb.store.leads)[:3]
    body = {
        "s_query": lead_ids_query(chosen),
        "format": "json",
        "type": "leads",
        "fields": ["id", "display_name"],
    }
    created = (await http.post("export/lead/", json=body)).json()
    assert (created["status"], created["download_url"], created["n_leads"]) == ("created", None, 3)
    sb.advance(60)
    done = (await http.get(f"export/{created['id']}/")).json()
    assert done["status"] == "done"
    file = await http.get(done["download_url"], auth=None)  # a signed link: no key needed
    assert (file.status_code, file.headers["content-encoding"], file.headers["content-type"]) == (
        200,
        "gzip",
        "application/json",
    )
    rows = json.loads(file.content)
    assert sorted(rows, key=lambda r: r["id"]) == sorted(
        ({"id": i, "display_name": sb.store.leads[i].display_name} for i in chosen),
        key=lambda r: r["id"],
    )
    body = {
        "s_query": lead_ids_query(chosen),
        "format": "csv",
        "type": "contacts",
        "fields": ["id", "name"],
    }
    export = (await http.post("export/lead/", json=body)).json()
    sb.advance(60)
    url = (await http.get(f"export/{export['id']}/")).json()["download_url"]
    table = list(csv.DictReader(io.StringIO((await http.get(url)).text)))
    assert sorted(r["id"] for r in table) == sorted(
        c.id for i in chosen for c in sb.store.leads[i].contacts
    )
    assert (
        await http.get(url.replace(url.rstrip("/").rsplit("/", 1)[1], "tok_wrong"))
    ).status_code == 404


async def test_export_requests_are_checked(http: httpx.AsyncClient) -> None:
    assert set(
        _bad(await http.post("export/lead/", json={"format": "xml", "type": "rows"}))[
            "field-errors"
        ]
    ) == {"format", "type"}
    assert _bad(
        await http.post(
            "export/lead/", json={"format": "csv", "type": "leads", "include_activities": True}
        )
    )["field-errors"] == {"include_activities": "Only with type leads and format json."}
    assert _bad(
        await http.post("export/lead/", json={"format": "csv", "type": "leads", "columns": []})
    )["field-errors"] == {"columns": "Unknown field."}


async def test_the_event_log_keeps_30_days_of_deleted_leads_with_their_previous_data(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    lead = next(iter(sb.store.leads.values()))
    before = (await http.get(f"lead/{lead.id}/")).json()
    assert (await http.delete(f"lead/{lead.id}/")).json() == {}
    events = (await http.get("event/", params={"object_type": "lead", "action": "deleted"})).json()
    kept = [d for d in DELETED_ELSEWHERE if d < EVENT_DAYS]
    assert len(events["data"]) == 1 + len(kept)
    assert events["data"][0]["object_id"] == lead.id
    assert events["data"][0]["previous_data"] == before
    assert all(
        e["data"] is None and e["previous_data"]["id"] == e["object_id"] for e in events["data"]
    )
    sb.advance(EVENT_DAYS * 86400 + 1)
    later = (await http.get("event/", params={"object_type": "lead", "action": "deleted"})).json()
    assert later["data"] == []


async def test_the_event_log_pages_with_cursors_and_refuses_what_close_refuses(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    for lead_id in list(sb.store.leads)[:30]:
        await http.delete(f"lead/{lead_id}/")
    seen: list[str] = []
    params: dict[str, Any] = {"object_type": "contact", "action": "deleted", "_limit": 500}
    while True:
        page = (await http.get("event/", params=params)).json()
        assert len(page["data"]) <= 50
        seen += [e["id"] for e in page["data"]]
        if not page["cursor_next"]:
            break
        params["_cursor"] = page["cursor_next"]
    horizon = from_epoch(sb.clock.time()) - timedelta(days=EVENT_DAYS)
    expected = [
        e.id
        for e in reversed(sb.store.events)
        if e.object_type == "contact" and e.action == "deleted" and e.date_created >= horizon
    ]
    assert seen == expected
    assert len(seen) > 50
    first = (
        await http.get("event/", params={"object_type": "contact", "action": "deleted"})
    ).json()
    second_params = {"object_type": "contact", "action": "deleted", "_cursor": first["cursor_next"]}
    second = (await http.get("event/", params=second_params)).json()
    assert first["cursor_previous"] is None
    back_params = {**second_params, "_cursor": second["cursor_previous"]}
    back = (await http.get("event/", params=back_params)).json()
    assert [e["id"] for e in back["data"]] == [e["id"] for e in first["data"]]
    assert (
        "_skip"
        in _bad(await http.get("event/", params={"object_type": "lead", "_skip": 10}))[
            "field-errors"
        ]
    )
    assert _bad(await http.get("event/", params={"action": "deleted"}))["errors"] == [
        "Unsupported combination of filters: action."
    ]


async def test_a_bulk_delete_logs_each_lead_and_takes_its_opportunities_and_tasks(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    store = sb.store
    chosen = sorted({o.lead_id for o in store.opportunities.values()})[:3]
    owned = sorted(o.id for o in store.opportunities.values() if o.lead_id in chosen)
    owned += sorted(t.id for t in store.tasks.values() if t.lead_id in chosen)
    shown = {i: (await http.get(f"lead/{i}/")).json() for i in chosen}
    job = (await http.post("bulk_action/delete/", json={"s_query": lead_ids_query(chosen)})).json()
    sb.advance(60)
    assert (await http.get(f"bulk_action/delete/{job['id']}/")).json()["status"] == "done"
    assert not {o.lead_id for o in store.opportunities.values()} & set(chosen)
    assert not {t.lead_id for t in store.tasks.values()} & set(chosen)
    for lead_id in chosen:
        events = (await http.get("event/", params={"lead_id": lead_id})).json()["data"]
        lead_event = next(e for e in events if e["object_type"] == "lead")
        assert (lead_event["action"], lead_event["previous_data"]) == ("deleted", shown[lead_id])
        children = sorted(e["object_id"] for e in events if e["object_type"] != "lead")
        contacts = [c["id"] for c in shown[lead_id]["contacts"]]
        mine = [i for i in owned if i in children]
        assert children == sorted([*contacts, *mine])
    assert sorted(
        e.object_id for e in store.events if e.object_type != "lead" and e.lead_id in chosen
        and not e.object_id.startswith("cont_")
    ) == sorted(owned)  # fmt: skip
