"""Faults injected into the sandbox: reads recover or fail clearly, writes never happen twice.

- Reads under 429 storms, 5xx, resets, timeouts, slow and malformed answers give the same
  result as without faults once retries succeed, and a tool error that says what happened
  when they run out.
- An ambiguous bulk POST (the job was created but the answer was lost: a 504, a reset, a
  timeout or an unreadable body) is reconciled from the recent jobs: `submitted` with the
  job, and exactly one job. A POST that failed without doing anything gives a clear
  "outcome unknown" error, and nothing is ever resent (not even with the same token).
- A tool call cancelled while its POST is in flight leaves no write, or exactly one complete
  write, and its token cannot send a second one.

Every test asserts that each fault it set up was served by the sandbox
(`Sandbox.faults_served`, nothing left pending); the "faults served" figure adds those up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.faults import FaultKind
from tests.harness import Harness, StartHarness
from tests.reliability.support import GateClock, record

pytestmark = pytest.mark.anyio

QUALIFIED = {"filter": {"lead_status": "Qualified"}}
DELETE_PATH = "/api/v1/bulk_action/delete/"
FAULTS_SERVED: dict[str, int] = {}


def _count(kind: str, n: int) -> None:
    FAULTS_SERVED[kind] = FAULTS_SERVED.get(kind, 0) + n
    record("faults served", f"{sum(FAULTS_SERVED.values())} ({FAULTS_SERVED})")


def _inject(h: Harness, kind: FaultKind, count: int, path: str, method: str, **kw: Any) -> None:
    h.sandbox.inject_faults(kind, count, path, method, **kw)


def _all_served(h: Harness, expected: dict[FaultKind, int]) -> None:
    """The sandbox served exactly these faults and has none left; they count in the figure."""
    assert h.sandbox.faults_served == expected
    assert h.sandbox.faults_pending == 0
    for kind, n in expected.items():
        _count(kind, n)


# -- reads: retried to the same answer, or a clear error --------------------------------------

ORG_COUNT = {
    "query": {"type": "object_type", "object_type": "lead"},
    "include_counts": True,
    "results_limit": 0,
    "_limit": 0,
}
READS: list[tuple[str, dict[str, Any], str, str]] = [
    ("search_leads", QUALIFIED, "data/search/", "POST"),
    ("lookup", {"kind": "lead_statuses"}, "status/lead/", "GET"),
    ("lookup", {"kind": "email_templates"}, "email_template/", "GET"),
    ("list_bulk_jobs", {"kind": "edit"}, "bulk_action/edit/", "GET"),
]
RECOVERABLE: list[tuple[FaultKind, int]] = [
    ("rate_limit", 11),  # a storm: 11 429s in a row, under the 12 allowed waits
    ("5xx", 3),
    ("reset", 3),
    ("timeout", 3),
    ("malformed", 3),
    ("slow", 1),  # answered late, once: nothing to retry
]


@pytest.mark.parametrize(("kind", "count"), RECOVERABLE)
@pytest.mark.parametrize(("tool", "args", "path", "method"), READS)
async def test_read_recovers_to_the_same_answer(
    tool: str,
    args: dict[str, Any],
    path: str,
    method: str,
    kind: FaultKind,
    count: int,
    start_harness: StartHarness,
) -> None:
    clean = await start_harness()
    expected = await clean.call(tool, args)

    h = await start_harness()
    _inject(h, kind, count, path, method)
    got = await h.call(tool, args)
    # A search page's cursor carries Close's own, which names the answer Close served (a
    # malformed answer served one too): the same page either way, another cursor string.
    assert ("next_cursor" in got) == ("next_cursor" in expected)
    assert {k: v for k, v in got.items() if k != "next_cursor"} == {
        k: v for k, v in expected.items() if k != "next_cursor"
    }
    # search_leads then counts the organization once (is the selection every lead?)
    faulted = [r for r in h.sandbox.requests if r.path == "/api/v1/" + path and r.json != ORG_COUNT]
    # each fault answered once, then the real answer; a slow answer is the real one
    assert len(faulted) == (1 if kind == "slow" else count + 1)
    assert h.writes() == []
    _all_served(h, {kind: count})


GIVE_UP: list[tuple[FaultKind, int, str]] = [
    (
        "rate_limit",
        41,  # the first answer and 40 retries: the client's bound
        "Close's rate limit is still exceeded after waiting; try again in 2 s. ({method} {path})",
    ),
    ("5xx", 4, "Close had an internal error (503); try again shortly. ({method} {path})"),
    (
        "reset",
        4,
        "Could not reach Close: the request failed (RemoteProtocolError). Check the network "
        "and CLOSE_API_BASE_URL. ({method} {path})",
    ),
    (
        "timeout",
        4,
        "Could not reach Close: the request timed out (ReadTimeout). Check the network and "
        "CLOSE_API_BASE_URL. ({method} {path})",
    ),
    ("malformed", 4, "Close answered 200 with a body that is not JSON. ({method} {path})"),
]


@pytest.mark.parametrize(("kind", "count", "message"), GIVE_UP)
@pytest.mark.parametrize(("tool", "args", "path", "method"), READS)
async def test_read_that_keeps_failing_says_why(
    tool: str,
    args: dict[str, Any],
    path: str,
    method: str,
    kind: FaultKind,
    count: int,
    message: str,
    h: Harness,
) -> None:
    _inject(h, kind, count, path, method)
    error = await h.error(tool, args)
    assert error == message.format(method=method, path=path)
    _all_served(h, {kind: count})
    # and the server is fine afterwards
    assert (await h.call("search_leads", QUALIFIED))["total"] > 0


async def test_rate_limit_waits_follow_reset(h: Harness) -> None:
    """Each 429's `reset` is waited out (that concurrent calls share the wait is tested in
    tests/unit/close/test_client.py with calls made during it)."""
    _inject(h, "rate_limit", 3, "data/search/", "POST", seconds=1.5)
    before = h.clock.time()
    await h.call("search_leads", QUALIFIED)
    assert h.clock.time() - before == pytest.approx(4.5)
    _all_served(h, {"rate_limit": 3})


# -- ambiguous bulk POSTs: reconciled, never two jobs ----------------------------------------

AMBIGUOUS: list[FaultKind] = ["after_commit", "reset_after_commit", "timeout_after_commit"]
AMBIGUOUS += ["malformed"]
NOTHING_DONE: list[tuple[FaultKind, str]] = [
    ("5xx", "Close answered the write with 503"),
    ("reset", "The request to Close failed before an answer came"),
    ("timeout", "The request to Close timed out before an answer came"),
]


async def _delete_token(h: Harness) -> str:
    first = await h.call("create_bulk_delete", QUALIFIED)
    assert first["status"] == "confirmation_required"
    token: str = first["confirmation_token"]
    return token


def _jobs(h: Harness, kind: str = "delete") -> list[str]:
    return [j.id for j in h.sandbox.store.jobs.values() if j.kind == kind]


def _posts(h: Harness, path: str = DELETE_PATH) -> int:
    return sum(1 for r in h.sandbox.requests if r.method == "POST" and r.path == path)


@pytest.mark.parametrize("kind", AMBIGUOUS)
@pytest.mark.harness(audited=True)
async def test_ambiguous_bulk_post_is_reconciled_to_the_one_job(
    kind: FaultKind, h: Harness
) -> None:
    token = await _delete_token(h)
    _inject(h, kind, 1, "bulk_action/delete/", "POST")
    done = await h.call("create_bulk_delete", {**QUALIFIED, "confirmation_token": token})
    (job_id,) = _jobs(h)
    assert done["status"] == "submitted"
    assert done["job"]["id"] == job_id
    assert _posts(h) == 1
    # the same token again: refused, nothing resent
    again = await h.call("create_bulk_delete", {**QUALIFIED, "confirmation_token": token})
    assert again["status"] == "refused"
    assert _posts(h) == 1
    assert _jobs(h) == [job_id]
    outcomes = [(e["outcome"], e.get("job_id")) for e in h.audit.entries()]
    assert outcomes[0] == ("submitted", job_id)
    _all_served(h, {kind: 1})


@pytest.mark.parametrize(("kind", "start"), NOTHING_DONE)
@pytest.mark.harness(audited=True)
async def test_failed_bulk_post_reports_outcome_unknown_and_never_resends(
    kind: FaultKind, start: str, h: Harness
) -> None:
    token = await _delete_token(h)
    _inject(h, kind, 1, "bulk_action/delete/", "POST")
    error = await h.error("create_bulk_delete", {**QUALIFIED, "confirmation_token": token})
    assert error == (
        f"{start}, so it is unknown whether it was carried out. Check before trying again. "
        "Nothing matching was found among the recent bulk delete jobs (list_bulk_jobs); "
        "look there before trying again. (POST bulk_action/delete/)"
    )
    assert _jobs(h) == []
    assert _posts(h) == 1
    again = await h.call("create_bulk_delete", {**QUALIFIED, "confirmation_token": token})
    assert again["status"] == "refused"
    assert again["reason"] == "the confirmation token was already used"
    assert _posts(h) == 1
    assert [e["outcome"] for e in h.audit.entries()] == ["outcome_unknown", "refused"]
    _all_served(h, {kind: 1})


class FailListingsAfterPost(httpx.AsyncBaseTransport):
    """The sandbox, except that once a bulk delete was POSTed, listing jobs answers 503."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.posted = False
        self.failed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.posted and request.method == "GET" and request.url.path == DELETE_PATH:
            self.failed += 1
            return httpx.Response(503, json={"error": "listing is down"})
        if request.method == "POST" and request.url.path == DELETE_PATH:
            self.posted = True
        return await self.inner.handle_async_request(request)


