"""The event log over HTTP: 30 days of deleted leads with their previous data, cursor
pages, the filter combinations Close refuses, and what a bulk delete logs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.events import EVENT_DAYS
from close_mcp.sandbox.seed import DELETED_ELSEWHERE
from close_mcp.sandbox.store import from_epoch
from tests.queries import lead_ids_query
from tests.sandbox.conftest import bad

pytestmark = pytest.mark.anyio


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
        in bad(await http.get("event/", params={"object_type": "lead", "_skip": 10}))[
            "field-errors"
        ]
    )
    assert bad(await http.get("event/", params={"action": "deleted"}))["errors"] == [
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
