"""The issue-28 write tools cannot be confirmed around, and a valid confirmation is never
turned away: a hypothesis state machine against one live server, built from a table of tool
rows (`_rows`), the sibling of `test_confirmation_machine.py` (the bulk kinds and send).

Each row is one write tool with fixed arguments, and says what its token binds, read from the
sandbox now (`bound`): the exact per-record plan of `update_opportunities` / `update_tasks`
(every record that gets a request, with the value it overwrites, and how many already hold
the target), the exact leads of `export_leads`, the leads `restore_leads` would re-create
from a delete's backup or from Close's event log (and, for the log, every deletion it reads),
both leads of every pair `merge_leads` is given (as Close shows them).
The machine mixes previews, dry runs, confirmations with valid, stale, forged, replayed and
swapped-argument tokens (a row's token with another row's arguments for the same tool), the
sandbox changing under the tokens (a lead moves status, an opportunity or a task is changed,
a lead is deleted in Close by another integration), time passing, and every kind of answer
from the person. A legitimate confirmation is a token minted for this row when it bound
exactly what the row binds now, not expired, not spent, and the person's right answer (or a
client that cannot ask).

Both directions are asserted on every confirmation: the row's writes reach the sandbox only
for a legitimate confirmation, and a legitimate one sends exactly the writes its plan holds
(N paced PUTs for N records, one export, N re-created leads, one merge a pair). The sandbox
rate-limits the key, so a long run waits on the (fake) clock between requests, and the
machine asserts that runs did wait. The clock moves inside a call only while the rate limit
paces it: a token that expires between the call's start and its first write may go either
way (counted as `ambiguous`), never a write without a submitted result.

A new write tool is one more row: see `Row`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import pytest
from anyio.from_thread import BlockingPortal
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
)
from mcp import types

from close_mcp.clock import FakeClock
from close_mcp.sandbox import SANDBOX_API_KEY, RecordedRequest, Sandbox
from close_mcp.sandbox.store import Store
from close_mcp.writes.tokens import TOKEN_TTL_S
from tests.harness import Harness, Mode
from tests.ids import status_id
from tests.reliability.machines import (
    ANSWERS,
    DIGEST_REFUSAL,
    call,
    forge,
    person_answers,
    run_machine,
)
from tests.reliability.support import guarded_kind, record

API: Final = "/api/v1/"
MERGE_READS: Final = ("id", "name", "display_name", "date_created", "date_updated", "contacts")
RATE: Final = 10.0  # the sandbox's requests a second per key and endpoint group
# Before each call the person takes a second: every budget is whole again (a bucket of RATE
# refills at RATE a second), so the clock moves in a call only while its writes are paced.
PAUSE_S: Final = 1.0
STEPS: dict[str, int] = {}


def _fresh_steps() -> None:
    STEPS.clear()
    STEPS.update(runs=0, steps=0, submitted=0, refused=0, writes=0, swapped=0,
                 digest_refused=0, drift_refused=0, at_expiry=0, paced=0, throttled=0,
                 ambiguous=0, replayed=0)  # fmt: skip


# -- the rows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One write tool with fixed arguments, as the model sees it.

    A new write tool is one more entry of `_rows` (and, if its writes move something the
    other rows read, nothing more: they read the sandbox); rows of the same tool are each
    other's swapped arguments, so give a tool two rows.

    `bound(m)`: what a token of this row binds, read from the sandbox (and the model) now;
    two reads are equal exactly when the server would plan the same request. `matched(state)`:
    the count its preview shows for that state. `sends(state)`: how many of its writes a
    legitimate confirmation sends. `writes(request)`: whether a request that reached the
    sandbox is one of this tool's writes. `done(m, state)`: the model's bookkeeping after a
    legitimate write (a restore marks the leads it brought back). `valid(m)`: whether the
    arguments still name what exists (else the call is a tool error).
    """

    name: str
    tool: str
    args: dict[str, Any]
    bound: Callable[[RecordMachine], Hashable]
    matched: Callable[[Any], int]
    sends: Callable[[Any], int]
    writes: Callable[[RecordedRequest], bool]
    done: Callable[[RecordMachine, Any], None] = lambda m, state: None
    # Whether the arguments still name what exists (a merged or deleted lead of a pair: a
    # tool error, at the preview and at the confirmation).
    valid: Callable[[RecordMachine], bool] = lambda m: True


