"""`/data/search/` over a lead's activities and opportunities (`has_related` to
`activity.email`, `activity.call`, `opportunity`), in the forms Close's UI sends, against sets
computed by hand from the store; and the forms Close refuses, refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from close_mcp.clock import FakeClock, utc_datetime
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import naive_iso
from tests.queries import (
    ago,
    any_activity_since,
    has_opportunity,
    lead_and,
    negated,
    regular,
    related,
    sent_since,
)

pytestmark = pytest.mark.anyio

JSON = dict[str, Any]
DAY = 24 * 3600.0


def sent_within(object_type: str, direction: str, days: int, negate: bool = False) -> JSON:
    """Close's "emailed in the last N days" form (and the same for calls)."""
    node = sent_since(object_type, direction, ago(days=days))
    return negated(node) if negate else node


async def matched(http: httpx.AsyncClient, query: JSON) -> set[str]:
    answer = await http.post("data/search/", json={"query": query, "_limit": 200})
    assert answer.status_code == 200, answer.text
    return {hit["id"] for hit in answer.json()["data"]}


async def refused(http: httpx.AsyncClient, query: JSON) -> JSON:
    answer = await http.post("data/search/", json={"query": query})
    assert answer.status_code == 400, answer.text
    errors: JSON = answer.json()["field-errors"]
    return errors


async def send(http: httpx.AsyncClient, lead_id: str, status: str = "sent") -> None:
    body = {"lead_id": lead_id, "status": status, "subject": "Hi", "body_text": "Hello"}
    if status != "sent":
        body["sender"] = '"Sandra Box" <sandra.box@gmail.example>'
    answer = await http.post("activity/email/", json=body)
    assert answer.status_code == 200, answer.text


def log_call(sb: Sandbox, lead_id: str, direction: str, clock: FakeClock) -> None:
    call_id = f"acti_call{len(sb.store.calls)}"
    now = naive_iso(utc_datetime(clock))
    sb.store.calls[call_id] = {
        "id": call_id,
        "lead_id": lead_id,
        "direction": direction,
        "status": "completed",
        "duration": 60,
        "date_created": now,
        "activity_at": now,
    }


async def test_emailed_within_a_span_counts_outgoing_emails_from_the_span_start_to_now(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    old, recent, replied, *_ = sorted(sb.store.leads)
    await send(http, old)
    clock.advance(40 * DAY)
    await send(http, recent)
    await send(http, replied, status="inbox")  # their email to us: not "emailed"
    clock.advance(DAY)

    every = set(sb.store.leads)
    emailed_30 = await matched(http, lead_and(sent_within("activity.email", "outgoing", 30)))
    assert emailed_30 == {recent}
    emailed_60 = await matched(http, lead_and(sent_within("activity.email", "outgoing", 60)))
    assert emailed_60 == {old, recent}
    not_emailed = await matched(
        http, lead_and(sent_within("activity.email", "outgoing", 30, negate=True))
    )
    assert not_emailed == every - {recent}
    replies = await matched(http, lead_and(sent_within("activity.email", "incoming", 30)))
    assert replies == {replied}


async def test_called_within_reads_call_activities_by_direction_and_date(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    old, recent, inbound, *_ = sorted(sb.store.leads)
    log_call(sb, old, "outbound", clock)
    clock.advance(20 * DAY)
    log_call(sb, recent, "outbound", clock)
    log_call(sb, inbound, "inbound", clock)
    clock.advance(60)  # `before: now` is strict: a call logged this instant is not yet before it
    assert await matched(http, lead_and(sent_within("activity.call", "outbound", 7))) == {recent}
    assert await matched(http, lead_and(sent_within("activity.call", "outbound", 30))) == {
        old,
        recent,
    }
    assert await matched(
        http, lead_and(sent_within("activity.call", "outbound", 7, negate=True))
    ) == set(sb.store.leads) - {recent}


async def test_an_activity_of_any_direction_on_or_after_a_day(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    emailed, called, *_ = sorted(sb.store.leads)
    clock.advance(10 * DAY)  # 2026-01-11
    await send(http, emailed, status="inbox")
    log_call(sb, called, "inbound", clock)
    day = {"type": "fixed_local_date", "value": "2026-01-11", "which": "start"}
    since = any_activity_since(day)
    assert await matched(http, lead_and(since)) == {emailed, called}
    later = {**day, "value": "2026-01-12"}
    assert await matched(http, lead_and(_replace_day(since, later))) == set()


def _replace_day(node: JSON, day: JSON) -> JSON:
    queries = []
    for branch in node["queries"]:
        condition = {"type": "moment_range", "on_or_after": day}
        inner = {**branch["related_query"], "condition": condition}
        queries.append({**branch, "related_query": inner})
    return {**node, "queries": queries}


async def test_has_an_opportunity_in_a_status(sb: Sandbox, http: httpx.AsyncClient) -> None:
    statuses = {s.label: s.id for s in sb.store.opportunity_statuses.values()}
    won = {o.lead_id for o in sb.store.opportunities.values() if o.status_id == statuses["Won"]}
    assert 0 < len(won) < len(sb.store.leads)
    query = has_opportunity(statuses["Won"])
    assert await matched(http, lead_and(query)) == won


async def test_forms_close_refuses_are_refused(sb: Sandbox, http: httpx.AsyncClient) -> None:
    """A lead status's reference type on an opportunity, a field calls do not have, an object
    type the sandbox does not relate: 400s naming the spot, as Close answers."""
    status_id = next(iter(sb.store.opportunity_statuses))
    wrong_reference = related(
        "opportunity",
        {
            "type": "field_condition",
            "field": regular("status_id", "opportunity"),
            "condition": {
                "type": "reference",
                "reference_type": "status.lead",
                "object_ids": [status_id],
            },
        },
    )
    assert await refused(http, lead_and(wrong_reference)) == {
        "query.queries.1.related_query.condition.reference_type": "Must be 'status.opportunity'."
    }
    unknown_field = related(
        "activity.call",
        {
            "type": "field_condition",
            "field": regular("subject", "activity.call"),
            "condition": {"type": "exists"},
        },
    )
    assert await refused(http, lead_and(unknown_field)) == {
        "query.queries.1.related_query.field.field_name": "Unknown activity.call field 'subject'."
    }
    sms = related("activity.sms", {"type": "match_all"})
    assert await refused(http, lead_and(sms)) == {
        "query.queries.1.related_object_type": (
            "'lead' -> 'activity.sms' is not supported by the sandbox."
        )
    }
