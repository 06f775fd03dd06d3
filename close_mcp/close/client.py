"""The small async Close client: one place that knows Close's wire rules.

It owns authentication, URL joining (every Close path ends with a slash), timeouts, the
`User-Agent`, retries and the mapping of error answers to `close_mcp.errors`. The retry
rules follow Close's own client and the fact that Close has no idempotency keys:

- 429: wait for `RateLimit: reset=` (else `Retry-After`, else the body's `rate_reset`,
  else 2 s; capped), then retry. Close did not act on a 429, so this is safe for writes.
  The wait is shared: while one call waits out a 429, new calls to the same endpoint group
  wait too (Close limits per group; other groups go on).
- Pacing: each answer's `RateLimit` header updates an estimate of its endpoint group's
  budget, and each request waits for its share of it (`close_mcp.close.budget`). Given the
  state store, the estimates and the 429 waits are shared by every process using it
  (replicas on one key).
- 5xx and transport errors: retried with exponential backoff and jitter, but only for
  reads and `PUT` (which sets fields to values, so repeating it is harmless).
- `POST` that creates something is never resent after an ambiguous failure (a 5xx, a
  timeout, a reset, an unreadable success): it raises `OutcomeUnknown` and the caller
  must look before trying again. A connection that was never opened is not ambiguous.
- Every request carries `X-TZ-Offset` (`close_mcp.close.timezone`), the offset of the
  configured zone at that moment, so Close reads a filter's local dates in that zone.

Transport and clock are injectable, so tests run against `httpx.MockTransport` or the
sandbox's ASGI app without a network and without sleeping.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from datetime import tzinfo
from typing import Any, Final

import httpx

from close_mcp import __version__
from close_mcp.clock import Clock, SystemClock
from close_mcp.close.budget import (
    RATE_RESET,
    Budget,
    LocalBudget,
    SharedBudget,
    endpoint_group,
)
from close_mcp.close.timezone import TZ_OFFSET_HEADER, tz_offset_header
from close_mcp.errors import (
    AuthenticationError,
    CloseAPIError,
    CloseError,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
)
from close_mcp.store import StateStore

log = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://api.close.com/api/v1/"
USER_AGENT: Final = f"close-mcp/{__version__} (+https://pypi.org/project/close-mcp/)"
DEFAULT_PAGE_SIZE: Final = 100
SEARCH_PAGE_SIZE: Final = 200
# Close's largest page: a `_limit` above it is a 400, not a smaller page, so none is asked for.
MAX_PAGE_SIZE: Final = 200
JSON = Any


class RetryPolicy:
    """How often and how long to retry; the defaults suit interactive tool calls."""

    def __init__(
        self,
        *,
        max_rate_limit_retries: int = 40,
        max_rate_limit_total: float = 120.0,
        max_error_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_rate_limit_wait: float = 60.0,
        default_rate_limit_wait: float = 2.0,
    ) -> None:
        self.max_rate_limit_retries = max_rate_limit_retries
        # Under heavy concurrency one call may meet many 429s; what bounds it is the time.
        self.max_rate_limit_total = max_rate_limit_total
        self.max_error_retries = max_error_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_rate_limit_wait = max_rate_limit_wait
        self.default_rate_limit_wait = default_rate_limit_wait


def normalize_path(path: str) -> str:
    """`lead/x`, `/lead/x` and `lead/x/` all become `lead/x/` (Close redirects without it)."""
    base, sep, query = path.partition("?")
    base = base.strip("/") + "/"
    return base + sep + query


def rate_limit_wait(response: httpx.Response, body: JSON, policy: RetryPolicy) -> float:
    """Seconds to wait after a 429, from the most precise source Close gave."""
    wait: float | None = None
    header = response.headers.get("RateLimit")
    if header and (match := RATE_RESET.search(header)):
        wait = float(match.group(1))
    if wait is None and (retry_after := response.headers.get("Retry-After")):
        try:
            wait = float(retry_after)
        except ValueError:
            wait = None
    if wait is None and isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("rate_reset"), int | float):
            wait = float(error["rate_reset"])
    if wait is None:
        wait = policy.default_rate_limit_wait
    return min(max(wait, 0.0), policy.max_rate_limit_wait)


def _parse_json(response: httpx.Response) -> JSON:
    if not response.content:
        return None
    return json.loads(response.content)


def _error_message(body: JSON) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str) and error:
            return error
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e) for e in errors)
    return ""


# Errors a message names of an answer 400 (Close lists every field of a body it refuses).
ERRORS_SHOWN = 10


def error_from_response(
    response: httpx.Response, body: JSON, method: str, path: str
) -> CloseAPIError:
    """Turn an error answer into the typed exception a caller can act on."""
    status = response.status_code
    detail = _error_message(body)
    where: dict[str, Any] = {"status": status, "body": body, "method": method, "path": path}
    if status == 400:
        field_errors: dict[str, str] = {}
        errors: list[str] = []
        if isinstance(body, dict):
            raw = body.get("field-errors")
            if isinstance(raw, dict):
                field_errors = {str(k): str(v) for k, v in raw.items()}
            raw_errors = body.get("errors")
            if isinstance(raw_errors, list):
                errors = [str(e) for e in raw_errors]
        parts = [f"{field}: {msg}" for field, msg in field_errors.items()] + errors
        if len(parts) > ERRORS_SHOWN:  # all of them stay in `field_errors` and `errors`
            parts = [*parts[:ERRORS_SHOWN], f"and {len(parts) - ERRORS_SHOWN} more"]
        message = "Close rejected the request: " + ("; ".join(parts) or detail or "invalid request")
        return InvalidRequest(message, field_errors=field_errors, errors=errors, **where)
    if status == 401:
        return AuthenticationError(
            "Close did not accept the API key (401). Check CLOSE_API_KEY: it should start "
            "with 'api_' and belong to an active user.",
            **where,
        )
    if status in (402, 403):
        reason = "the organization's plan does not include this" if status == 402 else "not allowed"
        return PermissionDenied(
            f"Close refused ({status}): {detail or reason}. The key's user may lack the role "
            "or the plan may not include this feature.",
            **where,
        )
    if status == 404:
        return NotFound(f"Not found in Close: {detail or 'no such object'}", **where)
    if status >= 500:
        return ServerError(
            f"Close had an internal error ({status}); try again shortly.",
            **where,
        )
    return CloseAPIError(f"Close answered {status}: {detail or 'unexpected error'}", **where)


def caller_digest(identity: str) -> str:
    """Who calls Close, as an opaque digest: the one place a caller's identity is derived
    (confirmation tokens are bound to it). `identity` is an API key, or for a person signed
    in with Close (whose access token is refreshed) `close_identity(user, organization)`."""
    return hashlib.sha256(b"close-mcp caller\x00" + identity.encode()).hexdigest()


def close_identity(user_id: str, organization_id: str) -> str:
    """The identity of a Close user in one organization, whatever credential they act with."""
    return f"close-user:{user_id}@{organization_id}"


def count_body(query: JSON) -> dict[str, Any]:
    """Close's count-only search: `results_limit: 0` with `include_counts`, no leads back."""
    return {"query": query, "include_counts": True, "results_limit": 0, "_limit": 0}


