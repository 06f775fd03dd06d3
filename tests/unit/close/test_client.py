"""The Close client against httpx.MockTransport and a fake clock: wire format and retry rules."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import anyio
import httpx
import pytest

from close_mcp import __version__
from close_mcp.clock import FakeClock
from close_mcp.close.client import CloseClient, normalize_path
from close_mcp.errors import (
    AuthenticationError,
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
from close_mcp.store.sqlite import MEMORY, SQLiteStore
from tests.recorder import BASE, KEY, HeldClock, Recorder, make, ok

pytestmark = pytest.mark.anyio


def no_key_anywhere(error: BaseException) -> None:
    for text in (str(error), repr(error), repr(error.args), repr(vars(error))):
        assert KEY not in text


async def test_get_sends_auth_user_agent_and_trailing_slash() -> None:
    rec = Recorder(ok({"id": "lead_1"}))
    client, _ = make(rec)
    assert await client.get("lead/lead_1", {"_fields": "id,name"}) == {"id": "lead_1"}
    (request,) = rec.requests
    assert request.method == "GET"
    assert str(request.url) == BASE + "lead/lead_1/?_fields=id%2Cname"
    expected = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert request.headers["Authorization"] == expected
    assert request.headers["User-Agent"].startswith(f"close-mcp/{__version__}")


def test_normalize_path() -> None:
    assert normalize_path("/lead/x") == "lead/x/"
    assert normalize_path("lead/x/") == "lead/x/"
    assert normalize_path("lead/") == "lead/"


async def test_post_sends_exact_json_body() -> None:
    rec = Recorder(ok({"id": "bulkedit_1", "status": "created"}))
    client, _ = make(rec)
    body = {"s_query": {"type": "match_all"}, "type": "set_lead_status", "lead_status_id": "stat_1"}
    assert (await client.post("/bulk_action/edit/", body))["id"] == "bulkedit_1"
    assert rec.summary() == [("POST", "/api/v1/bulk_action/edit/", body)]
    assert rec.requests[0].headers["Content-Type"] == "application/json"


async def test_429_then_success_waits_for_ratelimit_reset() -> None:
    rec = Recorder(
        ok({"error": "slow down"}, 429, {"RateLimit": "limit=100, remaining=0, reset=1.25"}),
        ok({"data": []}),
    )
    client, clock = make(rec)
    assert await client.get("status/lead/") == {"data": []}
    assert clock.sleeps == [1.25]
    assert len(rec.requests) == 2


async def test_429_with_retry_after_only() -> None:
    rec = Recorder(ok({}, 429, {"Retry-After": "3"}), ok({"ok": True}))
    client, clock = make(rec)
    assert await client.get("me/") == {"ok": True}
    assert clock.sleeps == [3.0]


async def test_429_with_body_rate_reset_only() -> None:
    rec = Recorder(ok({"error": {"rate_reset": 0.5, "message": "x"}}, 429), ok({"ok": True}))
    client, clock = make(rec)
    await client.get("me/")
    assert clock.sleeps == [0.5]


async def test_429_without_hints_waits_two_seconds_and_wait_is_capped() -> None:
    rec = Recorder(ok({}, 429), ok({}, 429, {"Retry-After": "3600"}), ok({"ok": True}))
    client, clock = make(rec)
    await client.get("me/")
    assert clock.sleeps == [2.0, 60.0]


async def test_429_on_post_is_retried_because_close_did_not_act() -> None:
    rec = Recorder(ok({}, 429, {"Retry-After": "1"}), ok({"id": "bulkdelete_1"}))
    client, _ = make(rec)
    assert await client.post("bulk_action/delete/", {"s_query": {}}) == {"id": "bulkdelete_1"}
    assert [r.method for r in rec.requests] == ["POST", "POST"]


async def test_429_retries_are_bounded_by_count() -> None:
    rec = Recorder(*[ok({}, 429, {"Retry-After": "1"}) for _ in range(41)])
    client, _ = make(rec)
    with pytest.raises(RateLimited) as info:
        await client.get("me/")
    assert info.value.retry_after == 1.0
    assert len(rec.requests) == 41
    assert str(info.value) == (
        "Close's rate limit is still exceeded after waiting; try again in 1 s. (GET me/)"
    )


async def test_429_retries_are_bounded_by_time() -> None:
    rec = Recorder(*[ok({}, 429, {"Retry-After": "50"}) for _ in range(4)])
    client, clock = make(rec)
    with pytest.raises(RateLimited):
        await client.get("me/")
    # 50 + 50 s waited; a third wait would pass two minutes of waiting in all.
    assert clock.sleeps == [50.0, 50.0]
    assert len(rec.requests) == 3


async def test_503_on_get_is_retried_with_backoff() -> None:
    rec = Recorder(ok({}, 503), ok({}, 502), ok({"data": [1]}))
    client, clock = make(rec)
    assert await client.get("lead/") == {"data": [1]}
    assert len(clock.sleeps) == 2
    assert 0.25 <= clock.sleeps[0] <= 0.5
    assert 0.5 <= clock.sleeps[1] <= 1.0


async def test_503_on_get_gives_up_with_server_error() -> None:
    rec = Recorder(*[ok({}, 503) for _ in range(4)])
    client, _ = make(rec)
    with pytest.raises(ServerError) as info:
        await client.get("lead/")
    assert info.value.status == 503
    assert len(rec.requests) == 4


async def test_503_on_post_is_not_retried_and_outcome_unknown() -> None:
    rec = Recorder(ok({"error": "unavailable"}, 503))
    client, clock = make(rec)
    with pytest.raises(OutcomeUnknown) as info:
        await client.post("bulk_action/email/", {"template_id": "tmpl_1"})
    assert len(rec.requests) == 1
    assert clock.sleeps == []
    assert str(info.value) == (
        "Close answered the write with 503, so it is unknown whether it was carried out. "
        "Check before trying again. (POST bulk_action/email/)"
    )


async def test_post_timeout_is_outcome_unknown_and_not_retried() -> None:
    rec = Recorder(httpx.ReadTimeout("timed out"))
    client, _ = make(rec)
    with pytest.raises(OutcomeUnknown):
        await client.post("bulk_action/delete/", {})
    assert len(rec.requests) == 1


async def test_post_connect_error_is_retried_because_nothing_was_sent() -> None:
    rec = Recorder(httpx.ConnectError("refused"), ok({"id": "bulkedit_1"}))
    client, _ = make(rec)
    assert await client.post("bulk_action/edit/", {}) == {"id": "bulkedit_1"}
    assert len(rec.requests) == 2


async def test_search_post_is_retried_as_a_read() -> None:
    rec = Recorder(ok({}, 502), ok({"data": [], "cursor": None, "count": {"total": 7}}))
    client, _ = make(rec)
    assert await client.count({"type": "match_all"}) == 7
    assert rec.summary()[1] == (
        "POST",
        "/api/v1/data/search/",
        {"query": {"type": "match_all"}, "include_counts": True, "results_limit": 0, "_limit": 0},
    )


async def test_put_is_retried_after_timeout() -> None:
    rec = Recorder(httpx.ReadTimeout("slow"), ok({"status": "paused"}))
    client, _ = make(rec)
    assert await client.put("bulk_action/edit/bulkedit_1", {"status": "paused"}) == {
        "status": "paused"
    }
    assert rec.summary() == [
        ("PUT", "/api/v1/bulk_action/edit/bulkedit_1/", {"status": "paused"}),
        ("PUT", "/api/v1/bulk_action/edit/bulkedit_1/", {"status": "paused"}),
    ]


async def test_get_timeout_gives_transport_error() -> None:
    rec = Recorder(*[httpx.ReadTimeout("slow") for _ in range(4)])
    client, _ = make(rec)
    with pytest.raises(TransportError) as info:
        await client.get("me/")
    assert str(info.value) == (
        "Could not reach Close: the request timed out (ReadTimeout). "
        "Check the network and CLOSE_API_BASE_URL. (GET me/)"
    )


async def test_400_field_errors_are_mapped_by_field() -> None:
    body = {"errors": [], "field-errors": {"lead_status_id": "Object does not exist."}}
    rec = Recorder(ok(body, 400))
    client, _ = make(rec)
    with pytest.raises(InvalidRequest) as info:
        await client.post("bulk_action/edit/", {"lead_status_id": "stat_x"})
    error = info.value
    assert error.field_errors == {"lead_status_id": "Object does not exist."}
    assert error.status == 400
    assert error.body == body
    assert str(error) == (
        "Close rejected the request: lead_status_id: Object does not exist. "
        "(POST bulk_action/edit/)"
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (
            401,
            {"error": "Unauthorized"},
            AuthenticationError,
            "Close did not accept the API key (401). Check CLOSE_API_KEY: it should start with "
            "'api_' and belong to an active user.",
        ),
        (
            403,
            {"error": "Forbidden"},
            PermissionDenied,
            "Close refused (403): Forbidden. The key's user may lack the role or the plan may "
            "not include this feature.",
        ),
        (404, {"error": "Lead not found"}, NotFound, "Not found in Close: Lead not found"),
    ],
)
async def test_error_statuses_are_mapped(
    status: int, body: Any, kind: type[CloseError], message: str
) -> None:
    rec = Recorder(ok(body, status))
    client, _ = make(rec)
    with pytest.raises(kind) as info:
        await client.get("lead/lead_x/")
    assert str(info.value) == f"{message} (GET lead/lead_x/)"
    assert len(rec.requests) == 1
    no_key_anywhere(info.value)


async def test_malformed_json_on_get_is_retried_then_reported() -> None:
    bad = httpx.Response(200, content=b"<html>oops</html>")
    rec = Recorder(bad, bad, bad, bad)
    client, _ = make(rec)
    with pytest.raises(MalformedResponse) as info:
        await client.get("me/")
    assert str(info.value) == "Close answered 200 with a body that is not JSON. (GET me/)"


async def test_malformed_json_on_write_is_outcome_unknown() -> None:
    rec = Recorder(httpx.Response(200, content=b"{trunc"))
    client, _ = make(rec)
    with pytest.raises(OutcomeUnknown):
        await client.post("bulk_action/delete/", {})
    assert len(rec.requests) == 1


async def test_missing_data_list_is_malformed() -> None:
    rec = Recorder(ok({"nope": 1}))
    client, _ = make(rec)
    with pytest.raises(MalformedResponse):
        await client.list_all("status/lead/")


async def test_list_all_follows_has_more_with_skip_and_limit() -> None:
    rec = Recorder(
        ok({"data": [{"id": 1}, {"id": 2}], "has_more": True}),
        ok({"data": [{"id": 3}], "has_more": False}),
    )
    client, _ = make(rec)
    assert await client.list_all("user/", page_size=2) == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert [str(r.url) for r in rec.requests] == [
        BASE + "user/?_skip=0&_limit=2",
        BASE + "user/?_skip=2&_limit=2",
    ]


async def test_search_iter_follows_cursor() -> None:
    rec = Recorder(
        ok({"data": [{"id": "lead_1"}], "cursor": "c1"}),
        ok({"data": [{"id": "lead_2"}], "cursor": None}),
    )
    client, _ = make(rec)
    query = {"type": "object_type", "object_type": "lead"}
    got = [lead async for lead in client.search_iter(query, fields=["id"], page_size=1)]
    assert got == [{"id": "lead_1"}, {"id": "lead_2"}]
    assert [body for _, _, body in rec.summary()] == [
        {"query": query, "_limit": 1, "_fields": {"lead": ["id"]}},
        {"query": query, "_limit": 1, "_fields": {"lead": ["id"]}, "cursor": "c1"},
    ]


async def test_key_never_in_repr_or_errors() -> None:
    rec = Recorder(ok({"error": f"bad {KEY[:4]}"}, 401))
    client, _ = make(rec)
    assert KEY not in repr(client)
    with pytest.raises(AuthenticationError) as info:
        await client.get("me/")
    no_key_anywhere(info.value)


def _budget_spent_then_whole() -> Recorder:
    """Five answers: the budget spent, whole again (4 requests) in 2 s, so one request every
    0.5 s; then plenty left again, so no more waiting."""
    return Recorder(
        ok({"n": 1}, headers={"RateLimit": "limit=4, remaining=0, reset=2"}),
        ok({"n": 2}),
        ok({"n": 3}),
        ok({"n": 4}, headers={"RateLimit": "limit=4, remaining=4, reset=0"}),
        ok({"n": 5}),
    )


async def test_announced_budget_paces_the_next_requests() -> None:
    rec = _budget_spent_then_whole()
    client, clock = make(rec)
    assert [(await client.get("me/"))["n"] for _ in range(5)] == [1, 2, 3, 4, 5]
    # Waits before the 2nd, 3rd and 4th requests, none once Close says the budget is whole.
    assert clock.sleeps == [0.5, 0.5, 0.5]


async def test_429_wait_is_shared_by_the_calls_that_start_during_it() -> None:
    """Close limits per key and endpoint group: once one call met a 429 with `reset=2`, calls
    to the same group made during those 2 s wait them out too instead of each meeting its own
    429 first."""
    clock = HeldClock()
    start = clock.time()
    seen: list[tuple[float, int, str]] = []  # (seconds since start, status, path)

    def close(request: httpx.Request) -> httpx.Response:
        now = clock.time() - start
        status = 429 if now < 2.0 else 200
        seen.append((now, status, request.url.path))
        if status == 429:
            return ok({}, 429, {"RateLimit": f"limit=5, remaining=0, reset={2.0 - now:g}"})
        return ok({"path": request.url.path})

    client = CloseClient(KEY, BASE, transport=httpx.MockTransport(close), clock=clock)
    got: dict[str, Any] = {}

    async def get(name: str) -> None:
        got[name] = await client.get(f"lead/{name}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(get, "first")
        await anyio.wait_all_tasks_blocked()
        assert seen == [(0.0, 429, "/api/v1/lead/first/")]  # and it waits out the reset
        for name in ("b", "c", "d", "e"):
            tg.start_soon(get, name)
        await anyio.wait_all_tasks_blocked()
        # the four calls made during the wait are waiting too: none reached Close
        assert seen == [(0.0, 429, "/api/v1/lead/first/")]
        assert clock.sleeps == [2.0] * 5
        clock.advance(2.0)
    assert sorted(seen) == [
        (0.0, 429, "/api/v1/lead/first/"),
        (2.0, 200, "/api/v1/lead/b/"),
        (2.0, 200, "/api/v1/lead/c/"),
        (2.0, 200, "/api/v1/lead/d/"),
        (2.0, 200, "/api/v1/lead/e/"),
        (2.0, 200, "/api/v1/lead/first/"),
    ]
    assert got == {
        name: {"path": f"/api/v1/lead/{name}/"} for name in ("first", "b", "c", "d", "e")
    }
    assert clock.sleeps == [2.0] * 5


class Bucket:
    """Close's limit for one key, on the test's clock: `capacity` requests at once, refilled at
    `rate` a second; every answer says so in a `RateLimit` header, a 429 when it is empty."""

    def __init__(self, clock: FakeClock, capacity: float = 4.0, rate: float = 2.0) -> None:
        self.clock, self.capacity, self.rate = clock, capacity, rate
        self.tokens, self.at = capacity, clock.time()
        self.statuses: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.clock.time()
        self.tokens, self.at = min(self.capacity, self.tokens + (now - self.at) * self.rate), now
        if self.tokens < 1:
            reset = (1 - self.tokens) / self.rate
            self.statuses.append(429)
            return ok({}, 429, {"RateLimit": f"limit=4, remaining=0, reset={reset:g}"})
        self.tokens -= 1
        reset = (self.capacity - self.tokens) / self.rate
        self.statuses.append(200)
        header = f"limit=4, remaining={int(self.tokens)}, reset={reset:g}"
        return ok({"path": request.url.path}, headers={"RateLimit": header})


async def _together(clock: HeldClock, *calls: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Run the calls at once; time moves only when every one waits: to the next deadline."""
    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(call)
        while True:
            await anyio.wait_all_tasks_blocked()
            if not clock.parked:
                return
            clock.advance(min(deadline for deadline, _ in clock.parked) - clock.time())


