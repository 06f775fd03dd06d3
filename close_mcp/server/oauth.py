"""Sign in with Close: close-mcp as the MCP authorization server in front of Close's OAuth.

The MCP Python SDK serves the protocol: protected-resource metadata (RFC 9728),
authorization-server metadata (RFC 8414), dynamic client registration (RFC 7591), the
authorize and token endpoints with PKCE S256, `state`, exact redirect URIs and the `resource`
indicator (RFC 8707), revocation, the `401` with `WWW-Authenticate: Bearer resource_metadata=`,
and the RFC error codes. `CloseSignIn` is the provider behind them:

- `authorize` keeps the client's request (under a fresh `state` of our own, in the store) and
  sends the person to Close's consent screen with the operator's Close OAuth app and our
  callback (`/oauth/callback`); the callback exchanges Close's code, keeps Close's tokens and
  sends the person back to the MCP client's exact redirect URI with a code of ours.
- Tokens close-mcp issues are its own random strings (access: 15 minutes; refresh: 30 days,
  rotated on use), stored only as SHA-256 digests, each naming a grant. A grant holds the
  Close user and organization and Close's tokens, encrypted with Fernet (the `cryptography`
  package: authenticated AES-CBC + HMAC, a maintained implementation rather than our own)
  under a key derived from `CLOSE_MCP_SECRET`, so every replica sharing the secret and the
  store accepts a token and can use the grant. Close's access token is refreshed when it has
  less than `CLOSE_REFRESH_MARGIN_S` left, under a lock in the store (one refresh per grant).
- A code and a refresh token are spent atomically in the store (`add` of a spent marker):
  a second use is `invalid_grant` on every replica. Revoking either token ends the grant.

The Close token reaches a tool through the SDK's authenticated user (`CloseAccessToken`), and
`Runtime.client_for` sends it as `Authorization: Bearer`. Nothing of Close's tokens appears in
an OAuth error, a log line or a repr.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from typing import Any, Final
from urllib.parse import parse_qs

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyHttpUrl, SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from close_mcp.clock import Clock, SystemClock
from close_mcp.close.oauth import CloseOAuthApp, CloseTokens
from close_mcp.errors import CloseOAuthError
from close_mcp.store import StateStore

log = logging.getLogger(__name__)

ACCESS_LIFETIME_S: Final = 15 * 60
REFRESH_LIFETIME_S: Final = 30 * 24 * 3600
CODE_LIFETIME_S: Final = 5 * 60
PENDING_LIFETIME_S: Final = 10 * 60
CLOSE_REFRESH_MARGIN_S: Final = 5 * 60
CALLBACK_PATH: Final = "/oauth/callback"
# With `--sandbox`, the sandbox's consent screen, served by this server for the browser.
SANDBOX_AUTHORIZE_PATH: Final = "/sandbox/oauth2/authorize/"
SCOPE: Final = "close"


class CloseAccessToken(AccessToken):
    """One of our access tokens, verified: who it is (Close user and org) and the Close token
    to act with. The Close token is excluded from dumps and repr."""

    close_token: SecretStr
    close_user: str
    close_org: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token_fields(token: str, record: dict[str, Any]) -> dict[str, Any]:
    """An access or refresh token's stored record, as the SDK's token types take it."""
    keys = ("client_id", "scopes", "expires_at")
    return {"token": token, **{k: record[k] for k in keys}, "resource": record.get("resource")}


def _cipher(secret: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"close-mcp oauth close tokens"
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class CloseSignIn:
    """The SDK's `OAuthAuthorizationServerProvider`, backed by Close's OAuth and the store."""

    def __init__(
        self,
        close: CloseOAuthApp,
        store: StateStore,
        *,
        public_url: str,
        secret: str,
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self.close = close
        self.store = store
        self.public_url = public_url.rstrip("/")
        self.callback_url = self.public_url + CALLBACK_PATH
        self._cipher = _cipher(secret)

    def __repr__(self) -> str:
        return f"CloseSignIn(public_url={self.public_url!r})"

    # -- clients (RFC 7591) -------------------------------------------------------------

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        raw = await self.store.get(f"oauth:client:{client_id}")
        return None if raw is None else OAuthClientInformationFull.model_validate_json(raw)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        await self.store.put(f"oauth:client:{client_info.client_id}", client_info.model_dump_json())

    # -- authorize: to Close's consent screen and back ---------------------------------

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        if params.resource is not None and params.resource.rstrip("/") != self.resource_url:
            raise AuthorizeError("invalid_target", "this server's resource is its /mcp URL")
        state = secrets.token_urlsafe(32)
        pending = {"client_id": client.client_id, "params": params.model_dump(mode="json")}
        await self.store.put(
            f"oauth:pending:{state}", json.dumps(pending), ttl_s=PENDING_LIFETIME_S
        )
        return self.close.consent_url(self.callback_url, state)

    @property
    def resource_url(self) -> str:
        return self.public_url + "/mcp"

    async def callback(self, request: Request) -> Response:
        """Close sends the person back here with its code and our state."""
        state = request.query_params.get("state", "")
        raw = await self.store.get(f"oauth:pending:{state}") if state else None
        if raw is None or not await self.store.delete(f"oauth:pending:{state}"):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "unknown or used state"}, 400
            )
        pending = json.loads(raw)
        params = AuthorizationParams.model_validate(pending["params"])
        back = str(params.redirect_uri)
        if (denied := request.query_params.get("error")) is not None:
            error = "access_denied" if denied == "access_denied" else "server_error"
            return RedirectResponse(
                construct_redirect_uri(back, error=error, state=params.state), 302
            )
        code = request.query_params.get("code", "")
        try:
            tokens = await self.close.exchange_code(code, self.callback_url)
        except CloseOAuthError as exc:
            log.warning("Close refused the sign-in: %s", exc.error)
            return RedirectResponse(
                construct_redirect_uri(back, error="access_denied", state=params.state), 302
            )
        grant = await self._new_grant(pending["client_id"], params, tokens)
        ours = secrets.token_urlsafe(32)
        record = AuthorizationCode(
            code=ours,
            scopes=params.scopes or [SCOPE],
            expires_at=self._clock.time() + CODE_LIFETIME_S,
            client_id=pending["client_id"],
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject=grant["user"],
        )
        stored = {"code": record.model_dump(mode="json"), "grant": grant["id"]}
        await self.store.put(
            f"oauth:code:{_digest(ours)}", json.dumps(stored), ttl_s=CODE_LIFETIME_S
        )
        return RedirectResponse(construct_redirect_uri(back, code=ours, state=params.state), 302)

    async def _new_grant(
        self, client_id: str, params: AuthorizationParams, tokens: CloseTokens
    ) -> dict[str, Any]:
        user, org = tokens.user_id, tokens.organization_id
        if user is None or org is None:
            user, org = await self.close.whoami(tokens.access_token)
        grant = {
            "id": secrets.token_urlsafe(16),
            "client_id": client_id,
            "user": user,
            "org": org,
            "resource": params.resource,
            "close": self._seal(tokens),
        }
        await self.store.put(
            f"oauth:grant:{grant['id']}", json.dumps(grant), ttl_s=REFRESH_LIFETIME_S
        )
        return grant

    # -- codes and tokens ----------------------------------------------------------------

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        stored = await self._record("code", authorization_code)
        if stored is None:
            return None
        record = AuthorizationCode.model_validate(stored["code"])
        return record if record.client_id == client.client_id else None

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        key = f"oauth:code:{_digest(authorization_code.code)}"
        raw = await self._spend(key, CODE_LIFETIME_S, "authorization code")
        return await self._issue(
            json.loads(raw)["grant"], client.client_id, authorization_code.scopes
        )

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        record = await self._record("refresh", refresh_token)
        if record is None or record["client_id"] != client.client_id:
            return None
        return RefreshToken(**_token_fields(refresh_token, record))

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        key = f"oauth:refresh:{_digest(refresh_token.token)}"
        raw = await self._spend(key, REFRESH_LIFETIME_S, "refresh token")
        grant_id = json.loads(raw)["grant"]
        return await self._issue(grant_id, client.client_id, scopes or refresh_token.scopes)

    async def _spend(self, key: str, ttl_s: int, what: str) -> str:
        """The single-use record at `key` (a code, a refresh token), spent before anything is
        issued: of two concurrent exchanges on any replicas, one wins; a later one is refused."""
        raw = await self.store.get(key)
        spent = await self.store.add(f"{key}:spent", "1", ttl_s=ttl_s)
        if raw is None or not spent:
            raise TokenError("invalid_grant", f"{what} already used")
        await self.store.delete(key)
        return raw

    async def _issue(self, grant_id: str, client_id: str, scopes: list[str]) -> OAuthToken:
        grant = await self._grant(grant_id)
        if grant is None:
            raise TokenError("invalid_grant", "the sign-in was revoked")
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = int(self._clock.time())
        common: dict[str, Any] = {"grant": grant_id, "client_id": client_id, "scopes": scopes}
        common["resource"] = grant.get("resource")
        await self.store.put(
            f"oauth:access:{_digest(access)}",
            json.dumps({**common, "expires_at": now + ACCESS_LIFETIME_S}),
            ttl_s=ACCESS_LIFETIME_S,
        )
        await self.store.put(
            f"oauth:refresh:{_digest(refresh)}",
            json.dumps({**common, "expires_at": now + REFRESH_LIFETIME_S}),
            ttl_s=REFRESH_LIFETIME_S,
        )
        return OAuthToken(
            access_token=access,
            token_type="Bearer",  # noqa: S106 - the token type, not a secret
            expires_in=ACCESS_LIFETIME_S,
            refresh_token=refresh,
            scope=" ".join(scopes),
        )

    async def load_access_token(self, token: str) -> CloseAccessToken | None:
        record = await self._record("access", token)
        if record is None or record["expires_at"] <= self._clock.time():
            return None
        grant = await self._grant(record["grant"])
        if grant is None:
            return None
        close = await self._fresh_close_tokens(grant)
        if close is None:
            return None
        return CloseAccessToken(
            **_token_fields(token, record),
            # Sessions and sealed requestState are bound to (client, issuer, subject): the
            # person in that organization.
            subject=f"{grant['org']}/{grant['user']}",
            claims={"iss": self.public_url},
            close_token=SecretStr(close.access_token),
            close_user=grant["user"],
            close_org=grant["org"],
        )

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        """Ends the whole sign-in: both tokens stop working on every replica."""
        for kind in ("access", "refresh"):
            raw = await self.store.get(f"oauth:{kind}:{_digest(token.token)}")
            if raw is not None:
                await self.store.delete(f"oauth:grant:{json.loads(raw)['grant']}")
                await self.store.delete(f"oauth:{kind}:{_digest(token.token)}")

    # -- grants ----------------------------------------------------------------------------

    async def _record(self, kind: str, secret: str) -> dict[str, Any] | None:
        """What the store keeps of a code or token of `kind` (by its digest: the secret itself
        is never stored); None when it has none."""
        raw = await self.store.get(f"oauth:{kind}:{_digest(secret)}")
        return None if raw is None else dict(json.loads(raw))

    async def _grant(self, grant_id: str) -> dict[str, Any] | None:
        raw = await self.store.get(f"oauth:grant:{grant_id}")
        return None if raw is None else dict(json.loads(raw))

    def _seal(self, tokens: CloseTokens) -> str:
        plain = {
            "access": tokens.access_token,
            "refresh": tokens.refresh_token,
            "expires_at": tokens.expires_at,
        }
        return self._cipher.encrypt(json.dumps(plain).encode()).decode()

    def _open(self, sealed: str) -> CloseTokens | None:
        try:
            plain = json.loads(self._cipher.decrypt(sealed.encode()))
        except InvalidToken:  # another secret: this replica cannot act for the grant
            return None
        return CloseTokens(plain["access"], plain["refresh"], plain["expires_at"])

    async def _fresh_close_tokens(self, grant: dict[str, Any]) -> CloseTokens | None:
        """Close's tokens for the grant, refreshed first when they are about to expire."""
        close = self._open(grant["close"])
        if close is None or close.expires_at - self._clock.time() > CLOSE_REFRESH_MARGIN_S:
            return close
        if close.refresh_token is None:
            return close if close.expires_at > self._clock.time() else None
        lock = f"oauth:refreshing:{grant['id']}"
        if not await self.store.add(lock, "1", ttl_s=30.0):
            # Another call is refreshing it; the current token is still good for a while.
            return close if close.expires_at > self._clock.time() else None
        try:
            latest = await self._grant(grant["id"])
            if latest is None:
                return None
            current = self._open(latest["close"])
            if (
                current is not None
                and current.expires_at - self._clock.time() > CLOSE_REFRESH_MARGIN_S
            ):
                return current  # refreshed meanwhile by another replica
            try:
                renewed = await self.close.refresh(close.refresh_token)
            except CloseOAuthError as exc:
                log.warning("Close refused to refresh a sign-in: %s", exc.error)
                return close if close.expires_at > self._clock.time() else None
            latest["close"] = self._seal(renewed)
            await self.store.put(
                f"oauth:grant:{grant['id']}", json.dumps(latest), ttl_s=REFRESH_LIFETIME_S
            )
            return renewed
        finally:
            await self.store.delete(lock)


GRANT_TYPES: Final = frozenset({"authorization_code", "refresh_token"})
_FORM_LIMIT: Final = 64_000


class KnownGrantTypes:
    """In front of the SDK's token endpoint: a grant type it does not serve is
    `unsupported_grant_type`, as RFC 6749 (5.2) names it (the SDK answers `invalid_request`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more and len(body) <= _FORM_LIMIT:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        grant = parse_qs(body.decode("latin-1")).get("grant_type", [None])[0]
        if not more and grant is not None and grant not in GRANT_TYPES:
            answer = JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": f"use one of {sorted(GRANT_TYPES)}",
                },
                400,
                headers={"Cache-Control": "no-store"},
            )
            await answer(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)


def auth_settings(public_url: str) -> AuthSettings:
    """The SDK's settings: we are both the authorization server and the resource server."""
    base = public_url.rstrip("/")
    return AuthSettings(
        issuer_url=AnyHttpUrl(base),
        resource_server_url=AnyHttpUrl(base + "/mcp"),
        validate_token_resource=True,
        required_scopes=[SCOPE],
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=[SCOPE], default_scopes=[SCOPE]
        ),
        revocation_options=RevocationOptions(enabled=True),
    )
