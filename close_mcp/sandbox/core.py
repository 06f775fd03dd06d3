"""`Sandbox`: one seeded organization served as a Close-compatible API, plus test controls.

Everything time-dependent (job progress, cursor expiry, rate limit, scheduled emails, pause
dates) reads `clock`, so tests drive it with a `FakeClock` instead of sleeping.

The HTTP layer (`build_app`) lives here too, because it reaches into the sandbox's faults,
limiter and request log (apart, the two modules imported each other). For each request:
record it; apply an injected (or random, `fault_rate`) fault due before the work; check the
API key (401); take a rate-limit token (429); route (404/405, and a 308 redirect to the
slashed path when the trailing slash is missing, as Close redirects); catch jobs and emails
up with the clock; run the handler; apply an after-the-work fault; add `slow_seconds`;
answer. The recorded request gets the answer's status (0 when the fault was a dropped
connection or a timeout).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from close_mcp.clock import Clock, FakeClock, SystemClock, utc_datetime
from close_mcp.sandbox import emails
from close_mcp.sandbox.bulk_jobs import JobRunner
from close_mcp.sandbox.crm import Crm
from close_mcp.sandbox.drift import apply_drift, check_drift
from close_mcp.sandbox.errors import ApiError, BadRequest
from close_mcp.sandbox.exports import EXPORT_PATH
from close_mcp.sandbox.faults import (
    API_ROOT,
    Fault,
    FaultKind,
    FaultPlan,
    RateLimiter,
    Verdict,
    endpoint_group,
    rate_limited_body,
)
from close_mcp.sandbox.oauth import SandboxOAuth
from close_mcp.sandbox.routes import TZ_HEADER, Api, Call, tz_offset
from close_mcp.sandbox.seed import build_store
from close_mcp.sandbox.store import from_epoch

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
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
        drift: str | None = None,
    ) -> None:
        if job_speed <= 0:
            raise ValueError("job_speed must be positive")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be positive or None")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        check_drift(drift)
        self.drift = drift  # a changed answer shape (`close_mcp.sandbox.drift`), or None
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.api_key = api_key
        self.fault_rate = fault_rate
        self.slow_seconds = slow_seconds
        self.store = build_store(n_leads, seed, utc_datetime(self.clock))
        self.jobs = JobRunner(self.store, job_speed)
        self.crm = Crm(self.store, job_speed)
        self.jobs.on_delete = lambda lead, now: self.crm.deleted_lead(lead, from_epoch(now))
        self.api = Api(self.store, self.jobs, self.crm.routes(), self.jobs.on_delete)
        self.requests: list[RecordedRequest] = []
        self._faults = FaultPlan()
        self._fault_rng = random.Random(seed + 1)
        self._limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        # Close's OAuth for the seeded user (`close_mcp.sandbox.oauth`).
        self.oauth = SandboxOAuth(self.clock, self.store.me.id, self.store.org.id)
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


def _api_key(request: Request) -> str | None:
    """The key from `Basic base64(key:)` or `Bearer key`; None if absent or malformed."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def _fault_answer(sandbox: Sandbox, fault: Fault) -> Response:
    sandbox._faults.serve(fault)
    if fault.kind in ("reset", "reset_after_commit"):
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
    if fault.kind in ("timeout", "timeout_after_commit"):
        raise httpx.ReadTimeout("The read operation timed out (sandbox fault).")
    if fault.kind == "rate_limit":
        verdict = Verdict(False, 1, 0, fault.seconds if fault.seconds is not None else 2.0)
        return _json(429, rate_limited_body(verdict.reset), verdict.headers())
    status = fault.status or (504 if fault.kind == "after_commit" else 503)
    return _json(status, {"error": f"Sandbox fault: HTTP {status}"})


