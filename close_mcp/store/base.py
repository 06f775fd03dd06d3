"""The interface every store implements, and the lock helper built on it."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

import anyio

from close_mcp.clock import Clock
from close_mcp.errors import Busy, LockLost

log = logging.getLogger(__name__)

T = TypeVar("T")
# A read-modify-write: the current value (None when absent) -> (the new value, the result).
Update = Callable[[str | None], tuple[str, T]]


class StateStore(Protocol):
    """Atomic operations on string values under namespaced keys."""

    async def add(self, key: str, value: str, *, ttl_s: float | None = None) -> bool:
        """Set `key` only if it is absent; True when this call set it."""
        ...

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str, *, ttl_s: float | None = None) -> None: ...

    async def delete(self, key: str, *, if_value: str | None = None) -> bool:
        """Remove `key` (only while it holds `if_value`, when given); True if removed.
        Without `if_value` a list under `key` is removed too."""
        ...

    async def update(self, key: str, change: Update[T], *, ttl_s: float | None = None) -> T:
        """Apply `change` atomically to the value of `key`; its second item is returned."""
        ...

    async def append(self, key: str, line: str) -> None:
        """Add one line at the end of the list under `key` (journals, revert records)."""
        ...

    async def extend(self, key: str, lines: Sequence[str]) -> None:
        """Add `lines` at the end of the list under `key`, in order, in one write (a page
        of a snapshot or a backup: one transaction, not one per line)."""
        ...

    async def lines(self, key: str) -> list[str]: ...

    def iter_lines(self, key: str, *, batch: int = 1000) -> AsyncIterator[list[str]]:
        """The list under `key` in order, `batch` lines at a time, never all of it at once
        (a 100,000-lead backup is read back this way)."""
        ...

    async def aclose(self) -> None: ...


@asynccontextmanager
async def held(
    store: StateStore,
    name: str | Sequence[str],
    *,
    ttl_s: float,
    busy: str,
    renew: Clock | None = None,
) -> AsyncIterator[None]:
    """Hold the lock `name` (or every lock of a list, taken in order: all or none) for the
    block, or raise `Busy(busy)` when someone else holds one.

    A lock expires after `ttl_s` even if its holder dies, so a crash cannot wedge it. With
    `renew`, the locks are renewed every third of `ttl_s` (of that clock) while the block
    runs, by one task (a fake clock advanced by several renewers would outrun their time to
    live), so they outlive a long block (a restore) but not a dead process. Each is released
    only while it is still ours, and also when the block is cancelled."""
    owner = secrets.token_hex(8)
    names = [name] if isinstance(name, str) else list(name)
    taken: list[str] = []
    try:
        for each in names:
            if not await store.add(f"lock:{each}", owner, ttl_s=ttl_s):
                raise Busy(busy)
            taken.append(each)
        if renew is None:
            yield
            return
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_renew, store, taken, owner, ttl_s, renew)
                try:
                    yield
                finally:
                    tasks.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # the block's own error, not wrapped by the group
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
    finally:
        with anyio.CancelScope(shield=True):
            for each in taken:
                await store.delete(f"lock:{each}", if_value=owner)


async def is_held(store: StateStore, name: str) -> bool:
    """Whether someone holds the lock `name` now (taken by `held`, not yet expired)."""
    return await store.get(f"lock:{name}") is not None


async def _renew(
    store: StateStore, names: list[str], owner: str, ttl_s: float, clock: Clock
) -> None:
    """Renew the locks `names` of `owner` every third of `ttl_s` until one is not ours."""

    def renewed(current: str | None) -> tuple[str, bool]:
        if current != owner:
            raise LockLost
        return owner, True

    while True:
        await clock.sleep(ttl_s / 3)
        for name in names:
            try:
                await store.update(f"lock:{name}", renewed, ttl_s=ttl_s)
            except LockLost:
                log.error("the lock %s expired while held", name)
                return
            except Exception as exc:  # a store hiccup: try again on the next beat
                log.warning("could not renew the lock %s: %s", name, exc)
