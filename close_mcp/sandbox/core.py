"""`Sandbox`: one seeded organization served as a Close-compatible API, plus test controls.

Everything time-dependent (job progress, cursor expiry, rate limit, scheduled emails, pause
dates) reads `clock`, so tests drive it with a `FakeClock` instead of sleeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from close_mcp.clock import Clock, FakeClock, SystemClock, utc_datetime
from close_mcp.sandbox.app import build_app
from close_mcp.sandbox.bulk_jobs import JobRunner
from close_mcp.sandbox.faults import FaultKind, FaultPlan, RateLimiter
from close_mcp.sandbox.routes import Api
from close_mcp.sandbox.seed import build_store

SANDBOX_API_KEY = "api_sandbox_0000000000000000000000"
WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH")


@dataclass
class RecordedRequest:
    """One request as received. `status` is the answer's (0: connection dropped or timed out)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any | None
    status: int = 0


class Sandbox:
    """A seeded Close organization behind an ASGI app; see the package docstring."""

    def __init__(
        self,
        n_leads: int = 1000,
        seed: int = 7,
        api_key: str = SANDBOX_API_KEY,
        clock: Clock | None = None,
        rate_limit: float | None = None,
        fault_rate: float = 0.0,
        slow_seconds: float = 0.0,
        job_speed: float = 200.0,
    ) -> None:
        if job_speed <= 0:
            raise ValueError("job_speed must be positive")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be positive or None")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.api_key = api_key
        self.fault_rate = fault_rate
        self.slow_seconds = slow_seconds
        self.store = build_store(n_leads, seed, utc_datetime(self.clock))
        self.jobs = JobRunner(self.store, job_speed)
        self.api = Api(self.store, self.jobs)
        self.requests: list[RecordedRequest] = []
        self._faults = FaultPlan()
        self._fault_rng = random.Random(seed + 1)
        self._limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        self.app: Starlette = build_app(self)

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    def _record(
        self, method: str, path: str, query: dict[str, str], body: Any | None
    ) -> RecordedRequest:
        record = RecordedRequest(method, path, query, body)
        self.requests.append(record)
        return record

    def clear_requests(self) -> None:
        self.requests.clear()

    def writes(self) -> list[RecordedRequest]:
        """The recorded requests that could change something (POST, PUT, DELETE, PATCH)."""
        return [r for r in self.requests if r.method in WRITE_METHODS]

    def inject_faults(
        self,
        kind: FaultKind,
        count: int = 1,
        path_prefix: str | None = None,
        method: str | None = None,
        *,
        status: int | None = None,
        seconds: float | None = None,
    ) -> None:
        """The next `count` requests matching `path_prefix` (absolute, or relative to /api/v1/)
        and `method` get fault `kind` (see `close_mcp.sandbox.faults`)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self._faults.add(kind, count, path_prefix, method, status, seconds)

    @property
    def faults_served(self) -> dict[FaultKind, int]:
        """Injected faults actually served so far (answered, raised or slept), by kind."""
        return dict(self._faults.served)

    @property
    def faults_pending(self) -> int:
        """Injected faults not yet taken by a request."""
        return self._faults.pending

    def advance(self, seconds: float) -> None:
        """Move the FakeClock forward; jobs catch up on the next request."""
        if not isinstance(self.clock, FakeClock):
            raise TypeError("Sandbox.advance needs a FakeClock")
        self.clock.advance(seconds)

    def fail_job(self, job_id: str, reason: str = "Failed by the test.") -> None:
        """Put a bulk job in `error`, as Close does when one breaks."""
        self.jobs.fail(job_id, self.clock.time(), reason)
