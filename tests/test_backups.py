"""The backup before a bulk delete, through the MCP client: the full records read page by
page, kept in the store and in a private file, the delete refused when the backup cannot be
saved, and the leads re-created from it exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from close_mcp.safety import snapshot_writer
from close_mcp.safety.restore import restore_leads
from close_mcp.safety.snapshot_reader import read_backup, stored_backup
from close_mcp.sandbox import Sandbox
from tests.harness import MODES, Harness, run_to_done
from tests.ids import field_id
from tests.queries import BY_CREATED
from tests.safety_net import API, mode_of, recreate_body, restore_sender, sent, with_status

pytestmark = pytest.mark.anyio


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
    report = await restore_leads(restore_sender(h), backup)
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