async def _two_replicas_on_one_key(same_store: bool) -> tuple[Bucket, HeldClock]:
    """Two clients on one key (as two replicas): one call each, then three on each at once."""
    clock = HeldClock()
    close = Bucket(clock)
    transport = httpx.MockTransport(close)
    stores = [SQLiteStore(MEMORY, clock=clock)]
    stores.append(stores[0] if same_store else SQLiteStore(MEMORY, clock=clock))
    a, b = (CloseClient(KEY, BASE, transport=transport, clock=clock, store=s) for s in stores)
    await _together(clock, partial(a.get, "lead/a"))  # one endpoint group throughout
    await _together(clock, partial(b.get, "lead/b"))
    await _together(clock, *(partial(c.get, f"lead/{i}") for c in (a, b) for i in range(3)))
    for store in dict.fromkeys(stores):
        await store.aclose()
    return close, clock


async def test_clients_sharing_a_store_pace_one_key_as_one() -> None:
    """Replicas on one key share its budget through the store: after the two first calls, 2
    of Close's 4 shares are left, refilled at 2/s; six calls at once (three on each client)
    are spread over 2 s, every one is answered the first time, no 429."""
    close, clock = await _two_replicas_on_one_key(same_store=True)
    assert close.statuses == [200] * 8
    assert sorted(clock.sleeps) == [0.5, 1.0, 1.5, 2.0]


