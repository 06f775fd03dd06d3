"""Tree building blocks other modules reuse: the lead-id and has-email conditions, the lead node."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.errors import ArgumentError
from close_mcp.selection.nodes import has_email_node, lead_ids_node, top_object_type, with_lead_node
from tests.queries import HAS_EMAIL, LEAD, fc, lead_and, negated, regular

pytestmark = pytest.mark.anyio


def test_helpers_reused_elsewhere() -> None:
    assert lead_ids_node(["lead_x"]) == fc(
        regular("id"), {"type": "reference", "reference_type": "lead", "object_ids": ["lead_x"]}
    )
    assert has_email_node(True) == HAS_EMAIL
    assert has_email_node(False) == {**HAS_EMAIL, "negate": True}


CONTACT = {"type": "object_type", "object_type": "contact"}


@pytest.mark.parametrize(
    ("tree", "object_type"),
    [
        (LEAD, "lead"),
        (lead_and(regular("x")), "lead"),
        ({"type": "and", "queries": [CONTACT]}, "contact"),
        (negated(LEAD), None),
        (negated(lead_and()), None),
        ({"type": "or", "queries": [LEAD]}, None),
    ],
    ids=["alone", "first in an and", "contact", "negated", "negated and", "inside an or"],
)
def test_the_object_type_a_tree_starts_with(tree: dict[str, Any], object_type: str | None) -> None:
    assert top_object_type(tree) == object_type


def test_a_raw_tree_is_copied_with_the_lead_node() -> None:
    narrow = fc(regular("name"), {"type": "exists"})
    led = with_lead_node(narrow)
    assert led == lead_and(narrow)
    assert led["queries"][1] is not narrow
    already = lead_and(narrow)
    assert with_lead_node(already) == already
    assert with_lead_node(already) is not already
    with pytest.raises(ArgumentError) as info:
        with_lead_node({"type": "object_type", "object_type": "opportunity"})
    assert str(info.value) == (
        "s_query: the query selects 'opportunity' objects; bulk actions and searches here "
        "select leads"
    )
