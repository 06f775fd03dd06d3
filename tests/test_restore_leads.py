"""`restore_leads` through a real MCP client: a delete's backup or Close's event log brought
back after a preview and the typed count, never twice, refused when its source changed."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from mcp import types

from bench.tokens import count_tokens
from close_mcp.clock import FakeClock
from close_mcp.safety.restore_plan import WHAT_COMES_BACK
from close_mcp.sandbox import Sandbox
from tests.harness import MODES, Harness, StartHarness, run_to_done, text_of
from tests.safety_net import delete_canceled, recreate_body

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=120)]

API = "/api/v1/"
DELETE = {"filter": {"lead_status": "Canceled"}}


def now_of(h: Harness) -> datetime:
    return datetime.fromtimestamp(h.clock.time(), UTC)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def typing(restore: int | None = None) -> Any:
    """A person who types the count each question names, or `restore` to a restore's."""

    def answer(message: str) -> types.ElicitResult:
        count = int(message.rsplit("(", 1)[1].split(")")[0])
        if restore is not None and message.startswith("Restore"):
            count = restore
        return types.ElicitResult(action="accept", content={"count": count})

    return answer


def posts(h: Harness) -> list[dict[str, Any]]:
    return [r.json for r in h.writes() if r.path == API + "lead/"]


