"""`lookup` through a real MCP client, in both protocol eras, against the sandbox: every kind
as the store holds it, the name filter, and an unknown kind refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.tokens import count_tokens
from close_mcp.sandbox.store import Store
from tests.harness import MODES, Harness, text_of
from tests.ids import status_id
from tests.read_tools import NOTICE

# Only the read toolsets: the same tools, a faster server build.
pytestmark = [pytest.mark.anyio, pytest.mark.harness(toolsets="search,jobs")]

REPO = Path(__file__).resolve().parents[1]


def expected_lookup(store: Store, kind: str) -> list[dict[str, Any]]:
    """(id, name, details) of every item of a kind, straight from the store."""
    if kind == "lead_statuses":
        return [{"id": s.id, "name": s.label, "details": {}} for s in store.statuses.values()]
    if kind == "custom_fields":
        return [
            {
                "id": cf.id,
                "name": cf.name,
                "details": {
                    "type": cf.type,
                    "accepts_multiple_values": cf.accepts_multiple_values,
                    **({"choices": cf.choices} if cf.choices else {}),
                },
            }
            for cf in store.custom_fields.values()
        ]
    if kind == "email_templates":
        return [
            {"id": t.id, "name": t.name, "details": {"subject": t.subject}}
            for t in store.templates.values()
        ]
    if kind == "sequences":
        return [
            {"id": q.id, "name": q.name, "details": {"status": q.status}}
            for q in store.sequences.values()
        ]
    if kind == "smart_views":
        return [
            {"id": v.id, "name": v.name, "details": {"type": "lead"}}
            for v in store.saved_searches.values()
        ]
    if kind == "email_accounts":
        return [
            {
                "id": a.id,
                "name": a.identities[0]["email"],
                "details": {"identities": a.identities, "user_id": a.user_id},
            }
            for a in store.email_accounts.values()
        ]
    assert kind == "users"
    return [
        {"id": u.id, "name": u.full_name, "details": {"email": u.email}}
        for u in store.users.values()
    ]


KINDS = (
    "lead_statuses",
    "custom_fields",
    "email_templates",
    "sequences",
    "smart_views",
    "email_accounts",
    "users",
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=5)
async def test_lookup_lists_every_kind_as_the_sandbox_holds_it(h: Harness) -> None:
    for kind in KINDS:
        items = expected_lookup(h.sandbox.store, kind)
        assert await h.call("lookup", {"kind": kind}) == {
            "kind": kind,
            "items": items,
            "total": len(items),
            "truncated": False,
            "crm_data_notice": NOTICE,
        }, kind
    assert h.writes() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=5)
async def test_lookup_name_filter_keeps_similar_names_and_the_full_total(h: Harness) -> None:
    store = h.sandbox.store
    statuses = await h.call("lookup", {"kind": "lead_statuses", "name": "  QUALIF "})
    assert (statuses["items"], statuses["total"]) == (
        [{"id": status_id(store, "Qualified"), "name": "Qualified", "details": {}}],
        len(store.statuses),
    )
    fields = await h.call("lookup", {"kind": "custom_fields", "name": "Industri"})
    assert [item["name"] for item in fields["items"]] == ["Industry"]
    nothing = await h.call("lookup", {"kind": "sequences", "name": "zzz"})
    assert (nothing["items"], nothing["total"]) == ([], len(store.sequences))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=5)
async def test_lookup_rejects_an_unknown_kind(h: Harness) -> None:
    message = await h.error("lookup", {"kind": "pipelines"})
    for part in ("kind", *KINDS):
        assert part in message


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=5)
async def test_lookup_s_query_lists_the_grammar_from_its_schema(h: Harness) -> None:
    schema = json.loads((REPO / "tool_schemas" / "s_query.schema.json").read_text())
    unions = {
        role: [b["if"]["properties"]["type"]["const"] for b in schema["$defs"][role]["allOf"]]
        for role in ("node", "field", "condition", "moment")
    }
    result = await h.call_raw("lookup", {"kind": "s_query"})
    got = result.structured_content
    assert got is not None
    forms = [(i["name"], i["id"]) for i in got["items"] if i["name"] != "object_type"]
    assert forms == [(role, kind) for role, kinds in unions.items() for kind in kinds]
    items = {(i["name"], i["id"]): i["details"] for i in got["items"]}
    assert items[("node", "field_condition")] == {"field": "field", "condition": "condition"}
    assert items[("moment", "offset")] == {
        "direction": "past|future",
        "moment": "moment",
        "offset": "{years|months|weeks|days|hours|minutes|seconds: integer}",
        "which_day_end?": "start|end",
    }
    assert items[("condition", "moment_range")]["on_or_after?"] == "moment or null"
    examples = schema["$defs"]["field_regular"]["examples"]
    assert items[("object_type", "activity.email")] == {
        "fields": [e["field_name"] for e in examples if e["object_type"] == "activity.email"]
    }
    assert got["total"] == len(got["items"])
    assert "negate: true" in got["note"]
    assert "crm_data_notice" not in got  # the grammar is not CRM data
    assert h.sandbox.requests == []  # nothing asked of Close
    tokens = count_tokens(text_of(result))
    print(f"\nlookup s_query: {len(got['items'])} items, {tokens} o200k tokens")
    assert tokens <= 1500
    moments = await h.call("lookup", {"kind": "s_query", "name": "moment"})
    assert [i["id"] for i in moments["items"]] == ["moment_range", *unions["moment"]]
