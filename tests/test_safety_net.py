"""The safety net through the MCP client: snapshots, revert_bulk_edit, backups, restore.

Every test runs against the sandbox and compares leads field by field in `sb.store`, and
asserts the exact requests that reached "Close".
"""

from __future__ import annotations

import argparse
import io
import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import types

from close_mcp.cli import commands
from close_mcp.close import lead_walk as walking
from close_mcp.close.jobs import CRM_DATA_NOTICE
from close_mcp.safety import snapshot_writer
from close_mcp.safety.restore import (
    Progress,
    Report,
    open_backup,
    progress_path,
    restore_leads,
    run_restore,
)
from close_mcp.safety.snapshot_reader import read_backup, read_document, stored_backup
from close_mcp.sandbox import Sandbox, routes
from close_mcp.sandbox.store import Lead
from close_mcp.sandbox.store import iso as close_iso
from close_mcp.store import Busy
from close_mcp.writes.sender import Sender
from tests.harness import MODES, Harness, StartHarness, run_to_done
from tests.ids import field_id, status_id
from tests.queries import lead_ids_query, shown_ids_query

pytestmark = pytest.mark.anyio

API = "/api/v1/"
BY_CREATED = [
    {
        "direction": "asc",
        "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"},
    }
]


def _sender(h: Harness) -> Sender:
    """What `close-mcp restore` sends through: every lead audited as its own write."""
    return Sender(h.runtime.audit, h.runtime.client_for(), "restore")


def with_status(sb: Sandbox, label: str) -> list[str]:
    sid = status_id(sb, label)
    return sorted(lead.id for lead in sb.store.leads.values() if lead.status_id == sid)


def state(sb: Sandbox) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """What an edit can change, lead by lead: name, status, every custom value."""
    return {
        lead.id: (
            lead.name,
            lead.status_id,
            {k: list(v) if isinstance(v, list) else v for k, v in lead.custom.items()},
        )
        for lead in sb.store.leads.values()
    }


def ids_query(ids: list[str]) -> dict[str, Any]:
    return lead_ids_query(ids)


def sent(h: Harness) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path.removeprefix(API), r.json) for r in h.sandbox.requests]


async def load(h: Harness, reference: str) -> dict[str, Any]:
    """The document a `store:` reference names, in the harness's state store, its leads read
    back from their list."""
    document = await read_document(h.runtime.store, reference.removeprefix("store:"))
    assert document is not None, reference
    return document


async def reverts(h: Harness, job_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in await h.runtime.store.lines(f"reverts:{job_id}")]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def edit(h: Harness, args: dict[str, Any]) -> dict[str, Any]:
    result = await h.call("create_bulk_edit", args)
    if result["status"] == "confirmation_required":
        token = result["confirmation_token"]
        result = await h.call("create_bulk_edit", {**args, "confirmation_token": token})
    assert result["status"] == "submitted", result
    await run_to_done(h, result["job"]["id"])
    return result


async def revert(h: Harness, job_id: str, **extra: Any) -> dict[str, Any]:
    args = {"job_id": job_id, **extra}
    result = await h.call("revert_bulk_edit", args)
    if result["status"] == "confirmation_required":
        token = result["confirmation_token"]
        result = await h.call("revert_bulk_edit", {**args, "confirmation_token": token})
    assert result["status"] == "submitted", result
    assert result["result"]["jobs_count"] == len(result["result"]["jobs"])  # all shown
    for job_id in result["result"]["jobs"]:
        await run_to_done(h, job_id)
    return result


# -- status edit: snapshot, file, audit, revert to exactly the old values ----------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(audited=True)
async def test_status_edit_snapshot_then_revert_restores_every_lead(
    tmp_path: Path, h: Harness
) -> None:
    sb = h.sandbox
    qualified = with_status(sb, "Qualified")
    before = state(sb)
    args = {"filter": {"lead_status": "Qualified"}}
    args["edit"] = {"type": "set_lead_status", "lead_status": "Customer"}
    h.clear()
    done = await edit(h, args)
    job_id = done["job"]["id"]
    reference = f"store:snapshot:{job_id}"
    assert done["snapshot"] == reference
    assert done["preview"]["notes"] == [
        f"Before sending, the current status of the {len(qualified)} leads is saved so "
        "revert_bulk_edit can put it back (1 more Close request)."
    ]
    # The snapshot: one search over the request's exact query, just before the POST (the
    # confirmed call also GETs bulk_action/edit/, looking for a job this token already made).
    s_query = done["preview"]["request"]["s_query"]
    post = next(i for i, r in enumerate(sent(h)) if r[:2] == ("POST", "bulk_action/edit/"))
    assert sent(h)[post - 1 : post + 1] == [
        (
            "POST",
            "data/search/",
            {
                "query": s_query,
                "_limit": 200,
                "_fields": {"lead": ["id", "status_id", "date_created"]},
                "sort": BY_CREATED,
            },
        ),
        ("POST", "bulk_action/edit/", done["preview"]["request"]),
    ]
    document = await load(h, reference)
    assert document == {
        "version": 2,
        "job_id": job_id,
        "created_at": "2026-01-01T00:00:00+00:00",
        "tool": "create_bulk_edit",
        "request": done["preview"]["request"],
        "field": "status_id",
        "leads": {i: status_id(sb, "Qualified") for i in qualified},
    }
    assert not (tmp_path / "snapshots").exists()  # an edit's snapshot is in the store only
    assert h.audit.entries()[-1]["snapshot"] == reference
    assert all(sb.store.leads[i].status_id == status_id(sb, "Customer") for i in qualified)

    h.clear()
    preview = await h.call("revert_bulk_edit", {"job_id": job_id, "dry_run": True})
    assert preview["status"] == "preview"
    back = {
        "s_query": ids_query(qualified),
        "send_done_email": True,
        "type": "set_lead_status",
        "lead_status_id": status_id(sb, "Qualified"),
    }
    assert preview["preview"]["matched"] == len(qualified)
    assert preview["preview"]["request"]["returns"] == [
        {"value": status_id(sb, "Qualified"), "leads": len(qualified)}
    ]
    # The result shows a long id list short (issue 26); Close gets every id (below).
    assert preview["preview"]["request"]["requests"] == [
        {
            "method": "POST",
            "path": "/bulk_action/edit/",
            "body": {**back, "s_query": shown_ids_query(qualified)},
        }
    ]
    assert preview["preview"]["notes"][0] == (
        f"{len(qualified)} leads return to status 'Qualified' ({status_id(sb, 'Qualified')})."
    )
    assert h.writes() == []

    h.clear()
    reverted = await revert(h, job_id)
    assert [w for w in sent(h) if w[0] != "GET" and w[1] != "data/search/"] == [
        ("POST", "bulk_action/edit/", back)
    ]
    assert reverted["result"]["updated_leads"] == []
    assert state(sb) == before
    lines = [e for e in h.audit.entries() if e["tool"] == "revert_bulk_edit"]
    assert [(e["outcome"], e["path"], e.get("job_id")) for e in lines] == [
        ("submitted", "/bulk_action/edit/", reverted["job"]["id"]),
        ("submitted", "/bulk_action/edit/", None),  # the plan, once all of it went
    ]
    # Nothing is left to put back: a second revert is refused without a write.
    h.clear()
    again = await h.call("revert_bulk_edit", {"job_id": job_id})
    assert again["status"] == "refused"
    assert again["preview"]["request"]["left_alone"]["already_back"] == len(qualified)
    assert h.writes() == []