async def test_reconcile_that_cannot_list_jobs_still_says_outcome_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, start_harness: StartHarness
) -> None:
    """The job was created, the answer lost, and the listing fails too: the error must not
    read like an ordinary failure to retry, and the audit must record the unknown outcome."""
    clock = FakeClock()
    sandbox = Sandbox(n_leads=120, clock=clock)
    transport = FailListingsAfterPost(sandbox.transport())
    monkeypatch.setattr(sandbox, "transport", lambda: transport)
    h = await start_harness(sandbox=sandbox, clock=clock, audit_dir=tmp_path)
    token = await _delete_token(h)
    _inject(h, "after_commit", 1, "bulk_action/delete/", "POST")
    error = await h.error("create_bulk_delete", {**QUALIFIED, "confirmation_token": token})
    assert error == (
        "Close answered the write with 504, so it is unknown whether it was carried out. "
        "Check before trying again. Looking among the recent bulk delete jobs "
        "(list_bulk_jobs) failed too (Close had an internal error (503); try again "
        "shortly.): it could not be checked; look there before trying again. "
        "(POST bulk_action/delete/)"
    )
    assert transport.failed == 4  # the listing was retried, the POST never was
    assert len(_jobs(h)) == 1
    assert _posts(h) == 1
    assert [e["outcome"] for e in h.audit.entries()] == ["outcome_unknown"]
    _all_served(h, {"after_commit": 1})
    _count("5xx", transport.failed)  # the listing's 503s, served by the wrapper above


