"""update_opportunities and update_tasks (issue 28): per-record writes through a real MCP
client, against the sandbox: preview, confirmation, the exact requests that reach Close, refusal
on drift (a record changed or added since the preview), partial failures, and the undo."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import anyio
import httpx
import pytest

from bench.tokens import count_tokens
from close_mcp.clock import FakeClock
from close_mcp.close.times import close_time
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import Opportunity
from tests.harness import MODES, Harness, Mode, StartHarness, text_of
from tests.test_progress import MAX_GAP_S, OneSecondPerRequest, _longest_gap

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=120, toolsets="all")]


def owner_with_opps(h: Harness) -> str:
    """The user owning the most opportunities in the sandbox."""
    counts: dict[str, int] = {}
    for opp in h.sandbox.store.opportunities.values():
        counts[opp.user_id] = counts.get(opp.user_id, 0) + 1
    return max(counts, key=lambda u: counts[u])


def opps_of(h: Harness, user_id: str) -> dict[str, Opportunity]:
    return {
        o.id: copy.copy(o) for o in h.sandbox.store.opportunities.values() if o.user_id == user_id
    }


@pytest.mark.parametrize("mode", MODES)
async def test_update_opportunities_previews_sends_one_put_each_and_undoes(
    start_harness: StartHarness, mode: Mode
) -> None:
    h = await start_harness(mode=mode)
    user = owner_with_opps(h)
    before = opps_of(h, user)
    assert len(before) >= 3
    args = {"where": {"user": user}, "change": {"confidence": 95}}
    preview = await h.call("update_opportunities", {**args, "dry_run": True})
    assert preview["status"] == "preview"
    changing = sorted(i for i, o in before.items() if o.confidence != 95)
    body = preview["preview"]["request"]
    assert body["requests_count"] == len(changing) == preview["preview"]["matched"]
    assert body["requests"][0] == {
        "path": f"/opportunity/{changing[0]}/",
        "id": changing[0],
        "method": "PUT",
        "before": {"confidence": before[changing[0]].confidence},
        "after": {"confidence": 95},
    }
    assert h.writes() == []

    done = await h.confirmed("update_opportunities", args)
    assert done["status"] == "submitted", done
    writes = h.writes()
    assert [(w.method, w.path, w.json) for w in writes] == [
        ("PUT", f"/api/v1/opportunity/{i}/", {"confidence": 95}) for i in changing
    ]
    assert {o.id: o.confidence for o in opps_of(h, user).values()} == dict.fromkeys(before, 95)
    run_id = done["result"]["run_id"]
    assert done["result"]["done_count"] == len(changing)
    assert done["result"]["failed_count"] == 0
    assert run_id in done["message"]
    assert done["snapshot"] == f"store:records:{run_id}"

    h.clear()
    undone = await h.confirmed("update_opportunities", {"undo": run_id})
    assert undone["status"] == "submitted", undone
    assert [(w.method, w.path, w.json) for w in h.writes()] == [
        ("PUT", f"/api/v1/opportunity/{i}/", {"confidence": before[i].confidence}) for i in changing
    ]
    assert {i: o.confidence for i, o in opps_of(h, user).items()} == {
        i: o.confidence for i, o in before.items()
    }
    # Nothing left to undo: a second undo is refused and sends nothing.
    h.clear()
    again = await h.call("update_opportunities", {"undo": run_id})
    assert again["status"] == "refused"
    assert h.writes() == []


@pytest.mark.parametrize("drift", ["changed", "added"])
async def test_a_record_changed_or_added_since_the_preview_refuses_the_token(
    h: Harness, drift: str
) -> None:
    user = owner_with_opps(h)
    args = {"where": {"user": user}, "change": {"confidence": 95}}
    first = await h.call("update_opportunities", args)
    assert first["status"] == "confirmation_required"
    store = h.sandbox.store
    if drift == "changed":
        # The last record of the plan (not among the three the preview shows), still in it
        # with another old value: the same count and the same first requests; only the
        # digest of every request tells.
        planned = [o for o in store.opportunities.values() if o.user_id == user]
        changed = max((o for o in planned if o.confidence != 95), key=lambda o: o.id)
        assert first["preview"]["request"]["requests_count"] > 3
        changed.confidence = 1 if changed.confidence != 1 else 2
    else:
        model = next(o for o in store.opportunities.values() if o.user_id == user)
        store.opportunities["oppo_added"] = dataclasses.replace(
            model, id="oppo_added", confidence=10
        )
    answer = await h.call(
        "update_opportunities", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert answer["status"] == "refused"
    assert "different arguments" in answer["reason"]
    assert answer["confirmation_token"]  # a fresh preview, with its own token
    assert h.writes() == []


async def test_a_record_close_refuses_is_reported_and_the_run_goes_on(h: Harness) -> None:
    user = owner_with_opps(h)
    changing = sorted(i for i, o in opps_of(h, user).items() if o.confidence != 95)
    h.sandbox.inject_faults("5xx", 1, f"opportunity/{changing[1]}/", "PUT", status=400)
    done = await h.confirmed("update_opportunities", {"where": {"user": user},
                                                       "change": {"confidence": 95}})  # fmt: skip
    assert done["status"] == "submitted"
    assert done["result"]["done_count"] == len(changing) - 1
    assert done["result"]["failed_count"] == 1
    assert done["result"]["failed"][0]["id"] == changing[1]
    assert [w.path for w in h.writes()] == [f"/api/v1/opportunity/{i}/" for i in changing]
    assert h.sandbox.store.opportunities[changing[1]].confidence != 95


async def test_bad_arguments_are_tool_errors_and_send_nothing(h: Harness) -> None:
    assert "at least one criterion" in await h.error(
        "update_opportunities", {"change": {"confidence": 5}}
    )
    every = {"s_query": {"type": "match_all"}, "change": {"complete": True}}
    assert "at least one criterion" in await h.error("update_tasks", every)
    assert "no opportunity status 'Nope'" in await h.error(
        "update_opportunities", {"where": {"status_type": "won"}, "change": {"status": "Nope"}}
    )
    assert "give undo alone" in await h.error(
        "update_tasks", {"undo": "taskupd_00", "change": {"complete": True}}
    )
    assert "exactly one of change or delete" in await h.error(
        "update_tasks", {"where": {"is_complete": False}}
    )
    assert "not a run of update_tasks" in await h.error("update_tasks", {"undo": "oppupd_00"})
    assert h.writes() == []


def busiest_assignee(h: Harness) -> str:
    """The user with the most tasks in the harness's sandbox."""
    store = h.sandbox.store
    return max(store.users, key=lambda u: sum(t.assigned_to == u for t in store.tasks.values()))