# -- a shared custom field: edited, snapshotted and reverted like any other -------------------


@pytest.mark.harness(audited=True)
async def test_shared_custom_field_edit_is_snapshotted_and_reverted(h: Harness) -> None:
    """Close lists shared fields in the custom field schema, not in /custom_field/lead/: the
    edit must find the field by name, and the snapshot must hold its old values."""
    sb = h.sandbox
    region = field_id(sb, "Region")
    qualified = with_status(sb, "Qualified")
    olds = {i: sb.store.leads[i].custom.get(region) for i in qualified}
    assert None in olds.values()
    assert len(set(olds.values())) > 2
    before = state(sb)
    done = await edit(
        h,
        {
            "filter": {"lead_status": "Qualified"},
            "edit": {"type": "set_custom_field", "custom_field": "Region", "value": "APAC"},
        },
    )
    assert done["preview"]["request"]["custom_field_id"] == region
    assert all(sb.store.leads[i].custom[region] == "APAC" for i in qualified)
    document = await load(h, done["snapshot"])
    assert (document["field"], document["leads"]) == (f"custom.{region}", olds)

    await revert(h, done["job"]["id"])
    assert state(sb) == before


# -- multi-value custom field: one bulk edit per old value, PUTs for small groups, clears ----


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(audited=True)
async def test_multi_value_edit_reverts_each_old_value(h: Harness) -> None:
    sb = h.sandbox
    products = field_id(sb, "Products")
    chosen = sorted(sb.store.leads)[:14]
    shared, pair, absent = chosen[:6], chosen[6:8], chosen[8:14]
    for i in shared:
        sb.store.leads[i].custom[products] = ["CRM", "Dialer"]
    for n, i in enumerate(pair):
        sb.store.leads[i].custom[products] = [["API"], ["Email", "Reporting"]][n]
    for i in absent:
        sb.store.leads[i].custom.pop(products, None)
    before = state(sb)
    done = await edit(
        h,
        {
            "filter": {"lead_ids": chosen},
            "edit": {
                "type": "set_custom_field",
                "custom_field": "Products",
                "values": ["Reporting"],
            },
        },
    )
    assert all(sb.store.leads[i].custom[products] == ["Reporting"] for i in chosen)
    document = await load(h, done["snapshot"])
    assert document["field"] == f"custom.{products}"
    assert document["leads"] == {
        **{i: ["CRM", "Dialer"] for i in shared},
        pair[0]: ["API"],
        pair[1]: ["Email", "Reporting"],
        **{i: None for i in absent},
    }

    h.clear()
    job_id = done["job"]["id"]
    sent_at = datetime.fromtimestamp(h.clock.time(), tz=UTC).isoformat()  # the clock stands
    reverted = await revert(h, job_id)
    exact = [
        (
            "POST",
            "bulk_action/edit/",
            {
                "s_query": ids_query(shared),
                "send_done_email": True,
                "type": "set_custom_field",
                "custom_field_id": products,
                "custom_field_values": ["CRM", "Dialer"],
                "custom_field_operation": "replace",
            },
        ),
        (
            "POST",
            "bulk_action/edit/",
            {
                "s_query": ids_query(absent),
                "send_done_email": True,
                "type": "clear_custom_field",
                "custom_field_id": products,
            },
        ),
        ("PUT", f"lead/{pair[0]}/", {f"custom.{products}": ["API"]}),
        ("PUT", f"lead/{pair[1]}/", {f"custom.{products}": ["Email", "Reporting"]}),
    ]
    writes = [(r.method, r.path.removeprefix(API), r.json) for r in h.writes()]
    assert writes == exact
    assert state(sb) == before
    returns = [
        {"value": ["CRM", "Dialer"], "leads": 6},
        {"value": None, "leads": 6},
        {"value": ["API"], "leads": 1},
        {"value": ["Email", "Reporting"], "leads": 1},
    ]
    requests = [{"method": m, "path": "/" + p, "body": b} for m, p, b in exact]
    # The whole plan is the resource; the result shows the first three of each list.
    resource = await h.client.read_resource(f"close://reverts/{job_id}")
    (content,) = resource.contents
    assert isinstance(content, types.TextResourceContents)
    document = json.loads(content.text)
    plan = {
        "job_id": job_id,
        "field": f"custom.{products}",
        "returns": returns,
        "returns_count": 4,
        "left_alone": {
            "changed_since": [],
            "changed_since_count": 0,
            "already_back": 0,
            "not_found": [],
            "not_found_count": 0,
        },
        "requests": requests,
        "requests_count": 4,
        "requests_shown": "exact",
        "plan_sha256": document["plan"]["plan_sha256"],
    }
    jobs = reverted["result"]["jobs"]
    assert document == {
        "job_id": job_id,
        "plan": plan,
        "sent": [
            {"sent_at": sent_at, "job_id": jobs[0]},
            {"sent_at": sent_at, "job_id": jobs[1]},
            {"sent_at": sent_at, "lead_id": pair[0]},
            {"sent_at": sent_at, "lead_id": pair[1]},
        ],
    }
    shown = {
        **plan,
        "returns": returns[:3],
        "requests": requests[:3],
        "full_plan": f"close://reverts/{job_id}",
    }
    labels = [
        ('["CRM", "Dialer"]', 6),
        ("empty", 6),
        ('["API"]', 1),
    ]
    assert reverted == {
        "status": "submitted",
        "tool": "revert_bulk_edit",
        "message": f"Submitted: Revert {job_id}: put the old value back on 14 leads (2 bulk "
        "edit jobs and 2 lead updates). Follow each job with wait_for_bulk_job: `job` is the "
        "first, result.jobs the first few, the resource preview.request.full_plan every one.",
        "preview": {
            "path": "/bulk_action/edit/",
            "request": shown,
            "matched": 14,
            "sample": [],  # shown with the token, not repeated (issue 26)
            "rendering": None,
            "notes": [
                *(
                    f"{n} lead{'s' if n != 1 else ''} return to custom.{products} {label}."
                    for label, n in labels
                ),
                "1 leads return to 1 other value (the resource full_plan lists them).",
                "Sends 2 bulk edit jobs and 2 single-lead updates, in order; follow the jobs "
                "with wait_for_bulk_job. The revert itself takes no snapshot.",
            ],
        },
        "confirmation_token": None,
        "expires_at": None,
        "reason": None,
        "job": reverted["job"],
        "result": {
            "jobs": jobs,
            "jobs_count": 2,
            "updated_leads": pair,
            "updated_leads_count": 2,
            "leads": 14,
        },
        "snapshot": None,
        "crm_data_notice": CRM_DATA_NOTICE,
    }
    assert reverted["job"]["id"] == jobs[0]
    # What Close echoes of an edit job (the strict sandbox echoes no more).
    assert reverted["job"]["details"] == {
        "type": "set_custom_field",
        "custom_field_name": "Products",
    }


