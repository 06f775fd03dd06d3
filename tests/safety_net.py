"""What the safety net's suites share: an edit and a revert through the MCP client, the
leads as an edit or a restore must leave them, the exact requests that reached "Close", a
delete's backup as a file (test_snapshots, test_revert_bulk_edit, test_backups,
unit/safety/test_restore, unit/cli/test_commands)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from close_mcp.safety import snapshot_writer
from close_mcp.safety.snapshot_reader import read_document
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import Lead
from close_mcp.sandbox.store import iso as close_iso
from close_mcp.writes.sender import Sender
from tests.harness import Harness, StartHarness, run_to_done
from tests.ids import status_id
from tests.queries import lead_ids_query

API = "/api/v1/"


def restore_sender(h: Harness) -> Sender:
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


async def delete_canceled(h: Harness) -> tuple[str, dict[str, Lead]]:
    """Delete the Canceled leads with the tools; the job id and the leads as they were."""
    sb = h.sandbox
    before = {i: sb.store.leads[i] for i in with_status(sb, "Canceled")}
    args = {"filter": {"lead_status": "Canceled"}}
    first = await h.call("create_bulk_delete", args)
    done = await h.call(
        "create_bulk_delete", {**args, "confirmation_token": first["confirmation_token"]}
    )
    job_id = done["job"]["id"]
    await run_to_done(h, job_id)
    assert not set(before) & set(sb.store.leads)
    return job_id, before


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


def backup_file(tmp_path: Path, sb: Sandbox, n: int) -> Path:
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


async def sharing(start_harness: StartHarness, tmp_path: Path, **options: Any) -> list[Harness]:
    """Two servers in front of one sandbox, sharing one state store (a SQLite file)."""
    env = {"CLOSE_MCP_STORE": str(tmp_path / "state.sqlite3")}
    a = await start_harness(env=env, **options)
    b = await start_harness(env=env, sandbox=a.sandbox, clock=a.clock, **options)
    return [a, b]
