"""Replicas on one Close key pace themselves from one shared budget in the store (issue 15).

Two replica processes, sharing a store (a SQLite file, then a Redis database), each confirm a
bulk edit of about 8,000 leads at the same moment, on one key, against a sandbox limited to
10 requests a second per endpoint group (Close limits each group apart). Each takes a
snapshot first: about 40 `/data/search/` pages of 200 leads, so the two together send about
80 searches at once, all in one group. Each replica reads Close's budget from the
`RateLimit` header and takes its share of it through the store, so between them they stay
under the limit: at most 5% of the requests the sandbox answers are 429s (measured 0.8% and
1.5%). Each pacing alone, with a store of its own, 14.6% were.

The sandbox runs on a thread of this process, served on loopback, so its request log says
exactly what it answered; the replicas are real `close-mcp serve --transport http` processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn

from close_mcp.sandbox import RecordedRequest, Sandbox
from tests.processes import free_port
from tests.replicas.conftest import call, replica, session

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

RATE = 10.0  # per endpoint group: the two snapshots' searches share one group's budget
LEADS = 20_000  # five statuses, about 4,000 leads each: two pairs of about 8,000
HALVES = (["Potential", "Bad Fit"], ["Qualified", "Customer"])
EDIT = {"type": "set_custom_field", "custom_field": "Lead Source", "value": "Webinar"}
MAX_429_SHARE = 0.05


@pytest.fixture(scope="module")
def limited() -> Iterator[tuple[Sandbox, str]]:
    """A sandbox of 20,000 leads limited to 20 requests a second, and its base URL."""
    sandbox = Sandbox(n_leads=LEADS, rate_limit=RATE)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(sandbox.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="limited-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # bounded: uvicorn sets it once it listens
        assert thread.is_alive(), "the sandbox server stopped"
        assert time.monotonic() < deadline, "the sandbox server did not start"
        time.sleep(0.05)
    try:
        yield sandbox, f"http://127.0.0.1:{port}/api/v1/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def confirm_edits(state: Path) -> dict[str, str]:
    """Edits need a confirmation; snapshots are kept under `state`."""
    return {"CLOSE_MCP_CONFIRM": "edit", "XDG_STATE_HOME": str(state)}


async def snapshot_at_once(
    limited: tuple[Sandbox, str], tmp_path: Path, store: str | None
) -> tuple[list[RecordedRequest], list[dict[str, Any]]]:
    """Two replicas (sharing `store`, or each with its own when None) each confirm an edit of
    one half at the same moment; the requests the sandbox answered meanwhile, and the two
    answers."""
    sandbox, close_api = limited
    answers: list[dict[str, Any]] = []
    async with (
        replica(close_api, tmp_path, "a", store=store, **confirm_edits(tmp_path / "a")) as a,
        replica(close_api, tmp_path, "b", store=store, **confirm_edits(tmp_path / "b")) as b,
    ):
        await anyio.sleep(1.5)  # a whole budget: what came before does not count
        first = len(sandbox.requests)

        async def edit(url: str, statuses: list[str]) -> None:
            args = {"filter": {"lead_status": statuses}, "edit": EDIT}
            async with session(url) as client:
                preview = await call(client, "create_bulk_edit", args)
                assert preview["status"] == "confirmation_required", preview
                token = preview["confirmation_token"]
                answers.append(
                    await call(client, "create_bulk_edit", {**args, "confirmation_token": token})
                )

        async with anyio.create_task_group() as tg:
            tg.start_soon(edit, a, HALVES[0])
            tg.start_soon(edit, b, HALVES[1])
        return sandbox.requests[first:], answers


async def test_two_replicas_snapshotting_on_one_key_meet_few_429s(
    limited: tuple[Sandbox, str], store: str, tmp_path: Path
) -> None:
    requests, answers = await snapshot_at_once(limited, tmp_path, store)
    assert [answer["status"] for answer in answers] == ["submitted", "submitted"], answers
    assert all(answer["snapshot"] for answer in answers), answers
    searches = [r for r in requests if r.path == "/api/v1/data/search/" and r.status == 200]
    assert len(searches) >= 2 * 8_000 // 200  # the two snapshots' pages at least
    statuses = [r.status for r in requests]
    share = statuses.count(429) / len(statuses)
    print(f"{statuses.count(429)} of {len(statuses)} requests answered 429 ({share:.1%})")
    assert share <= MAX_429_SHARE, (statuses.count(429), len(statuses))


async def test_without_a_shared_store_the_same_edits_meet_many_429s(
    limited: tuple[Sandbox, str], tmp_path: Path
) -> None:
    """The control: with a store each, each replica spends the whole budget as its own."""
    requests, answers = await snapshot_at_once(limited, tmp_path, None)
    assert [answer["status"] for answer in answers] == ["submitted", "submitted"], answers
    statuses = [r.status for r in requests]
    share = statuses.count(429) / len(statuses)
    print(f"{statuses.count(429)} of {len(statuses)} requests answered 429 ({share:.1%})")
    assert share > MAX_429_SHARE, (statuses.count(429), len(statuses))