# -- a third party changed some leads since the edit ------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(audited=True)
async def test_leads_changed_since_are_reported_and_left_alone(h: Harness) -> None:
    sb = h.sandbox
    qualified = with_status(sb, "Qualified")
    before = state(sb)
    done = await edit(
        h,
        {
            "filter": {"lead_status": "Qualified"},
            "edit": {"type": "set_lead_status", "lead_status": "Customer"},
        },
    )
    others = qualified[:2]
    client = h.runtime.client_for()
    for i in others:  # someone else, through Close's API
        await client.put(f"lead/{i}/", {"status_id": status_id(sb, "Bad Fit")})

    h.clear()
    reverted = await revert(h, done["job"]["id"])
    left = reverted["preview"]["request"]["left_alone"]
    assert left["changed_since"] == [
        {
            "id": i,
            "value_now": status_id(sb, "Bad Fit"),
            "value_before": status_id(sb, "Qualified"),
        }
        for i in others
    ]
    assert left["changed_since_count"] == 2
    assert reverted["preview"]["matched"] == len(qualified) - 2
    assert reverted["preview"]["notes"][1] == (
        "2 leads were changed by someone else since the edit and are left alone "
        "(left_alone.changed_since). Pass include_changed_since=true to put them back as well."
    )
    assert [(r.method, (r.json or {})["s_query"]) for r in h.writes()] == [
        ("POST", ids_query(qualified[2:]))
    ]
    expected = dict(before)
    for i in others:
        expected[i] = (before[i][0], status_id(sb, "Bad Fit"), before[i][2])
    assert state(sb) == expected

    # Asked to, the revert puts them back too: two leads, two PUTs.
    h.clear()
    await revert(h, done["job"]["id"], include_changed_since=True)
    assert [(r.method, r.path.removeprefix(API), r.json) for r in h.writes()] == [
        ("PUT", f"lead/{i}/", {"status_id": status_id(sb, "Qualified")}) for i in others
    ]
    assert state(sb) == before


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(audited=True, confirm="edit")
async def test_revert_token_binds_the_whole_plan(h: Harness) -> None:
    sb = h.sandbox
    done = await edit(
        h,
        {
            "filter": {"lead_status": "Qualified"},
            "edit": {"type": "set_lead_status", "lead_status": "Customer"},
        },
    )
    job_id = done["job"]["id"]
    first = await h.call("revert_bulk_edit", {"job_id": job_id})
    assert first["status"] == "confirmation_required"
    moved = sorted((await load(h, done["snapshot"]))["leads"])[0]
    sb.store.leads[moved].status_id = status_id(sb, "Canceled")
    h.clear()
    second = await h.call(
        "revert_bulk_edit",
        {"job_id": job_id, "confirmation_token": first["confirmation_token"]},
    )
    assert second["status"] == "refused"
    assert second["reason"] == (
        "the confirmation token was issued for different arguments; confirm the new preview instead"
    )
    assert second["preview"]["request"]["left_alone"]["changed_since_count"] == 1
    assert h.writes() == []


@pytest.mark.harness(audited=True)
async def test_revert_refuses_while_the_edit_runs_and_without_a_snapshot(
    tmp_path: Path, h: Harness
) -> None:
    args = {
        "filter": {"lead_status": "Qualified"},
        "edit": {"type": "set_lead_status", "lead_status": "Customer"},
    }
    first = await h.call("create_bulk_edit", args)
    token = first["confirmation_token"]
    result = await h.call("create_bulk_edit", {**args, "confirmation_token": token})
    job_id = result["job"]["id"]
    error = await h.error("revert_bulk_edit", {"job_id": job_id})
    assert error == (
        "job_id: the edit is still created; wait for it (wait_for_bulk_job) or pause it "
        "(pause_bulk_job) before reverting"
    )
    error = await h.error("revert_bulk_edit", {"job_id": "bulkedit_unknown0"})
    assert error.startswith(
        f"No snapshot for bulkedit_unknown0 in the state store ({h.runtime.store!r}): "
    )


