"""merge_leads (issue 28) through a real MCP client against the sandbox: the preview, the
typed count of pairs, the exact POSTs that reach Close, refusal on drift (a lead changed, a
duplicate added), per-pair failures, a pair never sent twice, and the undo through
restore_leads with the run's backup."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from bench.tokens import count_tokens
from close_mcp.clock import FakeClock
from close_mcp.safety.merge import merge_request, plan_merge
from close_mcp.safety.merge_journal import LOCK_TTL_S, journal_key
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import Lead
from close_mcp.writes.sender import Sender
from tests.harness import MODES, Harness, Mode, StartHarness, accept, text_of
from tests.test_progress import MAX_GAP_S, OneSecondPerRequest, _longest_gap

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=60, toolsets="all")]
MERGE = "/api/v1/lead/merge/"


def originals(h: Harness, n: int) -> list[Lead]:
    """`n` seeded leads with a contact email, none sharing an email or a name with another."""
    seen: set[str] = set()
    found: list[Lead] = []
    for lead in sorted(h.sandbox.store.leads.values(), key=lambda x: x.id):
        emails = {e["email"].lower() for c in lead.contacts for e in c.emails}
        if not emails or emails & seen or lead.name.lower() in seen:
            continue
        seen |= emails | {lead.name.lower()}
        found.append(lead)
        if len(found) == n:
            return found
    raise AssertionError("not enough distinct leads")


def duplicate(h: Harness, original: Lead, suffix: str, *, days: int = 1) -> Lead:
    """A newer lead with a copy of the original's first contact (same email)."""
    new_id = f"lead_dup{suffix}"
    contact = dataclasses.replace(
        original.contacts[0],
        id=f"cont_dup{suffix}",
        lead_id=new_id,
        emails=[dict(e) for e in original.contacts[0].emails],
    )
    copy = dataclasses.replace(
        original,
        id=new_id,
        name=f"{original.name} dup{suffix}",
        contacts=[contact],
        custom=dict(original.custom),
        date_created=original.date_created + timedelta(days=days),
    )
    h.sandbox.store.leads[new_id] = copy
    return copy


def merges(h: Harness) -> list[dict[str, Any]]:
    return [w.json for w in h.writes() if w.path == MERGE]


@pytest.mark.parametrize("mode", MODES)
async def test_duplicates_by_email_are_previewed_merged_once_each_and_restored(
    start_harness: StartHarness, mode: Mode
) -> None:
    h = await start_harness(mode=mode)
    one, two = originals(h, 2)
    dup_one, dup_two = duplicate(h, one, "1"), duplicate(h, two, "2")
    args = {"key": "contact_email",
            "filter": {"lead_ids": [one.id, two.id, dup_one.id, dup_two.id]}}  # fmt: skip
    expected = sorted([(one, dup_one), (two, dup_two)], key=lambda p: (p[0].date_created, p[0].id))
    # The contact each source brings back (the merge moves the sandbox's own objects).
    emails = [[{"email": e["email"], "type": e["type"]} for e in d.contacts[0].emails]
              for _, d in expected]  # fmt: skip

    preview = await h.call("merge_leads", {**args, "dry_run": True})
    assert preview["status"] == "preview"
    body = preview["preview"]["request"]
    assert body["key"] == "contact_email"
    assert body["pairs"] == [
        {"source": d.id, "source_name": d.name, "destination": o.id, "destination_name": o.name}
        for o, d in expected
    ]
    assert body["pairs_count"] == preview["preview"]["matched"] == 2
    notes = " ".join(preview["preview"]["notes"])
    assert "deletes the source" in notes
    assert "restore_leads(backup=<run_id>)" in notes
    assert "moved contacts stay there too" in notes
    assert "oldest lead" in notes
    assert h.writes() == []

    done = await h.confirmed("merge_leads", args)
    assert done["status"] == "submitted", done
    assert merges(h) == [{"source": d.id, "destination": o.id} for o, d in expected]
    store = h.sandbox.store
    assert dup_one.id not in store.leads
    assert dup_two.id not in store.leads
    assert "cont_dup1" in [c.id for c in store.leads[one.id].contacts]
    run_id = done["result"]["run_id"]
    assert done["result"]["merged_count"] == 2
    assert done["result"]["failed_count"] == 0
    assert done["snapshot"] == f"store:backup:{run_id}"
    assert f"restore_leads(backup={run_id!r})" in done["message"]

    # The undo: the sources come back (new ids) from the run's backup.
    h.clear()
    restore = await h.call("restore_leads", {"backup": run_id})
    assert restore["status"] == "confirmation_required", restore
    assert restore["preview"]["matched"] == 2
    back = await h.call(
        "restore_leads", {"backup": run_id, "confirmation_token": restore["confirmation_token"]}
    )
    assert back["status"] == "submitted", back
    posted = [w.json for w in h.writes()]
    assert [(p["name"], p["contacts"][0]["emails"]) for p in posted] == [
        (d.name, e) for (_, d), e in zip(expected, emails, strict=True)
    ]
    names = {lead.name for lead in store.leads.values()}
    assert {dup_one.name, dup_two.name} <= names
    # What the preview said: the moved contact stays on the destination.
    assert "cont_dup1" in [c.id for c in store.leads[one.id].contacts]


