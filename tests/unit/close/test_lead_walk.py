"""`close_mcp.close.lead_walk.lead_page` against the sandbox: pages that go on from a cursor,
after Close's own cursor expired too, and a cursor refused for another selection."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.clock import FakeClock
from close_mcp.close.client import CloseClient
from close_mcp.close.lead_walk import lead_page, resume_after
from close_mcp.errors import ArgumentError
from close_mcp.sandbox import SANDBOX_API_KEY, Sandbox

pytestmark = pytest.mark.anyio

LEADS: dict[str, Any] = {"type": "object_type", "object_type": "lead"}
BY_NAME = [
    {"direction": "asc", "field": {"type": "regular_field", "object_type": "lead",
                                   "field_name": "display_name"}},
]  # fmt: skip


def setup(n_leads: int = 90) -> tuple[Sandbox, CloseClient, FakeClock]:
    clock = FakeClock()
    sb = Sandbox(n_leads=n_leads, clock=clock)
    client = CloseClient(
        SANDBOX_API_KEY, "http://sandbox/api/v1/", transport=sb.transport(), clock=clock
    )
    return sb, client, clock


async def walk(client: CloseClient, clock: FakeClock, limit: int, pause: float) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await lead_page(
            client, LEADS, ["id"], limit=limit, sort=BY_NAME, results_limit=None, cursor=cursor
        )
        assert page.total == 90
        assert page.offset == len(seen)
        seen += [lead["id"] for lead in page.leads]
        cursor = page.cursor
        if cursor is None:
            return seen
        clock.advance(pause)


async def test_pages_go_on_by_close_cursor_while_it_lives() -> None:
    sb, client, clock = setup()
    everyone = await walk(client, clock, limit=200, pause=0)
    sb.clear_requests()
    assert await walk(client, clock, limit=40, pause=1) == everyone
    searches = [r.json for r in sb.requests]
    assert [s.get("cursor") is not None for s in searches] == [False, True, True]
    assert all(s["_limit"] == 40 and s["include_counts"] for s in searches)


async def test_pages_go_on_after_close_cursor_expired() -> None:
    sb, client, clock = setup()
    everyone = await walk(client, clock, limit=200, pause=0)
    sb.clear_requests()
    assert await walk(client, clock, limit=40, pause=31) == everyone  # Close's live 30 s
    statuses = [r.status for r in sb.requests]
    limits = [r.json["_limit"] for r in sb.requests]
    # page 2: the dead cursor (400), then 40 skipped and the page; page 3: 400, 80, page
    assert statuses == [200, 400, 200, 200, 400, 200, 200]
    assert limits == [40, 40, 40, 40, 40, 80, 40]


async def test_a_page_cut_to_fit_goes_on_right_after_the_last_shown() -> None:
    _, client, clock = setup()
    everyone = await walk(client, clock, limit=200, pause=0)
    first = await lead_page(client, LEADS, ["id"], limit=50, sort=BY_NAME, results_limit=None)
    cursor = resume_after(first, 7)
    second = await lead_page(
        client, LEADS, ["id"], limit=5, sort=BY_NAME, results_limit=None, cursor=cursor
    )
    assert [lead["id"] for lead in second.leads] == everyone[7:12]
    last = await lead_page(client, LEADS, ["id"], limit=200, sort=BY_NAME, results_limit=None)
    assert resume_after(last, 90) is None


async def test_a_cursor_for_another_selection_or_forged_is_refused() -> None:
    sb, client, _ = setup()
    page = await lead_page(client, LEADS, ["id"], limit=10, sort=BY_NAME, results_limit=None)
    assert page.cursor is not None
    sb.clear_requests()
    with pytest.raises(ArgumentError, match="cursor: it belongs to another selection"):
        await lead_page(
            client, LEADS, ["id"], limit=10, sort=None, results_limit=None, cursor=page.cursor
        )
    with pytest.raises(ArgumentError, match="cursor: not a cursor this tool handed out"):
        await lead_page(
            client, LEADS, ["id"], limit=10, sort=BY_NAME, results_limit=None, cursor="bogus!"
        )
    assert sb.requests == []