@pytest.mark.harness(audited=True)
async def test_revert_retried_while_its_jobs_run_is_refused_and_sends_nothing_twice(
    h: Harness,
) -> None:
    sb = h.sandbox
    qualified = with_status(sb, "Qualified")
    before = state(sb)
    done = await edit(
        h,
        {
            "filter": {"lead_status": "Qualified"},
            "edit": {"type": "set_lead_status", "lead_status": "Customer"},
        },
    )
    job_id = done["job"]["id"]
    snapshot = await load(h, done["snapshot"])
    first = await h.call("revert_bulk_edit", {"job_id": job_id})
    assert first["status"] == "confirmation_required"
    token = first["confirmation_token"]
    first = await h.call("revert_bulk_edit", {"job_id": job_id, "confirmation_token": token})
    assert first["status"] == "submitted"
    [revert_job] = first["result"]["jobs"]
    assert first["job"]["id"] == revert_job
    # The revert's job id is recorded as soon as it was sent: one line appended to its
    # revert records, the snapshot itself unchanged.
    assert [r["job_id"] for r in await reverts(h, job_id)] == [revert_job]
    assert await load(h, done["snapshot"]) == snapshot

    # While it runs its leads still hold the edited value: a retry is refused, unsent.
    h.clear()
    for args in ({"job_id": job_id}, {"job_id": job_id, "dry_run": True}):
        error = await h.error("revert_bulk_edit", args)
        assert error == (
            f"job_id: the revert job {revert_job} sent by an earlier revert_bulk_edit call "
            "is still created: its leads still hold the edited value, so a new revert "
            "would send the same edits again. Wait for it (wait_for_bulk_job), then call "
            "again: it plans only what is still to do."
        )
    assert h.writes() == []
    assert ("GET", f"bulk_action/edit/{revert_job}/", None) in sent(h)

    # Once it is done, what is left is planned: two leads moved back by someone else go
    # back with one PUT each, recorded in the snapshot too.
    await run_to_done(h, revert_job)
    assert state(sb) == before
    moved = qualified[:2]
    for i in moved:
        sb.store.leads[i].status_id = status_id(sb, "Customer")
    h.clear()
    again = await h.call("revert_bulk_edit", {"job_id": job_id})
    assert again["status"] == "confirmation_required"
    token = again["confirmation_token"]
    again = await h.call("revert_bulk_edit", {"job_id": job_id, "confirmation_token": token})
    assert again["status"] == "submitted"
    assert again["preview"]["request"]["left_alone"]["already_back"] == len(qualified) - 2
    assert [(r.method, r.path.removeprefix(API)) for r in h.writes()] == [
        ("PUT", f"lead/{i}/") for i in moved
    ]
    assert [r.get("job_id") or r.get("lead_id") for r in await reverts(h, job_id)] == [
        revert_job,
        *moved,
    ]
    assert state(sb) == before


@pytest.mark.harness(audited=True)
async def test_revert_outcome_unknown_does_not_claim_a_search_it_never_made(h: Harness) -> None:
    args = {"filter": {"lead_status": "Qualified"}}
    done = await edit(h, {**args, "edit": {"type": "set_lead_status", "lead_status": "Customer"}})
    h.sandbox.inject_faults("timeout_after_commit", path_prefix="bulk_action/edit/", method="POST")
    job = {"job_id": done["job"]["id"]}
    first = await h.call("revert_bulk_edit", job)
    assert first["status"] == "confirmation_required"
    token = first["confirmation_token"]
    error = await h.error("revert_bulk_edit", {**job, "confirmation_token": token})
    assert "The revert stopped at request 1 of 1" in error
    assert "Nothing matching was found" not in error
    lines = [e for e in h.audit.entries() if e["tool"] == "revert_bulk_edit"]
    assert [e["outcome"] for e in lines] == ["outcome_unknown", "outcome_unknown"]


# -- above the limit: no snapshot, a note, confirmation ----------------------------------------


@pytest.mark.parametrize("snapshot", ["5", "off"])
async def test_no_snapshot_above_the_limit_needs_confirmation(
    snapshot: str, tmp_path: Path, start_harness: StartHarness
) -> None:
    # edit taken out of CLOSE_MCP_CONFIRM: without a snapshot it is confirmed all the same.
    h = await start_harness(
        audit_dir=tmp_path, snapshot=snapshot, confirm="email,sequences,send,delete"
    )
    sb = h.sandbox
    n = len(with_status(sb, "Qualified"))
    args = {
        "filter": {"lead_status": "Qualified"},
        "edit": {"type": "set_lead_status", "lead_status": "Customer"},
    }
    first = await h.call("create_bulk_edit", args)
    assert first["status"] == "confirmation_required"
    why = (
        "CLOSE_MCP_SNAPSHOT is off"
        if snapshot == "off"
        else f"it touches {n} leads, more than CLOSE_MCP_SNAPSHOT allows (5)"
    )
    assert first["preview"]["notes"] == [
        f"No snapshot will be taken because {why}: this cannot be undone with "
        "revert_bulk_edit. Confirmation is required.",
    ]
    h.clear()
    done = await h.call(
        "create_bulk_edit", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert done["status"] == "submitted"
    assert done["snapshot"] is None
    # Without a snapshot, the leads the token binds are still read (ids only), whatever the
    # limit: it is about what is stored, not about what was confirmed.
    assert [r.path.removeprefix(API) for r in h.sandbox.requests if r.method == "POST"] == [
        "data/search/",  # the recount
        "data/search/",  # the organization's total, counted at every call
        "data/search/",  # the leads the token binds
        "bulk_action/edit/",  # and no snapshot
    ]
    assert not (tmp_path / "snapshots").exists()
    assert "snapshot" not in h.audit.entries()[-1]


# -- keyset paging past Close's cursor cap ------------------------------------------------------


async def test_snapshot_walks_past_the_cursor_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_harness: StartHarness
) -> None:
    monkeypatch.setattr(routes, "MAX_WALK", 50)
    monkeypatch.setattr(walking, "CURSOR_CAP", 50)
    h = await start_harness(audit_dir=tmp_path)
    sb = h.sandbox
    ordered = sorted(sb.store.leads.values(), key=lambda lead: lead.date_created)
    done = await edit(
        h,
        {
            "s_query": {"type": "match_all"},
            "allow_all_leads": True,
            "edit": {"type": "clear_custom_field", "custom_field": "Industry"},
        },
    )
    searches: list[dict[str, Any]] = [
        r.json for r in sb.requests if r.path.endswith("/data/search/") and r.json
    ]
    walks = [s for s in searches if s.get("sort") == BY_CREATED]
    fifty, ninety_nine = ordered[49].date_created, ordered[98].date_created

    def since(moment: Any) -> dict[str, Any]:
        cond = {
            "type": "field_condition",
            "field": {
                "type": "regular_field",
                "object_type": "lead",
                "field_name": "date_created",
            },
            "condition": {
                "type": "moment_range",
                "on_or_after": {"type": "fixed_utc", "value": moment.isoformat()},
            },
        }
        return {"type": "and", "queries": [done["preview"]["request"]["s_query"], cond]}

    # Three walks past the cap each time the leads are read: for the token's binding when it
    # was minted, then at confirmation for the snapshot and the binding check at once.
    assert [w["query"] for w in walks] == [
        done["preview"]["request"]["s_query"],
        since(fifty),
        since(ninety_nine),
    ] * 2
    leads = (await load(h, done["snapshot"]))["leads"]
    assert len(leads) == len(sb.store.leads) == 120
    assert set(leads) == set(sb.store.leads)