async def test_the_person_types_the_number_of_pairs(start_harness: StartHarness) -> None:
    h = await start_harness(elicit=accept({"count": 1}))
    (one,) = originals(h, 1)
    dup = duplicate(h, one, "1")
    args = {"pairs": [{"source": dup.id, "destination": one.id}]}
    done = await h.confirmed("merge_leads", args)
    assert done["status"] == "submitted", done
    assert "type the number of pairs that will be merged (1)" in h.questions[0]
    assert merges(h) == [{"source": dup.id, "destination": one.id}]


async def test_a_wrong_count_typed_refuses_and_sends_nothing(start_harness: StartHarness) -> None:
    h = await start_harness(elicit=accept({"count": 2}))
    (one,) = originals(h, 1)
    dup = duplicate(h, one, "1")
    answer = await h.confirmed(
        "merge_leads", {"pairs": [{"source": dup.id, "destination": one.id}]}
    )
    assert answer["status"] == "refused"
    assert answer["reason"] == "the person typed 2, but the action would merge 1"
    assert h.writes() == []
    assert dup.id in h.sandbox.store.leads


@pytest.mark.parametrize("typed", ["1", 3.5])
async def test_a_count_of_pairs_that_is_not_an_integer_is_refused(
    start_harness: StartHarness, typed: Any
) -> None:
    """The refusal names what the question asked the person to count: pairs."""
    h = await start_harness(elicit=accept({"count": typed}))
    (one,) = originals(h, 1)
    dup = duplicate(h, one, "1")
    answer = await h.confirmed(
        "merge_leads", {"pairs": [{"source": dup.id, "destination": one.id}]}
    )
    assert (answer["status"], answer["reason"]) == (
        "refused",
        f"the person's answer {typed!r} is not a whole number of pairs",
    )
    assert h.writes() == []