async def test_ambiguous_email_post_is_reconciled_from_the_leads_activities(h: Harness) -> None:
    lead = next(iter(h.sandbox.store.leads.values()))
    account = next(iter(h.sandbox.store.email_accounts.values()))
    sender = f'"Sandra" <{account.identities[0]["email"]}>'
    args = {
        "lead_id": lead.id,
        "to": ["buyer@example.com"],
        "subject": "Hello",
        "body_text": "Hi",
        "status": "outbox",
        "sender": sender,
    }
    first = await h.call("send_email", args)
    assert first["status"] == "confirmation_required"
    _inject(h, "timeout_after_commit", 1, "activity/email/", "POST")
    done = await h.call("send_email", {**args, "confirmation_token": first["confirmation_token"]})
    emails = [e for e in h.sandbox.store.emails.values() if e.get("lead_id") == lead.id]
    assert done["status"] == "submitted"
    assert [e["id"] for e in emails if e.get("subject") == "Hello"] == [done["result"]["id"]]
    assert _posts(h, "/api/v1/activity/email/") == 1
    _all_served(h, {"timeout_after_commit": 1})


# -- a cancelled call leaves nothing half-sent ------------------------------------------------


async def _cancel_in_flight(h: Harness, gate: GateClock, args: dict[str, Any]) -> bool:
    """Start the confirmed call, cancel it once the sandbox holds the POST; True if cancelled."""
    finished: list[Any] = []

    async def confirmed(scope: anyio.CancelScope) -> None:
        with scope:
            finished.append(await h.call_raw("create_bulk_delete", args))

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(confirmed, scope)
        with anyio.fail_after(10):
            await gate.entered.wait()
        scope.cancel()
    gate.release.set()
    for _ in range(200):  # let anything the server still runs finish (no sleeping)
        await anyio.lowlevel.checkpoint()
    return not finished


