"""Load: 120 tool calls in flight at once from several MCP sessions on one server, against a
sandbox that allows 20 requests a second per endpoint group (Close limits each group apart).
All complete, none surfaces a 429, and close-mcp's own pacing keeps what it *sends* to each
group near the limit: few requests meet a 429 at all.

What is measured is close-mcp's side. The sandbox's token bucket (20 at once, 20 more a second)
caps the requests it *accepts* in any one-second window at 40 whatever the client does, so a
bound on accepted requests proves nothing about the client. close-mcp has no burst limit of its
own: it learns the budget from each answer's `RateLimit` header and every request reserves the
next share of it (`close_mcp.close.budget.Pacer`). So the test counts every request that reached the
sandbox, 429s included: the 429s met, and the busiest one-second window of requests sent after
the first second. Without the pacing (or with a pacer that forgets the shares it promised) both
are far above the bounds: hundreds to thousands of 429s, over 100 requests sent in a second.

Time is virtual: `VirtualClock.sleep` parks the caller until a driver moves time to the
earliest wake-up, and only when every task is blocked. Concurrent waits overlap as they would
in real time (a plain FakeClock would add them up), and the test never sleeps.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import httpx
import pytest
from mcp import types
from mcp.client import Client

from close_mcp.clock import FakeClock
from close_mcp.close.budget import endpoint_group
from close_mcp.config import load_settings
from close_mcp.sandbox import Sandbox
from close_mcp.server.app import build_server
from close_mcp.server.runtime import Runtime
from tests.harness import text_of
from tests.reliability.support import record

pytestmark = pytest.mark.anyio

RATE: Final = 20.0
SESSIONS: Final = 6
CALLS: Final = 120
# 429s met, measured: 4 for 120 calls, 12 for 400 (the calls start before any answer announced
# the budget). Twice that is the bound; without pacing 120 calls meet over 4,000 (100 of them
# fail), with a pacer that forgets promised shares 487.
MAX_429: Final = {CALLS: 8, 400: 24}
# After the first second, requests sent (accepted or not) in any one-second window: measured
# 23 for 120 calls and 29 for 400 (20/s plus the retries after a 429); with a pacer that
# forgets promised shares 124. (The sandbox would accept up to 40 whatever was sent.)
MAX_SENT_PER_SECOND: Final = 35


class VirtualClock(FakeClock):
    """Sleepers wait for virtual time to reach their deadline; `drive` moves it."""

    def __init__(self) -> None:
        super().__init__()
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        wake = anyio.Event()
        heapq.heappush(self._sleepers, (self._now + seconds, self._order, wake))
        self._order += 1
        await wake.wait()

    async def drive(self) -> None:
        """Run beside the workload: when all tasks are blocked, wake the earliest sleepers."""
        while True:
            await _all_other_tasks_blocked()
            if not self._sleepers:
                await anyio.lowlevel.checkpoint()
                continue
            when = self._sleepers[0][0]
            self._now = max(self._now, when)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                heapq.heappop(self._sleepers)[2].set()


async def _all_other_tasks_blocked() -> None:
    """`anyio.wait_all_tasks_blocked` without its 0.1 s real sleep between looks (asyncio only):
    yield to the loop until every other task waits on a future that is not done."""
    this = asyncio.current_task()
    while True:
        await asyncio.sleep(0)
        if all(
            task is this or (task._fut_waiter is not None and not task._fut_waiter.done())  # type: ignore[attr-defined]
            for task in asyncio.all_tasks()
        ):
            return


@dataclass
class Timed(httpx.AsyncBaseTransport):
    """The sandbox transport, noting the clock time and status of every request."""

    inner: httpx.AsyncBaseTransport
    clock: FakeClock
    log: list[tuple[float, int, str]] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        at = self.clock.time()
        response = await self.inner.handle_async_request(request)
        group = endpoint_group(request.method, request.url.path.removeprefix("/api/v1/"))
        self.log.append((at, response.status_code, group))
        return response


def _workload(job_id: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    kinds = ["lead_statuses", "custom_fields", "email_templates", "users"]
    calls: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        match i % 3:
            case 0:
                calls.append(("search_leads", {"filter": {"lead_status": "Qualified"}}))
            case 1:
                calls.append(("lookup", {"kind": kinds[i % len(kinds)]}))
            case _:
                calls.append(("get_bulk_job", {"job_id": job_id}))
    return calls


@dataclass
class Load:
    results: list[tuple[str, types.CallToolResult]]
    log: list[tuple[float, int, str]]  # (clock time, status, endpoint group)
    started: float

    @property
    def limited(self) -> int:
        """Requests that met a 429."""
        return sum(1 for _, code, _ in self.log if code == 429)

    def busiest_group(self) -> list[float]:
        """When the accepted requests of the endpoint group with the most of them went."""
        groups: dict[str, list[float]] = {}
        for at, code, group in self.log:
            if code != 429:
                groups.setdefault(group, []).append(at)
        return max(groups.values(), key=len)

    def busiest_second(self, after: float = 0.0) -> int:
        """The most requests sent (429s included) to one endpoint group (Close limits each
        group apart) in one second, counting from `after` s."""
        most = 0
        for name in {group for _, _, group in self.log}:
            sent = sorted(
                at for at, _, group in self.log if group == name and at - self.started >= after
            )
            most = max(
                [
                    most,
                    *(bisect.bisect_left(sent, at + 1.0 - 1e-9) - i for i, at in enumerate(sent)),
                ]
            )
        return most


async def _run(n_calls: int) -> Load:
    clock = VirtualClock()
    sandbox = Sandbox(n_leads=120, clock=clock, rate_limit=RATE)
    timed = Timed(sandbox.transport(), clock)
    settings = load_settings({"CLOSE_MCP_SECRET": "s" * 32}, sandbox=True, audit_log="off")
    runtime = Runtime(settings, sandbox=sandbox, clock=clock, transport=timed)
    server = build_server(runtime)
    status = next(iter(sandbox.store.statuses))
    job = sandbox.jobs.create(
        "edit",
        {
            "s_query": {"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}]},
            "type": "set_lead_status",
            "lead_status_id": status,
            "results_limit": 1,
        },
        clock.time(),
    )
    results: list[tuple[str, types.CallToolResult]] = []
    started = clock.time()

    async def one(client: Client, tool: str, args: dict[str, Any]) -> None:
        results.append((tool, await client.call_tool(tool, args)))

    async with anyio.create_task_group() as driver:
        driver.start_soon(clock.drive)
        clients = [Client(server, mode="legacy" if i % 2 else "auto") for i in range(SESSIONS)]
        async with AsyncExitStack() as stack:
            sessions = [await stack.enter_async_context(c) for c in clients]
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for i, (tool, args) in enumerate(_workload(job.id, n_calls)):
                        tg.start_soon(one, sessions[i % SESSIONS], tool, args)
        driver.cancel_scope.cancel()
    await runtime.aclose()
    return Load(results, timed.log, started)


async def test_many_concurrent_calls_stay_under_the_rate_limit() -> None:
    load = await _run(CALLS)
    results, started = load.results, load.started
    errors = [(tool, text_of(r)) for tool, r in results if r.is_error]
    assert errors == []
    assert len(results) == CALLS
    accepted = load.busiest_group()  # the group the limit holds back
    elapsed = max(accepted) - started
    # close-mcp's pacing: few requests meet a 429, and after the first second (which starts
    # before any answer announced the budget) it sends at about the limit, not in bursts
    limited, busiest = load.limited, load.busiest_second(after=1.0)
    assert limited <= MAX_429[CALLS]
    assert busiest <= MAX_SENT_PER_SECOND
    # and it uses the budget: accepted requests per second after the bucket's initial burst
    # (the sandbox caps this from above; the floor is the client not waiting needlessly)
    throughput = (len(accepted) - RATE) / elapsed
    assert 0.8 * RATE <= throughput <= 1.05 * RATE
    record(
        "load",
        f"{CALLS} concurrent calls over {SESSIONS} sessions, all completed, 0 tool errors; "
        f"{len(load.log)} requests sent, {len(accepted)} accepted in {elapsed:.1f} clock-s "
        f"({throughput:.1f}/s after the burst, limit {RATE:.0f}/s); busiest second after the "
        f"first: {busiest} sent; {limited} answers were 429 (bound {MAX_429[CALLS]}) and "
        "were waited out",
    )


async def test_four_hundred_concurrent_calls_surface_no_429() -> None:
    load = await _run(400)
    assert [text_of(r) for _, r in load.results if r.is_error] == []
    assert len(load.results) == 400
    limited, busiest = load.limited, load.busiest_second(after=1.0)
    assert limited <= MAX_429[400]
    assert busiest <= MAX_SENT_PER_SECOND
    record(
        "load 400",
        f"400 concurrent calls, 0 tool errors; {len(load.log)} requests sent; busiest second "
        f"after the first: {busiest} sent; {limited} answers were 429 (bound {MAX_429[400]})",
    )
