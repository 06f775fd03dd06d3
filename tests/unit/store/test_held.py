"""`held` over several locks: all or none are taken, and a refusal leaves none behind."""

from __future__ import annotations

import pytest

from close_mcp.clock import FakeClock
from close_mcp.store import Busy, held, open_store

pytestmark = pytest.mark.anyio


async def test_a_busy_second_lock_releases_the_first_and_runs_nothing() -> None:
    store = open_store(":memory:")
    try:
        assert await store.add("lock:restore:b", "someone else", ttl_s=60)
        ran = False
        with pytest.raises(Busy, match="busy: b is held"):
            async with held(
                store, ["restore:a", "restore:b"], ttl_s=60, busy="busy: b is held",
                renew=FakeClock(),
            ):  # fmt: skip
                ran = True
        assert not ran
        assert await store.get("lock:restore:a") is None
        assert await store.get("lock:restore:b") == "someone else"
        async with held(store, ["restore:a", "restore:c"], ttl_s=60, busy="x", renew=FakeClock()):
            assert await store.get("lock:restore:a") is not None
            assert await store.get("lock:restore:c") == await store.get("lock:restore:a")
        assert await store.get("lock:restore:a") is None
        assert await store.get("lock:restore:c") is None
    finally:
        await store.aclose()