@pytest.mark.parametrize("drift", ["source renamed", "contact added", "duplicate added"])
async def test_a_lead_changed_or_a_duplicate_added_since_the_preview_refuses(
    h: Harness, drift: str
) -> None:
    one, two = originals(h, 2)
    dup = duplicate(h, one, "1")
    ids = [one.id, two.id, dup.id, "lead_dup2"]
    args = {"key": "contact_email", "filter": {"lead_ids": ids}}
    first = await h.call("merge_leads", args)
    assert first["status"] == "confirmation_required"
    assert first["preview"]["matched"] == 1
    if drift == "source renamed":
        dup.name = "Renamed since"
    elif drift == "contact added":
        # The destination gains a contact: same pair, same names; only the digest tells.
        one.contacts.append(dataclasses.replace(one.contacts[0], id="cont_new", lead_id=one.id))
    else:
        duplicate(h, two, "2")
    answer = await h.call(
        "merge_leads", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert answer["status"] == "refused"
    assert "different arguments" in answer["reason"]
    assert answer["confirmation_token"]
    assert answer["preview"]["matched"] == (2 if drift == "duplicate added" else 1)
    assert h.writes() == []


async def test_a_pair_close_refuses_is_listed_and_left_out_of_the_backup(h: Harness) -> None:
    one, two = originals(h, 2)
    dup_one, dup_two = duplicate(h, one, "1"), duplicate(h, two, "2")
    args = {"pairs": [{"source": dup_one.id, "destination": one.id},
                      {"source": dup_two.id, "destination": two.id}]}  # fmt: skip
    h.sandbox.inject_faults("5xx", 1, "lead/merge/", "POST", status=400)
    done = await h.confirmed("merge_leads", args)
    assert done["status"] == "submitted", done
    result = done["result"]
    assert (result["merged_count"], result["failed_count"]) == (1, 1)
    assert result["failed"][0]["source"] == dup_one.id
    assert result["merged"] == [{"source": dup_two.id, "destination": two.id}]
    assert len(merges(h)) == 2
    assert dup_one.id in h.sandbox.store.leads
    # The backup holds only what was merged: a restore brings back dup_two alone.
    restore = await h.call("restore_leads", {"backup": result["run_id"]})
    assert restore["preview"]["request"]["old_ids"] == [dup_two.id]
    # The refused pair may be sent again: a fresh call plans it.
    again = await h.call("merge_leads", {"pairs": args["pairs"][:1]})
    assert again["preview"]["matched"] == 1


async def test_a_pair_an_earlier_run_sent_is_not_sent_again_within_the_hour(
    start_harness: StartHarness,
) -> None:
    h = await start_harness(clock=SteppedClock())
    one, two = originals(h, 2)
    dup_one, dup_two = duplicate(h, one, "1"), duplicate(h, two, "2")
    # The answer to the first merge is lost, and the source is still there: outcome unknown.
    h.sandbox.inject_faults("timeout", 1, "lead/merge/", "POST")
    args = {"pairs": [{"source": dup_one.id, "destination": one.id},
                      {"source": dup_two.id, "destination": two.id}]}  # fmt: skip
    done = await h.confirmed("merge_leads", args)
    assert done["status"] == "submitted", done
    assert done["result"]["outcome_unknown_count"] == 1
    assert done["result"]["outcome_unknown"][0]["source"] == dup_one.id
    assert done["result"]["merged_count"] == 1
    entry = json.loads(await h.runtime.store.get(journal_key(dup_one.id)) or "{}")
    assert entry["state"] == "outcome_unknown"
    # A retry of the same pairs plans nothing for it, and says why.
    h.clear()
    retry = await h.call("merge_leads", {"pairs": args["pairs"][:1]})
    assert retry["status"] == "refused"
    assert retry["reason"] == "no pair of leads to merge"
    assert h.writes() == []
    again = await h.call("merge_leads", {"pairs": args["pairs"][:1], "dry_run": True})
    assert any("is held back until" in n for n in again["preview"]["notes"])


async def test_an_answer_lost_after_the_merge_counts_as_merged(h: Harness) -> None:
    (one,) = originals(h, 1)
    dup = duplicate(h, one, "1")
    h.sandbox.inject_faults("timeout_after_commit", 1, "lead/merge/", "POST")
    done = await h.confirmed("merge_leads", {"pairs": [{"source": dup.id, "destination": one.id}]})
    assert done["result"]["merged_count"] == 1
    assert "outcome_unknown" not in done["result"]
    assert len(merges(h)) == 1


async def test_a_used_token_merges_nothing_more(h: Harness) -> None:
    (one,) = originals(h, 1)
    dup = duplicate(h, one, "1")
    args = {"pairs": [{"source": dup.id, "destination": one.id}]}
    first = await h.call("merge_leads", args)
    token = first["confirmation_token"]
    assert (await h.call("merge_leads", {**args, "confirmation_token": token}))["status"] == (
        "submitted"
    )
    # The source is gone now: the same call is a tool error naming it, and nothing is sent.
    h.clear()
    assert f"pairs[0].source: no lead {dup.id}" in await h.error(
        "merge_leads", {**args, "confirmation_token": token}
    )
    assert h.writes() == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "pairs: give pairs ([{source, destination}] lead ids) or key"),
        (
            {"key": "exact_name", "pairs": [{"source": "lead_a", "destination": "lead_b"}]},
            "pairs: give pairs",
        ),
        (
            {
                "pairs": [{"source": "lead_a", "destination": "lead_b"}],
                "filter": {"lead_status": "Qualified"},
            },
            "pairs: name the leads themselves: leave out filter",
        ),
        (
            {
                "pairs": [
                    {"source": "lead_a", "destination": "lead_b"},
                    {"source": "lead_b", "destination": "lead_c"},
                ]
            },
            "pairs[0].destination: lead_b is the source of pairs[1]",
        ),
        ({"pairs": [{"source": "lead_a", "destination": "lead_a"}]}, "pairs[0]: lead_a cannot"),
        ({"pairs": [{"source": "lead_nope", "destination": "lead_nada"}]}, "no lead lead_nope"),
        ({"pairs": [{"source": "cont_x", "destination": "lead_b"}]}, "source"),
        ({"key": "phone"}, "key"),
        ({"key": "exact_name"}, "name the leads: selection (from search_leads), filter or"),
    ],
)
async def test_bad_arguments_are_tool_errors_and_send_nothing(
    h: Harness, arguments: dict[str, Any], message: str
) -> None:
    assert message in await h.error("merge_leads", arguments)
    assert h.writes() == []


