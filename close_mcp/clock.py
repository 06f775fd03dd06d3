"""Time as a dependency, so retries, expiries and job progress are testable without sleeping.

The client sleeps between retries, tokens expire, sandbox jobs advance: all of them ask a
`Clock` instead of the `time` module. Production uses `SystemClock`; tests use `FakeClock`,
whose `sleep` returns at once and moves time forward by exactly the amount asked.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

import anyio


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (wall clock)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


def utc_datetime(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock.time(), tz=UTC)


class SystemClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to: by `advance`, or by `sleep`, which returns at once."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += max(seconds, 0.0)
        await anyio.lowlevel.checkpoint()
