"""Building blocks of Close's query tree that more than one place writes the same way.

The lead node every selection starts with, a lead-id condition (filters and revert plans),
the has-email condition; and the check that a raw tree selects leads.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from close_mcp.errors import ArgumentError

LEAD_NODE: Final[dict[str, Any]] = {"type": "object_type", "object_type": "lead"}


def regular_field(field_name: str) -> dict[str, Any]:
    """A lead's own (not custom) field, such as `status_id`."""
    return {"type": "regular_field", "object_type": "lead", "field_name": field_name}


def field_condition(field: dict[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
    return {"type": "field_condition", "field": field, "condition": condition}


def any_of(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """One node, or an `or` of several."""
    return nodes[0] if len(nodes) == 1 else {"type": "or", "queries": nodes}


def lead_ids_node(ids: list[str]) -> dict[str, Any]:
    """Leads whose id is one of `ids`: the one place a lead-id condition is built.

    Close's advanced filtering reference: ID fields take a `reference` condition with the
    ID's type as `reference_type`, so the lead `id` field takes `reference_type: "lead"`.
    `filter.lead_ids` and every revert plan use it.
    """
    return field_condition(
        regular_field("id"),
        {"type": "reference", "reference_type": "lead", "object_ids": list(ids)},
    )


def has_email_node(has_email: bool) -> dict[str, Any]:
    """Leads with (or, negated, without) a contact that has an email address.

    Our reading of Close's grammar: `has_related` from lead to contact, and from contact to
    `contact_email`, matching any email; `negate` on the outer node means "no contact has one".
    """
    node: dict[str, Any] = {
        "type": "has_related",
        "this_object_type": "lead",
        "related_object_type": "contact",
        "related_query": {
            "type": "has_related",
            "this_object_type": "contact",
            "related_object_type": "contact_email",
            "related_query": {"type": "match_all"},
        },
    }
    if not has_email:
        node["negate"] = True
    return node


def top_object_type(tree: dict[str, Any]) -> str | None:
    """The object type a tree starts with: its own, or a direct child's of a top-level `and`."""
    candidates = [tree]
    if tree.get("type") == "and" and not tree.get("negate"):
        candidates += [q for q in tree.get("queries") or [] if isinstance(q, dict)]
    for node in candidates:
        if node.get("type") == "object_type" and not node.get("negate"):
            object_type = node.get("object_type")
            return object_type if isinstance(object_type, str) else None
    return None


def with_lead_node(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw tree that starts with the lead node; a tree of other objects is refused."""
    object_type = top_object_type(tree)
    if object_type == "lead":
        return copy.deepcopy(tree)
    if object_type is not None:
        raise ArgumentError(
            "s_query",
            f"the query selects {object_type!r} objects; bulk actions and searches here "
            "select leads",
        )
    return {"type": "and", "queries": [dict(LEAD_NODE), copy.deepcopy(tree)]}
