"""Every store keeps the same contract: atomic set-if-absent, expiry, conditional delete,
read-modify-write, append-only lines; SQLite across connections, Redis for real."""

from __future__ import annotations

import secrets
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from close_mcp.clock import FakeClock
from close_mcp.store import Busy, StateStore, held, open_store
from close_mcp.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "memory", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[StateStore, FakeClock | None]]:
    clock = FakeClock()
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        opened = open_store(url)
        namespace = secrets.token_hex(4)  # tests share one server: keep their keys apart
        yield _Namespaced(opened, namespace), None
    else:
        where = tmp_path / "state.sqlite3" if request.param == "sqlite" else ":memory:"
        opened = open_store(where, clock=clock)
        yield opened, clock
    await opened.aclose()


class _Namespaced:
    """The same store with every key under a per-test prefix."""

    def __init__(self, inner: StateStore, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix + ":"

    def __getattr__(self, name: str) -> object:
        method = getattr(self.inner, name)

        def call(key: str, *args: object, **kwargs: object) -> object:
            return method(self.prefix + key, *args, **kwargs)

        return call


async def test_add_sets_only_once(store: tuple[StateStore, FakeClock | None]) -> None:
    s, _ = store
    assert await s.add("nonce:a", "1") is True
    assert await s.add("nonce:a", "2") is False
    assert await s.get("nonce:a") == "1"
    assert await s.get("nonce:b") is None


async def test_concurrent_adds_have_one_winner(store: tuple[StateStore, FakeClock | None]) -> None:
    s, _ = store
    won: list[bool] = []

    async def one(i: int) -> None:
        won.append(await s.add("nonce:race", str(i), ttl_s=60))

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(one, i)
    assert won.count(True) == 1
    assert len(won) == 50


async def test_expired_keys_are_gone(tmp_path: Path) -> None:
    clock = FakeClock()
    s = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
    assert await s.add("lock:x", "me", ttl_s=10)
    clock.advance(9.999)
    assert await s.add("lock:x", "other", ttl_s=10) is False
    clock.advance(0.001)
    assert await s.get("lock:x") is None
    assert await s.add("lock:x", "other", ttl_s=10) is True
    await s.aclose()


async def test_redis_keys_expire(redis_url: str) -> None:
    s = open_store(redis_url)
    key = "nonce:" + secrets.token_hex(6)
    assert await s.add(key, "1", ttl_s=0.001)
    for _ in range(200):  # bounded: Redis expires it within milliseconds
        if await s.get(key) is None:
            break
        await anyio.sleep(0.005)
    assert await s.get(key) is None
    await s.aclose()


async def test_delete_only_while_it_holds_the_value(
    store: tuple[StateStore, FakeClock | None],
) -> None:
    s, _ = store
    await s.put("lock:y", "owner-a")
    assert await s.delete("lock:y", if_value="owner-b") is False
    assert await s.get("lock:y") == "owner-a"
    assert await s.delete("lock:y", if_value="owner-a") is True
    assert await s.delete("lock:y") is False


async def test_update_is_atomic(store: tuple[StateStore, FakeClock | None]) -> None:
    s, _ = store

    def bump(current: str | None) -> tuple[str, int]:
        n = int(current or "0") + 1
        return str(n), n

    seen: list[int] = []

    async def one() -> None:
        seen.append(await s.update("counter", bump))

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(one)
    assert sorted(seen) == list(range(1, 41))
    assert await s.get("counter") == "40"


async def test_lines_keep_their_order(store: tuple[StateStore, FakeClock | None]) -> None:
    s, _ = store
    assert await s.lines("journal") == []
    for i in range(5):
        await s.append("journal", f'{{"n": {i}}}')
    assert await s.lines("journal") == [f'{{"n": {i}}}' for i in range(5)]


async def test_long_lists_are_written_by_page_and_read_back_in_batches(
    store: tuple[StateStore, FakeClock | None],
) -> None:
    s, _ = store
    lines = [f'["lead_{i:05d}", {i}]' for i in range(2345)]
    await s.extend("snapshot-leads:x", [])  # an empty page writes nothing
    for start in range(0, len(lines), 200):
        await s.extend("snapshot-leads:x", lines[start : start + 200])
    await s.append("snapshot-leads:other", "not mine")
    batches = [batch async for batch in s.iter_lines("snapshot-leads:x", batch=1000)]
    assert [len(b) for b in batches] == [1000, 1000, 345]
    assert [line for b in batches for line in b] == lines == await s.lines("snapshot-leads:x")
    assert [b async for b in s.iter_lines("snapshot-leads:none")] == []
    # Deleting the key removes its list (a failed snapshot leaves no half-written leads).
    assert await s.delete("snapshot-leads:x")
    assert await s.lines("snapshot-leads:x") == []
    assert await s.lines("snapshot-leads:other") == ["not mine"]
    assert not await s.delete("snapshot-leads:x")


async def test_held_lock_refuses_a_second_holder_and_frees_itself(
    store: tuple[StateStore, FakeClock | None],
) -> None:
    s, _ = store
    async with held(s, "revert:bulkedit_1", ttl_s=60, busy="a revert of bulkedit_1 is running"):
        with pytest.raises(Busy, match="a revert of bulkedit_1 is running"):
            async with held(
                s, "revert:bulkedit_1", ttl_s=60, busy="a revert of bulkedit_1 is running"
            ):
                pass
    async with held(s, "revert:bulkedit_1", ttl_s=60, busy="busy"):
        pass


def test_two_connections_to_one_file_have_one_winner(tmp_path: Path) -> None:
    """Two processes share the file; two connections from two threads stand in for them."""
    path = tmp_path / "shared.sqlite3"
    stores = [SQLiteStore(path), SQLiteStore(path)]
    results: list[bool] = []
    start = threading.Barrier(len(stores) * 10)

    def run(s: SQLiteStore, i: int) -> None:
        start.wait()
        results.append(anyio.run(s.add, "nonce:shared", str(i)))

    threads = [threading.Thread(target=run, args=(s, i)) for i, s in enumerate(stores * 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert len(results) == 20
    for s in stores:
        anyio.run(s.aclose)


def test_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "s.sqlite3"
    s = SQLiteStore(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert repr(s) == f"SQLiteStore({str(path)!r})"
    anyio.run(s.aclose)


def test_redis_repr_hides_the_password() -> None:
    s = open_store("redis://user:s3cret-pass@127.0.0.1:6399/0")
    assert "s3cret" not in repr(s)
