"""Locks in the state store are released only by their owner, and the restore lock lives as
long as the restore: a lock that expired while held must not free its successor's lock
(compare-and-delete in every store, Redis included), and a restore that runs longer than
the lock's lifetime keeps it renewed, so a second restore of the backup stays refused."""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskStatus

from close_mcp.clock import SystemClock
from close_mcp.safety.restore import RESTORE_LOCK_TTL_S, Progress, open_backup, run_restore
from close_mcp.store import Busy, StateStore, held, open_store
from close_mcp.store.sqlite import SQLiteStore
from close_mcp.writes.sender import Sender

pytestmark = pytest.mark.anyio
Hold = Callable[..., AbstractAsyncContextManager[None]]


class SteppedClock:
    """Time moves only when the test says so; `sleep` waits until then (no real sleeping)."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def time(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        wake = anyio.Event()
        self._sleepers.append((self._now + max(seconds, 0.0), wake))
        await wake.wait()

    async def advance(self, seconds: float, *, step: float = 5.0) -> None:
        """Move on `seconds`, `step` at a time, letting every woken task run in between."""
        end = self._now + seconds
        while self._now < end:
            self._now = min(end, self._now + step)
            due = [s for s in self._sleepers if s[0] <= self._now]
            self._sleepers = [s for s in self._sleepers if s[0] > self._now]
            for _, wake in due:
                wake.set()
            for _ in range(50):  # the woken renewals reach the store and sleep again
                await anyio.lowlevel.checkpoint()


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        opened = open_store(url)
    else:
        opened = open_store(tmp_path / "state.sqlite3")
    yield opened
    await opened.aclose()


# `held` renewing the lock while the block runs, as a restore holds it.
renewed = functools.partial(held, renew=SystemClock())


def _name() -> str:
    return f"revert:bulkedit_{secrets.token_hex(6)}"  # tests share one Redis: one lock each


@pytest.mark.parametrize("hold", [held, renewed], ids=["held", "renewed"])
async def test_release_of_an_expired_lock_leaves_the_new_holder_alone(
    store: StateStore, hold: Hold
) -> None:
    """Two blocks interleaved as they are in life: A takes the lock, it expires, B takes it,
    A ends (its release must leave B's lock), B is still protected, B ends."""
    name = _name()
    a_lost, a_may_end, b_took_it, a_ended = (anyio.Event() for _ in range(4))
    seen: list[str | None] = []

    async def a() -> None:
        async with hold(store, name, ttl_s=60, busy="a"):
            await store.delete(f"lock:{name}")  # A's lock expired while A worked
            a_lost.set()
            await a_may_end.wait()
        a_ended.set()

    async def b() -> None:
        async with hold(store, name, ttl_s=60, busy="b"):
            b_took_it.set()
            await a_ended.wait()
            seen.append(await store.get(f"lock:{name}"))
            try:
                async with held(store, name, ttl_s=60, busy="c"):
                    seen.append("c took the lock")
            except Busy:
                seen.append("c refused")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(a)
        await a_lost.wait()
        tasks.start_soon(b)
        await b_took_it.wait()
        a_may_end.set()
    assert seen[0] is not None  # B's lock survived A's release
    assert seen[1] == "c refused"
    assert await store.get(f"lock:{name}") is None  # B released its own lock


def _backup_file(tmp_path: Path) -> Path:
    path = tmp_path / "bulkdelete_renewal.jsonl"
    rows = [{"id": f"lead_{i}", "name": f"Lead {i}"} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_the_restore_lock_is_renewed_while_a_restore_runs(tmp_path: Path) -> None:
    clock = SteppedClock()
    store = SQLiteStore(tmp_path / "state.sqlite3", clock=clock)
    backup = await open_backup(store, str(_backup_file(tmp_path)))
    person_answered = anyio.Event()
    asked = anyio.Event()

    async def approve(progress: Progress) -> bool:
        asked.set()
        await person_answered.wait()  # the person reads the preview for minutes
        return False

    async def declined(progress: Progress) -> bool:
        return False

    def no_sender() -> Sender:
        raise AssertionError("nothing is sent in this test")

    async def first(*, task_status: TaskStatus[None]) -> None:
        task_status.started()
        await run_restore(store, backup, no_sender, approve=approve, clock=clock)

    async with anyio.create_task_group() as tasks:
        await tasks.start(first)
        await asked.wait()
        # Five lock lifetimes pass while the first restore still runs.
        await clock.advance(5 * RESTORE_LOCK_TTL_S)
        with pytest.raises(Busy, match="another restore of"):
            await run_restore(store, backup, no_sender, approve=declined, clock=clock)
        person_answered.set()
    # Once it ended, its lock is gone: the next run may take it.
    assert await store.get(f"lock:restore:{backup.id}") is None
    await store.aclose()


async def test_a_lock_left_by_a_dead_restore_expires(tmp_path: Path) -> None:
    """Renewal keeps a lock while its holder lives, never longer: without renewals (the
    holder died), the lock is gone after its lifetime."""
    clock = SteppedClock()
    store = SQLiteStore(tmp_path / "state.sqlite3", clock=clock)
    assert await store.add("lock:restore:bulkdelete_dead", "dead-owner", ttl_s=RESTORE_LOCK_TTL_S)
    await clock.advance(RESTORE_LOCK_TTL_S)
    async with held(
        store, "restore:bulkdelete_dead", ttl_s=RESTORE_LOCK_TTL_S, busy="busy", renew=clock
    ):
        pass
    await store.aclose()