def _kind(*kinds: str) -> Callable[[RecordedRequest], bool]:
    return lambda r: guarded_kind(r) in kinds


def _restored(r: RecordedRequest) -> bool:
    return r.method == "POST" and r.path == API + "lead/"


def _plan(records: list[tuple[str, Any]], target: Any) -> tuple[tuple[tuple[str, Any], ...], int]:
    """A per-record plan: the records that get a request with the value each overwrites,
    and how many hold the target already."""
    changing = tuple(sorted((i, v) for i, v in records if v != target))
    return changing, len(records) - len(changing)


def _applied(r: RecordedRequest) -> bool:
    """Close carried the request out (a 429 is answered before anything is done)."""
    return 200 <= r.status < 300


def _opportunities(confidence: int) -> Callable[[RecordMachine], Hashable]:
    def bound(m: RecordMachine) -> Hashable:
        store = m.store()
        active = {s.id for s in store.opportunity_statuses.values() if s.type == "active"}
        records = [(o.id, o.confidence) for o in store.opportunities.values()
                   if o.status_id in active]  # fmt: skip
        return _plan(records, confidence)

    return bound


def _tasks(complete: bool) -> Callable[[RecordMachine], Hashable]:
    def bound(m: RecordMachine) -> Hashable:
        store = m.store()
        mine = [(t.id, t.is_complete) for t in store.tasks.values() if t.assigned_to == m.user]
        return _plan(mine, complete)

    return bound


def _qualified(m: RecordMachine) -> Hashable:
    store = m.store()
    wanted = status_id(store, "Qualified")
    return frozenset(lead.id for lead in store.leads.values() if lead.status_id == wanted)


def _backup(m: RecordMachine) -> Hashable:
    return m.backup - m.restored


def _event_log(m: RecordMachine) -> Hashable:
    """Every lead deleted since the machine started (the log this row reads), and those of
    them not restored yet."""
    deleted = frozenset(
        e.object_id
        for e in m.store().events
        if e.object_type == "lead" and e.action == "deleted" and e.date_created >= m.started
    )
    return deleted, deleted - m.restored


def _merged(r: RecordedRequest) -> bool:
    return r.method == "POST" and r.path == API + "lead/merge/"


def _pair_leads(pairs: list[tuple[str, str]]) -> Callable[[RecordMachine], Hashable]:
    """Both leads of every pair as Close shows them (the fields merge_leads reads)."""

    def bound(m: RecordMachine) -> Hashable:
        store = m.store()
        shown = []
        for source, destination in pairs:
            for lead_id in (source, destination):
                lead = store.leads[lead_id].to_json(store)
                shown.append(json.dumps({k: lead.get(k) for k in MERGE_READS}, sort_keys=True))
        return tuple(shown)

    return bound


def _pairs_exist(pairs: list[tuple[str, str]]) -> Callable[[RecordMachine], bool]:
    return lambda m: all(i in m.store().leads for pair in pairs for i in pair)


def _mark_restored(m: RecordMachine, state: Any) -> None:
    m.restored |= state[1] if isinstance(state, tuple) else state