async def test_clients_with_separate_stores_meet_429s() -> None:
    """The same calls with a store each: each client believes it has the budget to itself."""
    close, _ = await _two_replicas_on_one_key(same_store=False)
    assert close.statuses == [200, 200, 200, 200, 429, 200, 429, 429, 200, 200, 200]


async def test_announced_budget_paces_the_same_through_a_store() -> None:
    """One process pacing through the store waits exactly as it does without one."""
    rec = _budget_spent_then_whole()
    clock = FakeClock()
    store = SQLiteStore(MEMORY, clock=clock)
    client = CloseClient(KEY, BASE, transport=httpx.MockTransport(rec), clock=clock, store=store)
    assert [(await client.get("me/"))["n"] for _ in range(5)] == [1, 2, 3, 4, 5]
    assert clock.sleeps == [0.5, 0.5, 0.5]
    await store.aclose()


async def test_429_wait_is_shared_through_the_store() -> None:
    """A 429 met by one replica holds the calls the other makes during its wait."""
    clock = HeldClock()
    start = clock.time()
    seen: list[tuple[float, int]] = []

    def close(request: httpx.Request) -> httpx.Response:
        now = clock.time() - start
        seen.append((now, 429 if now < 2.0 else 200))
        if now < 2.0:
            return ok({}, 429, {"RateLimit": f"limit=5, remaining=0, reset={2.0 - now:g}"})
        return ok({})

    store = SQLiteStore(MEMORY, clock=clock)
    a, b = (
        CloseClient(KEY, BASE, transport=httpx.MockTransport(close), clock=clock, store=store)
        for _ in range(2)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.get, "lead/first")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(b.get, "lead/second")
        await anyio.wait_all_tasks_blocked()
        assert seen == [(0.0, 429)]  # the second call waits without asking Close
        clock.advance(2.0)
    assert seen == [(0.0, 429), (2.0, 200), (2.0, 200)]
    assert clock.sleeps == [2.0, 2.0]
    await store.aclose()