# -- delete: backup, then restore -----------------------------------------------------------


def record(sb: Sandbox, lead_id: str) -> dict[str, Any]:
    """A lead as restore must reproduce it (ids and timestamps of contacts aside)."""
    lead = sb.store.leads[lead_id]
    return {
        "name": lead.name,
        "status_id": lead.status_id,
        "description": lead.description,
        "url": lead.url,
        "date_created": lead.date_created,
        "custom": dict(lead.custom),
        "contacts": [(c.name, c.title, c.emails, c.phones) for c in lead.contacts],
    }


def recreate_body(lead: Lead) -> dict[str, Any]:
    """The POST /lead/ body that re-creates `lead`, read from the sandbox's own record of it
    (not from the backup, and not with `restore.lead_body`): empty values are left out."""
    body: dict[str, Any] = {
        "name": lead.name,
        "status_id": lead.status_id,
        "date_created": close_iso(lead.date_created),
    }
    if lead.description:
        body["description"] = lead.description
    if lead.url:
        body["url"] = lead.url
    body.update({f"custom.{k}": v for k, v in lead.custom.items() if v not in (None, "", [])})
    if lead.contacts:
        body["contacts"] = [
            {
                "name": c.name,
                **({"title": c.title} if c.title else {}),
                "emails": [{"email": e["email"], "type": e["type"]} for e in c.emails],
                "phones": [{"phone": p["phone"], "type": p["type"]} for p in c.phones],
            }
            for c in lead.contacts
        ]
    return body


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(audited=True)
async def test_delete_backs_up_then_restore_recreates_the_leads(tmp_path: Path, h: Harness) -> None:
    sb = h.sandbox
    doomed = with_status(sb, "Canceled")
    # Values of a shared field (listed by the schema, not /custom_field/lead/) go and come back.
    region = field_id(sb, "Region")
    assert {sb.store.leads[i].custom.get(region) for i in doomed} - {None}
    expected = {i: record(sb, i) for i in doomed}
    originals = {i: sb.store.leads[i] for i in doomed}
    args = {"filter": {"lead_status": "Canceled"}}
    first = await h.call("create_bulk_delete", args)
    assert first["preview"]["notes"] == [
        f"Before sending, the full records of the {len(doomed)} leads (fields, custom "
        "fields, contacts) are saved (2 more Close requests): restore_leads re-creates them "
        "with new ids; activities, opportunities and tasks are not restored."
    ]
    h.clear()
    done = await h.call(
        "create_bulk_delete", {**args, "confirmation_token": first["confirmation_token"]}
    )
    job_id = done["job"]["id"]
    reference = f"store:backup:{job_id}"
    assert done["snapshot"] == reference
    assert h.audit.entries()[-1]["snapshot"] == reference
    # A copy stays on this replica's disk, private, named after the job.
    path = tmp_path / "snapshots" / f"{job_id}.jsonl"
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    custom_fields = [f"custom.{cf}" for cf in sb.store.custom_fields]
    # The backup, after the recount and the replay check: the field list, then one search page
    # for these few leads, which the binding check reads too (one read of the leads).
    assert [(m, p) for m, p, _ in sent(h)] == [
        ("GET", "status/lead/"),
        ("POST", "data/search/"),  # the recount
        ("POST", "data/search/"),  # the organization's total, counted at every call
        ("GET", "bulk_action/delete/"),  # the replay check
        ("GET", "custom_field_schema/lead/"),  # the backup
        ("POST", "data/search/"),  # its leads, and the leads the token binds
        ("POST", "bulk_action/delete/"),
    ]
    assert sent(h)[5][2] == {
        "query": done["preview"]["request"]["s_query"],
        "_limit": 200,
        "_fields": {"lead": [*snapshot_writer.BACKUP_FIELDS, *custom_fields]},
        "sort": BY_CREATED,
    }
    await run_to_done(h, job_id)
    assert not set(doomed) & set(sb.store.leads)

    backup = read_backup(path)
    assert await stored_backup(h.runtime.store, job_id) == backup
    assert sorted(lead["id"] for lead in backup) == doomed
    assert {lead["id"]: lead[f"custom.{region}"] for lead in backup} == {
        i: originals[i].custom.get(region) for i in doomed
    }
    h.clear()
    report = await restore_leads(_sender(h), backup)
    assert report.failed == {}
    assert sorted(report.restored) == doomed
    assert [(r.method, r.path.removeprefix(API)) for r in h.sandbox.requests] == [
        ("POST", "lead/")
    ] * len(doomed)
    assert [r.json for r in h.sandbox.requests] == [
        recreate_body(originals[lead["id"]]) for lead in backup
    ]
    for old, new in report.restored.items():
        assert new != old
        assert record(sb, new) == expected[old]


