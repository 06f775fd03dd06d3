"""Close's OAuth, as the sandbox plays it: `/oauth2/authorize/` and `/oauth2/token/`.

As Close documents them, with what a scripted client needs: the consent screen signs the
seeded user in at once and sends the browser straight back with a `code` (no form), for the
one organization. Codes work once and for ten minutes; tokens are Close-shaped (`expires_in`,
`refresh_token`, `scope`, `user_id`, `organization_id`); a refresh token works once (it is
rotated); an access token is accepted on the API as `Authorization: Bearer <token>` until it
expires, as an API key is. Registered apps: `register(client_id, secret)`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from close_mcp.clock import Clock

CODE_LIFETIME_S: Final = 600.0
ACCESS_LIFETIME_S: Final = 3600.0
SCOPE: Final = "all.full_access offline_access"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str | None
    expires_at: float


class SandboxOAuth:
    def __init__(self, clock: Clock, user_id: str, organization_id: str) -> None:
        self._clock = clock
        self.user_id = user_id
        self.organization_id = organization_id
        self.access_lifetime_s = ACCESS_LIFETIME_S
        self._apps: dict[str, str] = {}
        self._codes: dict[str, _Grant] = {}
        self._access: dict[str, float] = {}  # token -> expiry
        self._refresh: dict[str, str] = {}  # token -> client id

    def register(self, client_id: str, client_secret: str) -> None:
        self._apps[client_id] = client_secret

    def accepts(self, token: str | None) -> bool:
        expires = self._access.get(token or "")
        return expires is not None and self._clock.time() < expires

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri")
        if client_id not in self._apps or not redirect_uri:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        back: dict[str, str] = {}
        if query.get("response_type") != "code":
            back["error"] = "unsupported_response_type"
        else:
            code = secrets.token_urlsafe(24)
            expires = self._clock.time() + CODE_LIFETIME_S
            self._codes[code] = _Grant(client_id, redirect_uri, expires)
            back["code"] = code
        if (state := query.get("state")) is not None:
            back["state"] = state
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        client_id = fields.get("client_id", "")
        known = self._apps.get(client_id)
        if known is None or fields.get("client_secret") != known:
            return _error("invalid_client", 401)
        grant_type = fields.get("grant_type")
        if grant_type == "authorization_code":
            grant = self._codes.pop(fields.get("code", ""), None)  # a code works once
            if (
                grant is None
                or grant.client_id != client_id
                or self._clock.time() >= grant.expires_at
                or fields.get("redirect_uri", grant.redirect_uri) != grant.redirect_uri
            ):
                return _error("invalid_grant", 400)
        elif grant_type == "refresh_token":
            owner = self._refresh.pop(fields.get("refresh_token", ""), None)  # rotated
            if owner != client_id:
                return _error("invalid_grant", 400)
        else:
            return _error("unsupported_grant_type", 400)
        return JSONResponse(self._issue(client_id), headers={"Cache-Control": "no-store"})

    def _issue(self, client_id: str) -> dict[str, object]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._access[access] = self._clock.time() + self.access_lifetime_s
        self._refresh[refresh] = client_id
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.access_lifetime_s),
            "refresh_token": refresh,
            "scope": SCOPE,
            "user_id": self.user_id,
            "organization_id": self.organization_id,
        }


def _error(code: str, status: int) -> Response:
    return JSONResponse({"error": code}, status_code=status)
