"""Misbehaviour on purpose: injected faults and the per-key rate limit, both on the clock.

Fault kinds (`Sandbox.inject_faults`):
- `5xx`: answer `status` (default 503) without doing anything.
- `after_commit`: do the request (create the job, send the email), then answer `status`
  (default 504): the ambiguous POST failure.
- `reset` / `reset_after_commit`: raise `httpx.RemoteProtocolError` from the app, before or
  after doing the request. Through `httpx.ASGITransport` the client sees exactly that
  exception; served by uvicorn, the client gets uvicorn's 500 instead.
- `timeout` / `timeout_after_commit`: raise `httpx.ReadTimeout` the same way.
- `malformed`: do the request, answer 200 with a truncated JSON body.
- `slow`: sleep `seconds` (default 30) on the clock, then answer normally.
- `rate_limit`: answer 429 as the rate limiter would, with `reset` = `seconds` (default 2).

`Sandbox.faults_served` counts, by kind, the injected faults actually served: answered,
raised or slept. A fault set up but never reached, or taken by a request that then got a 401
or a 429 from the limiter first, is not counted; `Sandbox.faults_pending` says how many wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal[
    "5xx",
    "after_commit",
    "reset",
    "reset_after_commit",
    "timeout",
    "timeout_after_commit",
    "malformed",
    "slow",
    "rate_limit",
]
API_ROOT = "/api/v1/"


@dataclass
class Fault:
    kind: FaultKind
    remaining: int
    path_prefix: str | None
    method: str | None
    status: int | None
    seconds: float | None

    @property
    def after_commit(self) -> bool:
        return self.kind in ("after_commit", "reset_after_commit", "timeout_after_commit")

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_prefix is None or path.startswith(self.path_prefix)
        )


@dataclass
class FaultPlan:
    """Faults waiting for the next matching requests, first injected first used, and how many
    of each kind were served."""

    faults: list[Fault] = field(default_factory=list)
    served: dict[FaultKind, int] = field(default_factory=dict)

    def add(
        self,
        kind: FaultKind,
        count: int,
        path_prefix: str | None,
        method: str | None,
        status: int | None,
        seconds: float | None,
    ) -> None:
        if path_prefix is not None and not path_prefix.startswith("/"):
            path_prefix = API_ROOT + path_prefix  # relative to the API root
        self.faults.append(
            Fault(kind, count, path_prefix, method.upper() if method else None, status, seconds)
        )

    def take(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def serve(self, fault: Fault) -> None:
        """Count `fault` as served: the request is being answered (or dropped, or slowed) by it."""
        self.served[fault.kind] = self.served.get(fault.kind, 0) + 1

    @property
    def pending(self) -> int:
        return sum(fault.remaining for fault in self.faults)


@dataclass
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: float

    def headers(self) -> dict[str, str]:
        answer = {
            "RateLimit": f"limit={self.limit}, remaining={self.remaining}, reset={self.reset:.2f}"
        }
        if not self.allowed:
            answer["Retry-After"] = str(max(1, math.ceil(self.reset)))
        return answer


def rate_limited_body(reset: float) -> dict[str, object]:
    return {
        "error": {
            "rate_reset": round(reset, 3),
            "message": "API call count exceeded for this period",
        }
    }


def endpoint_group(method: str, path: str) -> str:
    """The rate-limit group of a request: Close limits "per endpoint group", grouping paths
    and methods; the sandbox groups reads (GET) and writes by the path's first segment under
    /api/v1/ (close-mcp's client reads Close's page the same way)."""
    first = path.removeprefix(API_ROOT).strip("/").split("/", 1)[0]
    return f"{'GET' if method.upper() == 'GET' else 'write'}:{first}"


@dataclass
class RateLimiter:
    """A token bucket per API key and endpoint group (the caller's `key`): `rate` requests a
    second, bursts of up to `rate` (at least 1).

    The `RateLimit` header's `reset` is the time until the bucket is full again; on a 429 it is
    the time until the next request would pass.
    """

    rate: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> tokens, time

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate)

    def check(self, key: str, now: float) -> Verdict:
        tokens, last = self.buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + max(0.0, now - last) * self.rate)
        limit = int(self.capacity)
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            return Verdict(False, limit, 0, (1.0 - tokens) / self.rate)
        tokens -= 1.0
        self.buckets[key] = (tokens, now)
        return Verdict(True, limit, int(tokens), (self.capacity - tokens) / self.rate)