@pytest.mark.harness(audited=True, n_leads=450)
async def test_backup_request_count_pages_of_200(h: Harness) -> None:
    args = {"s_query": {"type": "match_all"}, "allow_all_leads": True}
    first = await h.call("create_bulk_delete", args)
    assert first["preview"]["notes"][-1].startswith(
        "Before sending, the full records of the 450 leads (fields, custom fields, contacts) "
        "are saved (4 more Close requests): "
    )
    h.clear()
    done = await h.call(
        "create_bulk_delete", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert [(r.method, r.path.removeprefix(API)) for r in h.sandbox.requests] == [
        ("POST", "data/search/"),  # the recount
        ("GET", "bulk_action/delete/"),  # the replay check
        ("GET", "custom_field_schema/lead/"),  # the backup: 3 pages of full records,
        ("POST", "data/search/"),  # from which the binding is checked too
        ("POST", "data/search/"),
        ("POST", "data/search/"),
        ("POST", "bulk_action/delete/"),
    ]
    stored = await stored_backup(h.runtime.store, done["job"]["id"])
    assert stored is not None
    assert len(stored) == 450


@pytest.mark.harness(n_leads=450, audited=True)
async def test_a_backup_that_fails_midway_refuses_the_delete_and_leaves_nothing(
    tmp_path: Path, h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backup goes to the store a page at a time; when the second page cannot be written,
    the pages already written are removed, no file is left, and the delete is not sent."""
    store = h.runtime.store
    pages: list[str] = []
    extend = store.extend

    async def second_page_fails(key: str, lines: Any) -> None:
        if key.startswith("backup-leads:"):
            pages.append(key)
            if len(pages) == 2:
                raise OSError("disk full")
        await extend(key, lines)

    monkeypatch.setattr(store, "extend", second_page_fails)
    args = {"s_query": {"type": "match_all"}, "allow_all_leads": True}
    first = await h.call("create_bulk_delete", args)
    error = await h.error(
        "create_bulk_delete", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert error.startswith("Could not save the backup before sending, so nothing was sent: ")
    assert "disk full" in error
    assert h.writes() == []
    assert len(h.sandbox.store.leads) == 450
    assert pages == [pages[0], pages[0]]  # one list, two pages tried
    assert await store.lines(pages[0]) == []
    assert list((tmp_path / "snapshots").iterdir()) == []
    assert h.audit.entries()[-1]["outcome"] == "refused"


# -- the restore command ----------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _backup(tmp_path: Path, sb: Sandbox, n: int) -> Path:
    from close_mcp.sandbox.lead_selection import project

    fields = [*snapshot_writer.BACKUP_FIELDS, *(f"custom.{cf}" for cf in sb.store.custom_fields)]
    leads = sorted(sb.store.leads.values(), key=lambda lead: lead.id)[:n]
    path = tmp_path / "bulkdelete_test.jsonl"
    rows = [
        {k: v for k, v in project(lead, fields, sb.store).items() if k != "__object_type"}
        for lead in leads
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _args(path: Path, *, yes: bool = False, retry_unknown: bool = False) -> argparse.Namespace:
    return argparse.Namespace(backup=str(path), sandbox=True, yes=yes, retry_unknown=retry_unknown)


# The POST /lead/ that re-creates the first seeded lead (by id) of a 10-lead sandbox on the
# harness's clock, written out by hand: the empty custom values (Deal Size, Lead Source) are
# left out; each contact keeps its name, title, emails (none here) and phones.
VANDELAY_BODY = {
    "name": "Vandelay Systems",
    "status_id": "stat_rQlPZNqPe5fIiyzit1KMfd",  # Canceled
    "description": "Vandelay Systems is a demo lead.",
    "url": "https://vandelay.example",
    "date_created": "2025-09-12T19:00:59.945204+00:00",
    "custom.cf_SwThTKEyX7Epeo4ggJvsfZ": "Finance",  # Industry
    "custom.cf_58V0ZBasbwzWE9YK3AK6rG": ["Reporting", "CRM"],  # Products
    "custom.cf_M1KDN4y9IlvMLRgelEfnRJ": "2026-09-09",  # Renewal Date
    "custom.cf_w0LQ5xSVVUTALdgLZymdNF": "user_KCV7Qdle1m3yJ7OHaEQ1ke",  # Account Owner
    "contacts": [
        {
            "name": "Farid Rossi",
            "title": "Engineer",
            "emails": [],
            "phones": [{"phone": "+14155554619", "type": "office"}],
        },
        {
            "name": "Sam Silva",
            "title": "Buyer",
            "emails": [],
            "phones": [{"phone": "+14155552056", "type": "office"}],
        },
        {
            "name": "José Jones",
            "title": "Buyer",
            "emails": [],
            "phones": [{"phone": "+14155557481", "type": "office"}],
        },
    ],
}


def test_restore_command_confirms_by_count_and_reports_old_to_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    path = _backup(tmp_path, Sandbox(n_leads=10), 3)
    out, err = io.StringIO(), io.StringIO()
    code = commands.restore(_args(path), stdin=Terminal("3\n"), stdout=out, stderr=err)
    assert code == 0
    report = json.loads(out.getvalue())
    old = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert sorted(report["restored"]) == sorted(old)
    assert report["failed"] == {}
    assert "Type the number of leads to restore (3) to go ahead: " in err.getvalue()
    assert err.getvalue().startswith(f"Backup {path}: 3 leads with ")
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    # One line per re-created lead, each naming the new lead and the backup it came from.
    assert [(a["tool"], a["outcome"], a["path"], a["matched"], a["snapshot"]) for a in audit] == [
        ("restore", "submitted", "/lead/", 1, str(path))
    ] * 3
    assert sorted(a["job_id"] for a in audit) == sorted(report["restored"].values())


def test_restore_command_refuses_without_terminal_or_with_a_wrong_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    path = _backup(tmp_path, Sandbox(n_leads=10), 2)
    out, err = io.StringIO(), io.StringIO()
    assert commands.restore(_args(path), stdin=io.StringIO("2\n"), stdout=out, stderr=err) == 1
    assert "stdin is not a terminal" in err.getvalue()
    assert out.getvalue() == ""
    err = io.StringIO()
    assert commands.restore(_args(path), stdin=Terminal("3\n"), stdout=out, stderr=err) == 1
    assert "not restored (typed '3', expected 2)" in err.getvalue()
    assert out.getvalue() == ""
    code = commands.restore(_args(path, yes=True), stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 0
    assert len(json.loads(out.getvalue())["restored"]) == 2


def test_restore_command_reports_a_backup_that_is_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    path = tmp_path / "bulkdelete_test.jsonl"
    path.write_bytes(b'{"id": "lead_1", "name": "\xff"}\n')
    out, err = io.StringIO(), io.StringIO()
    code = commands.restore(_args(path, yes=True), stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 1
    assert err.getvalue().startswith("close-mcp: cannot read the backup: ")
    assert out.getvalue() == ""


@pytest.mark.harness(n_leads=10)
async def test_restore_again_skips_restored_leads_and_holds_back_unknown_ones(
    tmp_path: Path, h: Harness
) -> None:
    path = _backup(tmp_path, h.sandbox, 4)
    backup = read_backup(path)
    old = [lead["id"] for lead in backup]
    journal = progress_path(path)
    assert journal == tmp_path / "bulkdelete_test.jsonl.restored.jsonl"
    # The first POST times out after Close created the lead: its outcome is unknown.
    h.sandbox.inject_faults("timeout_after_commit", path_prefix="lead/", method="POST")
    h.clear()
    first = await restore_leads(_sender(h), backup, progress=Progress.load(path))
    assert sorted(first.restored) == old[1:]
    assert list(first.outcome_unknown) == [old[0]]
    assert first.failed == {}
    assert first.already_restored == {}
    assert mode_of(journal) == 0o600
    assert len(h.writes()) == 4

    # A re-run resends nothing: three are recorded as restored, one is held back.
    h.clear()
    again = Progress.load(path)
    assert again.restored == first.restored
    second = await restore_leads(_sender(h), backup, progress=again)
    assert h.writes() == []
    assert second.restored == {}
    assert second.already_restored == first.restored
    assert list(second.outcome_unknown) == [old[0]]
    assert "--retry-unknown" in second.outcome_unknown[old[0]]

    # Asked to, it sends the unknown one again (once), and then it is recorded as done.
    h.clear()
    third = await restore_leads(
        _sender(h), backup, progress=Progress.load(path), retry_unknown=True
    )
    assert old[0] == "lead_2L2i8JYVcHllTGmWYzhSpp"  # the seeded Vandelay Systems
    assert [(r.method, r.path.removeprefix(API), r.json) for r in h.writes()] == [
        ("POST", "lead/", VANDELAY_BODY)
    ]
    assert list(third.restored) == [old[0]]
    assert third.outcome_unknown == {}
    h.clear()
    fourth = await restore_leads(_sender(h), backup, progress=Progress.load(path))
    assert h.writes() == []
    assert fourth.already_restored == {**first.restored, **third.restored}


def test_restore_command_run_twice_restores_once_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    path = _backup(tmp_path, Sandbox(n_leads=10), 3)
    out, err = io.StringIO(), io.StringIO()
    assert commands.restore(_args(path), stdin=Terminal("3\n"), stdout=out, stderr=err) == 0
    first = json.loads(out.getvalue())
    assert len(first["restored"]) == 3
    # --sandbox keeps its own record, so trying the command never hides a real restore.
    journal = tmp_path / "bulkdelete_test.jsonl.sandbox-restored.jsonl"
    assert mode_of(journal) == 0o600
    assert not (tmp_path / "bulkdelete_test.jsonl.restored.jsonl").exists()

    out, err = io.StringIO(), io.StringIO()
    code = commands.restore(_args(path), stdin=Terminal(""), stdout=out, stderr=err)
    assert code == 0
    assert err.getvalue().splitlines()[1] == (
        f"3 of them were restored by an earlier run (recorded in {journal}): skipped."
    )
    assert "Type the number" not in err.getvalue()
    report = json.loads(out.getvalue())
    assert report == {
        "restored": {},
        "already_restored": first["restored"],
        "failed": {},
        "outcome_unknown": {},
    }
    assert err.getvalue().endswith(
        "close-mcp: restored 0 of 3 leads; 3 already restored by an earlier run\n"
    )


def test_restore_command_holds_back_unknown_leads_until_retry_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    path = _backup(tmp_path, Sandbox(n_leads=10), 2)
    old = [lead["id"] for lead in read_backup(path)]
    progress = Progress.load(path, sandbox=True)
    # A run killed while this lead's POST was out.
    anyio.run(lambda: progress.record(old[0], "sending"))
    progress.close()
    with progress_path(path, sandbox=True).open("a") as journal:
        journal.write('{"old_id": "lead_x", "event": "resto')  # and its last line cut short
    out, err = io.StringIO(), io.StringIO()
    code = commands.restore(_args(path, yes=True), stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 1
    assert (
        "1 of them had an unknown outcome in an earlier run (Close may have created them): "
        "not sent again." in err.getvalue()
    )
    report = json.loads(out.getvalue())
    assert list(report["restored"]) == [old[1]]
    assert list(report["outcome_unknown"]) == [old[0]]
    assert "outcome unknown: see 'outcome_unknown'" in err.getvalue()

    from close_mcp.cli.main import main

    assert main(["restore", str(path), "--sandbox", "--yes", "--retry-unknown"]) == 0
    captured = capsys.readouterr()
    assert list(json.loads(captured.out)["restored"]) == [old[0]]
    assert "are sent again (--retry-unknown)" in captured.err


# -- replicas sharing one store: one revert per edit, one restore per backup ---------------------


async def _sharing(start_harness: StartHarness, tmp_path: Path, **options: Any) -> list[Harness]:
    """Two servers in front of one sandbox, sharing one state store (a SQLite file)."""
    env = {"CLOSE_MCP_STORE": str(tmp_path / "state.sqlite3")}
    a = await start_harness(env=env, **options)
    b = await start_harness(env=env, sandbox=a.sandbox, clock=a.clock, **options)
    return [a, b]


@pytest.mark.harness(audited=True, confirm="edit")
async def test_three_concurrent_revert_confirmations_send_one_revert(
    tmp_path: Path, start_harness: StartHarness
) -> None:
    a, b = await _sharing(start_harness, tmp_path)
    sb = a.sandbox
    qualified = with_status(sb, "Qualified")
    before = state(sb)
    done = await edit(
        a,
        {
            "filter": {"lead_status": "Qualified"},
            "edit": {"type": "set_lead_status", "lead_status": "Customer"},
        },
    )
    job_id = done["job"]["id"]
    # Three previews (two through A, one through B), each with its own token...
    confirmations = []
    for h in (a, a, b):
        preview = await h.call("revert_bulk_edit", {"job_id": job_id})
        assert preview["status"] == "confirmation_required"
        assert preview["preview"]["matched"] == len(qualified)
        confirmations.append((h, preview["confirmation_token"]))
    a.clear()
    outcomes: list[tuple[str, str]] = []

    async def confirm(h: Harness, token: str) -> None:
        args = {"job_id": job_id, "confirmation_token": token}
        result = await h.call_raw("revert_bulk_edit", args)
        if result.is_error:
            outcomes.append(("error", str(result.content[0].text)))  # type: ignore[union-attr]
        else:
            assert result.structured_content is not None
            outcomes.append((result.structured_content["status"], ""))

    # ... confirmed at once: exactly one revert job is sent, the others send nothing.
    async with anyio.create_task_group() as tasks:
        for h, token in confirmations:
            tasks.start_soon(confirm, h, token)
    posts = [r for r in a.writes() if r.path.removeprefix(API) == "bulk_action/edit/"]
    assert len(posts) == 1
    assert len(a.writes()) == 1
    assert sorted(status for status, _ in outcomes) == ["error", "error", "submitted"]
    [revert_job] = [r["job_id"] for r in await reverts(a, job_id)]
    for status, text in outcomes:
        # Refused as being sent right now, as sent since its plan, or as still running.
        if status == "error":
            assert (
                f"Another revert_bulk_edit of {job_id}" in text and "nothing was sent" in text
            ) or f"the revert job {revert_job} sent by an earlier revert_bulk_edit call" in text
    # While that job runs, either server refuses a new revert, naming it.
    for h in (a, b):
        error = await h.error("revert_bulk_edit", {"job_id": job_id})
        assert f"the revert job {revert_job} sent by an earlier revert_bulk_edit call" in error
    await run_to_done(a, revert_job)
    assert state(sb) == before


@pytest.mark.harness(audited=True)
async def test_two_restores_of_one_backup_at_once_create_each_lead_once(
    tmp_path: Path, start_harness: StartHarness
) -> None:
    a, b = await _sharing(start_harness, tmp_path)
    sb = a.sandbox
    doomed = with_status(sb, "Canceled")
    args = {"filter": {"lead_status": "Canceled"}}
    first = await a.call("create_bulk_delete", args)
    done = await a.call(
        "create_bulk_delete", {**args, "confirmation_token": first["confirmation_token"]}
    )
    job_id = done["job"]["id"]
    await run_to_done(a, job_id)
    assert not set(doomed) & set(sb.store.leads)
    a.clear()
    reports: list[Report | None] = []
    refusals: list[str] = []

    async def restore(h: Harness) -> None:
        # B reads the backup from the store A wrote it to, by the delete's job id.
        backup = await open_backup(h.runtime.store, job_id)

        async def approve(progress: Progress) -> bool:
            await anyio.sleep(0.05)  # a person reading the preview: the runs overlap
            return True

        try:
            reports.append(
                await run_restore(h.runtime.store, backup, lambda: _sender(h), approve=approve)
            )
        except Busy as exc:
            refusals.append(str(exc))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(restore, a)
        tasks.start_soon(restore, b)
    posts = [r for r in sb.requests if r.method == "POST" and r.path.removeprefix(API) == "lead/"]
    assert len(posts) == len(doomed)
    [report] = reports
    assert report is not None
    assert sorted(report.restored) == doomed
    assert refusals == [
        f"another restore of store:backup:{job_id} is running (here or on a machine sharing "
        "the state store); nothing was sent. Let it finish, then run this again: it skips "
        "what that run restored."
    ]
    # Run again through either server: the journal in the store says all is done.
    a.clear()
    backup = await open_backup(b.runtime.store, job_id)
    again = await run_restore(
        b.runtime.store, backup, lambda: _sender(b), approve=lambda progress: _yes()
    )
    assert again is not None
    assert again.restored == {}
    assert again.already_restored == report.restored
    assert a.writes() == []


async def _yes() -> bool:
    return True


def test_restore_command_by_job_id_holds_the_backup_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`close-mcp restore bulkdelete_...` reads the backup from the store; while another
    restore of it holds its lock, the command says so, exits 1 and sends nothing."""
    from close_mcp.store import open_store

    store_path = tmp_path / "state.sqlite3"
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    monkeypatch.setenv("CLOSE_MCP_STORE", str(store_path))
    rows = read_backup(_backup(tmp_path, Sandbox(n_leads=10), 2))
    job_id = "bulkdelete_held0"

    async def seed() -> None:
        store = open_store(store_path)
        await store.extend("backup-leads:held0", [json.dumps(r) for r in rows])
        header = {"version": 2, "job_id": job_id, "leads_key": "backup-leads:held0"}
        await store.put(f"backup:{job_id}", json.dumps({**header, "leads_count": len(rows)}))
        await store.add(f"lock:restore:{job_id}", "someone-else", ttl_s=60)
        await store.aclose()

    anyio.run(seed)
    args = argparse.Namespace(backup=job_id, sandbox=False, yes=True, retry_unknown=False)
    monkeypatch.setenv("CLOSE_API_KEY", "api_unused")
    monkeypatch.setenv("CLOSE_API_BASE_URL", "http://127.0.0.1:9/api/v1/")  # never reached
    out, err = io.StringIO(), io.StringIO()
    code = commands.restore(args, stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 1
    assert err.getvalue() == (
        f"close-mcp: not restored: another restore of store:backup:{job_id} is running (here "
        "or on a machine sharing the state store); nothing was sent. Let it finish, then run "
        "this again: it skips what that run restored.\n"
    )
    assert out.getvalue() == ""
