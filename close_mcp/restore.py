"""`close-mcp restore BACKUP`: re-create the leads of a pre-delete backup, after confirmation.

Each line of the backup (see `close_mcp.snapshots`) becomes one `POST /lead/` with what a
new lead can carry: name, status, description, url, `date_created` (as an import would),
the `custom.<cf_id>` values, and the contacts with their emails and phones. Close gives new
ids (the old ones are gone for good), so the command reports old -> new on stdout, one JSON
object, and appends one line to the audit log. Activities, opportunities and tasks are not
in the backup and are not re-created.

A person confirms by typing the number of leads (the preview goes to stderr). Without a
terminal on stdin the command refuses unless `--yes` is given, so a script cannot restore
by accident. `--sandbox` restores into a fresh embedded sandbox (a fake Close in memory,
gone when the command ends): only for trying the command and for tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from close_mcp.client import CloseClient
from close_mcp.errors import CloseError

LEAD_FIELDS = ("name", "status_id", "description", "url", "date_created")
PREVIEW_LEADS = 10


@dataclass
class Report:
    restored: dict[str, str] = field(default_factory=dict)  # old id -> new id
    failed: dict[str, str] = field(default_factory=dict)  # old id -> why

    def to_json(self) -> dict[str, Any]:
        return {"restored": self.restored, "failed": self.failed}


def lead_body(lead: dict[str, Any]) -> dict[str, Any]:
    """The `POST /lead/` body that re-creates a backed-up lead (empty values left out)."""
    body: dict[str, Any] = {k: lead[k] for k in LEAD_FIELDS if lead.get(k) not in (None, "")}
    for key, value in lead.items():
        if key.startswith("custom.") and value not in (None, "", []):
            body[key] = value
    contacts = []
    for contact in lead.get("contacts") or []:
        item: dict[str, Any] = {"name": contact.get("name") or ""}
        if contact.get("title"):
            item["title"] = contact["title"]
        item["emails"] = [
            {"email": e["email"], "type": e.get("type", "office")}
            for e in contact.get("emails") or []
            if e.get("email")
        ]
        item["phones"] = [
            {"phone": p["phone"], "type": p.get("type", "office")}
            for p in contact.get("phones") or []
            if p.get("phone")
        ]
        contacts.append(item)
    if contacts:
        body["contacts"] = contacts
    return body


def preview_text(path: Path, leads: list[dict[str, Any]]) -> str:
    contacts = sum(len(lead.get("contacts") or []) for lead in leads)
    lines = [
        f"Backup {path}: {len(leads)} leads with {contacts} contacts.",
        "They will be re-created in Close with new ids (activities are not in the backup):",
    ]
    for lead in leads[:PREVIEW_LEADS]:
        status = lead.get("status_label") or lead.get("status_id") or "?"
        name = lead.get("display_name") or lead.get("name") or ""
        lines.append(f"  {lead['id']}  {name}  [{status}]")
    if len(leads) > PREVIEW_LEADS:
        lines.append(f"  ... and {len(leads) - PREVIEW_LEADS} more")
    return "\n".join(lines)


def confirmed(
    n: int, *, yes: bool, interactive: bool, ask: Callable[[str], str], err: TextIO
) -> bool:
    """`--yes`, or a person at a terminal typing the number of leads."""
    if yes:
        return True
    if not interactive:
        print(
            "close-mcp: refusing to restore: stdin is not a terminal, so nobody can confirm. "
            "Run it in a terminal, or pass --yes in a script.",
            file=err,
        )
        return False
    typed = ask(f"Type the number of leads to restore ({n}) to go ahead: ").strip()
    if typed != str(n):
        print(f"close-mcp: not restored (typed {typed!r}, expected {n}).", file=err)
        return False
    return True


async def restore_leads(client: CloseClient, leads: list[dict[str, Any]]) -> Report:
    """POST each lead once (never retried: a POST that may have worked is not resent)."""
    report = Report()
    for lead in leads:
        try:
            created = await client.post("lead/", lead_body(lead))
        except CloseError as exc:
            report.failed[lead["id"]] = str(exc)
            continue
        new_id = created.get("id") if isinstance(created, dict) else None
        if isinstance(new_id, str):
            report.restored[lead["id"]] = new_id
        else:
            report.failed[lead["id"]] = "Close answered without an id"
    return report
