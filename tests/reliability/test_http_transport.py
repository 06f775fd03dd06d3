"""The Streamable HTTP transport, in process: loopback by default, Origin and Host checked,
bearer token enforced when set (health stays open), request bodies capped, sessions for
legacy-era clients while new-era requests stay stateless (issue 16), a per-request
`Close-API-Key` used for that request without appearing in any answer or log line, and the
server's own Close key lent only to callers with the bearer token."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import httpx
import pytest
from starlette.applications import Starlette

from close_mcp.cli.main import build_parser
from close_mcp.clock import FakeClock
from close_mcp.config import load_settings
from close_mcp.sandbox import Sandbox
from close_mcp.server.app import build_server
from close_mcp.server.http import MAX_BODY_BYTES, build_http_app
from close_mcp.server.runtime import Runtime

pytestmark = pytest.mark.anyio

TOKEN: Final = "http-token-" + "7" * 20
BASE: Final = "http://127.0.0.1:8000"
ACCEPT: Final = {"Accept": "application/json, text/event-stream"}
CALL: Final = {**ACCEPT, "mcp-protocol-version": "2025-06-18"}
INIT: Final[dict[str, Any]] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "reliability", "version": "1"},
    },
}


@asynccontextmanager
async def http_client(
    env: dict[str, str] | None = None, sandbox: Sandbox | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        {"CLOSE_MCP_SECRET": "s" * 32, **(env or {})}, sandbox=True, audit_log="off"
    )
    runtime = Runtime(settings, sandbox=sandbox or Sandbox(n_leads=20, clock=FakeClock()))
    app = build_http_app(build_server(runtime), runtime, host="127.0.0.1", port=8000)
    inner = app
    while not isinstance(inner, Starlette):  # through the middleware in front of it
        inner = inner.app  # type: ignore[attr-defined]
    async with (
        inner.router.lifespan_context(inner),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
    ):
        yield client
    await runtime.aclose()


def _data(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of an SSE or JSON answer."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        line = next(x for x in response.text.splitlines() if x.startswith("data: "))
        parsed: dict[str, Any] = json.loads(line.removeprefix("data: "))
        return parsed
    answer: dict[str, Any] = response.json()
    return answer


async def opened(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the `Mcp-Session-Id` of a legacy session opened with them (initialize)."""
    answer = await client.post("/mcp", headers=headers, json=INIT)
    assert answer.status_code == 200, answer.text
    session = {**headers, "mcp-session-id": answer.headers["mcp-session-id"]}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await client.post("/mcp", headers=session, json=initialized)).status_code == 202
    return session


def test_http_binds_loopback_by_default() -> None:
    args = build_parser().parse_args(["serve", "--transport", "http"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)


async def test_foreign_origin_and_host_are_refused() -> None:
    async with http_client() as client:
        ok = await client.post("/mcp", headers={**ACCEPT, "Origin": BASE}, json=INIT)
        assert ok.status_code == 200
        assert _data(ok)["result"]["serverInfo"]["name"] == "close-mcp"
        evil = await client.post(
            "/mcp", headers={**ACCEPT, "Origin": "http://evil.example"}, json=INIT
        )
        assert (evil.status_code, evil.text) == (403, "Invalid Origin header")
        rebound = await client.post("/mcp", headers={**ACCEPT, "Host": "evil.example"}, json=INIT)
        assert (rebound.status_code, rebound.text) == (421, "Invalid Host header")


async def test_bearer_token_required_when_set_and_health_stays_open() -> None:
    async with http_client({"CLOSE_MCP_HTTP_TOKEN": TOKEN}) as client:
        missing = await client.post("/mcp", headers=ACCEPT, json=INIT)
        wrong = await client.post(
            "/mcp", headers={**ACCEPT, "Authorization": f"Bearer {TOKEN}x"}, json=INIT
        )
        for refused in (missing, wrong):
            assert refused.status_code == 401
            assert refused.json() == {"error": "missing or wrong bearer token"}
            assert refused.headers["www-authenticate"] == 'Bearer realm="close-mcp"'
        right = await client.post(
            "/mcp", headers={**ACCEPT, "Authorization": f"Bearer {TOKEN}"}, json=INIT
        )
        assert right.status_code == 200
        health = await client.get("/health")
        assert (health.status_code, health.json()["status"]) == (200, "ok")


async def test_request_body_is_capped() -> None:
    async with http_client() as client:
        padding = "a" * (MAX_BODY_BYTES + 200_000)
        big = {**INIT, "params": {**INIT["params"], "padding": padding}}
        answer = await client.post("/mcp", headers=ACCEPT, content=json.dumps(big))
        assert (answer.status_code, answer.text) == (413, "Request body too large")


async def test_per_request_key_is_used_and_never_echoed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "api_LEAKCANARY_http_0123456789abcdef"
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "lookup", "arguments": {"kind": "lead_statuses"}},
    }
    async with http_client() as client:
        headers = await opened(client, {**CALL, "Close-API-Key": canary})
        answer = await client.post("/mcp", headers=headers, json=call)
        result = _data(answer)["result"]
        text = result["content"][0]["text"]
        assert result["isError"] is True
        assert text.startswith("Error executing tool lookup: Close did not accept the API key")
        assert canary not in answer.text
        # The session belongs to that key (issue 23, item 2): without it, it is not found;
        # a session opened without a key uses the server's.
        without = {k: v for k, v in headers.items() if k != "Close-API-Key"}
        assert (await client.post("/mcp", headers=without, json=call)).status_code == 404
        default = await client.post("/mcp", headers=await opened(client, CALL), json=call)
        assert _data(default)["result"]["isError"] is False
    assert canary not in caplog.text


