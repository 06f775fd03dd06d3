"""Issue 30: sign in with Close, through real `close-mcp serve --sandbox --transport http --oauth`.

The MCP Python SDK's own OAuth client connects knowing only the server's URL: it meets the
401, reads the protected-resource and authorization-server metadata, registers itself, and
sends the person (here: a scripted browser that follows redirects) through close-mcp's
authorize endpoint to the sandbox's Close consent screen, which signs its seeded user in at
once, and back. Then it reads, confirms a write (audited under the sandbox user), refreshes.
Forged, revoked and reused credentials are refused as the RFCs say; a second replica sharing
the secret and the store accepts the token. The expiry case runs in process, on a fake clock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
import redis
from mcp import types
from mcp.client import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl
from starlette.applications import Starlette

from close_mcp.clock import FakeClock
from close_mcp.config import load_settings
from close_mcp.errors import ConfigError
from close_mcp.sandbox import Sandbox
from close_mcp.server.app import build_server
from close_mcp.server.http import build_http_app
from close_mcp.server.runtime import Runtime
from tests.processes import clean_env, free_port, running
from tests.redis_server import redis_url
from tests.replicas.conftest import call

__all__ = ["redis_url"]

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REDIRECT: Final = "http://127.0.0.1:1/callback"  # the MCP client's; never fetched
SHARED: Final = "oauth-replica-secret-0123456789"
CANARY: Final = "close-app-secret-CANARY-0123456789"
INIT: Final[dict[str, Any]] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "oauth-test", "version": "1"},
    },
}
ACCEPT: Final = {"Accept": "application/json, text/event-stream"}


class Memory(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """Follows the authorization redirects as a browser would, until the MCP client's
    redirect URI; records every hop so a test can look at what passed through it."""

    def __init__(self) -> None:
        self.hops: list[str] = []
        self.landed: str | None = None

    async def visit(self, url: str) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            while not url.startswith(REDIRECT):
                self.hops.append(url)
                answer = await http.get(url)
                assert answer.status_code in (302, 303, 307), (answer.status_code, answer.text)
                url = answer.headers["location"]
        self.landed = url

    async def back(self) -> AuthorizationCodeResult:
        assert self.landed is not None
        query = parse_qs(urlsplit(self.landed).query)
        return AuthorizationCodeResult(code=query["code"][0], state=query.get("state", [None])[0])


def oauth_client(url: str, storage: Memory, browser: Browser) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        client_name="close-mcp oauth test",
        redirect_uris=[AnyUrl(REDIRECT)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
    )
    return OAuthClientProvider(
        server_url=url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=browser.visit,
        callback_handler=browser.back,
    )


@asynccontextmanager
async def server(tmp_path: Path, name: str = "a", **env: str) -> AsyncIterator[str]:
    port = free_port()
    settings = {"CLOSE_MCP_AUDIT_LOG": str(tmp_path / f"{name}-audit.jsonl"), **env}
    args = ["serve", "--sandbox", "--transport", "http", "--oauth", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(
        args, env=clean_env(**settings), health=base + "/health", log=tmp_path / f"{name}.log"
    ):
        yield base


@asynccontextmanager
async def signed_in(
    base: str,
    storage: Memory,
    browser: Browser,
    mode: str = "auto",
    questions: list[str] | None = None,
) -> AsyncIterator[Client]:
    """The SDK's client with its OAuth provider; with `questions`, it declares elicitation
    and its person approves whatever they are asked (each question recorded)."""
    auth = oauth_client(base + "/mcp", storage, browser)
    person = None
    if questions is not None:
        asked = questions

        async def person(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            asked.append(params.message)
            return types.ElicitResult(action="accept", content={"approve": True})

    async with (
        httpx2.AsyncClient(auth=auth, timeout=60) as http,
        Client(
            streamable_http_client(base + "/mcp", http_client=http),
            mode=mode,
            elicitation_callback=person,
        ) as client,
    ):
        yield client


def bearer(token: str) -> dict[str, str]:
    return {**ACCEPT, "Authorization": f"Bearer {token}"}


async def token_request(
    base: str, client: OAuthClientInformationFull, **form: str
) -> httpx.Response:
    body = {"client_id": client.client_id, **form}
    if client.client_secret:
        body["client_secret"] = client.client_secret
    async with httpx.AsyncClient() as http:
        return await http.post(base + "/token", data=body)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_sdk_client_signs_in_with_close_reads_and_confirms_a_write(
    tmp_path: Path, mode: str
) -> None:
    """In both protocol eras; the person is asked (a legacy session's question and a new-era
    sealed state are both bound to the signed-in person) and approves."""
    storage, browser, questions = Memory(), Browser(), []
    app = {"CLOSE_MCP_OAUTH_CLIENT_ID": "oa_sandbox_app", "CLOSE_MCP_OAUTH_CLIENT_SECRET": CANARY}
    async with (
        server(tmp_path, **app) as base,
        signed_in(base, storage, browser, mode, questions) as client,
    ):
        users = await call(client, "lookup", {"kind": "users"})
        sandra = next(u for u in users["items"] if "sandra" in json.dumps(u).lower())
        found = await call(client, "search_leads", {"filter": {"lead_status": "Canceled"}})
        assert found["total"] > 0
        edit = {
            "filter": {"lead_status": "Canceled"},
            "edit": {"type": "set_lead_status", "lead_status": "Bad Fit"},
        }
        preview = await call(client, "create_bulk_edit", edit)
        assert preview["status"] == "confirmation_required"
        done = await call(
            client,
            "create_bulk_edit",
            {**edit, "confirmation_token": preview["confirmation_token"]},
        )
        assert done["status"] == "submitted"
    assert len(questions) == 1, questions
    # The way through: close-mcp's authorize, the sandbox's consent screen, our callback.
    paths = [urlsplit(hop).path for hop in browser.hops]
    assert paths == ["/authorize", "/sandbox/oauth2/authorize/", "/oauth/callback"]
    consent = parse_qs(urlsplit(browser.hops[1]).query)
    assert consent["response_type"] == ["code"]
    assert consent["client_id"] == ["oa_sandbox_app"]
    assert consent["redirect_uri"] == [base + "/oauth/callback"]
    assert storage.tokens is not None
    assert storage.tokens.expires_in == 900
    audit = [json.loads(line) for line in (tmp_path / "a-audit.jsonl").read_text().splitlines()]
    submitted = [line for line in audit if line["outcome"] == "submitted"]
    assert len(submitted) == 1
    assert submitted[0]["tool"] == "create_bulk_edit"
    assert submitted[0]["close_user"] == sandra["id"]
    assert submitted[0]["close_org"].startswith("orga_")
    # The Close app's secret is in no hop, log or audit line.
    server_log = (tmp_path / "a.log").read_text()
    seen = [*browser.hops, browser.landed or "", server_log, json.dumps(audit)]
    assert not [text for text in seen if CANARY in text]


async def test_refresh_revocation_forgery_and_a_reused_code(tmp_path: Path) -> None:
    storage, browser = Memory(), Browser()
    async with server(tmp_path) as base:
        async with signed_in(base, storage, browser) as client:
            await call(client, "lookup", {"kind": "lead_statuses"})
        assert storage.tokens is not None
        assert storage.client is not None
        first = storage.tokens
        registered = storage.client
        async with httpx.AsyncClient(timeout=30) as http:
            # A second exchange of the code is invalid_grant. The SDK client keeps its PKCE
            # verifier to itself, so this one is wrong and would be refused anyway: that the code
            # works once with the right verifier is test_an_expired_token_is_refused's (in process).
            code = parse_qs(urlsplit(browser.landed or "").query)["code"][0]
            reused = await token_request(
                base,
                registered,
                grant_type="authorization_code",
                code=code,
                redirect_uri=REDIRECT,
                code_verifier="v" * 64,
            )
            assert (reused.status_code, reused.json().get("error")) == (400, "invalid_grant")
            # A refreshed token works; the refresh token it replaced does not, twice.
            assert first.refresh_token is not None
            renewed = await token_request(
                base, registered, grant_type="refresh_token", refresh_token=first.refresh_token
            )
            assert renewed.status_code == 200, renewed.text
            fresh = renewed.json()
            assert fresh["access_token"] != first.access_token
            assert (
                await http.post(base + "/mcp", headers=bearer(fresh["access_token"]), json=INIT)
            ).status_code == 200
            again = await token_request(
                base, registered, grant_type="refresh_token", refresh_token=first.refresh_token
            )
            assert (again.status_code, again.json().get("error")) == (400, "invalid_grant")
            # Other grant types and bad clients get the RFC's errors.
            odd = await token_request(base, registered, grant_type="password")
            assert odd.json()["error"] == "unsupported_grant_type"
            stranger = OAuthClientInformationFull(
                client_id="nobody", client_secret="x", redirect_uris=[AnyUrl(REDIRECT)]
            )
            unknown = await token_request(
                base, stranger, grant_type="refresh_token", refresh_token="r"
            )
            assert unknown.json()["error"] == "invalid_client"
            # A forged token: 401 with the challenge that points at the metadata.
            forged = await http.post(base + "/mcp", headers=bearer("forged-" + "x" * 40), json=INIT)
            assert forged.status_code == 401
            challenge = forged.headers["www-authenticate"]
            assert (
                f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"' in challenge
            )
            # Revoked: the sign-in ends, every token of it with it.
            revoke = {"token": fresh["access_token"], "client_id": registered.client_id}
            if registered.client_secret:
                revoke["client_secret"] = registered.client_secret
            assert (await http.post(base + "/revoke", data=revoke)).status_code == 200
            for token in (fresh["access_token"], first.access_token):
                gone = await http.post(base + "/mcp", headers=bearer(token), json=INIT)
                assert gone.status_code == 401
            after = await token_request(
                base, registered, grant_type="refresh_token", refresh_token=fresh["refresh_token"]
            )
            assert (after.status_code, after.json().get("error")) == (400, "invalid_grant")
            # Nothing about Close's tokens in any error.
            for answer in (reused, again, odd, unknown, after):
                assert "close" not in answer.text.lower()


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        fresh = url.rpartition("/")[0] + "/2"  # database 2, emptied for this test
        redis.Redis.from_url(fresh).flushdb()
        return fresh
    return str(tmp_path / "state.sqlite3")


async def test_a_second_replica_accepts_the_token(tmp_path: Path, store: str) -> None:
    """Two replicas behind one public URL, sharing CLOSE_MCP_SECRET and the store."""
    shared = {"CLOSE_MCP_SECRET": SHARED, "CLOSE_MCP_STORE": store}
    storage, browser = Memory(), Browser()
    async with server(tmp_path, "a", **shared) as first:
        async with signed_in(first, storage, browser) as client:
            await call(client, "lookup", {"kind": "lead_statuses"})
        assert storage.tokens is not None
        token = storage.tokens.access_token
        async with (
            server(tmp_path, "b", CLOSE_MCP_PUBLIC_URL=first, **shared) as second,
            httpx.AsyncClient(timeout=30) as http,
        ):
            answer = await http.post(second + "/mcp", headers=bearer(token), json=INIT)
            assert answer.status_code == 200, answer.text
            body = json.loads(answer.text.split("data: ", 1)[1])
            assert body["result"]["serverInfo"]["name"] == "close-mcp"
            forged = await http.post(second + "/mcp", headers=bearer(token + "x"), json=INIT)
            assert forged.status_code == 401


BASE: Final = "http://127.0.0.1:8000"


@asynccontextmanager
async def in_process(
    clock: FakeClock, sandbox: Sandbox
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """The HTTP app in process, signed in once by hand (PKCE S256): the client, the tokens."""
    settings = load_settings(
        {"CLOSE_MCP_SECRET": "s" * 32, "CLOSE_MCP_PUBLIC_URL": BASE},
        sandbox=True,
        audit_log="off",
        oauth=True,
    )
    runtime = Runtime(settings, sandbox=sandbox, clock=clock)
    app = build_http_app(build_server(runtime), runtime, host="127.0.0.1", port=8000)
    assert isinstance(app, Starlette)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as http,
    ):
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        client = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
        registered = (await http.post("/register", json=client)).json()
        authorize = {
            "client_id": registered["client_id"],
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s1",
            "resource": BASE + "/mcp",
        }
        step = await http.get("/authorize", params=authorize)
        while not step.headers["location"].startswith(REDIRECT):
            step = await http.get(step.headers["location"])
        back = parse_qs(urlsplit(step.headers["location"]).query)
        assert back["state"] == ["s1"]
        exchange = {
            "grant_type": "authorization_code",
            "code": back["code"][0],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": registered["client_id"],
            "resource": BASE + "/mcp",
        }
        tokens = (await http.post("/token", data=exchange)).json()
        tokens["client_id"] = registered["client_id"]
        # The code works once, even with the right verifier.
        again = await http.post("/token", data=exchange)
        assert (again.status_code, again.json().get("error")) == (400, "invalid_grant")
        yield http, tokens
    await runtime.aclose()


async def lookup_over(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """A legacy session opened with the token, and one read tool call in it."""
    return await call_over(http, token, "lookup", {"kind": "lead_statuses"})


async def call_over(
    http: httpx.AsyncClient, token: str, tool: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """A legacy session opened with the token, and one tool call in it: its result."""
    opened = await http.post("/mcp", headers=bearer(token), json=INIT)
    assert opened.status_code == 200, opened.text
    session = {**bearer(token), "mcp-session-id": opened.headers["mcp-session-id"]}
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post("/mcp", headers=session, json=note)).status_code == 202
    params = {"name": tool, "arguments": arguments}
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}
    answer = await http.post("/mcp", headers=session, json=body)
    line = next(x for x in answer.text.splitlines() if x.startswith("data: "))
    result: dict[str, Any] = json.loads(line.removeprefix("data: "))["result"]
    return result


async def test_an_expired_token_is_refused() -> None:
    """In process, on a fake clock: 15 minutes and one second after it was issued."""
    clock = FakeClock(start=time.time())
    async with in_process(clock, Sandbox(n_leads=20, clock=clock)) as (http, tokens):
        assert (await lookup_over(http, tokens["access_token"]))["isError"] is False
        clock.advance(15 * 60 + 1)
        expired = await http.post("/mcp", headers=bearer(tokens["access_token"]), json=INIT)
        assert expired.status_code == 401
        # Its refresh token still renews the sign-in.
        renew = {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": tokens["client_id"],
        }
        renewed = (await http.post("/token", data=renew)).json()
        assert (await lookup_over(http, renewed["access_token"]))["isError"] is False


async def test_closes_token_is_refreshed_before_it_expires() -> None:
    """Close's access token (10 minutes here) is renewed with its refresh token once it has
    less than 5 minutes left, so calls keep working past its expiry."""
    clock = FakeClock(start=time.time())
    sandbox = Sandbox(n_leads=20, clock=clock)
    sandbox.oauth.access_lifetime_s = 600
    async with in_process(clock, sandbox) as (http, tokens):
        issued = set(sandbox.oauth._access)
        assert len(issued) == 1
        clock.advance(6 * 60)  # 4 minutes left on Close's token
        assert (await lookup_over(http, tokens["access_token"]))["isError"] is False
        assert len(sandbox.oauth._access) == 2  # one refresh with Close
        clock.advance(6 * 60)  # the first Close token has expired; ours has 3 minutes left
        assert not sandbox.oauth.accepts(next(iter(issued)))
        result = await lookup_over(http, tokens["access_token"])
        assert result["isError"] is False, result


async def test_authorize_refuses_what_the_client_did_not_register() -> None:
    """The SDK's checks, as this server serves them: exact redirect URI, PKCE S256 only, and
    a resource that is this server's /mcp."""
    clock = FakeClock(start=time.time())
    async with in_process(clock, Sandbox(n_leads=20, clock=clock)) as (http, tokens):
        good = {
            "client_id": tokens["client_id"],
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "code_challenge": "c" * 43,
            "code_challenge_method": "S256",
            "state": "s2",
            "resource": BASE + "/mcp",
        }
        elsewhere = await http.get("/authorize", params={**good, "redirect_uri": REDIRECT + "x"})
        assert elsewhere.status_code == 400
        assert elsewhere.json()["error"] == "invalid_request"
        plain = await http.get("/authorize", params={**good, "code_challenge_method": "plain"})
        assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]
        other = await http.get(
            "/authorize", params={**good, "resource": "https://evil.example/mcp"}
        )
        back = parse_qs(urlsplit(other.headers["location"]).query)
        assert (back.get("error"), back.get("state")) == (["invalid_target"], ["s2"])


