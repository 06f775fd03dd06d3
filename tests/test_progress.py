"""Progress notifications during long confirmed writes: snapshot, backup, revert, restore.

Every Close request takes one second of a FakeClock here (`OneSecondPerRequest`), so a
few thousand leads make a write of many "seconds" without sleeping. The notifications are
read as the client sees them: `notifications/progress` carrying the progressToken the call
sent (in `_meta`), with values that only grow, none more than 5 clock seconds apart (from
the call's start to its end).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from mcp import types
from mcp.client import Client

from close_mcp.clock import FakeClock
from close_mcp.safety.restore import open_backup, restore_leads
from close_mcp.sandbox import Sandbox
from close_mcp.writes.progress import Progress
from close_mcp.writes.sender import Sender
from tests.harness import Harness, StartHarness, run_to_done

N_LEADS = 2400  # 12 search pages of 200, 3 revert batches of 1000
MAX_GAP_S = 5.0


class OneSecondPerRequest(httpx.AsyncBaseTransport):
    """The sandbox, with every request taking one second of the fake clock."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: FakeClock) -> None:
        self.inner = inner
        self.clock = clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.clock.advance(1.0)
        return await self.inner.handle_async_request(request)


@dataclass
class Notes:
    """The progress notifications a client received, with the fake time of each."""

    clock: FakeClock
    seen: list[tuple[float, types.ProgressNotificationParams]] = field(default_factory=list)

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ProgressNotification):
            self.seen.append((self.clock.time(), message.params))

    def of(self, token: str) -> list[tuple[float, types.ProgressNotificationParams]]:
        return [(at, p) for at, p in self.seen if p.progress_token == token]


async def _slow_harness(start_harness: StartHarness) -> Harness:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=N_LEADS, clock=clock)
    return await start_harness(
        sandbox=sandbox,
        clock=clock,
        transport=OneSecondPerRequest(sandbox.transport(), clock),
        snapshot="10000",
    )


async def _confirmed(
    client: Client, notes: Notes, tool: str, args: dict[str, Any], token: str
) -> tuple[dict[str, Any], float, float]:
    """The confirmed call (with `token` as its progressToken), its start and end times."""
    first = await client.call_tool(tool, args)
    assert first.structured_content is not None
    assert first.structured_content["status"] == "confirmation_required"
    started = notes.clock.time()
    done = await client.call_tool(
        tool,
        {**args, "confirmation_token": first.structured_content["confirmation_token"]},
        meta={"progressToken": token},
    )
    assert not done.is_error, done.content
    assert done.structured_content is not None
    return done.structured_content, started, notes.clock.time()


def _longest_gap(started: float, times: list[float], ended: float) -> float:
    """The longest wait for a notification: from the call's start, between two, to its end."""
    return max(b - a for a, b in itertools.pairwise([started, *times, ended]))


def _check(notes: Notes, token: str, started: float, ended: float, words: list[str]) -> list[str]:
    """Values grow, no gap over 5 s from start to end, the phases' words in order."""
    mine = notes.of(token)
    values = [p.progress for _, p in mine]
    assert values == sorted(set(values)), values  # strictly increasing
    assert _longest_gap(started, [at for at, _ in mine], ended) <= MAX_GAP_S
    assert ended - started > 3 * MAX_GAP_S  # a write long enough for the gaps to mean something
    messages = [p.message or "" for _, p in mine]
    firsts = [next(i for i, m in enumerate(messages) if m.startswith(w)) for w in words]
    assert firsts == sorted(firsts), messages
    return messages


@pytest.mark.anyio
async def test_a_confirmed_edit_and_its_revert_report_progress_with_their_token(
    start_harness: StartHarness,
) -> None:
    h = await _slow_harness(start_harness)
    notes = Notes(h.clock)
    args = {
        "s_query": {"type": "match_all"},
        "allow_all_leads": True,
        "edit": {"type": "set_lead_status", "lead_status": "Customer"},
    }
    async with Client(h.server, mode="legacy", message_handler=notes) as client:
        edited, started, ended = await _confirmed(client, notes, "create_bulk_edit", args, "edit-1")
        messages = _check(notes, "edit-1", started, ended, ["snapshot"])
        assert not any(m.startswith("checking") for m in messages)  # one read: the snapshot
        assert messages[-1] == f"snapshot: {N_LEADS} of {N_LEADS} leads saved"
        assert notes.of("other") == []
        await run_to_done(h, edited["job"]["id"])

        job = {"job_id": edited["job"]["id"]}
        reverted, started, ended = await _confirmed(
            client, notes, "revert_bulk_edit", job, "revert-1"
        )
    assert reverted["status"] == "submitted"
    requests = reverted["result"]["jobs_count"] + reverted["result"]["updated_leads_count"]
    messages = _check(notes, "revert-1", started, ended, ["revert: ", "revert: 1 of"])
    assert f"revert: {N_LEADS} leads of the snapshot checked" in messages
    assert messages[-1] == f"revert: {requests} of {requests} requests sent"
    # Only the confirmed calls sent any: the previews carried no token.
    assert {p.progress_token for _, p in notes.seen} == {"edit-1", "revert-1"}


