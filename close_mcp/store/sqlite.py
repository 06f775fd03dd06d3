"""The default store: one SQLite file that every process on the machine shares.

Each operation is one short transaction, run on a worker thread so that waiting for the
disk never stalls the event loop; `BEGIN IMMEDIATE` takes the write lock first, so "set if
absent" and read-modify-write are atomic across processes. WAL mode lets readers go on
meanwhile. Lists (`append`/`extend`) are rows of their own, read back in batches by
sequence number. Expiry is a column compared with the store's clock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Final, TypeVar

import anyio

from close_mcp.clock import Clock, SystemClock
from close_mcp.store.base import Update

T = TypeVar("T")
MEMORY: Final = ":memory:"
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL)",
    "CREATE TABLE IF NOT EXISTS lines ("
    "seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, line TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS lines_key ON lines (key, seq)",
)


class SQLiteStore:
    def __init__(self, path: str | Path, *, clock: Clock | None = None) -> None:
        self.path = str(path)
        self._clock = clock or SystemClock()
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()  # one connection, used from any thread one at a time
        with self._lock:
            if self.path != MEMORY:
                self._db.execute("PRAGMA journal_mode=WAL")
                Path(self.path).chmod(0o600)
            for statement in _SCHEMA:
                self._db.execute(statement)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    async def add(self, key: str, value: str, *, ttl_s: float | None = None) -> bool:
        def add() -> bool:
            with self._transaction() as db:
                if self._live(db, key) is not None:
                    return False
                self._write(db, key, value, ttl_s)
                return True

        return await _off_loop(add)

    async def get(self, key: str) -> str | None:
        def get() -> str | None:
            with self._transaction() as db:
                return self._live(db, key)

        return await _off_loop(get)

    async def put(self, key: str, value: str, *, ttl_s: float | None = None) -> None:
        def put() -> None:
            with self._transaction() as db:
                self._write(db, key, value, ttl_s)

        await _off_loop(put)

    async def delete(self, key: str, *, if_value: str | None = None) -> bool:
        def delete() -> bool:
            with self._transaction() as db:
                listed = 0
                if if_value is None:
                    listed = db.execute("DELETE FROM lines WHERE key = ?", (key,)).rowcount
                current = self._live(db, key)
                if current is None or (if_value is not None and current != if_value):
                    return listed > 0
                db.execute("DELETE FROM kv WHERE key = ?", (key,))
                return True

        return await _off_loop(delete)

    async def update(self, key: str, change: Update[T], *, ttl_s: float | None = None) -> T:
        def update() -> T:
            with self._transaction() as db:
                value, result = change(self._live(db, key))
                self._write(db, key, value, ttl_s)
                return result

        return await _off_loop(update)

    async def append(self, key: str, line: str) -> None:
        await self.extend(key, [line])

    async def extend(self, key: str, lines: Sequence[str]) -> None:
        def extend() -> None:
            with self._transaction() as db:
                db.executemany(
                    "INSERT INTO lines (key, line) VALUES (?, ?)", [(key, line) for line in lines]
                )

        if lines:
            await _off_loop(extend)

    async def lines(self, key: str) -> list[str]:
        return [line async for batch in self.iter_lines(key) for line in batch]

    async def iter_lines(self, key: str, *, batch: int = 1000) -> AsyncIterator[list[str]]:
        after = -1  # the last seq read: each batch is an index range scan, never an OFFSET

        def read() -> list[tuple[int, str]]:
            with self._transaction(write=False) as db:
                rows = db.execute(
                    "SELECT seq, line FROM lines WHERE key = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (key, after, batch),
                )
                return [(int(row[0]), str(row[1])) for row in rows]

        while True:
            rows = await _off_loop(read)
            if not rows:
                return
            yield [line for _, line in rows]
            if len(rows) < batch:
                return
            after = rows[-1][0]

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                self._db.close()

        await _off_loop(close)

    # -- internals ---------------------------------------------------------------------

    def _transaction(self, *, write: bool = True) -> _Transaction:
        return _Transaction(self._db, self._lock, write=write)

    def _live(self, db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT value, expires FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if row[1] is not None and row[1] <= self._clock.time():
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return None
        return str(row[0])

    def _write(self, db: sqlite3.Connection, key: str, value: str, ttl_s: float | None) -> None:
        expires = None if ttl_s is None else self._clock.time() + ttl_s
        db.execute(
            "INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
            (key, value, expires),
        )


async def _off_loop(operation: Callable[[], T]) -> T:
    """Run one operation on a worker thread: a write waits for the disk (and for another
    process's lock, up to 30 s), and the event loop serves other calls meanwhile."""
    return await anyio.to_thread.run_sync(operation)


class _Transaction:
    """`BEGIN IMMEDIATE` (`BEGIN` for a read) ... `COMMIT` (or `ROLLBACK` on an error) under
    the connection lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, *, write: bool) -> None:
        self._db = db
        self._lock = lock
        self._begin = "BEGIN IMMEDIATE" if write else "BEGIN"

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute(self._begin)
        except BaseException:
            self._lock.release()
            raise
        return self._db

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
        finally:
            self._lock.release()
