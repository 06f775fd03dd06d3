"""Faithful to Close, round 2 (issue 25): what a real account would read differently.

Each test fails on the code before issue 25: relative spans went without Close's full offset
form, a time was accepted for a date custom field until Close refused it inside the job,
a naive timestamp from Close was read as the machine's local time (so, in Tokyo, an ambiguous
outbox send was not found), and `contact_preference: all` was described as if Close had said
what it does.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import anyio
import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.close.client import CloseClient
from close_mcp.sandbox import SANDBOX_API_KEY, Sandbox
from close_mcp.server.runtime import SANDBOX_BASE_URL
from close_mcp.store.sqlite import MEMORY, SQLiteStore
from tests.harness import Harness
from tests.ids import custom_field
from tests.queries import fc, lead_and, regular
from tests.recorder import HeldClock

pytestmark = pytest.mark.anyio

N_LEADS = 40
EMAIL_PATH = "/api/v1/activity/email/"
UNITS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")


def full_offset(direction: str = "past", which: str = "start", **units: int) -> dict[str, Any]:
    return {
        "type": "offset",
        "direction": direction,
        "moment": {"type": "now"},
        "offset": {unit: units.get(unit, 0) for unit in UNITS},
        "which_day_end": which,
    }


def created_since(moment: dict[str, Any]) -> dict[str, Any]:
    return _field_moment(regular("date_created"), moment)


# -- 1. relative spans in Close's full offset form ------------------------------------------


@pytest.mark.harness(n_leads=N_LEADS)
async def test_relative_spans_are_sent_in_the_form_closes_ui_exports(h: Harness) -> None:
    for text, units in (("90d", {"days": 90}), ("12h", {"hours": 12}), ("P1Y2M", {})):
        expected = full_offset(**units) if units else full_offset(years=1, months=2)
        found = await h.call("search_leads", {"filter": {"created_within": text}})
        assert found["s_query"] == created_since(expected)
        sent = [r.json["query"] for r in h.sandbox.requests if r.path.endswith("/data/search/")]
        assert created_since(expected) in sent
        h.clear()


async def test_day_spans_start_at_the_days_start_and_hour_spans_are_exact() -> None:
    """The sandbox reads `which_day_end` as close-mcp sends it (README "Selecting leads"):
    `90d` reaches back to the start of the day 90 days ago; `12h` is 12 hours, not rounded."""
    clock = FakeClock()
    clock.advance(15 * 3600)  # 2026-01-01T15:00Z
    sandbox = Sandbox(n_leads=N_LEADS, clock=clock)
    now = datetime.fromtimestamp(clock.time(), tz=UTC)
    leads = list(sandbox.store.leads.values())
    leads[0].date_created = now - timedelta(days=90, hours=10)  # same day as 90 days ago
    leads[1].date_created = now - timedelta(days=90, hours=16)  # the day before
    leads[2].date_created = now - timedelta(hours=11)
    leads[3].date_created = now - timedelta(hours=13)  # today, but more than 12 hours ago
    async with httpx.AsyncClient(
        transport=sandbox.transport(), base_url=SANDBOX_BASE_URL, auth=(SANDBOX_API_KEY, "")
    ) as close:

        async def ids(moment: dict[str, Any]) -> set[str]:
            body = {"query": created_since(moment), "_limit": 200}
            answer = await close.post("data/search/", json=body, headers={"X-TZ-Offset": "0"})
            assert answer.status_code == 200, answer.text
            return {hit["id"] for hit in answer.json()["data"]}

        days = await ids(full_offset(days=90))
        hours = await ids(full_offset(hours=12))
    assert (leads[0].id in days, leads[1].id in days) == (True, False)
    assert (leads[2].id in hours, leads[3].id in hours) == (True, False)


# -- 3. a date custom field takes a plain date --------------------------------------------


@pytest.mark.harness(n_leads=N_LEADS)
async def test_a_time_for_a_date_field_is_refused_before_any_token(h: Harness) -> None:
    edit = {"type": "set_custom_field", "custom_field": "Renewal Date"}
    args = {"filter": {"lead_status": "Qualified"}}
    error = await h.error(
        "create_bulk_edit", {**args, "edit": {**edit, "value": "2026-03-01T10:00:00Z"}}
    )
    assert error == (
        "edit.value: 'Renewal Date' is a date field; '2026-03-01T10:00:00Z' has a time, give "
        "a plain date like 2025-01-31"
    )
    assert h.writes() == []
    first = await h.call("create_bulk_edit", {**args, "edit": {**edit, "value": "2026-03-01"}})
    assert first["preview"]["request"]["custom_field_value"] == "2026-03-01"
    assert first["preview"]["request"]["custom_field_id"] == custom_field(h, "Renewal Date").id
    done = await h.call(
        "create_bulk_edit",
        {
            **args,
            "edit": {**edit, "value": "2026-03-01"},
            "confirmation_token": first["confirmation_token"],
        },
    )
    assert done["status"] == "submitted"


# -- 4. naive Close timestamps are UTC ---------------------------------------------------------


@pytest.fixture
def tokyo() -> Iterator[None]:
    """This process's local time is Tokyo's (UTC+9), as on a machine in Japan."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.harness(n_leads=N_LEADS, env={"CLOSE_MCP_TIMEZONE": "Asia/Tokyo"})