async def test_a_preview_of_the_most_pairs_with_long_names_stays_small(h: Harness) -> None:
    leads = originals(h, 1)
    base = leads[0]
    pairs = []
    for i in range(100):
        dup = duplicate(h, base, f"x{i}")
        dup.name = "N" * 300 + str(i)
        pairs.append({"source": dup.id, "destination": base.id})
    result = await h.call_raw("merge_leads", {"pairs": pairs})
    answer = result.structured_content
    assert answer is not None
    assert answer["preview"]["matched"] == 100
    assert len(answer["preview"]["request"]["pairs"]) == 10
    assert count_tokens(text_of(result)) <= 1500


async def test_a_long_run_sends_progress_on_each_pair(start_harness: StartHarness) -> None:
    """Each request takes a second of the fake clock: the confirmed call reports each pair
    (at most one notification a second), ending with the last. (The lock's renewal waits on
    the stepped clock, which only requests move here; a FakeClock's sleep would race it.)"""
    clock = SteppedClock()
    sandbox = Sandbox(n_leads=60, clock=clock)
    h = await start_harness(
        sandbox=sandbox, clock=clock, transport=OneSecondPerRequest(sandbox.transport(), clock)
    )
    (one,) = originals(h, 1)
    args = {"pairs": [{"source": duplicate(h, one, str(i)).id, "destination": one.id}
                      for i in range(12)]}  # fmt: skip
    first = await h.call("merge_leads", args)
    heard: list[tuple[float, float, float | None, str | None]] = []

    async def callback(progress: float, total: float | None, message: str | None) -> None:
        heard.append((h.clock.time(), progress, total, message))

    started = h.clock.time()
    done = await h.client.call_tool(
        "merge_leads",
        {**args, "confirmation_token": first["confirmation_token"]},
        progress_callback=callback,
    )
    assert not done.is_error, done.content
    assert len(heard) >= 6
    assert [value for _, value, _, _ in heard] == sorted({value for _, value, _, _ in heard})
    assert heard[-1][1:] == (12, 12, "merge_leads: 12 of 12 pairs")
    assert _longest_gap(started, [at for at, *_ in heard], h.clock.time()) <= MAX_GAP_S
    assert len(merges(h)) == 12


async def test_a_pair_claimed_after_the_preview_is_not_sent(h: Harness) -> None:
    """Another run (a replica, a restart) claims a pair between this run's confirmation and
    its send: the journal entry, read again as each pair goes, leaves it out."""
    one, two = originals(h, 2)
    dup_one, dup_two = duplicate(h, one, "1"), duplicate(h, two, "2")
    client = h.runtime.call(None).client
    plan = await plan_merge(
        h.runtime.store, h.clock, client, key=None, selection=None,
        pairs=[(dup_one.id, one.id), (dup_two.id, two.id)],
    )  # fmt: skip
    request = await merge_taken(h, client, plan)
    other = {"run_id": "leadmerge_other", "destination": one.id, "state": "sending"}
    await h.runtime.store.put(journal_key(dup_one.id), json.dumps(other))
    answer = await request.send(Sender(h.audit, client, "merge_leads"), None)
    assert answer.result["merged"] == [{"source": dup_two.id, "destination": two.id}]
    assert answer.result["skipped_count"] == 1
    assert merges(h) == [{"source": dup_two.id, "destination": two.id}]
    assert dup_one.id in h.sandbox.store.leads


