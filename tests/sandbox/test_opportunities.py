"""Pipelines, opportunity statuses and opportunities over HTTP: the seed's spread, filters
against the store computed in plain Python, Close's refusals, and what an update leaves."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import from_epoch
from tests.sandbox.conftest import bad, every

pytestmark = pytest.mark.anyio


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
    found = await every(
        http, "opportunity/", {"user_id__in": user, "status_id__in": ",".join(won), "_limit": 7}
    )
    assert sorted(o["id"] for o in found) == sorted(
        o.id for o in opps if o.user_id == user and o.status_id in won
    )
    by_lead = await every(http, "opportunity/", {"lead_id": some.lead_id})
    assert sorted(o["id"] for o in by_lead) == sorted(
        o.id for o in opps if o.lead_id == some.lead_id
    )
    cut = sorted(o.date_created for o in opps)[len(opps) // 2]
    later = await every(
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
    assert bad(await http.get("opportunity/", params={"pipeline_id": "pipe_x"}))[
        "field-errors"
    ] == {"pipeline_id": "Unknown query parameter."}
    assert bad(await http.get("opportunity/", params={"_limit": 201}))["field-errors"] == {
        "_limit": "Must be at most 200."
    }
    assert (
        "_order_by"
        in bad(await http.get("opportunity/", params={"_order_by": "lead_name"}))["field-errors"]
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
    assert bad(await http.put(f"opportunity/{opp.id}/", json={"lead_name": "x"}))[
        "field-errors"
    ] == {"lead_name": "Unknown field."}
    assert (
        "confidence"
        in bad(await http.put(f"opportunity/{opp.id}/", json={"confidence": 101}))["field-errors"]
    )
    assert (
        "status_id"
        in bad(await http.put(f"opportunity/{opp.id}/", json={"status_id": "stat_nope"}))[
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
