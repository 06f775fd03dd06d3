"""The HTTP layer: auth, rate limit, injected faults, latency and the request log."""

from __future__ import annotations

import json

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.sandbox import SANDBOX_API_KEY, RecordedRequest, Sandbox
from tests.sandbox.conftest import BASE_URL, LEAD_QUERY, client_for

pytestmark = pytest.mark.anyio


def test_sandbox_key_looks_like_a_close_key() -> None:
    assert SANDBOX_API_KEY.startswith("api_")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic bm9wZTo="},  # nope:
        {"Authorization": "Basic %%%"},
        {"Authorization": "Token " + SANDBOX_API_KEY},
        {"Authorization": "Bearer api_wrong"},
    ],
)
async def test_requests_without_the_key_get_401(sb: Sandbox, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(transport=sb.transport(), base_url=BASE_URL) as http:
        answer = await http.get("me/", headers=headers)
        assert (answer.status_code, answer.json()) == (401, {"error": "Unauthorized"})
        assert (
            await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})
        ).status_code == 401
    assert sb.store.jobs == {}
    assert [r.status for r in sb.requests] == [401, 401]


async def test_bearer_and_custom_keys(clock: FakeClock) -> None:
    sb = Sandbox(n_leads=5, clock=clock, api_key="api_custom")
    async with httpx.AsyncClient(transport=sb.transport(), base_url=BASE_URL) as http:
        bearer = await http.get("me/", headers={"Authorization": "Bearer api_custom"})
        assert bearer.status_code == 200
    async with client_for(sb, auth=("api_custom", "")) as http:
        assert (await http.get("me/")).status_code == 200
    async with client_for(sb) as http:
        assert (await http.get("me/")).status_code == 401


async def test_rate_limit_answers_429_with_headers(clock: FakeClock) -> None:
    sb = Sandbox(n_leads=5, clock=clock, rate_limit=2)
    async with client_for(sb) as http:
        first = await http.get("me/")
        assert first.headers["RateLimit"] == "limit=2, remaining=1, reset=0.50"
        second = await http.get("me/")
        assert second.headers["RateLimit"] == "limit=2, remaining=0, reset=1.00"
        third = await http.get("me/")
        assert third.status_code == 429
        assert third.headers["RateLimit"] == "limit=2, remaining=0, reset=0.50"
        assert third.headers["Retry-After"] == "1"
        assert third.json() == {
            "error": {"rate_reset": 0.5, "message": "API call count exceeded for this period"}
        }
        clock.advance(0.5)
        assert (await http.get("me/")).status_code == 200
        assert (await http.get("me/")).status_code == 429
        clock.advance(10)
        assert (await http.get("me/")).status_code == 200
    assert [r.status for r in sb.requests] == [200, 200, 429, 200, 429, 200]


async def test_no_rate_limit_header_without_a_limit(http: httpx.AsyncClient) -> None:
    assert "RateLimit" not in (await http.get("me/")).headers


async def test_injected_5xx_does_nothing(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.inject_faults("5xx", 2, path_prefix="bulk_action/", method="POST")
    for _ in range(2):
        answer = await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})
        assert (answer.status_code, answer.json()) == (503, {"error": "Sandbox fault: HTTP 503"})
    assert (await http.get("bulk_action/delete/")).status_code == 200
    assert sb.store.jobs == {}
    assert (await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})).status_code == 200
    assert len(sb.store.jobs) == 1


async def test_after_commit_does_the_work_then_fails(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.inject_faults("after_commit", 1, path_prefix="/api/v1/bulk_action/delete/", status=502)
    answer = await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})
    assert (answer.status_code, answer.json()) == (502, {"error": "Sandbox fault: HTTP 502"})
    assert len(sb.store.jobs) == 1
    sb.inject_faults("after_commit", 1)
    assert (await http.get("me/")).status_code == 504


