"""The sandbox's seeded objects by name: status ids, custom field ids, email templates.

Each lookup takes the store, the sandbox or the harness, and fails loudly on an unknown name.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import CustomField, EmailTemplate, Store


class HasSandbox(Protocol):
    @property
    def sandbox(self) -> Sandbox: ...


StoreOf = Store | Sandbox | HasSandbox


def store_of(of: StoreOf) -> Store:
    if isinstance(of, Store):
        return of
    if isinstance(of, Sandbox):
        return of.store
    return of.sandbox.store


def status_id(of: StoreOf, label: str) -> str:
    ids = [s.id for s in store_of(of).statuses.values() if s.label == label]
    assert ids, f"no lead status {label!r}"
    return ids[0]


def custom_field(of: StoreOf, name: str) -> CustomField:
    cf = store_of(of).custom_field_named(name)
    assert cf is not None, f"no custom field {name!r}"
    return cf


def field_id(of: StoreOf, name: str) -> str:
    return custom_field(of, name).id


def email_template(of: StoreOf, name: str) -> EmailTemplate:
    found = [t for t in store_of(of).templates.values() if t.name == name]
    assert found, f"no email template {name!r}"
    return found[0]


def template_id(of: StoreOf, name: str) -> str:
    return email_template(of, name).id


def shown_ids(ids: list[str]) -> Any:
    """An id list as a result shows it (issue 26): whole up to 10 ids, else its count, first
    three, sha256 (of the compact JSON list) and the resource with the whole list."""
    if len(ids) <= 10:
        return list(ids)
    sha = hashlib.sha256(json.dumps(list(ids), separators=(",", ":")).encode()).hexdigest()
    return {
        "count": len(ids),
        "first": list(ids[:3]),
        "sha256": sha,
        "all": f"close://id-lists/{sha}",
    }