class SteppedClock(FakeClock):
    """A fake clock whose `sleep` waits until the test moves time past its end: a slow Close
    and the lock's renewal beats then run while the test says time passes, no sooner."""

    def __init__(self) -> None:
        super().__init__()
        self._sleepers: list[tuple[float, anyio.Event]] = []
        self.long_sleep = anyio.Event()  # a sleep of at least LOCK_TTL_S began

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds >= LOCK_TTL_S:
            self.long_sleep.set()
        wake = anyio.Event()
        self._sleepers.append((self.time() + max(seconds, 0.0), wake))
        await wake.wait()

    async def pass_time(self, seconds: float, *, step: float = 60.0) -> None:
        """Move on `seconds`, `step` at a time, letting every woken task run in between."""
        end = self.time() + seconds
        while self.time() < end:
            self.advance(min(step, end - self.time()))
            due = [s for s in self._sleepers if s[0] <= self.time()]
            self._sleepers = [s for s in self._sleepers if s[0] > self.time()]
            for _, wake in due:
                wake.set()
            for _ in range(50):  # the woken tasks reach the store and sleep again
                await anyio.lowlevel.checkpoint()


async def test_the_merge_lock_outlives_a_run_longer_than_its_lifetime(
    start_harness: StartHarness,
) -> None:
    """Close answers one merge three lock lifetimes late (429 waits, a slow Close): while the
    run waits, the lock is renewed, so a second run two lifetimes in is still refused."""
    clock = SteppedClock()
    h = await start_harness(sandbox=Sandbox(n_leads=60, clock=clock), clock=clock)
    one, two = originals(h, 2)
    dup_one, dup_two = duplicate(h, one, "1"), duplicate(h, two, "2")
    slow = {"pairs": [{"source": dup_one.id, "destination": one.id}]}
    other = {"pairs": [{"source": dup_two.id, "destination": two.id}]}
    h.sandbox.inject_faults("slow", 1, "lead/merge/", "POST", seconds=3 * LOCK_TTL_S)
    token = (await h.call("merge_leads", slow))["confirmation_token"]
    answers: dict[str, dict[str, Any]] = {}

    async def first_run() -> None:
        answers["slow"] = await h.call("merge_leads", {**slow, "confirmation_token": token})

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first_run)
        await clock.long_sleep.wait()  # the first merge reached Close, which is slow
        await clock.pass_time(2 * LOCK_TTL_S)
        preview = await h.call("merge_leads", other)
        refused = await h.error(
            "merge_leads", {**other, "confirmation_token": preview["confirmation_token"]}
        )
        await clock.pass_time(LOCK_TTL_S + 60)
    assert refused.startswith("another merge_leads run is being sent"), refused
    assert answers["slow"]["status"] == "submitted", answers["slow"]
    assert answers["slow"]["result"]["merged_count"] == 1
    assert merges(h) == [{"source": dup_one.id, "destination": one.id}]
    assert dup_two.id in h.sandbox.store.leads


# -- pairs whose earlier attempt had an unknown outcome ----------------------------------------

UNKNOWN_AGAIN = (
    "1 pair whose earlier attempt had an unknown outcome still has its source an hour later: "
    "not merged, offered again."
)


def entry_of(value: str | None) -> dict[str, Any]:
    assert value is not None
    parsed: dict[str, Any] = json.loads(value)
    return parsed