@pytest.mark.anyio
async def test_a_confirmed_delete_reports_progress_while_its_backup_is_written(
    start_harness: StartHarness,
) -> None:
    h = await _slow_harness(start_harness)
    notes = Notes(h.clock)
    args = {"s_query": {"type": "match_all"}, "allow_all_leads": True}
    async with Client(h.server, mode="legacy", message_handler=notes) as client:
        deleted, started, ended = await _confirmed(client, notes, "create_bulk_delete", args, 7)
    assert deleted["snapshot"] == f"store:backup:{deleted['job']['id']}"
    notes_of_7 = [(at, p) for at, p in notes.seen if p.progress_token == 7]
    assert notes_of_7
    assert len(notes_of_7) == len(notes.seen)
    values = [p.progress for _, p in notes_of_7]
    assert values == sorted(set(values))
    assert _longest_gap(started, [at for at, _ in notes_of_7], ended) <= MAX_GAP_S
    assert notes_of_7[-1][1].message == f"backup: {N_LEADS} of {N_LEADS} leads saved"


@pytest.mark.anyio
async def test_restore_reports_each_lead_as_a_step(start_harness: StartHarness) -> None:
    h = await _slow_harness(start_harness)
    args = {"filter": {"lead_status": "Qualified"}}
    first = await h.call("create_bulk_delete", args)
    done = await h.call(
        "create_bulk_delete", {**args, "confirmation_token": first["confirmation_token"]}
    )
    backup = await open_backup(h.runtime.store, done["job"]["id"])
    seen: list[tuple[float, float, float | None, str]] = []

    async def sink(value: float, total: float | None, message: str) -> None:
        seen.append((h.clock.time(), value, total, message))

    started = h.clock.time()
    sender = Sender(h.runtime.audit, h.runtime.client_for(), "restore")
    report = await restore_leads(
        sender, backup.leads(), steps=Progress(sink, h.clock), total=backup.count
    )
    assert len(report.restored) == backup.count > 5
    assert [v for _, v, _, _ in seen] == sorted({v for _, v, _, _ in seen})
    assert seen[-1][1:] == (
        backup.count,
        backup.count,
        f"restore: {backup.count} of {backup.count} leads",
    )
    assert _longest_gap(started, [at for at, *_ in seen], h.clock.time()) <= MAX_GAP_S


@pytest.mark.anyio
async def test_a_new_era_client_hears_the_progress_of_its_call(
    start_harness: StartHarness,
) -> None:
    """2026-07-28 (no initialize): the progress reaches the callback of the call that asked."""
    h = await _slow_harness(start_harness)
    heard: list[tuple[float, float, float | None, str | None]] = []

    async def callback(progress: float, total: float | None, message: str | None) -> None:
        heard.append((h.clock.time(), progress, total, message))

    args = {"s_query": {"type": "match_all"}, "allow_all_leads": True}
    async with Client(h.server, mode="auto") as client:
        first = await client.call_tool("create_bulk_delete", args)
        assert first.structured_content is not None
        token = first.structured_content["confirmation_token"]
        started = h.clock.time()
        done = await client.call_tool(
            "create_bulk_delete", {**args, "confirmation_token": token}, progress_callback=callback
        )
    assert not done.is_error, done.content
    values = [value for _, value, _, _ in heard]
    assert values == sorted(set(values))
    assert _longest_gap(started, [at for at, *_ in heard], h.clock.time()) <= MAX_GAP_S
    assert heard[-1][3] == f"backup: {N_LEADS} of {N_LEADS} leads saved"