async def test_a_confirmation_outlives_a_refresh_of_closes_token() -> None:
    """Preview with one Close token, confirm after close-mcp renewed it: the token confirms
    the same person's write (it is bound to who signed in, not to Close's token of the day)."""
    clock = FakeClock(start=time.time())
    sandbox = Sandbox(n_leads=20, clock=clock)
    sandbox.oauth.access_lifetime_s = 600
    edit = {
        "filter": {"lead_status": "Canceled"},
        "edit": {"type": "set_lead_status", "lead_status": "Bad Fit"},
    }
    async with in_process(clock, sandbox) as (http, tokens):
        preview = await call_over(http, tokens["access_token"], "create_bulk_edit", edit)
        content = preview["structuredContent"]
        assert content["status"] == "confirmation_required"
        clock.advance(6 * 60)  # Close's token is renewed on the next call
        confirm = {**edit, "confirmation_token": content["confirmation_token"]}
        done = await call_over(http, tokens["access_token"], "create_bulk_edit", confirm)
        assert len(sandbox.oauth._access) == 2
        assert done["structuredContent"]["status"] == "submitted", done


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CLOSE_MCP_OAUTH_CLIENT_ID": "oa_1"},
            "OAuth needs the Close OAuth app: set CLOSE_MCP_OAUTH_CLIENT_ID and "
            "CLOSE_MCP_OAUTH_CLIENT_SECRET (Close: Settings > Developer > OAuth Apps)",
        ),
        (
            {
                "CLOSE_MCP_OAUTH_CLIENT_ID": "oa_1",
                "CLOSE_MCP_OAUTH_CLIENT_SECRET": "s" * 20,
                "CLOSE_MCP_HTTP_TOKEN": "t" * 20,
            },
            "CLOSE_MCP_HTTP_TOKEN and OAuth both take Authorization: Bearer; set only one",
        ),
        (
            {"CLOSE_MCP_PUBLIC_URL": "http://mcp.example.com"},
            "CLOSE_MCP_PUBLIC_URL must be an https URL, not 'http://mcp.example.com'",
        ),
        (
            {"CLOSE_MCP_PUBLIC_URL": "mcp.example.com"},
            "CLOSE_MCP_PUBLIC_URL must be an http(s) URL such as "
            "https://api.close.com/api/v1/, not 'mcp.example.com'",
        ),
    ],
)
def test_oauth_settings_stop_with_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as stopped:
        load_settings({"CLOSE_API_KEY": "api_x", **env}, oauth=True)
    assert str(stopped.value) == message


def test_the_close_app_secret_is_not_in_the_settings_repr() -> None:
    settings = load_settings(
        {
            "CLOSE_API_KEY": "api_x",
            "CLOSE_MCP_OAUTH_CLIENT_ID": "oa_1",
            "CLOSE_MCP_OAUTH_CLIENT_SECRET": CANARY,
            "CLOSE_MCP_PUBLIC_URL": "https://mcp.example.com/",
        }
    )
    assert (settings.oauth, settings.public_url) == (True, "https://mcp.example.com")
    assert CANARY not in repr(settings)
    assert CANARY not in str(settings)
