"""Rendering a template as Close will send it: for one lead and one of its contacts.

Close's `GET /email_template/{id}/render/` needs both `lead_id` and `contact_id` in its
single form, so the contact is always chosen here, explicitly, and the preview names it.
A bulk email reaches, on each lead, the contacts that have an address (`lead`: the first of
them; `contact`: each one's first address; `all`: Close lists the value without saying what it
does, so every text here says so), so whatever the preference its first email goes to the
first contact with an address of the first lead that has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from close_mcp.close.catalog import Catalog, Template
from close_mcp.close.client import CloseClient
from close_mcp.errors import ArgumentError
from close_mcp.selection.sample import LeadSample
from close_mcp.writes.gate import quoted

RENDER_CLIP: Final = 2000
BULK_REACH: Final = {
    "lead": "the first contact with an email address of each lead (its first address)",
    "contact": "every contact with an email address (each one's first address)",
    "all": (
        "recipients Close does not document (the value is listed in Close's reference without "
        "a meaning; the sandbox reads it as every email address of every contact)"
    ),
}


async def active_template(catalog: Catalog, template: str) -> Template:
    """The template `template` names (name or id), refused when archived: the one check of
    every tool that sends a template."""
    found = await catalog.resolve_template(template)
    if found.is_archived:
        raise ArgumentError(
            "template",
            f"{quoted(found.name)} is archived; pick an active one",
            quotes_crm_text=True,
        )
    return found


def first_email(contact: dict[str, Any]) -> str | None:
    for entry in contact.get("emails") or []:
        if isinstance(entry, dict) and isinstance(entry.get("email"), str) and entry["email"]:
            return str(entry["email"])
    return None


def clip(text: str | None) -> str | None:
    if text is None or len(text) <= RENDER_CLIP:
        return text
    return text[:RENDER_CLIP] + f"… ({len(text)} characters in all)"


async def render(
    client: CloseClient, template_id: str, lead_id: str, contact_id: str
) -> dict[str, Any]:
    """Close's rendering of the template for this lead and contact."""
    params = {"lead_id": lead_id, "contact_id": contact_id}
    rendered = await client.get(f"email_template/{template_id}/render/", params)
    return rendered if isinstance(rendered, dict) else {}


async def render_bulk_email(
    client: CloseClient, template_id: str, sample: Sequence[LeadSample], contact_preference: str
) -> tuple[dict[str, Any] | None, str]:
    """The first email of a bulk email on these sample leads, as Close renders it, and a note
    for the preview that says whom it goes to (one lead read per sample lead without one)."""
    reach = BULK_REACH[contact_preference]
    for lead in sample:
        raw = await client.get(f"lead/{lead.id}/", {"_fields": "id,contacts"})
        contacts = raw.get("contacts") if isinstance(raw, dict) else None
        for contact in contacts or []:
            address = first_email(contact) if isinstance(contact, dict) else None
            if address is None:
                continue
            rendered = await render(client, template_id, lead.id, str(contact.get("id")))
            rendering = {
                "lead_id": lead.id,
                "contact_id": contact.get("id"),
                "contact_name": contact.get("name"),
                "email": rendered.get("email", address),
                "subject": rendered.get("subject"),
                "body": clip(rendered.get("body")),
            }
            return rendering, (
                f"The rendering is the email to {address} (contact {contact.get('id')} of lead "
                f"{lead.id}); contact_preference {contact_preference} sends to {reach}."
            )
    return None, (
        "No sample lead has a contact with an email address, so nothing is rendered; Close "
        f"skips leads without one. contact_preference {contact_preference} sends to {reach}."
    )