@pytest.mark.harness(audited=True)
@pytest.mark.parametrize("mode", MODES)
async def test_a_delete_comes_back_after_the_preview_and_the_typed_count(
    start_harness: StartHarness, mode: str
) -> None:
    h = await start_harness(elicit=typing(), mode=mode)
    job_id, before = await delete_canceled(h)
    n = len(before)
    h.clear()
    h.questions.clear()
    first = await h.call("restore_leads", {"backup": job_id})
    assert h.writes() == []
    assert first["status"] == "confirmation_required"
    preview = first["preview"]
    assert preview["matched"] == n
    assert preview["path"] == "/lead/"
    order = list(before)  # the backup holds them in the order the delete read them
    request = preview["request"]
    assert request["source"] == f"store:backup:{job_id}"
    assert request["leads"] == n
    assert len(request["old_ids"]) == 3
    assert set(request["old_ids"]) <= set(order)
    assert request["identity"].startswith("sha256:")
    assert preview["notes"] == [WHAT_COMES_BACK]
    assert [s["id"] for s in preview["sample"]] == request["old_ids"]

    done = await h.call(
        "restore_leads", {"backup": job_id, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "submitted", done
    assert h.questions == [
        h.questions[0].split(". To confirm")[0]
        + f". To confirm, type the number of leads that will be restored ({n})."
    ]
    assert h.questions[0].startswith(f"Restore {n} leads from store:backup:{job_id}")
    assert sorted(b["name"] for b in posts(h)) == sorted(
        recreate_body(lead)["name"] for lead in before.values()
    )
    assert sorted(map(canonical, posts(h))) == sorted(
        canonical(recreate_body(b)) for b in before.values()
    )
    assert len(h.writes()) == n
    result = done["result"]
    assert result["restored_count"] == n
    assert len(result["restored"]) == 3
    for old, new in result["restored"].items():
        assert recreate_body(h.sandbox.store.leads[new]) == recreate_body(before[old])
    # Every POST audited, then the restore itself.
    entries = h.audit.entries()[-n - 1 :]
    assert [(e["tool"], e["path"], e["outcome"]) for e in entries] == [
        ("restore_leads", "/lead/", "submitted")
    ] * (n + 1)
    assert [e.get("job_id") for e in entries[:3]] == list(result["restored"].values())


async def test_a_wrong_count_restores_nothing(start_harness: StartHarness) -> None:
    h = await start_harness(elicit=typing(restore=1))
    job_id, before = await delete_canceled(h)
    h.clear()
    first = await h.call("restore_leads", {"backup": job_id})
    refused = await h.call(
        "restore_leads", {"backup": job_id, "confirmation_token": first["confirmation_token"]}
    )
    assert refused["status"] == "refused"
    assert refused["reason"] == f"the person typed 1, but the action would restore {len(before)}"
    assert h.writes() == []


async def test_a_rerun_restores_nothing_twice_and_a_spent_token_sends_nothing(
    h: Harness,
) -> None:
    job_id, before = await delete_canceled(h)
    first = await h.call("restore_leads", {"backup": job_id})
    args = {"backup": job_id, "confirmation_token": first["confirmation_token"]}
    assert (await h.call("restore_leads", args))["status"] == "submitted"
    assert len(posts(h)) == len(before)
    h.clear()
    again = await h.call("restore_leads", args)
    assert again["status"] == "refused"
    assert again["confirmation_token"] is None
    # The reference the delete answered with (`snapshot`) names the same backup.
    fresh = await h.call("restore_leads", {"backup": f"store:backup:{job_id}"})
    assert fresh["status"] == "refused"
    assert fresh["reason"] == (
        f"nothing to restore from store:backup:{job_id}: every lead of it was restored already"
    )
    assert fresh["confirmation_token"] is None
    assert fresh["preview"]["notes"][-1] == (
        f"{len(before)} of its leads were restored by an earlier run: skipped."
    )
    assert h.writes() == []


async def test_leads_deleted_in_close_come_back_from_the_event_log(h: Harness) -> None:
    sb = h.sandbox
    now = now_of(h)
    events = [
        e
        for e in sb.store.events
        if e.object_type == "lead"
        and e.action == "deleted"
        and e.date_created >= now - timedelta(days=30)
    ]
    assert len(events) == 3  # the seeded deletions of 2, 12 and 29 days ago (45 is past it)
    since = (now - timedelta(days=30)).date().isoformat()
    first = await h.call("restore_leads", {"deleted_since": since})
    assert first["status"] == "confirmation_required"
    assert first["preview"]["matched"] == 3
    assert first["preview"]["request"]["source"] == (
        f"Close's event log (leads deleted since {since}T00:00:00+00:00)"
    )
    assert [r.path.removeprefix(API) for r in sb.requests] == ["event/"]
    assert sb.requests[0].query == {
        "object_type": "lead",
        "action": "deleted",
        "date_updated__gte": f"{since}T00:00:00+00:00",
        "_limit": "50",
    }
    h.clear()
    done = await h.call(
        "restore_leads", {"deleted_since": since, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "submitted", done
    names = sorted(str((e.later() if e.later else e.previous_data or {})["name"]) for e in events)
    assert sorted(b["name"] for b in posts(h)) == names
    # Restored once: the same question again finds nothing left.
    again = await h.call("restore_leads", {"deleted_since": since})
    assert again["status"] == "refused"
    assert again["confirmation_token"] is None


async def test_a_lead_restored_from_its_backup_is_not_restored_from_the_event_log(
    h: Harness,
) -> None:
    job_id, before = await delete_canceled(h)
    first = await h.call("restore_leads", {"backup": job_id})
    await h.call(
        "restore_leads", {"backup": job_id, "confirmation_token": first["confirmation_token"]}
    )
    h.clear()
    since = now_of(h).date().isoformat()
    ids = sorted(before)[:2]
    from_log = await h.call("restore_leads", {"deleted_since": since, "lead_ids": ids})
    assert from_log["status"] == "refused"
    assert from_log["preview"]["matched"] == 0
    assert (
        "2 of its leads were restored by an earlier run: skipped." in from_log["preview"]["notes"]
    )
    assert h.writes() == []


async def test_a_token_is_refused_when_the_event_log_changed_since_the_preview(
    h: Harness,
) -> None:
    since = (now_of(h) - timedelta(days=20)).date().isoformat()
    first = await h.call("restore_leads", {"deleted_since": since})
    assert first["preview"]["matched"] == 2
    # Someone deletes a lead in Close meanwhile: the same arguments now mean three leads.
    job_id, _ = await delete_narrow(h)
    h.clear()
    refused = await h.call(
        "restore_leads", {"deleted_since": since, "confirmation_token": first["confirmation_token"]}
    )
    assert refused["status"] == "refused"
    assert refused["reason"] == (
        "the confirmation token was issued for different arguments; confirm the new preview instead"
    )
    assert refused["preview"]["matched"] == 3
    assert posts(h) == []
    assert job_id


async def delete_narrow(h: Harness) -> tuple[str, str]:
    """Delete one lead with the tools; the job id and the lead's id."""
    lead_id = sorted(h.sandbox.store.leads)[0]
    args = {"filter": {"lead_ids": [lead_id]}}
    first = await h.call("create_bulk_delete", args)
    done = await h.call(
        "create_bulk_delete", {**args, "confirmation_token": first["confirmation_token"]}
    )
    await run_to_done(h, done["job"]["id"])
    return done["job"]["id"], lead_id


async def test_a_token_is_refused_when_another_run_restored_part_of_the_backup(
    h: Harness,
) -> None:
    job_id, before = await delete_canceled(h)
    whole = await h.call("restore_leads", {"backup": job_id})
    one = sorted(before)[0]
    part = await h.call("restore_leads", {"backup": job_id, "lead_ids": [one]})
    assert part["preview"]["matched"] == 1
    await h.call(
        "restore_leads",
        {"backup": job_id, "lead_ids": [one], "confirmation_token": part["confirmation_token"]},
    )
    h.clear()
    refused = await h.call(
        "restore_leads", {"backup": job_id, "confirmation_token": whole["confirmation_token"]}
    )
    assert refused["status"] == "refused"
    assert refused["preview"]["matched"] == len(before) - 1
    assert posts(h) == []


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (
            {},
            "backup: give exactly one of backup (the bulkdelete_... job of a create_bulk_delete) "
            "or deleted_since (a date within 30 days: leads deleted in Close since then)",
        ),
        (
            {"backup": "bulkdelete_abc", "deleted_since": "2026-12-01"},
            "backup: give exactly one of backup (the bulkdelete_... job of a create_bulk_delete) "
            "or deleted_since (a date within 30 days: leads deleted in Close since then)",
        ),
        ({"deleted_since": "yesterday"}, "deleted_since: 'yesterday' is not a date"),
        ({"backup": "bulkdelete_abc", "deleted_by": "user_x"}, "deleted_by: filters the event"),
    ],
)
async def test_bad_arguments_name_the_field_and_send_nothing(
    h: Harness, arguments: dict[str, Any], error: str
) -> None:
    assert (await h.error("restore_leads", arguments)).startswith(error)
    assert h.writes() == []


async def test_a_backup_is_a_job_id_never_a_file(h: Harness, tmp_path: Any) -> None:
    path = tmp_path / "bulkdelete_abc.jsonl"
    path.write_text('{"id": "lead_x", "name": "x"}\n')
    error = await h.error("restore_leads", {"backup": str(path)})
    assert "backup" in error
    missing = await h.error("restore_leads", {"backup": "bulkdelete_abc"})
    assert missing.startswith("no backup of bulkdelete_abc in the state store")
    assert h.sandbox.requests == []


async def test_deleted_since_reaches_back_30_days_only(h: Harness) -> None:
    old = (now_of(h) - timedelta(days=31)).date().isoformat()
    error = await h.error("restore_leads", {"deleted_since": old})
    assert error.startswith("deleted_since: Close's event log keeps 30 days: give ")
    assert h.sandbox.requests == []


async def test_the_delete_preview_says_what_a_restore_brings_back(h: Harness) -> None:
    first = await h.call("create_bulk_delete", DELETE)
    assert first["preview"]["notes"][-1].endswith(
        "restore_leads re-creates them with new ids; activities, opportunities and tasks "
        "are not restored."
    )


async def test_a_restore_that_another_run_overtook_after_the_check_sends_nothing(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica restores one of the planned leads between this call's check of the
    token and its taking the locks: the journal, read again under the locks, refuses."""
    job_id, before = await delete_canceled(h)
    first = await h.call("restore_leads", {"backup": job_id})
    store = h.runtime.store
    add = store.add
    overtaken = sorted(before)[0]

    async def add_after_another_run(key: str, value: str, *, ttl_s: float | None = None) -> bool:
        if key == "lock:restore:leads":
            line = json.dumps({"old_id": overtaken, "event": "restored", "new_id": "lead_other"})
            await store.append("sandbox-restored:leads", line)
        return await add(key, value, ttl_s=ttl_s)

    monkeypatch.setattr(store, "add", add_after_another_run)
    h.clear()
    error = await h.error(
        "restore_leads", {"backup": job_id, "confirmation_token": first["confirmation_token"]}
    )
    assert error == (
        f"another restore sent 1 of these leads after the preview ({overtaken}); nothing was "
        "sent. Call restore_leads again for a fresh preview: it leaves out what is restored."
    )
    assert posts(h) == []


async def test_a_restore_while_another_one_is_sending_sends_nothing(h: Harness) -> None:
    job_id, _ = await delete_canceled(h)
    first = await h.call("restore_leads", {"backup": job_id})
    # Another replica sharing the store is sending a restore (of any source) right now.
    assert await h.runtime.store.add("lock:restore:leads", "another-replica", ttl_s=60)
    h.clear()
    error = await h.error(
        "restore_leads", {"backup": job_id, "confirmation_token": first["confirmation_token"]}
    )
    assert error == (
        "another restore is being sent (by this server or a replica sharing its state store); "
        "nothing was sent. Let it finish, then call restore_leads again: it leaves out what "
        "that run restored."
    )
    assert posts(h) == []
    assert await h.runtime.store.get("lock:restore:leads") == "another-replica"


async def test_a_token_is_refused_when_the_backup_changed_since_the_preview(h: Harness) -> None:
    """Same leads, same count: only a name in the stored backup differs."""
    job_id, _ = await delete_canceled(h)
    first = await h.call("restore_leads", {"backup": job_id})
    store = h.runtime.store
    header = json.loads(await store.get(f"backup:{job_id}") or "{}")
    lines = await store.lines(header["leads_key"])
    changed = json.loads(lines[0]) | {"name": "Someone Else Inc."}
    await store.delete(header["leads_key"])
    await store.extend(header["leads_key"], [json.dumps(changed), *lines[1:]])
    h.clear()
    refused = await h.call(
        "restore_leads", {"backup": job_id, "confirmation_token": first["confirmation_token"]}
    )
    assert refused["status"] == "refused"
    assert refused["reason"] == (
        "the confirmation token was issued for different arguments; confirm the new preview instead"
    )
    assert refused["preview"]["matched"] == first["preview"]["matched"]
    assert refused["preview"]["request"]["identity"] != first["preview"]["request"]["identity"]
    assert posts(h) == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_restore_reports_its_progress_lead_by_lead(
    start_harness: StartHarness, mode: str
) -> None:
    h = await start_harness(mode=mode)
    job_id, before = await delete_canceled(h)
    n = len(before)
    first = await h.call("restore_leads", {"backup": job_id})
    heard: list[tuple[float, float | None, str | None]] = []

    async def callback(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, total, message))

    done = await h.client.call_tool(
        "restore_leads",
        {"backup": job_id, "confirmation_token": first["confirmation_token"]},
        progress_callback=callback,
    )
    assert not done.is_error, done.content
    values = [value for value, _, _ in heard]
    assert values == sorted(set(values))
    assert heard[0][2] == f"restore: 0 of {n} leads"
    assert heard[-1] == (n, n, f"restore: {n} of {n} leads")


async def test_deleted_by_reads_only_that_users_deletions(h: Harness) -> None:
    sb = h.sandbox
    since = (now_of(h) - timedelta(days=30)).date().isoformat()
    by = {e.user_id for e in sb.store.events if e.object_type == "lead" and e.action == "deleted"}
    assert len(by) == 1
    (deleter,) = by
    mine = await h.call("restore_leads", {"deleted_since": since, "deleted_by": sb.store.me.id})
    assert deleter != sb.store.me.id
    assert mine["status"] == "refused"
    assert mine["reason"] == f"nothing to restore from {mine['preview']['request']['source']}"
    theirs = await h.call("restore_leads", {"deleted_since": since, "deleted_by": deleter})
    assert theirs["preview"]["matched"] == 3
    assert [r.query.get("user_id") for r in sb.requests] == [sb.store.me.id, deleter]
    assert h.writes() == []


async def test_the_event_log_is_read_page_by_page_past_50_deletions(h: Harness) -> None:
    """60 leads deleted today: two pages of Close's event log (50 a page, by cursor)."""
    chosen = sorted(h.sandbox.store.leads)[:60]
    args = {"filter": {"lead_ids": chosen}}
    first = await h.call("create_bulk_delete", args)
    done = await h.call(
        "create_bulk_delete", {**args, "confirmation_token": first["confirmation_token"]}
    )
    await run_to_done(h, done["job"]["id"])
    h.clear()
    today = now_of(h).date().isoformat()
    preview = await h.call("restore_leads", {"deleted_since": today})
    assert preview["preview"]["matched"] == 60
    pages = [r.query for r in h.sandbox.requests]
    assert [p.get("_cursor", "").partition(".")[0] for p in pages] == ["", "next"]
    assert h.writes() == []


@pytest.mark.harness(sandbox_options={"drift": "event-previous-data"})
async def test_deletions_whose_event_kept_no_previous_data_are_counted_as_not_restorable(
    h: Harness,
) -> None:
    since = (now_of(h) - timedelta(days=30)).date().isoformat()
    answer = await h.call("restore_leads", {"deleted_since": since})
    assert answer["status"] == "refused"
    assert answer["preview"]["matched"] == 0
    assert answer["preview"]["notes"][0] == (
        "3 deleted leads have no previous_data in the event log: they cannot be restored."
    )
    assert answer["confirmation_token"] is None


async def test_faults_from_close_never_duplicate_a_lead(h: Harness) -> None:
    """A POST that timed out after Close made the lead is held back as outcome unknown, never
    sent again; one Close refused (nothing made) is sent again by the next restore."""
    names_before = Counter(lead.name for lead in h.sandbox.store.leads.values())
    job_id, before = await delete_canceled(h)
    n = len(before)
    first = await h.call("restore_leads", {"backup": job_id})
    h.sandbox.inject_faults("timeout_after_commit", path_prefix="lead/", method="POST")
    h.sandbox.inject_faults("5xx", path_prefix="lead/", method="POST", status=400)
    h.clear()
    done = await h.call(
        "restore_leads", {"backup": job_id, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "submitted"
    result = done["result"]
    assert (result["restored_count"], result["outcome_unknown_count"], result["failed_count"]) == (
        n - 2,
        1,
        1,
    )
    assert "1 failed (Close refused them; nothing was created)" in done["message"]
    assert "1 have an unknown outcome: check in Close whether they exist" in done["message"]
    assert len(posts(h)) == n  # each lead once; Close made n - 1 of them

    (refused,) = result["failed"]
    again = await h.call("restore_leads", {"backup": job_id})
    assert again["preview"]["matched"] == 1
    assert again["preview"]["request"]["old_ids"] == [refused]
    assert again["preview"]["notes"][1:] == [
        f"{n - 2} of its leads were restored by an earlier run: skipped.",
        "1 had an unknown outcome in an earlier run (Close may have created them): not sent "
        "again; check in Close whether they exist.",
    ]
    h.clear()
    await h.call(
        "restore_leads", {"backup": job_id, "confirmation_token": again["confirmation_token"]}
    )
    assert [p["name"] for p in posts(h)] == [before[refused].name]
    assert Counter(lead.name for lead in h.sandbox.store.leads.values()) == names_before


class LeadsRefusedAtLength(httpx.AsyncBaseTransport):
    """The sandbox, with Close refusing every `POST /lead/` with a field error of 4,000
    characters (Close quotes what it refuses)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.refusing = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refusing and request.method == "POST" and request.url.path == API + "lead/":
            errors = {"custom.cf_0000AbCdEfGhIjKlMnOpQrStUv": "Unknown choice " + "x" * 4000}
            return httpx.Response(400, json={"errors": [], "field-errors": errors})
        return await self.inner.handle_async_request(request)


async def test_a_restore_close_refuses_at_length_answers_within_1500_tokens(
    start_harness: StartHarness,
) -> None:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=120, clock=clock)
    refusing = LeadsRefusedAtLength(sandbox.transport())
    h = await start_harness(sandbox=sandbox, clock=clock, transport=refusing)
    job_id, before = await delete_canceled(h)
    assert len(before) >= 3
    refusing.refusing = True
    first = await h.call("restore_leads", {"backup": job_id})
    done = await h.call_raw(
        "restore_leads", {"backup": job_id, "confirmation_token": first["confirmation_token"]}
    )
    assert not done.is_error, text_of(done)
    assert done.structured_content is not None
    result = done.structured_content["result"]
    assert result["failed_count"] == len(before)
    reasons = result["failed"].values()
    assert all(why.startswith("Close rejected the request: custom.cf_0000") for why in reasons)
    assert count_tokens(text_of(done)) <= 1500


@pytest.mark.harness(store_file=True, toolsets="all")
async def test_another_organizations_key_cannot_read_or_restore_a_backup(
    start_harness: StartHarness,
) -> None:
    """Two organizations share one deployment (and its state store). A delete's backup and a
    merge's backup of organization A hold its leads whole (names, contacts, emails): a key of
    organization B that learns the job or run id is told no such backup exists, sees no name,
    and re-creates nothing in B."""
    org_a = await start_harness()
    job_id, before = await delete_canceled(org_a)
    ids = sorted(org_a.sandbox.store.leads)
    source_name = org_a.sandbox.store.leads[ids[0]].name
    merged = await org_a.confirmed("merge_leads", {"pairs": [{"source": ids[0],
                                                             "destination": ids[1]}]})  # fmt: skip
    run_id = merged["result"]["run_id"]
    org_b = await start_harness(sandbox=Sandbox(n_leads=30, seed=8, api_key="api_org_b_0123456789"))
    names = {lead.name for lead in before.values()} | {source_name}
    assert not set(org_b.sandbox.store.leads) & {ids[0], ids[1]}  # Close's ids are its own
    for backup in (job_id, run_id):
        result = await org_b.call_raw("restore_leads", {"backup": backup})
        text = text_of(result)
        assert result.is_error, text
        assert f"no backup of {backup}" in text
        assert not [name for name in names if name in text]
    assert org_b.writes() == []
    # Organization A's own key still restores both.
    for backup in (job_id, run_id):
        again = await org_a.confirmed("restore_leads", {"backup": backup})
        assert again["status"] == "submitted", again