async def test_reset_and_timeout_raise_transport_errors(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    sb.inject_faults("reset", 1, method="POST")
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})
    assert sb.store.jobs == {}
    sb.inject_faults("timeout_after_commit", 1, method="POST")
    with pytest.raises(httpx.ReadTimeout):
        await http.post("bulk_action/delete/", json={"s_query": LEAD_QUERY})
    assert len(sb.store.jobs) == 1
    sb.inject_faults("reset_after_commit", 1)
    with pytest.raises(httpx.RemoteProtocolError):
        await http.put(f"lead/{next(iter(sb.store.leads))}/", json={"name": "Renamed"})
    assert next(iter(sb.store.leads.values())).name == "Renamed"
    sb.inject_faults("timeout", 1)
    with pytest.raises(httpx.ReadTimeout):
        await http.get("me/")
    assert [(r.method, r.status) for r in sb.requests] == [
        ("POST", 0),
        ("POST", 0),
        ("PUT", 0),
        ("GET", 0),
    ]


async def test_malformed_slow_and_rate_limit_faults(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    sb.inject_faults("malformed", 1, path_prefix="data/search/")
    answer = await http.post("data/search/", json={"query": LEAD_QUERY})
    assert answer.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        answer.json()
    start = clock.time()
    sb.inject_faults("slow", 1, seconds=12)
    assert (await http.get("me/")).status_code == 200
    assert clock.time() - start == 12
    sb.inject_faults("rate_limit", 1, seconds=3.2)
    limited = await http.get("me/")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "4")
    assert limited.headers["RateLimit"] == "limit=1, remaining=0, reset=3.20"


async def test_faults_only_hit_matching_requests(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.inject_faults("5xx", 1, path_prefix="lead/", method="PUT")
    assert (await http.get("me/")).status_code == 200
    lead_id = next(iter(sb.store.leads))
    assert (await http.get(f"lead/{lead_id}/")).status_code == 200
    assert (await http.put(f"lead/{lead_id}/", json={})).status_code == 503
    assert (await http.put(f"lead/{lead_id}/", json={})).status_code == 200


async def test_random_faults_follow_the_seed(clock: FakeClock) -> None:
    async def statuses(seed: int) -> list[int]:
        sb = Sandbox(n_leads=5, seed=seed, clock=clock, fault_rate=0.5)
        async with client_for(sb) as http:
            return [(await http.get("me/")).status_code for _ in range(40)]

    first = await statuses(1)
    assert first == await statuses(1)
    assert set(first) == {200, 502, 503}
    assert 8 < first.count(200) < 32


async def test_slow_seconds_delay_every_answer(clock: FakeClock) -> None:
    sb = Sandbox(n_leads=5, clock=clock, slow_seconds=1.5)
    async with client_for(sb) as http:
        await http.get("me/")
        await http.get("user/")
    assert clock.sleeps == [1.5, 1.5]


async def test_request_log_keeps_everything(sb: Sandbox, http: httpx.AsyncClient) -> None:
    await http.get("user/", params={"_limit": 1})
    await http.post("data/search/", json={"query": LEAD_QUERY})
    await http.post("bulk_action/delete/", json={"s_query": {"type": "nope"}})
    lead_id = next(iter(sb.store.leads))
    await http.delete(f"lead/{lead_id}/")
    assert sb.requests == [
        RecordedRequest("GET", "/api/v1/user/", {"_limit": "1"}, None, 200),
        RecordedRequest("POST", "/api/v1/data/search/", {}, {"query": LEAD_QUERY}, 200),
        RecordedRequest(
            "POST", "/api/v1/bulk_action/delete/", {}, {"s_query": {"type": "nope"}}, 400
        ),
        RecordedRequest("DELETE", f"/api/v1/lead/{lead_id}/", {}, None, 200),
    ]
    assert sb.writes() == sb.requests[1:]
    sb.clear_requests()
    assert sb.requests == []


def test_constructor_checks_its_options() -> None:
    with pytest.raises(ValueError, match="job_speed"):
        Sandbox(n_leads=1, job_speed=0)
    with pytest.raises(ValueError, match="rate_limit"):
        Sandbox(n_leads=1, rate_limit=0)
    with pytest.raises(ValueError, match="fault_rate"):
        Sandbox(n_leads=1, fault_rate=2)
    with pytest.raises(TypeError, match="FakeClock"):
        Sandbox(n_leads=1).advance(1)
    with pytest.raises(ValueError, match="count"):
        Sandbox(n_leads=1).inject_faults("5xx", 0)