async def test_an_unknown_outcome_is_offered_again_an_hour_later_while_its_source_exists(
    start_harness: StartHarness,
) -> None:
    h = await start_harness(clock=SteppedClock())
    (one,) = originals(h, 1)
    dup = duplicate(h, one, "1")
    args = {"pairs": [{"source": dup.id, "destination": one.id}]}
    # The answer to the merge is lost and the source is still there: outcome unknown.
    h.sandbox.inject_faults("timeout", 1, "lead/merge/", "POST")
    done = await h.confirmed("merge_leads", args)
    assert done["result"]["outcome_unknown_count"] == 1
    assert "a preview an hour from now offers them again" in done["message"]
    written = entry_of(await h.runtime.store.get(journal_key(dup.id)))
    assert (written["state"], written["at"]) == ("outcome_unknown", h.clock.time())

    # Within the hour a run may still be sending it (or Close merging it): held back, and
    # the preview says until when. The source is looked up in Close first.
    h.clear()
    h.clock.advance(LOCK_TTL_S - 60)
    soon = await h.call("merge_leads", {**args, "dry_run": True})
    assert soon["preview"]["matched"] == 0
    assert [(r.method, r.path) for r in h.sandbox.requests if r.method == "GET"] == [
        ("GET", f"/api/v1/lead/{dup.id}/")
    ]
    assert (
        f"1 pair whose earlier attempt had an unknown outcome is held back until "
        f"2026-01-01T01:00:00Z (an hour after it, when no run can still be sending it); then "
        f"a preview offers it again if its source still exists ({dup.id})."
    ) in soon["preview"]["notes"]
    assert h.writes() == []

    # An hour after it, no run holding the lock, the source still there: it was not merged.
    h.clock.advance(60)
    again = await h.call("merge_leads", args)
    assert again["preview"]["matched"] == 1
    assert UNKNOWN_AGAIN in again["preview"]["notes"]
    merged = await h.call(
        "merge_leads", {**args, "confirmation_token": again["confirmation_token"]}
    )
    assert merged["result"]["merged_count"] == 1, merged
    assert merges(h) == [{"source": dup.id, "destination": one.id}]
    assert dup.id not in h.sandbox.store.leads
    assert entry_of(await h.runtime.store.get(journal_key(dup.id)))["state"] == "merged"


async def merge_taken(h: Harness, client: Any, plan: Any) -> Any:
    """The merge request of `plan` as the pipeline holds it once confirmed: its backup's
    safeguard taken, about to send (custom fields: none)."""

    async def no_custom_fields() -> list[str]:
        return []

    request = merge_request(h.runtime.store, h.clock, client, plan, what={},
                            custom_field_ids=no_custom_fields)  # fmt: skip
    assert request.send is not None
    assert request.safeguard is not None
    await request.safeguard.take(request)
    return request


async def earlier_attempt(
    h: Harness, state: str, at: float | None
) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """A lead, its duplicate, and the journal entry an earlier run left for that pair (`at`:
    its time; None: an entry written before entries had one); the pair's dry-run arguments."""
    (one,) = originals(h, 1)
    dup = duplicate(h, one, "1")
    old: dict[str, Any] = {"run_id": "leadmerge_old", "destination": one.id, "state": state}
    if at is not None:
        old["at"] = at
    await h.runtime.store.put(journal_key(dup.id), json.dumps(old))
    args = {"pairs": [{"source": dup.id, "destination": one.id}], "dry_run": True}
    return one, dup, old, args


@pytest.mark.parametrize("state", ["sending", "outcome_unknown"])
async def test_an_unknown_outcome_whose_source_is_gone_counts_as_merged(
    h: Harness, state: str
) -> None:
    """The process died between its claim and its mark (`sending`), or the answer was lost
    (`outcome_unknown`); Close did merge: the source is gone. No hour to wait for that."""
    one, two = originals(h, 2)
    dup_one, dup_two = duplicate(h, one, "1"), duplicate(h, two, "2")
    earlier = {"run_id": "leadmerge_dead", "destination": one.id, "state": state,
               "at": h.clock.time()}  # fmt: skip
    await h.runtime.store.put(journal_key(dup_one.id), json.dumps(earlier))
    del h.sandbox.store.leads[dup_one.id]  # Close merged it
    args = {"pairs": [{"source": dup_one.id, "destination": one.id},
                      {"source": dup_two.id, "destination": two.id}]}  # fmt: skip
    preview = await h.call("merge_leads", args)
    assert preview["preview"]["matched"] == 1
    assert preview["preview"]["request"]["pairs"][0]["source"] == dup_two.id
    assert (
        f"1 pair whose earlier attempt had an unknown outcome has lost its source: Close "
        f"merged it; marked merged, left out ({dup_one.id})."
    ) in preview["preview"]["notes"]
    assert entry_of(await h.runtime.store.get(journal_key(dup_one.id))) == {
        **earlier,
        "state": "merged",
        "at": h.clock.time(),
    }
    assert h.writes() == []