SERVER_KEY: Final = "api_SERVERKEY_0123456789abcdef0123"
LOOKUP: Final[dict[str, Any]] = {
    "jsonrpc": "2.0",
    "id": 3,
    "method": "tools/call",
    "params": {"name": "lookup", "arguments": {"kind": "lead_statuses"}},
}


async def test_the_servers_key_is_not_lent_without_a_bearer_token() -> None:
    """Without CLOSE_MCP_HTTP_TOKEN, a process that reaches the port must bring its own key."""
    sandbox = Sandbox(n_leads=20, clock=FakeClock(), api_key=SERVER_KEY)
    error = {
        "error": "send your own Close key in a Close-API-Key header: this server does not lend "
        "its CLOSE_API_KEY to unauthenticated callers (set CLOSE_MCP_HTTP_TOKEN for that)"
    }
    async with http_client({"CLOSE_API_KEY": SERVER_KEY}, sandbox) as client:
        for headers, body in (
            (CALL, LOOKUP),
            ({**CALL, "Close-API-Key": "  "}, LOOKUP),
            (ACCEPT, INIT),
        ):
            refused = await client.post("/mcp", headers=headers, json=body)
            assert (refused.status_code, refused.json()) == (401, error)
        assert sandbox.requests == []
        health = await client.get("/health")
        assert (health.status_code, health.json()["status"]) == (200, "ok")
        # A caller with its own key is served, with that key (this sandbox knows only the
        # server's, so another key is turned away by "Close", not by the server).
        own = await client.post(
            "/mcp", headers=await opened(client, {**CALL, "Close-API-Key": SERVER_KEY}), json=LOOKUP
        )
        assert _data(own)["result"]["isError"] is False
        other = await client.post(
            "/mcp", headers=await opened(client, {**CALL, "Close-API-Key": "api_x"}), json=LOOKUP
        )
        text = _data(other)["result"]["content"][0]["text"]
        assert text.startswith("Error executing tool lookup: Close did not accept the API key")
    assert [(r.method, r.path, r.status) for r in sandbox.requests] == [
        ("GET", "/api/v1/status/lead/", 200),
        ("GET", "/api/v1/status/lead/", 401),
    ]


async def test_with_a_bearer_token_authenticated_callers_may_use_the_servers_key() -> None:
    sandbox = Sandbox(n_leads=20, clock=FakeClock(), api_key=SERVER_KEY)
    env = {"CLOSE_API_KEY": SERVER_KEY, "CLOSE_MCP_HTTP_TOKEN": TOKEN}
    async with http_client(env, sandbox) as client:
        anonymous = await client.post("/mcp", headers=CALL, json=LOOKUP)
        assert (anonymous.status_code, anonymous.json()) == (
            401,
            {"error": "missing or wrong bearer token"},
        )
        assert sandbox.requests == []
        authorized = await opened(client, {**CALL, "Authorization": f"Bearer {TOKEN}"})
        answer = await client.post("/mcp", headers=authorized, json=LOOKUP)
        assert _data(answer)["result"]["isError"] is False
    assert [(r.method, r.path, r.status) for r in sandbox.requests] == [
        ("GET", "/api/v1/status/lead/", 200)
    ]


NEW_ERA: Final = "2026-07-28"


async def test_legacy_clients_get_a_session_and_new_era_requests_stay_stateless() -> None:
    """Issue 16: an older client's capabilities live in its session (initialize), so the app is
    stateful for that era; a new-era request brings its own and needs no session."""
    async with http_client() as client:
        session = await opened(client, CALL)
        served = await client.post("/mcp", headers=session, json=LOOKUP)
        assert _data(served)["result"]["isError"] is False
        # Without initialize there is no session, hence no capabilities: refused, as the
        # protocol asks; an unknown (expired, other replica's) session answers 404.
        sessionless = await client.post("/mcp", headers=CALL, json=LOOKUP)
        assert sessionless.status_code == 400
        assert sessionless.json()["error"]["message"] == "Bad Request: Missing session ID"
        unknown = await client.post(
            "/mcp", headers={**CALL, "mcp-session-id": "0" * 32}, json=LOOKUP
        )
        assert (unknown.status_code, unknown.json()["error"]["message"]) == (
            404,
            "Session not found",
        )
        # A new-era request carries its capabilities in _meta: served with no session at all.
        envelope = {
            "io.modelcontextprotocol/protocolVersion": NEW_ERA,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        body = {**LOOKUP, "params": {**LOOKUP["params"], "_meta": envelope}}
        modern = {
            **ACCEPT,
            "mcp-protocol-version": NEW_ERA,
            "mcp-method": "tools/call",
            "mcp-name": "lookup",
        }
        stateless = await client.post("/mcp", headers=modern, json=body)
        assert stateless.status_code == 200
        assert "mcp-session-id" not in stateless.headers
        assert _data(stateless)["result"]["isError"] is False
        # The session ends when the client deletes it.
        ended = await client.delete("/mcp", headers=session)
        assert ended.status_code == 200
        gone = await client.post("/mcp", headers=session, json=LOOKUP)
        assert gone.status_code == 404
