"""`ConfirmationTokens.spend`: the last step before a write leaves. The gate checks a token
once, before its person is asked; what can change while they answer is settled here."""

from __future__ import annotations

import pytest

from close_mcp.clock import FakeClock
from close_mcp.errors import TokenRejected
from close_mcp.store.sqlite import SQLiteStore
from close_mcp.writes.tokens import TOKEN_TTL_S, ConfirmationTokens

pytestmark = pytest.mark.anyio


def tokens() -> tuple[ConfirmationTokens, FakeClock]:
    clock = FakeClock()
    return ConfirmationTokens(b"s" * 32, clock, store=SQLiteStore(":memory:", clock=clock)), clock


async def test_a_token_that_expired_since_it_was_checked_is_not_spent() -> None:
    made, clock = tokens()
    token = made.mint("delete_leads", "lead/1/", {}, 1, caller="a").token
    await made.check(token, "delete_leads", "lead/1/", {}, 1, caller="a")
    clock.advance(TOKEN_TTL_S)  # its person answered as it expired
    with pytest.raises(TokenRejected, match=r"^the confirmation token has expired \(tokens"):
        await made.spend(token)


async def test_a_token_is_spent_once_until_it_expires() -> None:
    made, clock = tokens()
    token = made.mint("delete_leads", "lead/1/", {}, 1, caller="a").token
    clock.advance(TOKEN_TTL_S - 0.01)
    await made.spend(token)
    with pytest.raises(TokenRejected, match=r"^the confirmation token was already used$"):
        await made.spend(token)
