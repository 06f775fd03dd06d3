"""Choosing the store from `CLOSE_MCP_STORE`: a `redis://` URL, or a SQLite path."""

from __future__ import annotations

from pathlib import Path

from close_mcp.clock import Clock
from close_mcp.store.base import StateStore
from close_mcp.store.sqlite import SQLiteStore


def open_store(where: str | Path, *, clock: Clock | None = None) -> StateStore:
    text = str(where)
    if text.startswith(("redis://", "rediss://", "unix://")):
        from close_mcp.store.redis import RedisStore  # only teams need the client loaded

        return RedisStore(text)
    return SQLiteStore(text, clock=clock)
