"""One Close client per API key, a bounded number of them: an evicted client is closed (its
sockets with it) as soon as no call uses it, never while a request of it is under way."""

from __future__ import annotations

import anyio
import httpx
import pytest

from close_mcp.close.client import CloseClient
from close_mcp.config import load_settings
from close_mcp.server.runtime import MAX_CLIENTS, Runtime

pytestmark = pytest.mark.anyio


def _answering() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, json={"id": "user_1"}))


async def test_evicted_clients_are_closed_once_idle() -> None:
    runtime = Runtime(load_settings({}, sandbox=True), transport=_answering())
    made: list[CloseClient] = []
    for n in range(1_200):
        client = runtime.client_for({"Close-API-Key": f"api_key_{n:05d}"})
        made.append(client)
        await client.get("me/")
    await anyio.wait_all_tasks_blocked()
    still_open = sum(not client.closed for client in made)
    assert still_open == MAX_CLIENTS
    assert all(not client.closed for client in made[-MAX_CLIENTS:])
    await runtime.aclose()
    assert all(client.closed for client in made)


async def test_a_client_in_use_is_closed_only_after_its_request() -> None:
    release = anyio.Event()
    started = anyio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/slow/"):
            started.set()
            await release.wait()
        return httpx.Response(200, json={"ok": True})

    runtime = Runtime(load_settings({}, sandbox=True), transport=httpx.MockTransport(slow))
    busy = runtime.client_for({"Close-API-Key": "api_key_busy"})
    answers: list[object] = []
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            answers.append(await busy.get("slow/"))

        tg.start_soon(call)
        await started.wait()
        for n in range(MAX_CLIENTS):  # pushes the busy client out of the cache
            runtime.client_for({"Close-API-Key": f"api_key_{n:05d}"})
        await anyio.wait_all_tasks_blocked()
        assert not busy.closed  # evicted, but its request is under way
        release.set()
    assert answers == [{"ok": True}]
    runtime.client_for({"Close-API-Key": "api_key_next"})  # the next sweep closes it
    await anyio.wait_all_tasks_blocked()
    assert busy.closed
    await runtime.aclose()