async def test_an_ambiguous_outbox_send_is_found_in_tokyo(tokyo: None, h: Harness) -> None:
    lead = next(
        lead for lead in h.sandbox.store.leads.values() if lead.contacts and lead.contacts[0].emails
    )
    args = {
        "lead_id": lead.id,
        "subject": "Hi",
        "body_text": "Hello",
        "status": "outbox",
        "sender": h.sandbox.store.me.email,
    }
    first = await h.call("send_email", args)
    h.clear()
    h.sandbox.inject_faults("after_commit", 1, "activity/email/", "POST")
    done = await h.call("send_email", {**args, "confirmation_token": first["confirmation_token"]})
    assert done["status"] == "submitted"
    (made,) = h.sandbox.store.emails.values()
    assert done["result"]["id"] == made["id"]
    assert made["date_created"] == "2026-01-01T00:00:00.000000"  # naive, as Close answers
    assert [r.path for r in h.writes()] == [EMAIL_PATH]  # sent once, never twice
    # the POST's start, less the 2 s the reconciliation allows and the filter's 60 s margin
    since = datetime.fromtimestamp(h.clock.time() - 62, tz=UTC).isoformat()
    lookups = [r.query for r in h.sandbox.requests if r.path == EMAIL_PATH and r.method == "GET"]
    assert lookups[-1] == {
        "lead_id": lead.id,
        "_skip": "0",
        "_limit": "100",
        "date_created__gte": since,
    }


