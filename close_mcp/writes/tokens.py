"""Confirmation tokens: proof that exactly this request, on this many leads, was previewed.

A token is `<payload>.<mac>`, both base64url. The payload names the tool, a digest of the
exact request body and path, the matched count, the caller (a keyed tag of the opaque caller
identity digest `CloseClient.caller`: a colleague's key, or a key of another organization,
cannot confirm it), an expiry and a nonce; the MAC is
HMAC-SHA256 under `CLOSE_MCP_SECRET` (or a per-process random key). Changing any argument
changes the body, so the token no longer fits; a changed count is caught by the recount.
A token is single-use: its nonce is spent in the state store (`close_mcp.store`) before
anything is sent, atomically ("spend if not spent"), and stays spent until the token would
have expired anyway; replicas that share the secret and the store accept each other's tokens
but never one token twice, and a restart forgets nothing. The write pipeline also checks
Close's recent jobs for an identical request, a second line of defence.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from close_mcp.clock import Clock
from close_mcp.errors import TokenRejected
from close_mcp.store import StateStore
from close_mcp.store.sqlite import MEMORY, SQLiteStore

TOKEN_TTL_S: Final = 600.0
_MAX_TOKEN_LENGTH: Final = 1024


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def request_digest(tool: str, path: str, body: Any) -> str:
    return hashlib.sha256(canonical_json({"tool": tool, "path": path, "body": body})).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Minted:
    token: str
    expires_at: str
    nonce: str


class ConfirmationTokens:
    """Mints and checks tokens; remembers spent nonces until they would have expired anyway."""

    def __init__(
        self,
        secret: bytes,
        clock: Clock,
        *,
        ttl_s: float = TOKEN_TTL_S,
        store: StateStore | None = None,
    ) -> None:
        self._secret = secret
        self._clock = clock
        self._ttl = ttl_s
        self._store: StateStore = store or SQLiteStore(MEMORY, clock=clock)

    def __repr__(self) -> str:
        return f"ConfirmationTokens(ttl_s={self._ttl})"

    def mint(
        self,
        tool: str,
        path: str,
        body: Any,
        matched: int,
        *,
        caller: str,
        bound: str | None = None,
    ) -> Minted:
        """`caller`: who previewed (`CloseClient.caller`); `bound`: the digest of what the
        preview saw beyond the body (leads, content)."""
        expires = self._clock.time() + self._ttl
        nonce = secrets.token_urlsafe(12)
        payload = {
            "t": tool,
            "d": request_digest(tool, path, body),
            "m": matched,
            "c": self._caller_tag(caller),
            "e": round(expires, 3),
            "n": nonce,
        }
        if bound is not None:
            payload["b"] = bound
        encoded = _b64(canonical_json(payload))
        token = f"{encoded}.{self._mac(encoded)}"
        return Minted(token=token, expires_at=iso(expires), nonce=nonce)

    def bound(self, token: str) -> tuple[str, str | None]:
        """The token's nonce and the binding digest it carries (None: it binds nothing more)."""
        payload = self._payload(token)
        bound = payload.get("b")
        return str(payload.get("n", "")), bound if isinstance(bound, str) else None

    async def check(
        self, token: str, tool: str, path: str, body: Any, matched: int, *, caller: str
    ) -> str:
        """Raise `TokenRejected` unless the token fits this exact call by this `caller`;
        return its nonce."""
        payload = self._payload(token)
        if payload.get("t") != tool:
            raise TokenRejected(f"the confirmation token was issued for {payload.get('t')!r}")
        if not hmac.compare_digest(str(payload.get("c", "")), self._caller_tag(caller)):
            raise TokenRejected(
                "the confirmation token was issued to another caller (another Close API key "
                "or organization); confirm a preview made with your own key"
            )
        if float(payload.get("e", 0)) <= self._clock.time():
            raise TokenRejected("the confirmation token has expired (tokens last 10 minutes)")
        nonce = str(payload.get("n", ""))
        if await self._store.get(_spent_key(nonce)) is not None:
            raise TokenRejected("the confirmation token was already used")
        if payload.get("d") != request_digest(tool, path, body):
            raise TokenRejected(
                "the confirmation token was issued for different arguments; "
                "confirm the new preview instead"
            )
        if payload.get("m") != matched:
            raise TokenRejected(
                f"the selection now matches {matched} leads, not the {payload.get('m')} "
                "that were previewed"
            )
        return nonce

    def lead_key(self) -> bytes:
        """The key of the lead-set digest a token carries (`binding.LeadSet`), derived from
        the signing key: replicas that share `CLOSE_MCP_SECRET` compute the same digests,
        and no one without it can pick two sets of leads with the same one."""
        return hmac.new(self._secret, b"close-mcp lead set", hashlib.sha256).digest()

    def minted_at(self, token: str) -> float | None:
        try:
            return float(self._payload(token)["e"]) - self._ttl
        except (TokenRejected, KeyError, TypeError, ValueError):
            return None

    async def spend(self, token: str) -> None:
        """Mark the token used, atomically in the store, before anything is sent: of two
        calls with one token (on any replica), one spends it and the other is refused. A
        token that expired since it was checked (while its person answered) is refused."""
        payload = self._payload(token)
        lasts = float(payload.get("e", 0)) - self._clock.time()
        if lasts <= 0:
            raise TokenRejected("the confirmation token has expired (tokens last 10 minutes)")
        nonce = str(payload.get("n", ""))
        if not await self._store.add(_spent_key(nonce), "spent", ttl_s=max(lasts, 1.0)):
            raise TokenRejected("the confirmation token was already used")

    def _payload(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise TokenRejected("the confirmation token is malformed")
        encoded, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(encoded)):
            raise TokenRejected(
                "the confirmation token is not valid (forged, mistyped, or from a server with "
                "another CLOSE_MCP_SECRET)"
            )
        try:
            payload = json.loads(_unb64(encoded))
        except ValueError:
            raise TokenRejected("the confirmation token is malformed") from None
        if not isinstance(payload, dict):
            raise TokenRejected("the confirmation token is malformed")
        return payload

    def _caller_tag(self, caller: str) -> str:
        """The caller as a token carries it: keyed, so a token shows no digest of a key."""
        return _b64(
            hmac.new(self._secret, b"caller\x00" + caller.encode(), hashlib.sha256).digest()
        )[:22]

    def _mac(self, encoded: str) -> str:
        return _b64(hmac.new(self._secret, encoded.encode(), hashlib.sha256).digest())


def _spent_key(nonce: str) -> str:
    return f"nonce:{nonce}"


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")
