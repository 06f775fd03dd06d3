"""The default store: one SQLite file that every process on the machine shares.

Each operation is one short transaction; `BEGIN IMMEDIATE` takes the write lock first, so
"set if absent" and read-modify-write are atomic across processes. WAL mode lets readers
go on meanwhile. Expiry is a column compared with the store's clock.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Final, TypeVar

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
        with self._transaction() as db:
            if self._live(db, key) is not None:
                return False
            self._write(db, key, value, ttl_s)
            return True

    async def get(self, key: str) -> str | None:
        with self._transaction() as db:
            return self._live(db, key)

    async def put(self, key: str, value: str, *, ttl_s: float | None = None) -> None:
        with self._transaction() as db:
            self._write(db, key, value, ttl_s)

    async def delete(self, key: str, *, if_value: str | None = None) -> bool:
        with self._transaction() as db:
            current = self._live(db, key)
            if current is None or (if_value is not None and current != if_value):
                return False
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return True

    async def update(self, key: str, change: Update[T], *, ttl_s: float | None = None) -> T:
        with self._transaction() as db:
            value, result = change(self._live(db, key))
            self._write(db, key, value, ttl_s)
            return result

    async def append(self, key: str, line: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO lines (key, line) VALUES (?, ?)", (key, line))

    async def lines(self, key: str) -> list[str]:
        with self._transaction() as db:
            rows = db.execute("SELECT line FROM lines WHERE key = ? ORDER BY seq", (key,))
            return [str(row[0]) for row in rows]

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()

    # -- internals ---------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

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


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT` (or `ROLLBACK` on an error) under the connection lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._db

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
        finally:
            self._lock.release()
