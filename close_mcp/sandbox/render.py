"""Email template rendering: fills `{{ lead.display_name }}`-style placeholders as Close does.

Close renders templates server side (Jinja-like). The sandbox supports the plain
`{{ object.attribute }}` form, which is all the seeded templates use; an unknown placeholder
renders empty, as an undefined Jinja variable would.
"""

from __future__ import annotations

import re

from close_mcp.sandbox.store import JSON, Contact, EmailTemplate, Lead, Store

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\.(\w+)\s*\}\}")


def _values(store: Store, lead: Lead, contact: Contact | None) -> dict[str, str]:
    status = store.statuses.get(lead.status_id)
    me = store.me
    values = {
        "lead.display_name": lead.display_name,
        "lead.name": lead.name,
        "lead.status_label": status.label if status else "",
        "lead.url": lead.url or "",
        "lead.description": lead.description,
        "user.first_name": me.first_name,
        "user.last_name": me.last_name,
        "user.full_name": me.full_name,
        "user.email": me.email,
        "organization.name": store.org.name,
    }
    if contact is not None:
        values |= {
            "contact.first_name": contact.first_name,
            "contact.last_name": contact.last_name,
            "contact.name": contact.name,
            "contact.display_name": contact.name,
            "contact.title": contact.title,
            "contact.email": contact.emails[0]["email"] if contact.emails else "",
        }
    return values


def render_text(text: str, store: Store, lead: Lead, contact: Contact | None) -> str:
    values = _values(store, lead, contact)
    return PLACEHOLDER.sub(lambda m: values.get(f"{m[1]}.{m[2]}", ""), text)


def render_template(
    store: Store, template: EmailTemplate, lead: Lead, contact: Contact, address: int = 0
) -> JSON:
    """The `/email_template/{id}/render/` answer for one lead and contact (to its address
    number `address`, its first by default)."""
    emails = contact.emails
    email = emails[address]["email"] if len(emails) > address else None
    return {
        "id": template.id,
        "name": template.name,
        "template_id": template.id,
        "lead_id": lead.id,
        "contact_id": contact.id,
        "email": email,
        "to": [email] if email else [],
        "subject": render_text(template.subject, store, lead, contact),
        "body": render_text(template.body, store, lead, contact),
        "attachments": [],
    }
