"""Close's side of OAuth: its consent screen, its token endpoint, and who a token belongs to.

As documented ("Authentication with OAuth"): the person is sent to
`https://app.close.com/oauth2/authorize/?client_id=...&response_type=code` and comes back with
`code`; `POST https://api.close.com/oauth2/token/`, form-encoded, exchanges it (and a refresh
token) for tokens; requests then carry `Authorization: Bearer <access token>`. Against another
API root (the sandbox, a test double) both endpoints live on that root's host.

Nothing of a token, a code or the app's secret appears in an error raised here: Close's
answer is reduced to its OAuth `error` code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import httpx

from close_mcp.clock import Clock, SystemClock
from close_mcp.errors import CloseOAuthError

CLOSE_AUTHORIZE_URL: Final = "https://app.close.com/oauth2/authorize/"
CLOSE_API_HOST: Final = "api.close.com"
_OAUTH_ERRORS: Final = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
    }
)


@dataclass(frozen=True)
class CloseTokens:
    """Close's tokens for one signed-in person; repr shows no token."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float
    user_id: str | None = None
    organization_id: str | None = None


class CloseOAuthApp:
    """The operator's Close OAuth app: its consent-screen URL and its token requests."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        authorize_url: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        parts = urlsplit(base_url)
        root = f"{parts.scheme}://{parts.netloc}"
        self.client_id = client_id
        self._secret = client_secret
        self.authorize_url = authorize_url or (
            CLOSE_AUTHORIZE_URL if parts.netloc == CLOSE_API_HOST else root + "/oauth2/authorize/"
        )
        self.token_url = root + "/oauth2/token/"
        self._api_root = base_url if base_url.endswith("/") else base_url + "/"
        self._http = httpx.AsyncClient(transport=transport, timeout=30.0)

    def __repr__(self) -> str:
        return f"CloseOAuthApp(client_id={self.client_id!r}, token_url={self.token_url!r})"

    def consent_url(self, redirect_uri: str, state: str) -> str:
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
        }
        return f"{self.authorize_url}?{urlencode(query)}"

    async def exchange_code(self, code: str, redirect_uri: str) -> CloseTokens:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        return await self._token(form)

    async def refresh(self, refresh_token: str) -> CloseTokens:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def _token(self, form: dict[str, str]) -> CloseTokens:
        body = {**form, "client_id": self.client_id, "client_secret": self._secret}
        try:
            answer = await self._http.post(self.token_url, data=body)
        except httpx.HTTPError as exc:
            raise CloseOAuthError("temporarily_unavailable", type(exc).__name__) from None
        try:
            data: Any = answer.json()
        except ValueError:
            data = None
        if answer.status_code != 200 or not isinstance(data, dict):
            code = data.get("error") if isinstance(data, dict) else None
            raise CloseOAuthError(
                code if code in _OAUTH_ERRORS else "server_error", f"HTTP {answer.status_code}"
            )
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise CloseOAuthError("server_error", "no access_token in Close's answer")
        refresh = data.get("refresh_token")
        lifetime = data.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
        return CloseTokens(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=self._clock.time() + seconds,
            user_id=_text(data.get("user_id")),
            organization_id=_text(data.get("organization_id")),
        )

    async def whoami(self, access_token: str) -> tuple[str, str]:
        """The Close user and organization a token acts for (`GET me/`), when the token
        answer did not name them."""
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        try:
            answer = await self._http.get(self._api_root + "me/", headers=headers)
            data: Any = answer.json()
        except (httpx.HTTPError, ValueError):
            raise CloseOAuthError("server_error", "GET me/ failed") from None
        orgs = data.get("organizations") if isinstance(data, dict) else None
        user = _text(data.get("id")) if isinstance(data, dict) else None
        if answer.status_code != 200 or user is None or not isinstance(orgs, list) or not orgs:
            raise CloseOAuthError("server_error", f"GET me/: HTTP {answer.status_code}")
        org = _text(orgs[0].get("id")) if isinstance(orgs[0], dict) else None
        if org is None:
            raise CloseOAuthError("server_error", "GET me/ names no organization")
        return user, org

    async def aclose(self) -> None:
        await self._http.aclose()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
