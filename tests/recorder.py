"""A scripted Close behind httpx.MockTransport: the Close client's tests and those of modules
that call Close through it answer each request from a script and read back what was sent; a
clock whose sleeps wait for the test to move time on (`HeldClock`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx

from close_mcp.clock import FakeClock
from close_mcp.close.client import CloseClient

KEY = "api_TESTKEY_5ecr3t_abcdef"
BASE = "https://api.close.example/api/v1/"


class Recorder:
    """Answers requests from a script of responses (or exceptions) and keeps what it saw."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[], httpx.Response]):
        self.answers: Iterator[httpx.Response | Exception | Callable[[], httpx.Response]] = iter(
            answers
        )
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers, None)
        if answer is None:  # a request the script did not expect: the test's asserts name it
            return ok({"error": "the test's script of answers ran out"}, 500)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer()
        return answer

    def summary(self) -> list[tuple[str, str, Any]]:
        return [
            (r.method, r.url.path, json.loads(r.content) if r.content else None)
            for r in self.requests
        ]


def make(recorder: Recorder, clock: FakeClock | None = None) -> tuple[CloseClient, FakeClock]:
    clock = clock or FakeClock()
    client = CloseClient(KEY, BASE, transport=httpx.MockTransport(recorder), clock=clock)
    return client, clock


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


class HeldClock(FakeClock):
    """A FakeClock whose `sleep` parks until `advance` moves time to its deadline, so calls
    that wait at the same time overlap instead of adding their waits up."""

    def __init__(self) -> None:
        super().__init__()
        self.parked: list[tuple[float, anyio.Event]] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        woken = anyio.Event()
        self.parked.append((self.time() + seconds, woken))
        await woken.wait()

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        for deadline, woken in self.parked:
            if deadline <= self.time():
                woken.set()
        self.parked = [(d, w) for d, w in self.parked if not w.is_set()]
