"""The friendly filter's activity, opportunity, range and prefix fields through a real MCP
client against the seeded sandbox: each count is the set computed by hand from the store, and
the query that reached Close is the one the result shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from close_mcp.clock import utc_datetime
from close_mcp.sandbox.store import Lead, Store, naive_iso
from tests.harness import MODES, Harness

pytestmark = pytest.mark.anyio

N_LEADS = 400


def now(h: Harness) -> datetime:
    return utc_datetime(h.clock)


def day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def log(store: Store, kind: str, lead: Lead, when: datetime, direction: str) -> None:
    """An email or call activity on `lead` at `when`, as Close lists it (UTC, no offset)."""
    table = store.emails if kind == "email" else store.calls
    activity_id = f"acti_{kind}{len(table)}"
    at = naive_iso(when)
    table[activity_id] = {
        "id": activity_id,
        "lead_id": lead.id,
        "direction": direction,
        "status": "sent" if kind == "email" else "completed",
        "date_created": at,
        "date_sent": at if kind == "email" else None,
        "activity_at": at,
    }


def status_of(store: Store, lead: Lead) -> str:
    return store.statuses[lead.status_id].label


async def count(h: Harness, filter: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    h.clear()
    result = await h.call("search_leads", {"filter": filter, "sample_size": 0})
    search = next(r for r in h.sandbox.requests if r.path.endswith("/data/search/"))
    assert search.json is not None
    assert search.json["query"] == result["s_query"]
    assert h.writes() == []
    return result["total"], result["s_query"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_potential_leads_created_in_90_days_and_not_emailed_in_30(h: Harness) -> None:
    store = h.sandbox.store
    today = now(h)
    recent = [
        lead
        for lead in store.leads.values()
        if status_of(store, lead) == "Potential"
        and lead.date_created >= day_start(today - timedelta(days=90))
    ]
    assert len(recent) >= 4, "the seed must give this test leads to tell apart"
    emailed, long_ago, replied, *_ = recent
    log(store, "email", emailed, today - timedelta(days=10), "outgoing")
    log(store, "email", long_ago, today - timedelta(days=40), "outgoing")
    log(store, "email", replied, today - timedelta(days=5), "incoming")  # they wrote to us

    total, _ = await count(
        h, {"lead_status": "Potential", "created_within": "90d", "not_emailed_within": "30d"}
    )
    assert total == len(recent) - 1
    total, _ = await count(h, {"lead_status": "Potential", "emailed_within": "30d"})
    assert total == 1
    total, _ = await count(h, {"emailed_within": "60d"})
    assert total == 2


@pytest.mark.harness(n_leads=N_LEADS)
async def test_called_within_and_the_last_activity(h: Harness) -> None:
    store = h.sandbox.store
    today = now(h)
    a, b, c, *_ = store.leads.values()
    log(store, "call", a, today - timedelta(days=3), "outbound")
    log(store, "call", b, today - timedelta(days=3), "inbound")
    log(store, "email", c, datetime(2025, 6, 1, 12, tzinfo=UTC), "incoming")

    assert (await count(h, {"called_within": "1w"}))[0] == 1
    assert (await count(h, {"not_called_within": "1w"}))[0] == N_LEADS - 1
    assert (await count(h, {"last_activity_after": "2025-06-01"}))[0] == 3
    assert (await count(h, {"last_activity_after": "2025-06-02"}))[0] == 2
    # no email or call since then: everyone but the two called this week
    assert (await count(h, {"last_activity_before": "2025-12-01"}))[0] == N_LEADS - 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=N_LEADS)
async def test_opportunity_status_deal_size_range_and_name_prefix(h: Harness) -> None:
    store = h.sandbox.store
    won = {s.id for s in store.opportunity_statuses.values() if s.label in ("Won", "Renewed")}
    with_won = {o.lead_id for o in store.opportunities.values() if o.status_id in won}
    total, _ = await count(h, {"opportunity_status": ["won", "Renewed"]})
    assert 0 < total == len(with_won)

    size = next(cf.id for cf in store.custom_fields.values() if cf.name == "Deal Size")
    big = [lead for lead in store.leads.values() if (lead.custom.get(size) or 0) >= 80_000]
    assert 0 < len(big) < N_LEADS
    assert (await count(h, {"custom_fields": {"Deal Size": {"gte": 80_000}}}))[0] == len(big)
    listed = [{"custom_field": "Deal Size", "value": {"gte": 20_000, "lte": 30_000}}]
    between = [
        lead for lead in store.leads.values() if 20_000 <= (lead.custom.get(size) or 0) <= 30_000
    ]
    assert (await count(h, {"custom_fields": listed}))[0] == len(between)

    first = sorted(store.leads.values(), key=lambda lead: lead.id)[0].name.split()[0]
    prefix = first[:3]
    starting = [
        lead
        for lead in store.leads.values()
        if any(word.lower().startswith(prefix.lower()) for word in lead.name.split())
    ]
    assert (await count(h, {"name_starts_with": prefix}))[0] == len(starting)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=5)
async def test_lookup_lists_opportunity_statuses_and_a_bad_one_names_the_field(
    h: Harness,
) -> None:
    store = h.sandbox.store
    listed = await h.call("lookup", {"kind": "opportunity_statuses"})
    assert [(i["id"], i["name"]) for i in listed["items"]] == [
        (s.id, s.label) for s in store.opportunity_statuses.values()
    ]
    message = await h.error("search_leads", {"filter": {"opportunity_status": "Wonn"}})
    assert message.startswith("filter.opportunity_status: No opportunity status named 'Wonn'.")
    assert h.writes() == []