async def test_an_unknown_outcome_whose_source_cannot_be_read_is_held_back(h: Harness) -> None:
    _, dup, old, args = await earlier_attempt(h, "outcome_unknown", h.clock.time() - 2 * LOCK_TTL_S)
    h.sandbox.inject_faults("5xx", 1, f"lead/{dup.id}/", "GET", status=403)
    unread = await h.call("merge_leads", args)
    assert unread["preview"]["matched"] == 0
    assert (
        f"1 pair whose earlier attempt had an unknown outcome could not be checked: its source "
        f"could not be read from Close; held back ({dup.id})."
    ) in unread["preview"]["notes"]
    assert entry_of(await h.runtime.store.get(journal_key(dup.id))) == old
    # Read the next time: offered again.
    assert (await h.call("merge_leads", args))["preview"]["matched"] == 1


async def test_an_entry_without_a_time_is_offered_again_an_hour_after_its_first_look(
    start_harness: StartHarness,
) -> None:
    """Entries the previous code wrote have no time: the first look stores its own."""
    h = await start_harness(clock=SteppedClock())
    _, dup, old, args = await earlier_attempt(h, "outcome_unknown", None)
    first = await h.call("merge_leads", args)
    assert first["preview"]["matched"] == 0
    assert any("held back until 2026-01-01T01:00:00Z" in n for n in first["preview"]["notes"])
    assert entry_of(await h.runtime.store.get(journal_key(dup.id))) == {**old, "at": h.clock.time()}
    h.clock.advance(LOCK_TTL_S / 2)
    assert (await h.call("merge_leads", args))["preview"]["matched"] == 0
    h.clock.advance(LOCK_TTL_S / 2)
    later = await h.call("merge_leads", args)
    assert later["preview"]["matched"] == 1
    assert UNKNOWN_AGAIN in later["preview"]["notes"]


async def test_an_old_unknown_outcome_is_held_back_while_a_merge_run_holds_the_lock(
    start_harness: StartHarness,
) -> None:
    h = await start_harness(clock=SteppedClock())
    _, dup, _, args = await earlier_attempt(h, "sending", h.clock.time() - 2 * LOCK_TTL_S)
    assert await h.runtime.store.add("lock:merge:leads", "a-replica", ttl_s=LOCK_TTL_S)
    busy = await h.call("merge_leads", args)
    assert busy["preview"]["matched"] == 0
    assert (
        f"1 pair whose earlier attempt had an unknown outcome is held back while a merge run "
        f"is being sent; once it is done a preview offers it again if its source still "
        f"exists ({dup.id})."
    ) in busy["preview"]["notes"]
    await h.runtime.store.delete("lock:merge:leads")
    free = await h.call("merge_leads", args)
    assert free["preview"]["matched"] == 1
    assert UNKNOWN_AGAIN in free["preview"]["notes"]


async def test_a_pair_offered_again_is_claimed_only_from_the_entry_it_was_offered_on(
    start_harness: StartHarness,
) -> None:
    """Offered again on an old entry, the pair is claimed only while the journal still holds
    that entry: another run that took it meanwhile (and lost its answer again) wins."""
    h = await start_harness(clock=SteppedClock())
    one, dup, old, _ = await earlier_attempt(h, "outcome_unknown", h.clock.time() - 2 * LOCK_TTL_S)
    client = h.runtime.call(None).client
    plan = await plan_merge(
        h.runtime.store, h.clock, client, key=None, selection=None, pairs=[(dup.id, one.id)]
    )
    assert [p.source for p in plan.pairs] == [dup.id]
    request = await merge_taken(h, client, plan)
    other = {**old, "run_id": "leadmerge_other", "at": h.clock.time()}
    await h.runtime.store.put(journal_key(dup.id), json.dumps(other))
    h.clear()
    answer = await request.send(Sender(h.audit, client, "merge_leads"), None)
    assert h.writes() == []
    assert (answer.result["merged_count"], answer.result.get("skipped_count")) == (0, 1)
    assert entry_of(await h.runtime.store.get(journal_key(dup.id))) == other