def _rows(m: RecordMachine) -> list[Row]:
    since = m.started.date().isoformat()
    per_record = {"matched": lambda s: len(s[0]), "sends": lambda s: len(s[0])}
    leads = {"matched": len, "sends": lambda s: 1, "writes": _kind("export")}
    active = {"where": {"status_type": "active"}}
    qualified = {"filter": {"lead_status": "Qualified"}}
    return [
        Row("opps_90", "update_opportunities", {**active, "change": {"confidence": 90}},
            _opportunities(90), writes=_kind("opportunities"), **per_record),
        Row("opps_10", "update_opportunities", {**active, "change": {"confidence": 10}},
            _opportunities(10), writes=_kind("opportunities"), **per_record),
        Row("tasks_done", "update_tasks", {"where": {"assignee": m.user},
                                           "change": {"complete": True}},
            _tasks(True), writes=_kind("tasks"), **per_record),
        Row("tasks_open", "update_tasks", {"where": {"assignee": m.user},
                                           "change": {"complete": False}},
            _tasks(False), writes=_kind("tasks"), **per_record),
        Row("export_json", "export_leads", qualified, _qualified, **leads),
        Row("export_csv", "export_leads", {**qualified, "format": "csv"}, _qualified, **leads),
        Row("restore_backup", "restore_leads", {"backup": m.job_id}, _backup,
            matched=len, sends=len, writes=_restored, done=_mark_restored),
        Row("restore_log", "restore_leads", {"deleted_since": since}, _event_log,
            matched=lambda s: len(s[1]), sends=lambda s: len(s[1]), writes=_restored,
            done=_mark_restored),
        *(Row(f"merge_{i}", "merge_leads",
              {"pairs": [{"source": a, "destination": b} for a, b in pairs]},
              _pair_leads(pairs), matched=lambda s: len(s) // 2, sends=lambda s: len(s) // 2,
              writes=_merged, valid=_pairs_exist(pairs))
          for i, pairs in enumerate(m.pairs)),
    ]  # fmt: skip


WHICH: Final = st.integers(min_value=0, max_value=63)  # a row: its index modulo the rows


@dataclass(frozen=True)
class Token:
    row: str
    value: str
    bound: Any  # what the row bound when the token was minted
    expires: float


def _expiry(token: str) -> float:
    """When a token expires, as it says (its mint time is within the preview call, which the
    clock may have crossed while the rate limit paced the call's reads)."""
    payload = token.partition(".")[0]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["e"])