async def delete_open_tasks(h: Harness) -> tuple[str, int, str]:
    """Delete the busiest assignee's open tasks (confirmed): whose, how many, and the run id."""
    user = busiest_assignee(h)
    where = {"assignee": user, "is_complete": False}
    deleted = await h.confirmed("update_tasks", {"where": where, "delete": True})
    return user, deleted["result"]["done_count"], deleted["result"]["run_id"]


async def test_update_tasks_completes_deletes_and_undoes_both(h: Harness) -> None:
    store = h.sandbox.store
    user = busiest_assignee(h)
    open_before = {
        t.id: copy.copy(t)
        for t in store.tasks.values()
        if t.assigned_to == user and not t.is_complete
    }
    assert open_before
    done = await h.confirmed("update_tasks", {"where": {"assignee": user, "is_complete": False},
                                               "change": {"complete": True}})  # fmt: skip
    assert done["status"] == "submitted"
    assert all(store.tasks[i].is_complete for i in open_before)
    assert [(w.method, w.json) for w in h.writes()] == [("PUT", {"is_complete": True})] * len(
        open_before
    )
    undone = await h.confirmed("update_tasks", {"undo": done["result"]["run_id"]})
    assert undone["status"] == "submitted"
    assert not any(store.tasks[i].is_complete for i in open_before)

    h.clear()
    deleted = await h.confirmed("update_tasks", {"where": {"assignee": user,
                                                            "is_complete": False},
                                                  "delete": True})  # fmt: skip
    assert deleted["status"] == "submitted"
    assert not set(open_before) & set(store.tasks)
    assert [(w.method, w.path) for w in h.writes()] == [
        ("DELETE", f"/api/v1/task/{i}/") for i in sorted(open_before)
    ]
    h.clear()
    restored = await h.confirmed("update_tasks", {"undo": deleted["result"]["run_id"]})
    assert restored["status"] == "submitted"
    again = {
        (t.lead_id, t.text, close_time(t.date), t.assigned_to)
        for t in store.tasks.values()
        if t.assigned_to == user and not t.is_complete
    }
    assert again == {
        (t.lead_id, t.text, close_time(t.date), t.assigned_to) for t in open_before.values()
    }
    assert [w.method for w in h.writes()] == ["POST"] * len(open_before)


