"""Serving over Streamable HTTP: `/mcp`, `GET /health`, an optional bearer token, body cap.

Loopback is the default bind. The SDK's DNS-rebinding protection checks `Host` and
`Origin`. When `CLOSE_MCP_HTTP_TOKEN` is set, every `/mcp` request must carry it as a
bearer token. Each request may bring its own Close key in a `Close-API-Key` header, so one
deployment serves a team; the key is used for that request only and never logged.

The server's own `CLOSE_API_KEY`, if it has one, is lent only to callers who proved who they
are: with a bearer token configured, an authenticated request without a `Close-API-Key` uses
it; without one, a `/mcp` request that brings no key of its own is refused (401), since any
process that can reach the port would otherwise act in Close as the server's user.

Which clients are asked. A write is put to the person only if the client declared
elicitation, and the two protocol eras declare it differently:

- A new-era client (2026-07-28) declares its capabilities with every request, and the question
  travels back as an `input_required` result with a sealed `requestState`: stateless, any
  replica sharing `CLOSE_MCP_SECRET` can take the answer. The SDK sends every request whose
  `MCP-Protocol-Version` is not a handshake version down this path whatever the app's mode.
- An older client (2025-11-25 and before) declares them once, in `initialize`, and is asked
  with an `elicitation/create` request whose reply is a later POST. Both need a session: with
  `stateless_http=True` the SDK serves each such request with an empty connection (no
  capabilities, no way back to the client), so such a client would never be asked (a delete
  would go through without the person; with `CLOSE_MCP_REQUIRE_HUMAN=1` it could confirm
  nothing).
  The app is therefore stateful (`stateless_http=False`): `initialize` opens a session held
  in this process, answered with an `Mcp-Session-Id`, and the client sends that id back.

Stateful sessions cannot move between processes (the SDK keeps them in memory, and the reply
to a question must reach the process waiting for it). Behind a load balancer, every request
carrying an `Mcp-Session-Id` must go to the replica whose `initialize` answer issued it
(sticky sessions learned from that response header); requests without one, which includes all
new-era traffic, may go to any replica. A session ends on DELETE, after `SESSION_IDLE_S`
without a request, or when its process stops; its id then answers 404 and the client must
initialize again (the SDK's own client reports "Session terminated" and leaves that to its
user). A legacy request that comes without a session (no `initialize` first) is refused with
400, as the protocol asks.

Whose session it is. A session belongs to the credentials that
opened it: `Callers` gives every `/mcp` request an identity, a digest of its bearer token and
its `Close-API-Key`, as the SDK's authenticated user, and the SDK's session manager refuses
(404, as for an unknown session) any request or JSON-RPC response on a session whose
identity differs, so whoever learns a session id cannot answer its person's question or act
in it. With OAuth the SDK's own bearer middleware sets that user instead. The same identity
binds a new-era `requestState`. Each identity may hold `MAX_SESSIONS_PER_CALLER` sessions at
once (429 beyond), so one caller's flood of `initialize` requests does not fill the
process's session table for everyone.

Sign in with Close (`--oauth`): the SDK's auth routes and bearer middleware stand
in front of `/mcp` (`close_mcp.server.oauth`); the identity is then the signed-in person, and
neither the bearer token above nor the server's own Close key is used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Callable
from typing import Final

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import (
    AuthenticatedUser,
    AuthorizationContext,
    RequireAuthMiddleware,
    authorization_context,
)
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from close_mcp import __version__
from close_mcp.server.oauth import CALLBACK_PATH, SANDBOX_AUTHORIZE_PATH, KnownGrantTypes
from close_mcp.server.runtime import KEY_HEADER, Runtime

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1_000_000
# A legacy-era session (see the module docstring) ends after this long without a request.
SESSION_IDLE_S: Final = 30 * 60.0
MAX_SESSIONS_PER_CALLER: Final = 32
LOOPBACK: Final = ("127.0.0.1", "localhost", "::1")


async def _refuse(send: Send, error: str, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps({"error": error}).encode()})


class OwnKeyRequired:
    """Refuses `/mcp` requests without a `Close-API-Key` of their own (health stays open).

    In front of a server that has its own Close key and no bearer token: without it, any
    process that reaches the port would use the server's key."""

    ERROR: Final = (
        "send your own Close key in a Close-API-Key header: this server does not lend its "
        "CLOSE_API_KEY to unauthenticated callers (set CLOSE_MCP_HTTP_TOKEN for that)"
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            header = KEY_HEADER.encode()
            keys = [value for name, value in scope["headers"] if name.lower() == header]
            # A blank value would fall back to the server's key, as no header does.
            if not keys or any(not value.strip() for value in keys):
                await _refuse(send, self.ERROR, [])
                return
        await self.app(scope, receive, send)


class BearerToken:
    """Rejects `/mcp` requests that lack the configured bearer token (health stays open)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                challenge = (b"www-authenticate", b'Bearer realm="close-mcp"')
                await _refuse(send, "missing or wrong bearer token", [challenge])
                return
        await self.app(scope, receive, send)


def caller_identity(headers: list[tuple[bytes, bytes]]) -> str:
    """A digest of the credentials a request brings: its bearer token and its Close key
    (every value of each, in order, should a header come twice)."""
    digest = hashlib.sha256(b"close-mcp caller\0")
    for wanted in (b"authorization", KEY_HEADER.encode()):
        values = [value.strip() for name, value in headers if name.lower() == wanted]
        digest.update(len(values).to_bytes(4, "big"))
        for value in values:
            digest.update(len(value).to_bytes(4, "big") + value)
    return "caller:" + digest.hexdigest()


def _opens_a_session(scope: Scope) -> bool:
    """A legacy-era POST without a session id: the request that may open one."""
    if scope["method"] != "POST":
        return False
    headers = dict(scope["headers"])
    if MCP_SESSION_ID_HEADER.lower().encode() in headers:
        return False
    version = headers.get(b"mcp-protocol-version")
    return version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS


async def _too_many(send: Send, message: str) -> None:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


class Callers:
    """Binds each legacy session to its caller's credentials and caps sessions per caller.

    `open_sessions(owner)` counts the sessions the SDK holds for that owner."""

    def __init__(
        self,
        app: ASGIApp,
        open_sessions: Callable[[AuthorizationContext], int],
        limit: int = MAX_SESSIONS_PER_CALLER,
        *,
        identify: bool = True,
    ) -> None:
        """`identify`: give a request without an authenticated user the identity of its
        credentials; False behind OAuth, where such a request was already refused."""
        self.app = app
        self.open_sessions = open_sessions
        self.limit = limit
        self.identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            user = scope.get("user")
            if not isinstance(user, AuthenticatedUser):
                if not self.identify:
                    await _refuse(send, "sign in first", [])
                    return
                identity = caller_identity(scope["headers"])
                user = AuthenticatedUser(AccessToken(token="", client_id=identity, scopes=[]))
                scope["user"] = user
            if _opens_a_session(scope):
                held = self.open_sessions(authorization_context(user))
                if held >= self.limit:
                    await _too_many(
                        send,
                        f"this caller already has {held} open sessions; end one (HTTP DELETE "
                        "with its Mcp-Session-Id) or let one expire before opening another",
                    )
                    return
        await self.app(scope, receive, send)


def security_for(host: str, port: int) -> TransportSecuritySettings:
    if host in LOOPBACK:
        hosts = [f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")]
        origins = [f"http://{h}" for h in hosts]
        return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)
    # Behind a proxy the Host header is the public name; Origin stays checked by clients.
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


def build_http_app(server: MCPServer, runtime: Runtime, *, host: str, port: int) -> ASGIApp:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "name": "close-mcp", "version": __version__})

    server.custom_route("/health", methods=["GET"])(health)
    sign_in = runtime.sign_in
    if sign_in is not None:
        server.custom_route(CALLBACK_PATH, methods=["GET"])(sign_in.callback)
        if runtime.sandbox is not None:
            consent = runtime.sandbox.oauth.authorize
            server.custom_route(SANDBOX_AUTHORIZE_PATH, methods=["GET"])(consent)

    app: ASGIApp = server.streamable_http_app(
        host=host,
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=security_for(host, port),
        # Sessions for legacy-era clients; new-era requests stay stateless (docstring).
        stateless_http=False,
        session_idle_timeout=SESSION_IDLE_S,
    )
    manager = server.session_manager

    def open_sessions(owner: AuthorizationContext) -> int:
        # The SDK keeps who opened each session (it checks it on every request) and offers
        # no count of them: read its table.
        return sum(1 for held in manager._session_owners.values() if held == owner)

    settings = runtime.settings
    if sign_in is not None:
        # The SDK's bearer middleware has set the signed-in user by the time /mcp is served:
        # count sessions for that user, inside its check that a token came at all.
        assert isinstance(app, Starlette)
        route = next(r for r in app.routes if isinstance(r, Route) and r.path == "/mcp")
        required = route.app
        assert isinstance(required, RequireAuthMiddleware)
        required.app = Callers(required.app, open_sessions, identify=False)
        token = next(r for r in app.routes if isinstance(r, Route) and r.path == "/token")
        token.app = KnownGrantTypes(token.app)
        return app
    app = AuthContextMiddleware(Callers(app, open_sessions))
    if settings.http_token is not None:
        app = BearerToken(app, settings.http_token.get_secret_value())
    elif settings.api_key is not None:
        app = OwnKeyRequired(app)
    return app


def run_http(
    server: MCPServer,
    runtime: Runtime,
    *,
    host: str,
    port: int,
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted; `sock` is the listening socket the command line bound to
    (host, port) before it said where it listens."""
    import uvicorn

    settings = runtime.settings
    store = settings.store.get_secret_value()
    if settings.secret_is_shared and not settings.sandbox and "://" not in store:
        log.warning(
            "CLOSE_MCP_SECRET is set (replicas) and the store is the SQLite file %s: only "
            "processes on this machine share it. Replicas on other machines must share one "
            "CLOSE_MCP_STORE=redis://... or each could use a confirmation token once",
            store,
        )
    app = build_http_app(server, runtime, host=host, port=port)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)