def build_app(sandbox: Sandbox) -> Starlette:
    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
            bad_json = False
        except ValueError:
            body, bad_json = None, True
        record = sandbox._record(request.method, request.url.path, dict(request.query_params), body)
        try:
            response = await _answer(sandbox, request, body, bad_json, record)
        except BaseException:
            record.status = 0
            raise
        record.status = response.status_code
        return response

    async def export_file(request: Request) -> Response:
        """A finished export's file, gzip-compressed as Close serves it; the link's token is
        its only key (Close's download links are signed URLs, without the API key)."""
        sandbox._record("GET", request.url.path, dict(request.query_params), None)
        try:
            export = sandbox.crm.exports.download(
                request.path_params["id"], request.path_params["token"], sandbox.clock.time()
            )
        except ApiError as exc:
            return _json(exc.status, exc.body)
        media = "application/json" if export.format == "json" else "text/csv"
        headers = {"Content-Encoding": "gzip"}
        return Response(export.content, 200, headers=headers, media_type=media)

    return Starlette(
        routes=[
            Route(EXPORT_PATH + "{id}/{token}/", export_file, methods=["GET"]),
            Route("/oauth2/authorize/", sandbox.oauth.authorize, methods=["GET"]),
            Route("/oauth2/token/", sandbox.oauth.token, methods=["POST"]),
            Route("/{path:path}", endpoint, methods=METHODS),
        ]
    )


async def _answer(
    sandbox: Sandbox, request: Request, body: Any, bad_json: bool, record: RecordedRequest
) -> Response:
    method, path = request.method, request.url.path
    fault = sandbox._faults.take(method, path)
    if fault is not None and fault.kind == "slow":
        sandbox._faults.serve(fault)
        await sandbox.clock.sleep(fault.seconds if fault.seconds is not None else 30.0)
        fault = None
    if fault is not None and not fault.after_commit and fault.kind != "malformed":
        return _fault_answer(sandbox, fault)
    if sandbox.fault_rate and sandbox._fault_rng.random() < sandbox.fault_rate:
        status = sandbox._fault_rng.choice([502, 503])
        return _json(status, {"error": f"Sandbox fault: HTTP {status}"})
    given = _api_key(request)
    if given != sandbox.api_key and not sandbox.oauth.accepts(given):
        return _json(401, {"error": "Unauthorized"})
    headers: dict[str, str] = {}
    if sandbox._limiter is not None:
        bucket = f"{sandbox.api_key} {endpoint_group(method, path)}"
        verdict = sandbox._limiter.check(bucket, sandbox.clock.time())
        headers = verdict.headers()
        if not verdict.allowed:
            return _json(429, rate_limited_body(verdict.reset), headers)
    response = await _route(sandbox, request, method, path, body, bad_json, headers)
    if fault is not None and fault.kind == "malformed":
        sandbox._faults.serve(fault)
        return Response(b'{"data": [{"id": "lea', 200, media_type="application/json")
    if fault is not None:
        return _fault_answer(sandbox, fault)
    if sandbox.slow_seconds:
        await sandbox.clock.sleep(sandbox.slow_seconds)
    return response


async def _route(
    sandbox: Sandbox,
    request: Request,
    method: str,
    path: str,
    body: Any,
    bad_json: bool,
    headers: dict[str, str],
) -> Response:
    if not path.startswith(API_ROOT):
        return _json(404, {"error": f"No such endpoint: {path}"}, headers)
    relative = path[len(API_ROOT) :]
    if relative and not relative.endswith("/"):
        target = request.url.replace(path=path + "/")
        return RedirectResponse(str(target), status_code=308, headers=headers)
    try:
        handler, params = sandbox.api.resolve(method, relative)
        if bad_json:
            raise BadRequest({}, ["Request body is not valid JSON."])
        now = sandbox.clock.time()
        sandbox.jobs.advance_all(now)
        emails.deliver_due(sandbox.store, now)
        tz = tz_offset(request.headers.get(TZ_HEADER))
        base = str(request.base_url)
        call = Call(method, params, dict(request.query_params), body, now, tz, base)
        answer = apply_drift(sandbox.drift, method, relative, handler(call), body)
        return _json(200, answer, headers)
    except ApiError as exc:
        return _json(exc.status, exc.body, headers)