async def test_call_cancelled_before_close_acted_sends_nothing(start_harness: StartHarness) -> None:
    gate = GateClock(hold_seconds=7.0)
    h = await start_harness(sandbox=Sandbox(n_leads=120, clock=gate), clock=gate)
    token = await _delete_token(h)
    _inject(h, "slow", 1, "bulk_action/delete/", "POST", seconds=7.0)
    assert await _cancel_in_flight(h, gate, {**QUALIFIED, "confirmation_token": token})
    # the POST reached Close, which was holding it (slow) when the call was cancelled
    assert _posts(h) == 1
    assert _jobs(h) == []
    _all_served(h, {"slow": 1})
    again = await h.call("create_bulk_delete", {**QUALIFIED, "confirmation_token": token})
    assert again["status"] == "refused"
    assert again["reason"] == "the confirmation token was already used"
    assert _posts(h) == 1  # the refusal sent nothing
    assert _jobs(h) == []


class HoldAfterAnswer(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox; holds the answer to a matching one until released."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        gate: GateClock,
        hold: Callable[[httpx.Request], bool],
    ) -> None:
        self.inner = inner
        self.gate = gate
        self.hold = hold

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.hold(request):
            await response.aread()
            await self.gate.sleep(self.gate.hold_seconds)
        return response


async def test_call_cancelled_after_close_acted_leaves_exactly_one_job(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, start_harness: StartHarness
) -> None:
    gate = GateClock(hold_seconds=7.0)
    sandbox = Sandbox(n_leads=120, clock=gate)
    inner = sandbox.transport()
    holding = HoldAfterAnswer(
        inner, gate, lambda r: r.method == "POST" and r.url.path == DELETE_PATH
    )
    monkeypatch.setattr(sandbox, "transport", lambda: holding)
    h = await start_harness(sandbox=sandbox, clock=gate, audit_dir=tmp_path)
    token = await _delete_token(h)
    cancelled = await _cancel_in_flight(h, gate, {**QUALIFIED, "confirmation_token": token})
    assert len(_jobs(h)) == 1
    assert _posts(h) == 1
    again = await h.call("create_bulk_delete", {**QUALIFIED, "confirmation_token": token})
    assert again["status"] == "refused"
    assert _posts(h) == 1
    assert len(_jobs(h)) == 1
    record("cancel after commit", f"call cancelled: {cancelled}; jobs: 1; POSTs: 1")
    if cancelled:
        # the audit says the outcome is unknown rather than nothing at all
        assert [e["outcome"] for e in h.audit.entries()][:1] == ["outcome_unknown"]
