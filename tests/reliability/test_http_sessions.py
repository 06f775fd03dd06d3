"""Issue 23, items 2, 12 and 18, through real `close-mcp serve --transport http` processes.

- 2: a legacy-era session (`Mcp-Session-Id`) belongs to the credentials that opened it (the
  bearer token and the Close key given at `initialize`): a request or a JSON-RPC response on
  it with other ones is refused, so nobody who learns the id can answer its person's question.
- 12: a shared `CLOSE_MCP_SECRET` with a store private to the process stops the server at
  start (one line, exit 2); with a SQLite file it starts and says loudly what must be shared.
- 18: sessions are capped per caller; where a bearer token is configured, `initialize`
  without it opens nothing.

The Close behind them is the sandbox served on loopback (a fresh one per test, with leads to
delete). No sleeps: each step waits on an answer, bounded by the HTTP client's timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from close_mcp.sandbox import SANDBOX_API_KEY
from close_mcp.server.http import MAX_SESSIONS_PER_CALLER
from tests.processes import clean_env, free_port, running, sandbox_close
from tests.replicas.conftest import jobs

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TOKEN: Final = "team-bearer-token-0123456789"
OTHER_KEY: Final = "api_someone.else.entirely"
LEGACY: Final = "2025-11-25"
ACCEPT: Final = {"Accept": "application/json, text/event-stream", "mcp-protocol-version": LEGACY}
DOOMED: Final = {"filter": {"lead_status": "Canceled"}}


def initialize(asks: bool) -> dict[str, Any]:
    capabilities = {"elicitation": {"form": {}}} if asks else {}
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": capabilities,
            "clientInfo": {"name": "sessions", "version": "1"},
        },
    }


def tool_call(request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of an SSE or JSON answer."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        line = next(x for x in response.text.splitlines() if x.startswith("data: "))
        parsed: dict[str, Any] = json.loads(line.removeprefix("data: "))
        return parsed
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
def close_api(tmp_path: Path) -> Iterator[str]:
    with sandbox_close(tmp_path) as base:
        yield base


@asynccontextmanager
async def server(close_api: str, tmp_path: Path, **env: str) -> AsyncIterator[str]:
    """One `close-mcp serve --transport http` in front of the sandbox; its /mcp URL."""
    port = free_port()
    settings = {
        "CLOSE_API_BASE_URL": close_api,
        "CLOSE_MCP_STORE": str(tmp_path / "state.sqlite3"),
        **env,
    }
    args = ["serve", "--transport", "http", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running(args, env=clean_env(**settings), health=url + "/health", log=tmp_path / "s.log"):
        yield url + "/mcp"


async def opened(http: httpx.AsyncClient, url: str, headers: dict[str, str], asks: bool) -> str:
    """A legacy session opened (initialize, initialized) with these headers; its id."""
    answer = await http.post(url, headers={**ACCEPT, **headers}, json=initialize(asks))
    assert answer.status_code == 200, answer.text
    session = answer.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    done = await http.post(url, headers={**ACCEPT, **headers, "mcp-session-id": session}, json=note)
    assert done.status_code == 202
    return session


async def next_data(lines: AsyncIterator[str]) -> dict[str, Any]:
    async for line in lines:
        if line.startswith("data: "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("data: "))
            return parsed
    raise AssertionError("the stream ended without a message")


CREDENTIALS: Final = [
    # (server env, A's headers, B's headers): B knows A's session id, not A's credentials.
    ({}, {"Close-API-Key": SANDBOX_API_KEY}, {"Close-API-Key": OTHER_KEY}),
    (
        {"CLOSE_MCP_HTTP_TOKEN": TOKEN},
        {"Authorization": f"Bearer {TOKEN}", "Close-API-Key": SANDBOX_API_KEY},
        {"Authorization": f"Bearer {TOKEN}", "Close-API-Key": OTHER_KEY},
    ),
    (
        # The server lends its own key to holders of the team's token: B has the token and
        # no key of its own, A brought its own key.
        {"CLOSE_MCP_HTTP_TOKEN": TOKEN, "CLOSE_API_KEY": SANDBOX_API_KEY},
        {"Authorization": f"Bearer {TOKEN}", "Close-API-Key": SANDBOX_API_KEY},
        {"Authorization": f"Bearer {TOKEN}"},
    ),
]


@pytest.mark.parametrize(("env", "a", "b"), CREDENTIALS)
async def test_another_caller_cannot_answer_or_use_a_legacy_session(
    close_api: str, tmp_path: Path, env: dict[str, str], a: dict[str, str], b: dict[str, str]
) -> None:
    before = len(jobs(close_api, "delete"))
    async with server(close_api, tmp_path, **env) as url, httpx.AsyncClient(timeout=60) as http:
        session = await opened(http, url, a, asks=True)
        on_a = {**ACCEPT, **a, "mcp-session-id": session}
        preview = message(
            await http.post(url, headers=on_a, json=tool_call(2, "create_bulk_delete", DOOMED))
        )
        content = preview["result"]["structuredContent"]
        assert content["status"] == "confirmation_required"
        confirm = {**DOOMED, "confirmation_token": content["confirmation_token"]}
        async with http.stream(
            "POST", url, headers=on_a, json=tool_call(3, "create_bulk_delete", confirm)
        ) as stream:
            lines = stream.aiter_lines()
            question = await next_data(lines)
            assert question["method"] == "elicitation/create"
            count = content["preview"]["matched"]
            assert f"({count})" in question["params"]["message"]
            # B answers A's question with A's session id: refused as if there were no session.
            yes = {
                "jsonrpc": "2.0",
                "id": question["id"],
                "result": {"action": "accept", "content": {"count": count}},
            }
            on_b = {**ACCEPT, **b, "mcp-session-id": session}
            forged = await http.post(url, headers=on_b, json=yes)
            assert forged.status_code == 404
            assert message(forged)["error"]["message"] == "Session not found"
            # Nor may B call a tool, open the stream, or end the session on A's id.
            lookup = tool_call(4, "lookup", {"kind": "lead_statuses"})
            assert (await http.post(url, headers=on_b, json=lookup)).status_code == 404
            assert (await http.delete(url, headers=on_b)).status_code == 404
            # A's own answer is the one taken: A's person declines.
            no = {"jsonrpc": "2.0", "id": question["id"], "result": {"action": "decline"}}
            assert (await http.post(url, headers=on_a, json=no)).status_code == 202
            result = await next_data(lines)
        assert result["id"] == 3
        done = result["result"]["structuredContent"]
        assert (done["status"], done["reason"]) == ("refused", "the person declined the action")
        # The session is still A's and works for A.
        again = message(await http.post(url, headers=on_a, json=lookup))
        assert again["result"]["isError"] is False
    assert len(jobs(close_api, "delete")) == before


async def test_sessions_are_capped_per_caller(close_api: str, tmp_path: Path) -> None:
    mine = {"Close-API-Key": SANDBOX_API_KEY}
    async with server(close_api, tmp_path) as url, httpx.AsyncClient(timeout=60) as http:
        sessions = [
            await opened(http, url, mine, asks=False) for _ in range(MAX_SESSIONS_PER_CALLER)
        ]
        assert len(set(sessions)) == MAX_SESSIONS_PER_CALLER
        refused = await http.post(url, headers={**ACCEPT, **mine}, json=initialize(False))
        assert refused.status_code == 429
        assert "mcp-session-id" not in refused.headers
        assert message(refused)["error"]["message"] == (
            f"this caller already has {MAX_SESSIONS_PER_CALLER} open sessions; end one "
            "(HTTP DELETE with its Mcp-Session-Id) or let one expire before opening another"
        )
        # Another caller is not held up by this one.
        await opened(http, url, {"Close-API-Key": OTHER_KEY}, asks=False)
        # Ending a session makes room for one more.
        ended = await http.delete(url, headers={**ACCEPT, **mine, "mcp-session-id": sessions[0]})
        assert ended.status_code == 200
        await opened(http, url, mine, asks=False)
        again = await http.post(url, headers={**ACCEPT, **mine}, json=initialize(False))
        assert again.status_code == 429


async def test_initialize_needs_the_bearer_token_where_one_is_configured(
    close_api: str, tmp_path: Path
) -> None:
    env = {"CLOSE_MCP_HTTP_TOKEN": TOKEN}
    async with server(close_api, tmp_path, **env) as url, httpx.AsyncClient(timeout=60) as http:
        for headers in (
            {},
            {"Authorization": "Bearer nope-0123456789abcdef"},
            {"Close-API-Key": SANDBOX_API_KEY},
        ):
            refused = await http.post(url, headers={**ACCEPT, **headers}, json=initialize(False))
            assert refused.status_code == 401
            assert "mcp-session-id" not in refused.headers
        await opened(http, url, {"Authorization": f"Bearer {TOKEN}"}, asks=False)


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`close-mcp serve --transport http` that should stop at start. One that answers its health
    URL instead fails the test as soon as it does (not at the bound, a minute later)."""
    port = free_port()
    args = [sys.executable, "-m", "close_mcp", "serve", "--transport", "http", "--port", str(port)]
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            args,
            env=clean_env(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"), **env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:  # bounded: the process's exit ends each wait at once
            try:
                returncode = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if serves(port) or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(
                    f"the server started and served instead of stopping: {err.read_text()!r}"
                )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(args, returncode, out.read_text(), err.read_text())


def serves(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0)
    except httpx.TransportError:
        return False
    return True


def test_a_shared_secret_with_a_process_local_store_refuses_to_start(tmp_path: Path) -> None:
    stopped = start(
        tmp_path,
        CLOSE_API_KEY=SANDBOX_API_KEY,
        CLOSE_MCP_SECRET="replica-secret-0123456789",
        CLOSE_MCP_STORE=":memory:",
    )
    assert stopped.returncode == 2
    assert stopped.stdout == ""
    assert stopped.stderr == (
        "close-mcp: error: CLOSE_MCP_SECRET is set (replicas) but CLOSE_MCP_STORE is :memory:, "
        "private to this process: a confirmation token could be used once on each replica. "
        "Set CLOSE_MCP_STORE to a SQLite file or redis:// URL every replica shares, or unset "
        "CLOSE_MCP_SECRET\n"
    )


async def test_a_shared_secret_with_a_sqlite_store_says_what_must_be_shared(
    close_api: str, tmp_path: Path
) -> None:
    env = {"CLOSE_MCP_SECRET": "replica-secret-0123456789", "CLOSE_API_KEY": SANDBOX_API_KEY}
    async with server(close_api, tmp_path, **env) as url, httpx.AsyncClient() as http:
        assert (await http.get(url.removesuffix("/mcp") + "/health")).status_code == 200
    log = (tmp_path / "s.log").read_text()
    assert (
        f"CLOSE_MCP_SECRET is set (replicas) and the store is the SQLite file "
        f"{tmp_path / 'state.sqlite3'}: only processes on this machine share it. Replicas on "
        "other machines must share one CLOSE_MCP_STORE=redis://... or each could use a "
        "confirmation token once"
    ) in log
