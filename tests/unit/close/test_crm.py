"""`close_mcp.close.crm` against httpx.MockTransport: the exact requests each function sends,
paging at Close's limits, the pipeline turned into statuses, retries where safe and none
where a retry could repeat a write."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.close import crm
from close_mcp.close.client import CloseClient
from close_mcp.close.crm import OpportunityFilter, TaskFilter
from close_mcp.errors import ArgumentError, OutcomeUnknown, ServerError
from close_mcp.sandbox import Sandbox
from tests.recorder import KEY, Recorder, make, ok

pytestmark = pytest.mark.anyio

STATUSES = {
    "data": [
        {"id": "stat_a", "label": "Discovery", "type": "active", "pipeline_id": "pipe_sales"},
        {"id": "stat_w", "label": "Won", "type": "won", "pipeline_id": "pipe_sales"},
        {"id": "stat_r", "label": "Renewed", "type": "won", "pipeline_id": "pipe_renew"},
    ]
}


def requests(rec: Recorder) -> list[tuple[str, str, dict[str, str], Any]]:
    return [
        (
            r.method,
            r.url.path,
            dict(r.url.params),
            json.loads(r.content) if r.content else None,
        )
        for r in rec.requests
    ]


async def test_opportunities_by_pipeline_page_at_200_with_documented_filters_only() -> None:
    first = {"data": [{"id": f"oppo_{i}"} for i in range(200)], "has_more": True}
    rec = Recorder(ok(STATUSES), ok(first), ok({"data": [{"id": "oppo_x"}], "has_more": False}))
    client, _ = make(rec)
    where = OpportunityFilter(
        pipeline_id="pipe_sales", user_ids=("user_1", "user_2"), created_from="2026-01-01",
        won_to="2026-03-31", status_types=("active", "won"),
    )  # fmt: skip
    found = await crm.list_opportunities(client, where, fields=("status_id", "user_id"))
    assert [o["id"] for o in found] == [*(f"oppo_{i}" for i in range(200)), "oppo_x"]
    wanted = {
        "status_id__in": "stat_a,stat_w",
        "status_type__in": "active,won",
        "user_id__in": "user_1,user_2",
        "date_created__gte": "2026-01-01",
        "date_won__lte": "2026-03-31",
        "_fields": "id,status_id,user_id",
        "_limit": "200",
    }
    assert requests(rec) == [
        ("GET", "/api/v1/status/opportunity/", {}, None),
        ("GET", "/api/v1/opportunity/", {**wanted, "_skip": "0"}, None),
        ("GET", "/api/v1/opportunity/", {**wanted, "_skip": "200"}, None),
    ]


async def test_a_pipeline_without_the_asked_statuses_selects_nothing_without_listing() -> None:
    rec = Recorder(ok(STATUSES))
    client, _ = make(rec)
    where = OpportunityFilter(pipeline_id="pipe_renew", status_ids=("stat_a",))
    assert await crm.list_opportunities(client, where) == []
    assert [r[1] for r in requests(rec)] == ["/api/v1/status/opportunity/"]
    with pytest.raises(ArgumentError, match="pipe_none"):
        await crm.list_opportunities(
            make(Recorder(ok(STATUSES)))[0], OpportunityFilter(pipeline_id="pipe_none")
        )


async def test_updating_an_opportunity_sends_one_put_and_refuses_other_fields() -> None:
    rec = Recorder(ok({}, 503), ok({"id": "oppo_1", "status_id": "stat_w"}))
    client, clock = make(rec)
    changes = {"status_id": "stat_w", "user_id": "user_2", "date_won": "2026-02-01"}
    assert await crm.update_opportunity(client, "oppo_1", changes) == {
        "id": "oppo_1",
        "status_id": "stat_w",
    }
    assert requests(rec) == [("PUT", "/api/v1/opportunity/oppo_1/", {}, changes)] * 2
    assert len(clock.sleeps) == 1  # a PUT is retried: it sets values, so twice is once
    with pytest.raises(ArgumentError, match="Only these fields"):
        await crm.update_opportunity(client, "oppo_1", {"lead_id": "lead_2"})
    assert len(rec.requests) == 2


async def test_tasks_are_listed_by_assignee_completion_and_due_date() -> None:
    rec = Recorder(ok({"data": [{"id": "task_1"}], "has_more": False}))
    client, _ = make(rec)
    where = TaskFilter(
        assigned_to="user_1", is_complete=False, due_from="2026-01-01", due_to="2026-01-31"
    )
    assert await crm.list_tasks(client, where) == [{"id": "task_1"}]
    assert requests(rec) == [
        (
            "GET",
            "/api/v1/task/",
            {
                "_type": "lead",
                "assigned_to": "user_1",
                "is_complete": "false",
                "due_date__gte": "2026-01-01",
                "due_date__lte": "2026-01-31",
                "_skip": "0",
                "_limit": "200",
            },
            None,
        )
    ]


async def test_task_writes() -> None:
    rec = Recorder(ok({"id": "task_1", "is_complete": True}), ok({}))
    client, _ = make(rec)
    await crm.update_task(client, "task_1", {"is_complete": True, "assigned_to": "user_2"})
    await crm.delete_task(client, "task_1")
    assert requests(rec) == [
        ("PUT", "/api/v1/task/task_1/", {}, {"is_complete": True, "assigned_to": "user_2"}),
        ("DELETE", "/api/v1/task/task_1/", {}, None),
    ]
    with pytest.raises(ArgumentError, match="Only these fields"):
        await crm.update_task(client, "task_1", {"priority": "high"})


async def test_a_merge_is_one_post_never_repeated_after_an_ambiguous_failure() -> None:
    rec = Recorder(ok({}))
    client, _ = make(rec)
    await crm.merge_leads(client, "lead_src", "lead_dst")
    body = {"source": "lead_src", "destination": "lead_dst"}
    assert requests(rec) == [("POST", "/api/v1/lead/merge/", {}, body)]
    failing = Recorder(ok({"error": "boom"}, 502))
    client, _ = make(failing)
    with pytest.raises((ServerError, OutcomeUnknown)):
        await crm.merge_leads(client, "lead_src", "lead_dst")
    assert len(failing.requests) == 1
    with pytest.raises(ArgumentError, match="itself"):
        await crm.merge_leads(client, "lead_a", "lead_a")


async def test_an_export_is_created_followed_and_downloaded_without_the_key() -> None:
    created = {"id": "expo_1", "status": "created", "download_url": None}
    done = {"id": "expo_1", "status": "done", "download_url": "https://files.example/e/1"}
    rec = Recorder(ok(created), ok(done))
    client, _ = make(rec)
    query = {"type": "id", "value": "lead_1"}
    started = await crm.create_lead_export(
        client, query, format="csv", type="lead_opps", fields=("id", "value")
    )
    assert (started.id, started.done) == ("expo_1", False)
    finished = await crm.get_export(client, "expo_1")
    assert (finished.done, finished.download_url) == (True, "https://files.example/e/1")
    body = {
        "s_query": query,
        "format": "csv",
        "type": "lead_opps",
        "send_done_email": False,
        "fields": ["id", "value"],
    }
    assert requests(rec) == [
        ("POST", "/api/v1/export/lead/", {}, body),
        ("GET", "/api/v1/export/expo_1/", {}, None),
    ]
    seen: list[httpx.Request] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        payload = gzip.compress(b"id,value\noppo_1,100\n")
        return httpx.Response(200, content=payload, headers={"Content-Encoding": "gzip"})

    data = await crm.download_export(
        str(finished.download_url), transport=httpx.MockTransport(serve)
    )
    assert data == b"id,value\noppo_1,100\n"
    assert str(seen[0].url) == "https://files.example/e/1"
    assert "authorization" not in seen[0].headers
    assert all(KEY not in v for v in seen[0].headers.values())
    with pytest.raises(ArgumentError, match="format"):
        await crm.create_lead_export(client, query, format="xml", type="leads")  # type: ignore[arg-type]


async def test_deleted_leads_follow_the_event_cursor_at_50_a_page() -> None:
    first = {
        "data": [{"id": f"ev_{i}"} for i in range(50)],
        "cursor_next": "c2",
        "cursor_previous": None,
    }
    last = {"data": [{"id": "ev_last"}], "cursor_next": None, "cursor_previous": "c1"}
    rec = Recorder(ok(first), ok(last))
    client, _ = make(rec)
    events = await crm.deleted_leads(client)
    assert [e["id"] for e in events] == [*(f"ev_{i}" for i in range(50)), "ev_last"]
    params = {"object_type": "lead", "action": "deleted", "_limit": "50"}
    assert requests(rec) == [
        ("GET", "/api/v1/event/", params, None),
        ("GET", "/api/v1/event/", {**params, "_cursor": "c2"}, None),
    ]
    with pytest.raises(ArgumentError, match="action"):
        await anext(crm.iter_events(client, {"action": "deleted"}))


async def test_against_the_sandbox_a_pipeline_selects_exactly_its_opportunities() -> None:
    sb = Sandbox(n_leads=300, clock=FakeClock())
    store = sb.store
    renewals = next(p.id for p in store.pipelines.values() if p.name == "Renewals")
    async with CloseClient(
        sb.api_key, "http://sandbox/api/v1/", transport=sb.transport(), clock=sb.clock
    ) as client:
        found = await crm.list_opportunities(
            client, OpportunityFilter(pipeline_id=renewals, user_ids=(store.me.id,))
        )
        tasks = await crm.list_tasks(client, TaskFilter(assigned_to=store.me.id, is_complete=False))
    assert sorted(o["id"] for o in found) == sorted(
        o.id
        for o in store.opportunities.values()
        if store.opportunity_statuses[o.status_id].pipeline_id == renewals
        and o.user_id == store.me.id
    )
    assert sorted(t["id"] for t in tasks) == sorted(
        t.id for t in store.tasks.values() if t.assigned_to == store.me.id and not t.is_complete
    )
    assert found
