"""The snapshot before a bulk edit, through the MCP client: what it reads and holds, where it
is kept, what the audit line says, and when none is taken. Every test runs against the
sandbox, compares leads field by field in `sb.store`, and asserts the exact requests that
reached "Close"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from close_mcp.close import lead_walk as walking
from close_mcp.sandbox import routes
from tests.harness import MODES, Harness, StartHarness
from tests.ids import field_id, status_id
from tests.queries import BY_CREATED, created_from, shown_ids_query, utc
from tests.safety_net import API, edit, ids_query, load, revert, sent, state, with_status

pytestmark = pytest.mark.anyio


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
        cond = created_from(utc(moment.isoformat()))
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
