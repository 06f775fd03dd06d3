"""The team store: Redis, for replicas on several machines (`CLOSE_MCP_STORE=redis://...`).

Every key is prefixed `close-mcp:`. "Set if absent" is `SET NX`, a conditional delete is a
small Lua script, read-modify-write is `WATCH`/`MULTI` retried until no one else wrote the
key in between. Expiry is Redis's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Final, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from close_mcp.store.base import Update

T = TypeVar("T")
PREFIX: Final = "close-mcp:"
_DELETE_IF: Final = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def _ms(ttl_s: float | None) -> int | None:
    return None if ttl_s is None else max(1, round(ttl_s * 1000))


class RedisStore:
    def __init__(self, url: str) -> None:
        self._url = url
        self._redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=True)

    def __repr__(self) -> str:
        # The URL may hold a password: show only where it points.
        return f"RedisStore({self._redis.connection_pool.connection_kwargs.get('host')!r})"

    async def add(self, key: str, value: str, *, ttl_s: float | None = None) -> bool:
        return bool(await self._redis.set(PREFIX + key, value, nx=True, px=_ms(ttl_s)))

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(PREFIX + key)
        return None if value is None else str(value)

    async def put(self, key: str, value: str, *, ttl_s: float | None = None) -> None:
        await self._redis.set(PREFIX + key, value, px=_ms(ttl_s))

    async def delete(self, key: str, *, if_value: str | None = None) -> bool:
        if if_value is None:
            return bool(await self._redis.delete(PREFIX + key))
        script = self._redis.register_script(_DELETE_IF)
        return bool(await script(keys=[PREFIX + key], args=[if_value]))

    async def update(self, key: str, change: Update[T], *, ttl_s: float | None = None) -> T:
        name = PREFIX + key
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(name)
                    current = await pipe.get(name)
                    value, result = change(None if current is None else str(current))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(name, value, px=_ms(ttl_s))
                    await pipe.execute()
                    return result
                except WatchError:
                    continue  # someone else changed it in between: read again

    async def append(self, key: str, line: str) -> None:
        await self._redis.rpush(PREFIX + key, line)

    async def extend(self, key: str, lines: Sequence[str]) -> None:
        if lines:
            await self._redis.rpush(PREFIX + key, *lines)

    async def lines(self, key: str) -> list[str]:
        return [str(line) for line in await self._redis.lrange(PREFIX + key, 0, -1)]

    async def iter_lines(self, key: str, *, batch: int = 1000) -> AsyncIterator[list[str]]:
        start = 0
        while True:
            chunk = await self._redis.lrange(PREFIX + key, start, start + batch - 1)
            if not chunk:
                return
            yield [str(line) for line in chunk]
            if len(chunk) < batch:
                return
            start += len(chunk)

    async def aclose(self) -> None:
        await self._redis.aclose()
