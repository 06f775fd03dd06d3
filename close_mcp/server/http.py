"""Serving over Streamable HTTP: `/mcp`, `GET /health`, an optional bearer token, body cap.

Loopback is the default bind. The SDK's DNS-rebinding protection checks `Host` and
`Origin`. When `CLOSE_MCP_HTTP_TOKEN` is set, every `/mcp` request must carry it as a
bearer token. Each request may bring its own Close key in a `Close-API-Key` header, so one
deployment serves a team; the key is used for that request only and never logged.

The server's own `CLOSE_API_KEY`, if it has one, is lent only to callers who proved who they
are: with a bearer token configured, an authenticated request without a `Close-API-Key` uses
it; without one, a `/mcp` request that brings no key of its own is refused (401), since any
process that can reach the port would otherwise act in Close as the server's user.

Which clients are asked (issue 16). A write is put to the person only if the client declared
elicitation, and the two protocol eras declare it differently:

- A new-era client (2026-07-28) declares its capabilities with every request, and the question
  travels back as an `input_required` result with a sealed `requestState`: stateless, any
  replica sharing `CLOSE_MCP_SECRET` can take the answer. The SDK sends every request whose
  `MCP-Protocol-Version` is not a handshake version down this path whatever the app's mode.
- An older client (2025-11-25 and before) declares them once, in `initialize`, and is asked
  with an `elicitation/create` request whose reply is a later POST. Both need a session: with
  `stateless_http=True` the SDK served each such request with an empty connection (no
  capabilities, no way back to the client), so such a client was never asked (a delete went
  through without the person; with `CLOSE_MCP_REQUIRE_HUMAN=1` it could confirm nothing).
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
"""

from __future__ import annotations

import hmac
import json
import socket
from typing import Final

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from close_mcp import __version__
from close_mcp.server.runtime import KEY_HEADER, Runtime

MAX_BODY_BYTES: Final = 1_000_000
# A legacy-era session (see the module docstring) ends after this long without a request.
SESSION_IDLE_S: Final = 30 * 60.0
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

    app: ASGIApp = server.streamable_http_app(
        host=host,
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=security_for(host, port),
        # Sessions for legacy-era clients; new-era requests stay stateless (docstring).
        stateless_http=False,
        session_idle_timeout=SESSION_IDLE_S,
    )
    settings = runtime.settings
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

    app = build_http_app(server, runtime, host=host, port=port)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)
