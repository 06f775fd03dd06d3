"""CLOSE_MCP_TIMEZONE: every request carries `X-TZ-Offset`, so Close reads dates in that zone.

Close takes a filter's dates (`fixed_local_date`, "start of today") in the offset of the
`X-TZ-Offset` header, in hours (`-4`, `-2.5`); the client sends the configured zone's offset at
the moment of each request. Checked on the wire (the Close client over httpx.MockTransport)
and end to end (a lead created near midnight is in or out of a day depending on the zone).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.close.client import CloseClient
from tests.harness import Harness, StartHarness, run_to_done
from tests.ids import status_id

pytestmark = pytest.mark.anyio

BASE = "https://api.close.example/api/v1/"
JANUARY = datetime(2026, 1, 15, 12, tzinfo=UTC).timestamp()
JULY = datetime(2026, 7, 15, 12, tzinfo=UTC).timestamp()


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/data/search/"):
            return httpx.Response(200, json={"data": [], "cursor": None, "count": {"total": 0}})
        return httpx.Response(200, json={"data": [], "has_more": False})

    def offsets(self) -> list[str | None]:
        return [r.headers.get("X-TZ-Offset") for r in self.requests]


def client(recorder: Recorder, clock: FakeClock, zone: str | None) -> CloseClient:
    return CloseClient(
        "api_test",
        BASE,
        transport=httpx.MockTransport(recorder),
        clock=clock,
        timezone=None if zone is None else ZoneInfo(zone),
    )


async def test_every_request_carries_the_offset_of_its_moment() -> None:
    """Reads, searches and writes alike; New York is -5 in January and -4 in July."""
    recorder, clock = Recorder(), FakeClock(JANUARY)
    async with client(recorder, clock, "America/New_York") as close:
        await close.get("status/lead/")
        await close.count({"type": "object_type", "object_type": "lead"})
        await close.post("bulk_action/edit/", {"type": "set_lead_status"})
        clock.advance(JULY - JANUARY)
        await close.put("lead/lead_1/", {"name": "x"})
        await close.list_all("user/")
    assert recorder.offsets() == ["-5", "-5", "-5", "-4", "-4"]


@pytest.mark.parametrize(
    ("zone", "at", "header"),
    [
        ("UTC", JANUARY, "0"),
        ("Europe/Berlin", JULY, "2"),
        ("Asia/Kolkata", JANUARY, "5.5"),
        ("Asia/Kathmandu", JULY, "5.75"),
        ("America/St_Johns", JANUARY, "-3.5"),
        ("America/St_Johns", JULY, "-2.5"),
        ("Pacific/Kiritimati", JULY, "14"),
        ("Pacific/Pago_Pago", JULY, "-11"),
    ],
)
async def test_offsets_are_hours_as_close_writes_them(zone: str, at: float, header: str) -> None:
    """Close's examples: `-4` for EDT, `-2.5` for NDT; quarter hours as decimals too."""
    recorder = Recorder()
    async with client(recorder, FakeClock(at), zone) as close:
        await close.get("me/")
    assert recorder.offsets() == [header]


@pytest.fixture
def machine_in_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local zone is New York for the test (POSIX `TZ`), then what it was."""
    if not hasattr(time, "tzset"):
        pytest.skip("the local zone cannot be changed on this platform")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("machine_in_new_york")
async def test_without_a_setting_the_machines_zone_is_sent() -> None:
    recorder, clock = Recorder(), FakeClock(JANUARY)
    async with client(recorder, clock, None) as close:
        await close.get("me/")
        clock.advance(JULY - JANUARY)
        await close.get("me/")
    assert recorder.offsets() == ["-5", "-4"]


# -- end to end: the same filter, two zones ----------------------------------------------------

# Created at 02:30 UTC on June 10: still June 9 in New York (EST or EDT).
NEAR_MIDNIGHT = datetime(2025, 6, 10, 2, 30, tzinfo=UTC)
# Created at noon UTC on June 10: June 10 in both zones.
MIDDAY = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
JUNE_10 = {"created_after": "2025-06-10", "created_before": "2025-06-11"}


async def zoned(start_harness: StartHarness, zone: str) -> tuple[Harness, list[str]]:
    h = await start_harness(n_leads=20, env={"CLOSE_MCP_TIMEZONE": zone})
    leads = list(h.sandbox.store.leads.values())[:2]
    leads[0].date_created, leads[1].date_created = NEAR_MIDNIGHT, MIDDAY
    return h, [lead.id for lead in leads]


@pytest.mark.parametrize(
    ("zone", "on_june_10"),
    [("UTC", [0, 1]), ("America/New_York", [1]), ("Pacific/Auckland", [0])],
)
async def test_a_lead_created_near_midnight_is_on_the_day_of_the_zone(
    start_harness: StartHarness, zone: str, on_june_10: list[int]
) -> None:
    """The requests go out on the harness clock (January 2026), so New York sends -5 and
    Auckland +13: June 10 runs 05:00 UTC June 10 to 05:00 UTC June 11 in the one, 11:00 UTC
    June 9 to 11:00 UTC June 10 in the other (noon UTC is June 11 there)."""
    h, ids = await zoned(start_harness, zone)
    result = await h.call("search_leads", {"filter": {"lead_ids": ids, **JUNE_10}})
    found = sorted(lead["id"] for lead in result["sample"])
    assert found == sorted(ids[i] for i in on_june_10)
    assert result["total"] == len(on_june_10)
    assert h.writes() == []


@pytest.mark.parametrize(
    ("zone", "today"),
    [("UTC", "2026-01-01"), ("America/New_York", "2025-12-31"), ("Pacific/Auckland", "2026-01-01")],
)
async def test_search_leads_says_today_in_the_zone(
    start_harness: StartHarness, zone: str, today: str
) -> None:
    """The harness clock is 2026-01-01T00:00Z: still New Year's Eve in New York."""
    h = await start_harness(n_leads=5, env={"CLOSE_MCP_TIMEZONE": zone})
    result = await h.call("search_leads", {"filter": {"lead_status": "Qualified"}})
    assert result["today"] == today


async def test_a_bulk_job_selects_in_the_zone_too(start_harness: StartHarness) -> None:
    h, ids = await zoned(start_harness, "America/New_York")
    canceled = status_id(h.sandbox, "Canceled")
    for lead_id in ids:
        h.sandbox.store.leads[lead_id].status_id = status_id(h.sandbox, "Potential")
    args = {
        "filter": {"lead_ids": ids, **JUNE_10},
        "edit": {"type": "set_lead_status", "lead_status": "Canceled"},
    }
    first = await h.call("create_bulk_edit", args)
    assert first["preview"]["matched"] == 1
    done = await h.call(
        "create_bulk_edit", {**args, "confirmation_token": first["confirmation_token"]}
    )
    await run_to_done(h, done["job"]["id"])
    assert [h.sandbox.store.leads[i].status_id == canceled for i in ids] == [False, True]