async def test_an_undo_of_a_delete_recreates_each_task_once_and_its_own_undo_deletes_them(
    h: Harness,
) -> None:
    """A deleted task comes back once however often the run is undone, and undoing that undo
    deletes the tasks it created (by their new ids), never reading them as "not found"."""
    store = h.sandbox.store
    _, count, run = await delete_open_tasks(h)
    assert count > 1
    restored = await h.confirmed("update_tasks", {"undo": run})
    recreated = set(restored["result"]["done"])
    tasks_now = len(store.tasks)

    h.clear()
    again = await h.call("update_tasks", {"undo": run})
    assert again["status"] == "refused", again
    assert again["message"].startswith("Nothing to do: no task needs a change.")
    assert again["preview"]["request"]["already_count"] == count
    assert len(store.tasks) == tasks_now
    assert h.writes() == []

    undo_of_undo = await h.call("update_tasks", {"undo": restored["result"]["run_id"]})
    assert undo_of_undo["preview"]["request"]["requests_count"] == count
    assert "no longer exist" not in " ".join(undo_of_undo["preview"]["notes"])
    gone = await h.confirmed("update_tasks", {"undo": restored["result"]["run_id"]})
    assert gone["status"] == "submitted"
    assert len(store.tasks) == tasks_now - count
    assert recreated <= {w.path.split("/")[-2] for w in h.writes()}
    assert {w.method for w in h.writes()} == {"DELETE"}


async def test_a_long_run_sends_progress_on_each_record(start_harness: StartHarness) -> None:
    """Each request takes a second of the fake clock: the confirmed call reports each record
    sent (at most one notification a second), ending with the last."""
    clock = FakeClock()
    sandbox = Sandbox(n_leads=120, clock=clock)
    h = await start_harness(
        sandbox=sandbox, clock=clock, transport=OneSecondPerRequest(sandbox.transport(), clock)
    )
    args = {"where": {"status_type": "active"}, "change": {"confidence": 33}}
    first = await h.call("update_opportunities", args)
    n = first["preview"]["matched"]
    assert n >= 10
    heard: list[tuple[float, float, float | None, str | None]] = []

    async def callback(progress: float, total: float | None, message: str | None) -> None:
        heard.append((h.clock.time(), progress, total, message))

    started = h.clock.time()
    done = await h.client.call_tool(
        "update_opportunities",
        {**args, "confirmation_token": first["confirmation_token"]},
        progress_callback=callback,
    )
    assert not done.is_error, done.content
    assert len(heard) >= n // 2
    assert [value for _, value, _, _ in heard] == sorted({value for _, value, _, _ in heard})
    assert heard[-1][1:] == (n, n, f"update_opportunities: {n} of {n} opportunities sent")
    assert _longest_gap(started, [at for at, *_ in heard], h.clock.time()) <= MAX_GAP_S


@pytest.mark.harness(n_leads=400)
async def test_a_preview_over_hundreds_of_named_leads_stays_small(h: Harness) -> None:
    """400 lead ids in the selection, a run on their open tasks: the confirmation request
    (the preview with its token) stays within 1,500 tokens, the id list shortened."""
    ids = sorted(h.sandbox.store.leads)
    args = {"filter": {"lead_ids": ids}, "where": {"is_complete": False},
            "change": {"due_date": "2026-04-01"}}  # fmt: skip
    result = await h.call_raw("update_tasks", args)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "confirmation_required"
    assert result.structured_content["preview"]["matched"] > 50
    assert count_tokens(text_of(result)) <= 1500