class Stamped(httpx.AsyncBaseTransport):
    """The sandbox, with the fake time each request reached it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: FakeClock) -> None:
        self.inner = inner
        self.clock = clock
        self.times: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.times.append(self.clock.time())
        return await self.inner.handle_async_request(request)


class RecordMachine(RuleBasedStateMachine):
    """One run: a fresh server and a rate-limited sandbox, driven through the portal."""

    portal: BlockingPortal
    mode: Mode
    asks: bool

    tokens = Bundle("tokens")

    def __init__(self) -> None:
        super().__init__()
        STEPS["runs"] += 1
        self.answer = "accept_right"
        clock = FakeClock()
        sandbox = Sandbox(n_leads=60, clock=clock, rate_limit=RATE)
        self.stamped = Stamped(sandbox.transport(), clock)
        self._cm = self.portal.wrap_async_context_manager(
            Harness.start(mode=self.mode, sandbox=sandbox, clock=clock, transport=self.stamped,
                          toolsets="all", elicit=self.answer_for if self.asks else None)
        )  # fmt: skip
        self.h = self._cm.__enter__()
        self.started = datetime.fromtimestamp(clock.time(), UTC)
        store = self.store()
        self.user = max(store.users, key=lambda u: sum(t.assigned_to == u
                                                       for t in store.tasks.values()))  # fmt: skip
        self.restored: frozenset[str] = frozenset()
        self.job_id, self.backup = self._delete_canceled()
        kept = sorted(self.store().leads)
        self.pairs = [[(kept[0], kept[1])], [(kept[2], kept[3]), (kept[4], kept[5])]]
        self.rows = {row.name: row for row in _rows(self)}
        for row in self.rows.values():
            STEPS.setdefault(f"submitted:{row.tool}", 0)
        self.spent: set[str] = set()
        self.expected_writes = 0
        self.seen = len(self._writes())  # the setup's delete is not the machine's

    def teardown(self) -> None:
        self._cm.__exit__(None, None, None)

    # -- the sandbox and the model -----------------------------------------------------------

    def store(self) -> Store:
        return self.h.sandbox.store

    def _delete_canceled(self) -> tuple[str, frozenset[str]]:
        """A confirmed bulk delete (the backup `restore_backup` reads), run to its end."""
        store = self.store()
        canceled = status_id(store, "Canceled")
        gone = frozenset(i for i, lead in store.leads.items() if lead.status_id == canceled)
        args = {"filter": {"lead_status": "Canceled"}}
        first = self._call("create_bulk_delete", args)
        assert first is not None
        assert first["status"] == "confirmation_required", first
        done = self._call("create_bulk_delete", {**args,
                          "confirmation_token": first["confirmation_token"]})  # fmt: skip
        assert done is not None
        assert done["status"] == "submitted", done
        for _ in range(100):
            job = self._call("get_bulk_job", {"job_id": done["job"]["id"]})
            if job is not None and job["status"] == "done":
                break
            self.h.clock.advance(5.0)
        assert not gone & set(store.leads)
        return done["job"]["id"], gone

    def _row(self, which: int) -> Row:
        return list(self.rows.values())[which % len(self.rows)]

    def _is_write(self, r: RecordedRequest) -> bool:
        """Whether a request is a write of any row's tool."""
        return any(row.writes(r) for row in self.rows.values())

    def _writes(self) -> list[RecordedRequest]:
        """Every write of any row's tool that Close carried out."""
        return [r for r in self.h.sandbox.requests if self._is_write(r) and _applied(r)]

    def _call(self, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
        STEPS["steps"] += 1
        return call(self.portal, self.h, tool, args)

    def _bound(self, row: Row) -> Any:
        self.h.sandbox.jobs.advance_all(self.h.clock.time())  # as the next request would
        return row.bound(self)

    def answer_for(self, message: str) -> types.ElicitResult:
        return person_answers(self.answer, message)

    def _timed_call(
        self, tool: str, args: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, int, float, bool]:
        """One call, and when the server can have checked its token: its result, the writes
        Close carried out (none may even be tried without a legitimate confirmation:
        `_confirm`), the latest time the check can have happened (the clock moves in a call
        only while the rate limit paces its requests: at the first write, or the call's end),
        and whether the clock moved once writes were sent."""
        t0, n_requests = self.h.clock.time(), len(self.h.sandbox.requests)
        result = self._call(tool, args)
        new = self.h.sandbox.requests[n_requests:]
        times = self.stamped.times[len(self.stamped.times) - len(new) :]
        first = next((i for i, r in enumerate(new) if self._is_write(r)), None)
        if first is None:
            return result, 0, self.h.clock.time(), False
        STEPS["throttled"] += sum(self._is_write(r) and r.status == 429 for r in new)
        applied = sum(self._is_write(r) and _applied(r) for r in new)
        return (
            result,
            applied,
            times[first],
            self.h.clock.time() > times[first] or t0 < times[first],
        )

    def _tried(self, since: int) -> list[RecordedRequest]:
        """The writes tried since request `since`, whatever Close answered."""
        return [r for r in self.h.sandbox.requests[since:] if self._is_write(r)]

    def _pause(self) -> None:
        self.h.clock.advance(PAUSE_S)

    def _confirm(self, token: Token, row: Row, answer: str) -> dict[str, Any] | None:
        """Confirm `row` with `token`; assert both directions against the model."""
        self._pause()
        self.answer = answer
        now = self.h.clock.time()
        STEPS["at_expiry"] += now == token.expires and token.row == row.name
        STEPS["replayed"] += token.value in self.spent
        state = self._bound(row) if row.valid(self) else None
        clean = token.row == row.name and token.value not in self.spent and now < token.expires
        fits = clean and state == token.bound
        human = answer == "accept_right" or not self.asks
        legit = fits and human and token.value != "none" and state is not None
        args = {**row.args, "confirmation_token": token.value}
        seen = len(self.h.sandbox.requests)
        result, sent, checked_by, waited = self._timed_call(row.tool, args)
        if clean and now < token.expires <= checked_by:
            # Expired while the call's reads were paced, before or after the check: either
            # answer is right, but never a write without a submitted result.
            STEPS["ambiguous"] += 1
            legit = legit and result is not None and result["status"] == "submitted"
        if legit:
            assert result is not None, f"{row.name}: a valid confirmation failed"
            assert result["status"] == "submitted", (
                f"{row.name}: a valid confirmation was not submitted: {result['message']}"
            )
            assert sent == row.sends(state), (row.name, sent, row.sends(state))
            self.spent.add(token.value)
            self.expected_writes += sent
            row.done(self, state)
            STEPS["submitted"] += 1
            STEPS[f"submitted:{row.tool}"] += 1
            STEPS["writes"] += sent
            STEPS["paced"] += waited and row.tool in ("update_opportunities", "update_tasks")
        else:
            assert self._tried(seen) == [], f"{row.name} wrote without a valid confirmation"
            assert result is None or result["status"] in ("refused", "confirmation_required")
            STEPS["refused"] += 1
            if clean and human and state != token.bound and result is not None:
                assert result["status"] == "refused", result
                STEPS["drift_refused"] += 1
        return result

    # -- rules -------------------------------------------------------------------------------

    @rule(target=tokens, which=WHICH, dry=st.booleans())
    def preview(self, which: int, dry: bool) -> Any:
        row = self._row(which)
        self._pause()
        if dry:  # a dry run previews and never mints a token
            seen = len(self.h.sandbox.requests)
            result, _, _, _ = self._timed_call(row.tool, {**row.args, "dry_run": True})
            assert self._tried(seen) == []
            assert (result is None) == (not row.valid(self)), (row.name, result)
            if result is not None:
                assert result["status"] in ("preview", "refused")
                assert result["confirmation_token"] is None
        before = self.h.clock.time()
        state = self._bound(row) if row.valid(self) else None
        seen = len(self.h.sandbox.requests)
        result, _, _, _ = self._timed_call(row.tool, row.args)
        assert self._tried(seen) == []
        if not row.valid(self):
            assert result is None, (row.name, result)
            return Token(row.name, "none", state, 0.0)
        assert result is not None
        if result["status"] != "confirmation_required":
            assert result["status"] == "refused", result  # nothing to do
            assert row.matched(state) == 0, (row.name, result)
            return Token(row.name, "none", state, 0.0)
        assert result["preview"]["matched"] == row.matched(state), row.name
        expires = _expiry(result["confirmation_token"])
        # (to the millisecond: the token rounds it)
        assert before + TOKEN_TTL_S - 5e-4 <= expires <= self.h.clock.time() + TOKEN_TTL_S + 5e-4
        return Token(row.name, result["confirmation_token"], state, expires)

    @rule(which=WHICH, answer=st.sampled_from(ANSWERS))
    def preview_then_confirm(self, which: int, answer: str) -> None:
        token = self.preview(which, dry=False)
        if token.value != "none":
            self._confirm(token, self.rows[token.row], answer)

    @rule(which=WHICH, answer=st.sampled_from(ANSWERS))
    def confirm_twice(self, which: int, answer: str) -> None:
        """A preview and its token confirmed, then the same token again (a replay, spent if
        the first went through, else confirmed anew)."""
        token = self.preview(which, dry=False)
        if token.value != "none":
            self._confirm(token, self.rows[token.row], answer)
            self._confirm(token, self.rows[token.row], "accept_right")

    @rule(
        which=WHICH,
        change=st.sampled_from(["move_lead", "change_opportunity", "change_task",
                                "delete_elsewhere"]),
        pick=st.integers(min_value=0, max_value=199),
    )  # fmt: skip
    def preview_change_confirm(self, which: int, change: str, pick: int) -> None:
        """A preview, the sandbox changed by someone else, then its token (the person agrees):
        refused exactly when the change touched what the token bound."""
        token = self.preview(which, dry=False)
        if change == "move_lead":
            self.move_lead(pick, ["Qualified", "Bad Fit", "Potential"][pick % 3])
        elif change == "change_opportunity":
            self.change_opportunity(pick, [10, 50, 90][pick % 3])
        elif change == "change_task":
            self.change_task(pick, bool(pick % 2))
        else:
            self.delete_elsewhere(pick)
        if token.value != "none":
            self._confirm(token, self.rows[token.row], "accept_right")

    @rule(
        token=tokens,
        which=WHICH,
        answer=st.sampled_from(ANSWERS),
        same_row=st.sampled_from([True, True, True, False]),
    )
    def confirm(self, token: Token, which: int, answer: str, same_row: bool) -> None:
        row = self.rows[token.row] if same_row else self._row(which)
        self._confirm(token, row, answer)

    @rule(token=tokens)
    def swapped(self, token: Token) -> None:
        """A row's token with the arguments of another row of the same tool: refused; when
        both count the same (the two exports), by the request digest alone."""
        mine = self.rows[token.row]
        twin = next(r for r in self.rows.values() if r.tool == mine.tool and r is not mine)
        clean = token.value not in self.spent and self.h.clock.time() + PAUSE_S < token.expires
        same_count = twin.valid(self) and twin.matched(self._bound(twin)) == (
            token.bound is not None and mine.matched(token.bound)
        )
        result = self._confirm(token, twin, "accept_right")
        STEPS["swapped"] += 1
        if clean and token.value != "none" and twin.valid(self):
            assert result is not None
            assert result["status"] == "refused", result
            if same_count:
                assert str(result["reason"]).startswith(DIGEST_REFUSAL), result["reason"]
                STEPS["digest_refused"] += 1

    @rule(which=WHICH)
    def preview_then_swapped(self, which: int) -> None:
        self.swapped(self.preview(which, dry=False))

    @rule(
        token=tokens,
        which=WHICH,
        how=st.integers(0, 3),
        same_row=st.sampled_from([True, True, True, False]),
    )
    def forged(self, token: Token, which: int, how: int, same_row: bool) -> None:
        row = self.rows[token.row] if same_row else self._row(which)
        self.answer = "accept_right"
        self._pause()
        forged = forge(token.value, how)
        seen = len(self.h.sandbox.requests)
        result, _, _, _ = self._timed_call(row.tool, {**row.args, "confirmation_token": forged})
        assert self._tried(seen) == []
        assert result is None or result["status"] == "refused", result

    @rule(which=st.integers(min_value=0, max_value=59),
          into=st.sampled_from(["Qualified", "Bad Fit", "Potential"]))  # fmt: skip
    def move_lead(self, which: int, into: str) -> None:
        store = self.store()
        leads = sorted(store.leads)
        if leads:
            store.leads[leads[which % len(leads)]].status_id = status_id(store, into)

    @rule(which=st.integers(min_value=0, max_value=199), value=st.sampled_from([10, 50, 90]))
    def change_opportunity(self, which: int, value: int) -> None:
        """Someone changes an opportunity in Close: its confidence, or (every third) its
        status, in or out of the active ones."""
        store = self.store()
        opps = sorted(store.opportunities)
        if not opps:
            return
        opp = store.opportunities[opps[which % len(opps)]]
        if which % 3:
            opp.confidence = value
        else:
            statuses = sorted(store.opportunity_statuses)
            opp.status_id = statuses[value % len(statuses)]

    @rule(which=st.integers(min_value=0, max_value=199), reassign=st.booleans())
    def change_task(self, which: int, reassign: bool) -> None:
        """Someone completes or reopens a task in Close, or gives it to another user."""
        store = self.store()
        tasks = sorted(store.tasks)
        if not tasks:
            return
        task = store.tasks[tasks[which % len(tasks)]]
        if reassign:
            task.assigned_to = sorted(store.users)[which % len(store.users)]
        else:
            task.is_complete = not task.is_complete

    @rule(which=st.integers(min_value=0, max_value=59))
    def delete_elsewhere(self, which: int) -> None:
        """Another integration deletes a lead in Close (its opportunities and tasks go with it,
        and the event log keeps it): the restore from the log has one more lead."""
        leads = sorted(self.store().leads)
        if leads:
            self.portal.call(self._delete_lead, leads[which % len(leads)])

    async def _delete_lead(self, lead_id: str) -> None:
        async with httpx.AsyncClient(
            transport=self.h.sandbox.transport(),
            base_url="https://api.close.com/api/v1/",
            auth=(SANDBOX_API_KEY, ""),
        ) as close:
            for _ in range(3):  # another integration, paced by Close's 429s on its own
                answer = await close.delete(f"lead/{lead_id}/")
                if answer.status_code != 429:
                    break
                self.h.clock.advance(PAUSE_S)
            assert answer.status_code == 200, answer.text

    @rule(token=tokens, early=st.booleans())
    def confirm_at_expiry(self, token: Token, early: bool) -> None:
        target = token.expires - (1.0 if early else 0.0) - PAUSE_S  # _confirm pauses first
        now = self.h.clock.time()
        if token.value == "none" or target < now:
            return
        self.h.clock.advance(target - now)
        self._confirm(token, self.rows[token.row], "accept_right")

    @rule(seconds=st.sampled_from([1.0, 5.0, 30.0, 120.0, 599.0, 600.0, 601.0]))
    def time_passes(self, seconds: float) -> None:
        self.h.clock.advance(seconds)

    @invariant()
    def every_write_was_confirmed(self) -> None:
        assert len(self._writes()) - self.seen == self.expected_writes


RUNS: Final = {("legacy", True): 15, ("auto", True): 12, ("legacy", False): 12}


@pytest.mark.parametrize(("mode", "asks"), list(RUNS), ids=["legacy", "auto", "no-elicitation"])
def test_issue_28_writes_cannot_be_confirmed_around(mode: Mode, asks: bool) -> None:
    _fresh_steps()
    # No shrinking: a failing run is printed whole (shrinking one took more than five minutes
    # of this machine's calls).
    run_machine(RecordMachine, mode, asks, examples=RUNS[mode, asks], steps=40, shrink=False)
    # Both directions exercised, for every tool of the table.
    tools = [key.removeprefix("submitted:") for key in STEPS if key.startswith("submitted:")]
    assert all(STEPS[f"submitted:{tool}"] > 0 for tool in tools), {
        k: v for k, v in STEPS.items() if k.startswith("sub")
    }
    for figure in ("refused", "drift_refused", "digest_refused", "paced", "at_expiry", "replayed"):
        assert STEPS[figure] > 0, (figure, STEPS)
    who = "asking the person" if asks else "a client that cannot ask"
    per_tool = ", ".join(f"{tool} {STEPS['submitted:' + tool]}" for tool in tools)
    record(
        f"issue-28 confirmation state machine[{mode}, {who}]",
        f"{STEPS['runs']} runs, {STEPS['steps']} tool calls; {STEPS['submitted']} confirmed "
        f"writes ({per_tool}), "
        f"{STEPS['writes']} requests sent, each predicted by the model ({STEPS['paced']} runs "
        f"waited on the rate limit, {STEPS['throttled']} writes met a 429 and went again); "
        f"{STEPS['refused']} confirmations refused, none legitimate "
        f"({STEPS['drift_refused']} after the sandbox changed what the token bound, "
        f"{STEPS['digest_refused']} of {STEPS['swapped']} swapped by the digest, "
        f"{STEPS['replayed']} replays of a spent token, "
        f"{STEPS['at_expiry']} at the exact second the token expires; {STEPS['ambiguous']} "
        "expired while paced reads moved the clock, either answer right)",
    )
