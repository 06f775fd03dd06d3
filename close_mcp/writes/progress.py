"""Progress of a long confirmed write, for clients that wait on it (and the person watching).

A 100,000-lead snapshot, backup, revert or restore takes minutes at Close's rate limit; many
clients give up on a call after 60 s unless it sends `notifications/progress` (some reset
their timeout on each one). `Progress` turns the steps of such a write into notifications:

- one value that only grows for the whole call, as MCP requires: each phase (reading the
  binding, the snapshot, each revert request...) adds its own steps on top of the last;
- sent after each page or request, at most one per `EVERY_S` of the clock (plus the first
  and last of each phase), so a 100k walk sends a few dozen, not 500;
- a `Sink` is where they go: the MCP request's `ctx.report_progress` (a no-op when the
  client sent no progressToken), a line on stderr for `close-mcp restore`, or nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from close_mcp.clock import Clock

# (progress, total, message) -> sent
Sink = Callable[[float, float | None, str], Awaitable[None]]
EVERY_S: Final = 1.0


class Progress:
    def __init__(self, sink: Sink | None, clock: Clock, *, every_s: float = EVERY_S) -> None:
        self._sink = sink
        self._clock = clock
        self._every_s = every_s
        self._base = 0.0  # the steps of the phases already finished
        self._sent = -1.0  # the last value sent
        self._last_at: float | None = None

    async def step(self, done: int, total: int | None, message: str) -> None:
        """`done` of the current phase's `total` steps (None: unknown yet)."""
        value = self._base + done
        if self._sink is None or value <= self._sent:
            return
        now = self._clock.time()
        end = total is not None and done >= total
        if not end and self._last_at is not None and now - self._last_at < self._every_s:
            return
        self._sent, self._last_at = value, now
        await self._sink(value, None if total is None else self._base + total, message)

    def next_phase(self, steps: int) -> None:
        """The current phase is over after `steps` steps: the next one counts on from them."""
        self._base += steps