class TaskListsFail(httpx.AsyncBaseTransport):
    """The sandbox, with every list of a lead's tasks answered 503 while `failing`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failing = False
        self.failed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        listing = request.url.path == "/api/v1/task/" and "lead_id" in request.url.params
        if self.failing and request.method == "GET" and listing:
            self.failed += 1
            return httpx.Response(503, json={"error": "unavailable"})
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("search_fails", [False, True])
@pytest.mark.parametrize("fault", ["after_commit", "timeout_after_commit"])
async def test_a_recreation_whose_answer_is_lost_is_never_sent_again(
    start_harness: StartHarness, fault: str, search_fails: bool
) -> None:
    """Undoing a delete re-creates each task with one POST. When Close made the task but its
    answer was lost (a 504, a timeout), the task is found among the lead's tasks (or, the
    search failing too, by the next undo), and no undo ever creates it a second time."""
    clock = FakeClock()
    sandbox = Sandbox(n_leads=120, clock=clock)
    lists = TaskListsFail(sandbox.transport())
    h = await start_harness(sandbox=sandbox, clock=clock, transport=lists)
    store = h.sandbox.store
    user, count, run = await delete_open_tasks(h)
    assert count > 1
    h.sandbox.inject_faults(fault, 1, "task/", "POST")  # type: ignore[arg-type]
    lists.failing = search_fails  # the look-up after the lost answer fails too
    first = await h.confirmed("update_tasks", {"undo": run})
    lists.failing = False
    assert h.sandbox.faults_served == {fault: 1}
    assert lists.failed == (4 if search_fails else 0)  # the look-up and its three retries
    assert first["status"] == "submitted", first
    assert first["result"]["done_count"] == count - search_fails
    assert first["result"]["failed_count"] == int(search_fails)
    key = lambda t: (t.lead_id, t.text, close_time(t.date))  # noqa: E731
    made = [key(t) for t in store.tasks.values() if t.assigned_to == user and not t.is_complete]
    assert len(made) == len(set(made)) == count  # Close made every one, the faulted one too

    h.clear()
    again = await h.call("update_tasks", {"undo": run})
    assert again["status"] == "refused", again
    assert again["preview"]["request"]["already_count"] == count
    made = [key(t) for t in store.tasks.values() if t.assigned_to == user and not t.is_complete]
    assert len(made) == len(set(made)) == count
    assert h.writes() == []
    # The undo of that undo deletes every task it made, the one whose answer was lost too.
    gone = await h.confirmed("update_tasks", {"undo": first["result"]["run_id"]})
    assert gone["result"]["done_count"] == count
    assert not [t for t in store.tasks.values() if t.assigned_to == user and not t.is_complete]


async def test_a_recreation_the_store_could_not_record_is_never_sent_again(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store drops the mark of a task Close just created again (as a restart between
    Close's answer and the mark would): the run stops, and the next undo finds that task
    instead of creating it a second time."""
    store = h.sandbox.store
    user, count, run = await delete_open_tasks(h)
    state = h.runtime.store
    put = state.put
    dropped: list[str] = []

    async def dropping(key: str, value: str, *, ttl_s: float | None = None) -> None:
        if key.startswith("records-recreated:") and not dropped:
            dropped.append(key)
            raise ConnectionError("Connection closed by server.")
        await put(key, value, ttl_s=ttl_s)

    monkeypatch.setattr(state, "put", dropping)
    first = await h.call("update_tasks", {"undo": run})
    stopped = await h.error(
        "update_tasks", {"undo": run, "confirmation_token": first["confirmation_token"]}
    )
    assert "could not be recorded in the state store" in stopped
    assert len(dropped) == 1
    open_tasks = [t for t in store.tasks.values() if t.assigned_to == user and not t.is_complete]
    assert len(open_tasks) == 1  # Close made the first; the run stopped there

    h.clear()
    again = await h.confirmed("update_tasks", {"undo": run})
    assert again["status"] == "submitted", again
    assert again["result"]["done_count"] == count - 1
    key = lambda t: (t.lead_id, t.text, close_time(t.date))  # noqa: E731
    made = [key(t) for t in store.tasks.values() if t.assigned_to == user and not t.is_complete]
    assert len(made) == len(set(made)) == count
    assert [w.method for w in h.writes()] == ["POST"] * (count - 1)