class BrokenStore(SQLiteStore):
    async def get(self, key: str) -> str | None:
        raise ConnectionError("store down")

    async def update(self, key: str, change: Any, *, ttl_s: float | None = None) -> Any:
        raise ConnectionError("store down")


async def test_a_failing_store_leaves_pacing_local_and_calls_working() -> None:
    rec = Recorder(
        ok({"n": 1}, headers={"RateLimit": "limit=4, remaining=0, reset=2"}),
        ok({"n": 2}),
        ok({"n": 3}),
    )
    clock = FakeClock()
    store = BrokenStore(MEMORY)
    client = CloseClient(KEY, BASE, transport=httpx.MockTransport(rec), clock=clock, store=store)
    assert [(await client.get("me/"))["n"] for _ in range(3)] == [1, 2, 3]
    assert clock.sleeps == [0.5, 0.5]
    await store.aclose()


async def test_shared_budget_keeps_no_api_key_in_the_store() -> None:
    store = SQLiteStore(MEMORY)
    client = CloseClient(KEY, BASE, transport=httpx.MockTransport(Bucket(FakeClock())), store=store)
    await client.get("me/")
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    record = await store.get(f"ratelimit:{digest}:GET:me")
    assert record is not None
    assert json.loads(record)["capacity"] == 4
    rows = store._db.execute("SELECT key || value FROM kv").fetchall()
    assert len(rows) == 1
    assert KEY not in rows[0][0]
    await store.aclose()