class _Bearer(httpx.Auth):
    """`Authorization: Bearer <OAuth access token>`; repr shows no token."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def __repr__(self) -> str:
        return "_Bearer()"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class CloseClient:
    """An async client for Close's REST API. Create one per API key; close it when done."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        store: StateStore | None = None,
        timezone: tzinfo | None = None,
        caller: str | None = None,
        bearer: bool = False,
    ) -> None:
        """`caller`: the identity digest tokens are bound to (default: `caller_digest` of the
        key; a signed-in person's is `caller_digest(close_identity(...))`). `store`: share the
        key's rate-limit budget with every process using that store (see
        `close_mcp.close.budget`); None keeps it in this client. `timezone`: the zone Close
        reads local dates in (`X-TZ-Offset`); None is this machine's zone. `bearer`:
        `api_key` is an OAuth access token, sent as `Authorization: Bearer`."""
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.caller = caller or caller_digest(api_key)
        self._clock: Clock = clock or SystemClock()
        self._retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._timezone = timezone
        self._in_flight = 0  # requests under way, so an evicted client closes only when idle
        self.last_rate_limit: str | None = None  # the latest answer's header (close-mcp check)
        # One budget per endpoint group, as Close enforces its limits (close.budget).
        self._budgets: dict[str, Budget] = {}
        self._new_budget: Callable[[str], Budget] = (
            (lambda group: LocalBudget())
            if store is None
            else (lambda group: SharedBudget(store, api_key, group))
        )
        self._http = httpx.AsyncClient(
            base_url=base_url,
            auth=_Bearer(api_key) if bearer else httpx.BasicAuth(api_key, ""),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"CloseClient(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CloseClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- verbs -------------------------------------------------------------------------

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> JSON:
        return await self.request("GET", path, params=params, retry_errors=True)

    async def post(self, path: str, body: JSON, *, idempotent: bool = False) -> JSON:
        """POST; `idempotent=True` for reads that happen to use POST (`/data/search/`)."""
        return await self.request("POST", path, json_body=body, retry_errors=idempotent)

    async def put(self, path: str, body: JSON) -> JSON:
        return await self.request("PUT", path, json_body=body, retry_errors=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: JSON = None,
        retry_errors: bool,
    ) -> JSON:
        self._in_flight += 1
        try:
            return await self._request(method, path, params, json_body, retry_errors=retry_errors)
        finally:
            self._in_flight -= 1

    def tz_offset(self) -> str:
        """The `X-TZ-Offset` a request sent now carries: the zone's offset at this moment."""
        return tz_offset_header(self._timezone, self._clock.time())

    @property
    def idle(self) -> bool:
        """No request of this client is under way: it can be closed without breaking one."""
        return self._in_flight == 0

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: JSON,
        *,
        retry_errors: bool,
    ) -> JSON:
        path = normalize_path(path)
        budget = self._budget(method, path)
        rate_limit_retries = 0
        error_retries = 0
        first_limited: float | None = None
        while True:
            await self._wait_for_rate_limit(budget)
            try:
                response = await self._http.request(
                    method,
                    path,
                    params={k: _param(v) for k, v in (params or {}).items()},
                    json=json_body,
                    headers={TZ_OFFSET_HEADER: self.tz_offset()},
                )
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if (retry_errors or never_sent) and error_retries < self._retry.max_error_retries:
                    error_retries += 1
                    await self._backoff(error_retries, method, path, type(exc).__name__)
                    continue
                # Only a write that may have reached Close is ambiguous; a read is just failed.
                ambiguous = not never_sent and not retry_errors
                raise self._transport_failure(exc, method, path, ambiguous=ambiguous) from None

            status = response.status_code
            try:
                body = _parse_json(response)
                unreadable = False
            except ValueError:
                body, unreadable = None, True
            log.debug("%s /%s -> %s", method, path, status)
            await self._note_budget(budget, response)
            if response.is_success and not unreadable:
                return body

            if status == 429:
                wait = rate_limit_wait(response, body, self._retry)
                now = self._clock.time()
                first_limited = now if first_limited is None else first_limited
                if (
                    rate_limit_retries < self._retry.max_rate_limit_retries
                    and now + wait - first_limited <= self._retry.max_rate_limit_total
                ):
                    rate_limit_retries += 1
                    await budget.block(now + wait)  # held by every call of this group
                    log.info("rate limited on %s /%s; waiting %.2fs", method, path, wait)
                    continue
                raise RateLimited(
                    "Close's rate limit is still exceeded after waiting; try again in "
                    f"{wait:.0f} s.",
                    retry_after=wait,
                    status=status,
                    body=body,
                    method=method,
                    path=path,
                )

            if response.is_success or status >= 500:  # ambiguous: did Close act on it?
                if retry_errors and error_retries < self._retry.max_error_retries:
                    error_retries += 1
                    await self._backoff(error_retries, method, path, f"{status} answer")
                    continue
                if not retry_errors:
                    what = "an unreadable body" if response.is_success else str(status)
                    raise OutcomeUnknown(
                        f"Close answered the write with {what}, so it is unknown whether it "
                        "was carried out. Check before trying again.",
                        method=method,
                        path=path,
                    )
                if response.is_success:
                    raise MalformedResponse(
                        f"Close answered {status} with a body that is not JSON.",
                        method=method,
                        path=path,
                    )
            raise error_from_response(response, body, method, path)

    # -- shapes ------------------------------------------------------------------------

    async def list_all(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_items: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every item of a `_skip`/`_limit` list, following `has_more` (pages of at most
        MAX_PAGE_SIZE, whatever `page_size` asks)."""
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        items: list[dict[str, Any]] = []
        skip = 0
        while True:
            page = await self.get(path, {**(params or {}), "_skip": skip, "_limit": page_size})
            data = _page_data(page, "GET", path)
            items.extend(data)
            if max_items is not None and len(items) >= max_items:
                return items[:max_items]
            if not page.get("has_more") or not data:
                return items
            skip += len(data)

    async def search_page(
        self,
        query: JSON,
        *,
        fields: list[str] | None = None,
        limit: int = SEARCH_PAGE_SIZE,
        cursor: str | None = None,
        results_limit: int | None = None,
        sort: list[JSON] | None = None,
        include_counts: bool = False,
    ) -> dict[str, Any]:
        """One page of `/data/search/` over leads (at most MAX_PAGE_SIZE of them)."""
        body: dict[str, Any] = {"query": query, "_limit": min(limit, MAX_PAGE_SIZE)}
        if fields is not None:
            body["_fields"] = {"lead": fields}
        if cursor:
            body["cursor"] = cursor
        if results_limit is not None:
            body["results_limit"] = results_limit
        if sort:
            body["sort"] = sort
        if include_counts:
            body["include_counts"] = True
        page = await self.post("data/search/", body, idempotent=True)
        _page_data(page, "POST", "data/search/")
        assert isinstance(page, dict)
        return page

    async def count(self, query: JSON) -> int:
        """How many leads match, without fetching any."""
        page = await self.post("data/search/", count_body(query), idempotent=True)
        try:
            return int(page["count"]["total"])
        except (KeyError, TypeError, ValueError):
            raise MalformedResponse(
                "Close's search answer had no count.", method="POST", path="data/search/"
            ) from None

    async def search_iter(
        self,
        query: JSON,
        *,
        fields: list[str] | None = None,
        results_limit: int | None = None,
        sort: list[JSON] | None = None,
        page_size: int = SEARCH_PAGE_SIZE,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching lead, following cursors (Close caps one walk at 10,000)."""
        cursor: str | None = None
        while True:
            page = await self.search_page(
                query,
                fields=fields,
                limit=page_size,
                cursor=cursor,
                results_limit=results_limit,
                sort=sort,
            )
            for item in page["data"]:
                yield item
            cursor = page.get("cursor")
            if not cursor or not page["data"]:
                return

    # -- internals ---------------------------------------------------------------------

    def _budget(self, method: str, path: str) -> Budget:
        """The budget of the request's endpoint group (made on first use)."""
        group = endpoint_group(method, path)
        if group not in self._budgets:
            self._budgets[group] = self._new_budget(group)
        return self._budgets[group]

    async def _note_budget(self, budget: Budget, response: httpx.Response) -> None:
        header = response.headers.get("RateLimit")
        self.last_rate_limit = header
        if header and response.status_code != 429:
            await budget.observe(header, self._clock.time())

    async def _wait_for_rate_limit(self, budget: Budget) -> None:
        """Wait out a 429, then for this request's share of the budget Close announced."""
        blocked = await budget.blocked_until() - self._clock.time()
        if blocked > 0:
            await self._clock.sleep(blocked)
        share = await budget.reserve(self._clock.time())
        if share > 0:
            await self._clock.sleep(min(share, self._retry.max_rate_limit_wait))

    async def _backoff(self, attempt: int, method: str, path: str, reason: str) -> None:
        ceiling = min(self._retry.backoff_cap, self._retry.backoff_base * 2 ** (attempt - 1))
        delay = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        log.info("retrying %s /%s after %s in %.2fs", method, path, reason, delay)
        await self._clock.sleep(delay)

    def _transport_failure(
        self, exc: httpx.TransportError, method: str, path: str, *, ambiguous: bool
    ) -> CloseError:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
        if ambiguous:
            return OutcomeUnknown(
                f"The request to Close {kind} before an answer came, so it is unknown whether "
                "it was carried out. Check before trying again.",
                method=method,
                path=path,
            )
        return TransportError(
            f"Could not reach Close: the request {kind} ({type(exc).__name__}). "
            "Check the network and CLOSE_API_BASE_URL.",
            method=method,
            path=path,
        )


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _page_data(page: JSON, method: str, path: str) -> list[dict[str, Any]]:
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise MalformedResponse("Close's answer had no 'data' list.", method=method, path=path)
    data: list[dict[str, Any]] = page["data"]
    return data