@pytest.mark.harness(store_file=True)
async def test_another_organizations_key_cannot_read_or_undo_a_run(
    start_harness: StartHarness,
) -> None:
    """Two organizations share one deployment (and its state store), where each run keeps its
    records' old values (a deleted task whole: its text, lead, assignee). A key of another
    organization that learns the run id is told no such run exists and sees none of them."""
    org_a = await start_harness()
    store = org_a.sandbox.store
    user = busiest_assignee(org_a)
    where = {"assignee": user, "is_complete": False}
    texts = {t.text for t in store.tasks.values() if t.assigned_to == user and not t.is_complete}
    deleted = await org_a.confirmed("update_tasks", {"where": where, "delete": True})
    opp_user = owner_with_opps(org_a)
    opps = {"where": {"user": opp_user}, "change": {"confidence": 95}}
    changed = await org_a.confirmed("update_opportunities", opps)
    org_b = await start_harness(sandbox=Sandbox(n_leads=40, seed=8, api_key="api_org_b_012345"))
    assert not set(org_b.sandbox.store.tasks) & set(store.tasks)  # Close's ids are its own
    for tool, run in (("update_tasks", deleted), ("update_opportunities", changed)):
        run_id = run["result"]["run_id"]
        text = await org_b.error(tool, {"undo": run_id})
        assert text.startswith(f"undo: no saved run {run_id}"), text
        assert not [t for t in texts if t in text]
    assert org_b.writes() == []
    # Organization A's own key still undoes both.
    for tool, run in (("update_tasks", deleted), ("update_opportunities", changed)):
        undone = await org_a.confirmed(tool, {"undo": run["result"]["run_id"]})
        assert undone["status"] == "submitted", undone


@pytest.mark.harness(store_file=True)
async def test_an_undo_planned_before_another_undo_of_the_run_was_sent_sends_nothing(
    start_harness: StartHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two people confirm an undo of one run on two replicas; replica B pauses between
    planning and sending (a slow disk under its snapshot) while A's undo goes, and a
    colleague then sets one opportunity again. B's plan is out of date: it sends nothing,
    neither A's puts again nor over the colleague's value."""
    a = await start_harness()
    b = await start_harness(sandbox=a.sandbox, clock=a.clock)
    user = owner_with_opps(a)
    done = await a.confirmed("update_opportunities", {"where": {"user": user},
                                                      "change": {"confidence": 95}})  # fmt: skip
    n, run = done["result"]["done_count"], done["result"]["run_id"]
    undo = {"undo": run}
    token_a = (await a.call("update_opportunities", undo))["confirmation_token"]
    token_b = (await b.call("update_opportunities", undo))["confirmation_token"]
    paused, resume = anyio.Event(), anyio.Event()
    extend = b.runtime.store.extend

    async def slow_disk(key: str, lines: Any) -> None:
        paused.set()
        await resume.wait()
        await extend(key, lines)

    monkeypatch.setattr(b.runtime.store, "extend", slow_disk)
    answers: list[dict[str, Any]] = []
    a.clear()
    async with anyio.create_task_group() as tg:

        async def confirm_b() -> None:
            result = await b.call_raw(
                "update_opportunities", {**undo, "confirmation_token": token_b}
            )
            answers.append(
                {"error": text_of(result)} if result.is_error else result.structured_content or {}
            )

        tg.start_soon(confirm_b)
        await paused.wait()
        by_a = await a.call("update_opportunities", {**undo, "confirmation_token": token_a})
        assert by_a["status"] == "submitted", by_a
        assert by_a["result"]["done_count"] == n
        colleague = next(o for o in a.sandbox.store.opportunities.values() if o.user_id == user)
        colleague.confidence = 70
        resume.set()
    (answer,) = answers
    assert len([w for w in a.writes() if w.method == "PUT"]) == n  # A's alone
    assert colleague.confidence == 70
    assert str(answer.get("error")).startswith(
        f"Error executing tool update_opportunities: Another undo of {run} was sent after this "
        "plan was made"
    ), answer