async def test_the_email_list_filters_by_date_created_as_close_documents() -> None:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=N_LEADS, clock=clock)
    lead = next(iter(sandbox.store.leads.values()))
    async with httpx.AsyncClient(
        transport=sandbox.transport(), base_url=SANDBOX_BASE_URL, auth=(SANDBOX_API_KEY, "")
    ) as close:
        old = await close.post("activity/email/", json={"lead_id": lead.id, "status": "draft"})
        clock.advance(3600)
        new = await close.post("activity/email/", json={"lead_id": lead.id, "status": "draft"})
        start = datetime.fromtimestamp(clock.time() - 60, tz=UTC)

        async def listed(**params: str) -> list[str]:
            answer = await close.get("activity/email/", params={"lead_id": lead.id, **params})
            assert answer.status_code == 200, answer.text
            return sorted(e["id"] for e in answer.json()["data"])

        assert await listed(date_created__gte=start.isoformat()) == [new.json()["id"]]
        assert await listed(date_created__lt=start.isoformat()) == [old.json()["id"]]
        naive = start.replace(tzinfo=None).isoformat()
        assert await listed(date_created__gte=naive) == [new.json()["id"]]
        bad = await close.get("activity/email/", params={"date_created__gte": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["field-errors"] == {"date_created__gte": "Not a valid date-time or date."}
    assert old.json()["date_created"] == "2026-01-01T00:00:00.000000"


# -- 5. contact_preference all is not described as fact ---------------------------------------


@pytest.mark.harness(n_leads=N_LEADS)
async def test_contact_preference_all_is_marked_undocumented(h: Harness) -> None:
    args = {"filter": {"lead_status": "Qualified"}, "template": "Intro"}
    first = await h.call("create_bulk_email", {**args, "contact_preference": "all"})
    note = first["preview"]["notes"][-1]
    assert note.endswith(
        "contact_preference all sends to recipients Close does not document (the value is "
        "listed in Close's reference without a meaning; the sandbox reads it as every email "
        "address of every contact)."
    )
    assert "the recipients of contact_preference all (undocumented by Close)" in first["message"]
    tools = {tool.name: tool for tool in (await h.client.list_tools()).tools}
    described = tools["create_bulk_email"].input_schema["properties"]["contact_preference"]
    assert described["description"].endswith("all: undocumented by Close.")


# -- 7. null job status; a resume retried after a 5xx -----------------------------------------


class NullStatus(httpx.AsyncBaseTransport):
    """The sandbox, with every bulk job's `status` answered as null (the OpenAPI allows it)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner = sandbox.transport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if "/bulk_action/" not in request.url.path or request.method != "GET":
            return response
        body = json.loads(await response.aread())
        for job in body.get("data", [body]):
            job["status"] = None
        return httpx.Response(response.status_code, json=body)


async def test_a_null_job_status_is_unknown_and_not_waited_out(start_harness: Any) -> None:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=N_LEADS, clock=clock)
    h: Harness = await start_harness(sandbox=sandbox, clock=clock, transport=NullStatus(sandbox))
    store = sandbox.store
    job = sandbox.jobs.create(
        "edit",
        {
            "s_query": {"type": "object_type", "object_type": "lead"},
            "type": "set_lead_status",
            "lead_status_id": next(iter(store.statuses)),
        },
        clock.time(),
    )
    read = await h.call("get_bulk_job", {"job_id": job.id})
    assert read["status"] == "unknown"
    started = clock.time()
    waited = await h.call("wait_for_bulk_job", {"job_id": job.id, "timeout_s": 600})
    assert clock.time() == started  # answered at once, not after 600 s
    assert (waited["job"]["status"], waited["finished"], waited["timed_out"]) == (
        "unknown",
        False,
        False,
    )
    listed = await h.call("list_bulk_jobs", {"kind": "edit"})
    assert [j["status"] for j in listed["jobs"]] == ["unknown"]


@pytest.mark.harness(n_leads=N_LEADS)
async def test_a_resume_whose_first_put_worked_is_not_reported_as_refused(h: Harness) -> None:
    store = h.sandbox.store
    job = h.sandbox.jobs.create(
        "edit",
        {
            "s_query": {"type": "object_type", "object_type": "lead"},
            "type": "set_lead_status",
            "lead_status_id": next(iter(store.statuses)),
        },
        h.clock.time(),
    )
    h.sandbox.jobs.set_status(job, {"status": "paused"}, h.clock.time())
    first = await h.call("resume_bulk_job", {"job_id": job.id})
    path = f"bulk_action/edit/{job.id}/"
    # The first PUT resumes the job but its answer is lost (504); the client retries the PUT,
    # which Close refuses: the job is no longer paused.
    h.sandbox.inject_faults("after_commit", 1, path, "PUT")
    done = await h.call(
        "resume_bulk_job", {"job_id": job.id, "confirmation_token": first["confirmation_token"]}
    )
    puts = [r.status for r in h.writes()]
    assert len(puts) == 2
    assert puts[1] == 400
    assert done["status"] == "submitted"
    assert done["job"]["status"] == "resuming"
    assert done["message"] == (
        f"Close refused the resume (Close rejected the request: status: Only a paused bulk "
        f"action can be resumed.), but job {job.id} is now resuming: it was resumed (by an "
        "earlier try of this call whose answer was lost, or meanwhile by someone else). "
        "Follow it with wait_for_bulk_job; do not resume it again."
    )


# -- 6. one rate-limit budget per endpoint group ----------------------------------------------


@pytest.mark.parametrize("shared", [False, True], ids=["local", "store"])
async def test_a_429_on_search_does_not_delay_a_status_lookup(shared: bool) -> None:
    clock = HeldClock()
    seen: list[tuple[float, str, str, int]] = []

    def close(request: httpx.Request) -> httpx.Response:
        searching = request.url.path.endswith("/data/search/")
        status = 429 if searching and not seen else 200
        seen.append((clock.time() - start, request.method, request.url.path, status))
        if status == 429:
            return httpx.Response(
                429, json={}, headers={"RateLimit": "limit=10, remaining=0, reset=30"}
            )
        return httpx.Response(
            200,
            json={"data": [], "cursor": None},
            headers={"RateLimit": "limit=10, remaining=9, reset=1"},
        )

    start = clock.time()
    store = SQLiteStore(MEMORY, clock=clock) if shared else None
    client = CloseClient(
        SANDBOX_API_KEY, "https://api.close.example/api/v1/",
        transport=httpx.MockTransport(close), clock=clock, store=store,
    )  # fmt: skip
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(client.post, "data/search/", {"query": {}}, idempotent=True))
        await anyio.wait_all_tasks_blocked()
        assert clock.sleeps == [30.0]  # the search waits out Close's reset
        tg.start_soon(client.get, "status/lead/")
        await anyio.wait_all_tasks_blocked()
        looked_up_at_once = seen[-1] == (0.0, "GET", "/api/v1/status/lead/", 200)
        clock.advance(30.0)
    assert looked_up_at_once, seen
    assert [s[3] for s in seen] == [429, 200, 200]
    assert seen[-1][:3] == (30.0, "POST", "/api/v1/data/search/")
    await client.aclose()
    if store is not None:
        await store.aclose()


async def test_the_sandbox_limits_each_endpoint_group_apart() -> None:
    """As Close's rate-limit page says: an exhausted group answers 429, another group goes on."""
    clock = FakeClock()
    sandbox = Sandbox(n_leads=5, clock=clock, rate_limit=2)
    async with httpx.AsyncClient(
        transport=sandbox.transport(), base_url=SANDBOX_BASE_URL, auth=(SANDBOX_API_KEY, "")
    ) as close:
        search = {"query": {"type": "object_type", "object_type": "lead"}}
        statuses = [(await close.post("data/search/", json=search)).status_code for _ in range(3)]
        lookup = await close.get("status/lead/")
        leads = [(await close.get("lead/")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert lookup.status_code == 200
    assert lookup.headers["RateLimit"] == "limit=2, remaining=1, reset=0.50"
    assert leads == [200, 200, 429]


# -- 8. the sandbox at least as strict as Close ------------------------------------------------


def _field_moment(field: dict[str, Any], moment: dict[str, Any]) -> dict[str, Any]:
    return lead_and(fc(field, {"type": "moment_range", "on_or_after": moment}))


async def test_the_sandbox_refuses_a_naive_fixed_utc_and_a_fixed_utc_on_a_date_field() -> None:
    sandbox = Sandbox(n_leads=5, clock=FakeClock())
    renewal = custom_field(sandbox, "Renewal Date")
    created = {"type": "regular_field", "object_type": "lead", "field_name": "date_created"}
    on_date = {"type": "custom_field", "custom_field_id": renewal.id}
    where = "query.queries.1.condition.on_or_after"
    async with httpx.AsyncClient(
        transport=sandbox.transport(), base_url=SANDBOX_BASE_URL, auth=(SANDBOX_API_KEY, "")
    ) as close:

        async def search(tree: dict[str, Any]) -> httpx.Response:
            return await close.post("data/search/", json={"query": tree})

        naive = await search(
            _field_moment(created, {"type": "fixed_utc", "value": "2025-01-31T10:00:00"})
        )
        on_a_day = await search(
            _field_moment(on_date, {"type": "fixed_utc", "value": "2025-01-31T10:00:00+00:00"})
        )
        aware = await search(
            _field_moment(created, {"type": "fixed_utc", "value": "2025-01-31T10:00:00+00:00"})
        )
        local = await search(
            _field_moment(on_date, {"type": "fixed_local_date", "value": "2025-01-31"})
        )
    assert (naive.status_code, naive.json().get("field-errors")) == (
        400,
        {f"{where}.value": "A fixed_utc moment needs a UTC offset (Z or +00:00)."},
    )
    assert (on_a_day.status_code, on_a_day.json().get("field-errors")) == (
        400,
        {f"{where}.type": "A date field takes fixed_local_date moments, not fixed_utc."},
    )
    assert (aware.status_code, local.status_code) == (200, 200)
