"""What a tool call needs besides its arguments: a Close client, the catalog, the clock.

The server holds no state that matters between calls (Close holds the jobs, confirmation
tokens are signed), so one `Runtime` per process is enough. It keeps one `CloseClient` per
API key: over HTTP each request may bring its own key in a `Close-API-Key` header, so one
deployment serves a team. Each tool call gets a fresh `Catalog`, so a status renamed in
Close is seen on the next call.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sys
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import httpx
from mcp.server.auth.middleware.auth_context import get_access_token

from close_mcp.clock import Clock, SystemClock
from close_mcp.close.catalog import Catalog
from close_mcp.close.client import CloseClient, caller_digest, close_identity
from close_mcp.close.oauth import CloseOAuthApp
from close_mcp.config import Settings
from close_mcp.errors import ConfigError, MissingAPIKey
from close_mcp.server.oauth import SANDBOX_AUTHORIZE_PATH, CloseAccessToken, CloseSignIn
from close_mcp.store import open_store
from close_mcp.writes.audit import AUDIT_CALLER, AuditLog
from close_mcp.writes.background import ServerJobs
from close_mcp.writes.sender import WriteContext
from close_mcp.writes.tokens import ConfirmationTokens

if TYPE_CHECKING:
    from close_mcp.sandbox import Sandbox

KEY_HEADER: Final = "close-api-key"
SANDBOX_BASE_URL: Final = "http://sandbox.close-mcp.invalid/api/v1/"
MAX_CLIENTS: Final = 64


@dataclass
class Call:
    """The per-call view: the client for this caller's key and a fresh catalog over it."""

    client: CloseClient
    catalog: Catalog


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.sandbox = sandbox
        self._transport = transport
        self._base_url = settings.base_url
        self._default_key = settings.api_key.get_secret_value() if settings.api_key else None
        if sandbox is not None:
            self._transport = transport or sandbox.transport()
            self._base_url = SANDBOX_BASE_URL
            self._default_key = self._default_key or sandbox.api_key
        self._clients: OrderedDict[str, CloseClient] = OrderedDict()
        self._retiring: list[CloseClient] = []  # evicted, closed once idle
        self._closing: set[asyncio.Task[None]] = set()
        self.store = open_store(settings.store.get_secret_value(), clock=self.clock)
        self.tokens = ConfirmationTokens(
            settings.secret.get_secret_value().encode(), self.clock, store=self.store
        )
        self.audit = AuditLog(
            settings.audit_log, self.clock, stream=sys.stderr if settings.audit_to_stderr else None
        )
        self.writes = WriteContext(settings, self.tokens, self.audit, self.clock, self.store)
        self.server_jobs = ServerJobs(self.store, self.clock)
        # Only `serve --transport http` sets a public URL for OAuth (cli/commands.py): other
        # commands, run with the OAuth app's variables in the environment, sign no one in.
        signs_in = settings.oauth and settings.public_url is not None
        self.sign_in = self._sign_in() if signs_in else None

    def _sign_in(self) -> CloseSignIn:
        """OAuth sign-in with Close (`close_mcp.server.oauth`). With the sandbox, its OAuth app
        is registered here and its consent screen is served by this server (`/sandbox/`)."""
        settings = self.settings
        if settings.public_url is None:
            raise ConfigError("OAuth needs CLOSE_MCP_PUBLIC_URL, the server's external base URL")
        client_id = settings.oauth_client_id
        secret = (
            settings.oauth_client_secret.get_secret_value()
            if settings.oauth_client_secret
            else None
        )
        authorize_url = None
        if self.sandbox is not None:
            client_id = client_id or "sandbox-oauth-app"
            secret = secret or secrets.token_urlsafe(24)
            self.sandbox.oauth.register(client_id, secret)
            authorize_url = settings.public_url + SANDBOX_AUTHORIZE_PATH
        if client_id is None or secret is None:
            raise ConfigError(
                "OAuth needs CLOSE_MCP_OAUTH_CLIENT_ID and CLOSE_MCP_OAUTH_CLIENT_SECRET"
            )
        close = CloseOAuthApp(
            client_id,
            secret,
            self._base_url,
            transport=self._transport,
            authorize_url=authorize_url,
            clock=self.clock,
        )
        return CloseSignIn(
            close,
            self.store,
            public_url=settings.public_url,
            secret=settings.secret.get_secret_value(),
            clock=self.clock,
        )

    def __repr__(self) -> str:
        return f"Runtime(base_url={self._base_url!r}, sandbox={self.sandbox is not None})"

    def client_for(self, headers: Mapping[str, str] | None = None) -> CloseClient:
        """The client for the key in the request's `Close-API-Key` header, else the default."""
        signed_in = get_access_token() if self.sign_in is not None else None
        bearer = isinstance(signed_in, CloseAccessToken)
        key = None
        caller = None
        if isinstance(signed_in, CloseAccessToken):
            # Tokens are the person's: their Close user in their organization, not the access
            # token (refreshed while a confirmation is pending).
            caller = caller_digest(close_identity(signed_in.close_user, signed_in.close_org))
            # Signed in with Close: act with that person's Close token, whatever else came.
            key = signed_in.close_token.get_secret_value()
            AUDIT_CALLER.set({"close_user": signed_in.close_user, "close_org": signed_in.close_org})
        elif headers is not None:
            key = next((v for k, v in headers.items() if k.lower() == KEY_HEADER), None)
        key = (key or "").strip() or (None if self.sign_in is not None else self._default_key)
        if not key:
            raise MissingAPIKey(
                "No Close API key: set CLOSE_API_KEY for the server or send a Close-API-Key header."
            )
        slot = ("bearer:" if bearer else "") + hashlib.sha256(key.encode()).hexdigest()
        client = self._clients.get(slot)
        if client is None:
            # Through the store, every replica on this key paces from one rate-limit budget.
            client = CloseClient(
                key,
                self._base_url,
                transport=self._transport,
                clock=self.clock,
                store=self.store,
                timezone=self.settings.timezone,
                bearer=bearer,
                caller=caller,
            )
            self._clients[slot] = client
            if len(self._clients) > MAX_CLIENTS:
                _, oldest = self._clients.popitem(last=False)
                self._retiring.append(oldest)
            self._close_idle()
        self._clients.move_to_end(slot)
        return client

    def _close_idle(self) -> None:
        """Close evicted clients that no call is using any more (their sockets with them);
        one still in use is closed on a later sweep, so no request is cut off."""
        still_used = []
        for client in self._retiring:
            if client.idle:
                task = asyncio.get_running_loop().create_task(client.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            else:
                still_used.append(client)
        self._retiring = still_used

    def call(self, headers: Mapping[str, str] | None = None) -> Call:
        client = self.client_for(headers)
        return Call(client=client, catalog=Catalog(client))

    async def aclose(self) -> None:
        await self.server_jobs.aclose()
        for client in [*self._clients.values(), *self._retiring]:
            await client.aclose()
        self._clients.clear()
        self._retiring.clear()
        if self._closing:
            await asyncio.gather(*self._closing)
        if self.sign_in is not None:
            await self.sign_in.close.aclose()
        await self.store.aclose()
