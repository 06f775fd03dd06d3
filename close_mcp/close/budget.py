"""Close's rate-limit budgets for one API key: estimated from answers, spent one share at a time.

Close limits requests per API key and per endpoint group ("grouping endpoint URL paths and
methods together": its rate-limit page), and says how much is left of the request's group in
each answer's `RateLimit` header. Its headers do not name the group, so `endpoint_group` is
close-mcp's reading of it; each group has its own budget, so a 429 on `/data/search/` holds
the searches, not a lookup of statuses. `Pacer` is the estimate (the math); a budget is where
the estimate lives:

- `LocalBudget`: in this process. Right for one process per key.
- `SharedBudget`: one record per key and group in the state store, changed only by `store.update`
  (atomic read-modify-write), so every process that shares the store (replicas on one SQLite
  file or one Redis) spends one budget: their requests leave one by one, as if one process
  sent them all, instead of each believing it has the whole budget and meeting 429s. The
  record is keyed by a SHA-256 of the API key (never the key) and expires `RECORD_TTL_S`
  after its last change, long after any reset Close announces. Times in it are wall-clock
  seconds, so processes on several machines need synchronized clocks (NTP is plenty).
  While the store fails, the process paces from a local estimate rather than fail calls.

A 429's wait (`block`) lives in the budget too: while one call waits out a 429, calls made
meanwhile, in any process sharing the budget, wait too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Final, Protocol, TypeVar

from close_mcp.store import StateStore

log = logging.getLogger(__name__)

T = TypeVar("T")
RATE_RESET: Final = re.compile(r"reset=([0-9]+(?:\.[0-9]+)?)")
RATE_REMAINING: Final = re.compile(r"remaining=([0-9]+)")
RATE_LIMIT: Final = re.compile(r"limit=([0-9]+)")
RECORD_TTL_S: Final = 300.0
_FIELDS: Final = ("tokens", "capacity", "rate", "at", "blocked_until")


class Pacer:
    """A local estimate of Close's rate-limit budget, read from each answer's `RateLimit` header.

    `limit=L, remaining=R, reset=X` means R requests may go now and the budget is whole again
    in X seconds; the budget is taken to refill evenly in between. Each request reserves the
    next share of it, so concurrent calls leave one by one instead of all meeting a 429.
    `blocked_until` is the end of the latest 429's wait.
    """

    def __init__(self) -> None:
        self.tokens = 0.0  # negative: shares already promised to waiting requests
        self.capacity = 0.0
        self.rate = 0.0  # shares per second; 0 means no budget announced
        self.at = 0.0
        self.blocked_until = 0.0

    def _now(self, now: float) -> float:
        return min(self.capacity, self.tokens + (now - self.at) * self.rate)

    def observe(self, header: str | None, now: float) -> None:
        found = [rx.search(header or "") for rx in (RATE_LIMIT, RATE_REMAINING, RATE_RESET)]
        if not all(found):
            return
        capacity, remaining, reset = (float(m.group(1)) for m in found if m)
        # Promised shares stay promised: never believe more than the estimate already has.
        estimate = self._now(now) if self.rate > 0 else remaining
        self.capacity, self.at = capacity, now
        self.tokens = min(estimate, remaining)
        self.rate = (capacity - remaining) / reset if reset > 0 and remaining < capacity else 0.0

    def reserve(self, now: float) -> float:
        """Take the next share of the budget; the seconds until it is there (0: go now)."""
        if self.rate <= 0:
            return 0.0
        self.tokens, self.at = self._now(now) - 1.0, now
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def block(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)

    def dump(self) -> str:
        return json.dumps({name: getattr(self, name) for name in _FIELDS})

    @classmethod
    def load(cls, text: str | None) -> Pacer:
        """The pacer a `dump` describes; a fresh one for no record or one not understood."""
        pacer = cls()
        try:
            record = json.loads(text) if text else {}
            values = {name: float(record[name]) for name in _FIELDS} if record else {}
        except (ValueError, TypeError, KeyError):
            log.warning("rate-limit budget record not understood; starting afresh")
            values = {}
        for name, value in values.items():
            setattr(pacer, name, value)
        return pacer


class Budget(Protocol):
    """Where a key's `Pacer` lives; every step is atomic for everyone sharing it."""

    async def blocked_until(self) -> float: ...

    async def block(self, until: float) -> None: ...

    async def observe(self, header: str | None, now: float) -> None: ...

    async def reserve(self, now: float) -> float: ...


class LocalBudget:
    """The budget of this process alone."""

    def __init__(self) -> None:
        self.pacer = Pacer()

    async def blocked_until(self) -> float:
        return self.pacer.blocked_until

    async def block(self, until: float) -> None:
        self.pacer.block(until)

    async def observe(self, header: str | None, now: float) -> None:
        self.pacer.observe(header, now)

    async def reserve(self, now: float) -> float:
        return self.pacer.reserve(now)


def endpoint_group(method: str, path: str) -> str:
    """The rate-limit group of a request, as close-mcp reads Close's page: reads (GET) apart
    from writes (POST, PUT, DELETE), by the path's first segment (`GET lead`, `POST data`).
    Close's own example ("GETs to /api/v1/lead/ and POSTs/PUTs to /api/v1/activity/ may be
    counted as two different API groups") fits it; the real groups are not published."""
    first = path.strip("/").split("/", 1)[0]
    return f"{'GET' if method.upper() == 'GET' else 'write'}:{first}"


def budget_key(api_key: str, group: str) -> str:
    """The store key of one group's budget of a Close key: a digest, so the store never holds
    the key."""
    return f"ratelimit:{hashlib.sha256(api_key.encode()).hexdigest()}:{group}"


class SharedBudget:
    """The budget of every process sharing `store`: one record per API key and endpoint
    group, see above."""

    def __init__(self, store: StateStore, api_key: str, group: str) -> None:
        self._store = store
        self._key = budget_key(api_key, group)
        self._local = Pacer()  # used for a step only while the store fails
        self._failing = False

    def __repr__(self) -> str:
        return f"SharedBudget({self._store!r})"

    async def blocked_until(self) -> float:
        try:
            record = await self._store.get(self._key)
        except Exception as exc:  # pacing must never fail the call itself
            self._failed(exc)
            return self._local.blocked_until
        self._failing = False
        return Pacer.load(record).blocked_until

    async def block(self, until: float) -> None:
        await self._step(lambda pacer: pacer.block(until))

    async def observe(self, header: str | None, now: float) -> None:
        await self._step(lambda pacer: pacer.observe(header, now))

    async def reserve(self, now: float) -> float:
        return await self._step(lambda pacer: pacer.reserve(now))

    async def _step(self, step: Callable[[Pacer], T]) -> T:
        def change(current: str | None) -> tuple[str, T]:
            pacer = Pacer.load(current)
            result = step(pacer)
            return pacer.dump(), result

        try:
            result = await self._store.update(self._key, change, ttl_s=RECORD_TTL_S)
        except Exception as exc:  # pacing must never fail the call itself
            self._failed(exc)
            return step(self._local)
        self._failing = False
        return result

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            log.warning(
                "the shared rate-limit budget is unavailable (%s); pacing locally meanwhile",
                type(exc).__name__,
            )
        self._failing = True
