"""What `tools/list` costs a model, and what the lean listing leaves out (issue 18).

Token counts are deterministic (o200k_base, bench/tokens.py), so the targets that
bench/tool_list.py prints are asserted here too. The listed input schemas are lean; the
server checks every call against the full ones (tool_schemas/enforced/, test_schemas.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.tool_list import ALL_FULL_TARGET, FULL_TARGET, VISIBLE_TARGET, measure_documents
from tests.harness import MODES, Harness

pytestmark = [pytest.mark.anyio, pytest.mark.harness(toolsets=None, n_leads=5)]

LEFT_OUT = {
    "$ref",
    "$defs",
    "oneOf",
    "const",
    "discriminator",
    "title",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "maxProperties",
    "minProperties",
}


async def documents(h: Harness) -> list[dict[str, Any]]:
    tools = (await h.client.list_tools()).tools
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


async def test_tools_list_is_within_its_token_targets(h: Harness) -> None:
    docs = await documents(h)
    assert len(docs) >= 13
    figures = measure_documents(docs)
    print(f"tools/list: {figures.full} tokens in full, {figures.visible} model-visible")
    assert figures.full <= FULL_TARGET
    assert figures.visible <= VISIBLE_TARGET


@pytest.mark.harness(toolsets="all")
async def test_every_toolset_on_stays_within_its_full_target(h: Harness) -> None:
    """CLOSE_MCP_TOOLSETS=all adds the opt-in tools (export, merge, opportunities, tasks)."""
    docs = await documents(h)
    opt_in = {"export_leads", "merge_leads", "update_opportunities", "update_tasks"}
    assert opt_in <= {d["name"] for d in docs}
    figures = measure_documents(docs)
    print(f"tools/list, every toolset: {figures.full} tokens in full")
    assert figures.full <= ALL_FULL_TARGET


def keywords(node: Any) -> set[str]:
    """Schema keywords used anywhere (property names are not keywords)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= keywords(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for sub in value.values():
                    found |= keywords(sub)
                continue
            found.add(key)
            if key == "additionalProperties" and isinstance(value, bool):
                found.add("boolean additionalProperties")
            found |= keywords(value)
    return found


async def test_listed_input_schemas_leave_out_what_clients_reject_or_need_not_read(
    h: Harness,
) -> None:
    for doc in await documents(h):
        used = keywords(doc["inputSchema"])
        assert not used & (LEFT_OUT | {"boolean additionalProperties"}), (doc["name"], used)


async def test_the_filter_is_described_once(h: Harness) -> None:
    """search_leads lists the whole filter, described; a bulk tool takes the handle it
    answers (`selection`) and lists neither the filter nor the limit and order it carries."""
    docs = {d["name"]: d for d in await documents(h)}
    listing_filter = [
        name for name, doc in docs.items() if "filter" in doc["inputSchema"]["properties"]
    ]
    assert listing_filter == ["search_leads"]
    full = docs["search_leads"]["inputSchema"]["properties"]["filter"]
    assert "description" in full["properties"]["name"]
    for name in ("create_bulk_edit", "create_bulk_email", "create_bulk_sequence_subscription",
                 "create_bulk_delete"):  # fmt: skip
        listed = set(docs[name]["inputSchema"]["properties"])
        assert {"selection", "s_query"} <= listed, name
        assert not listed & {"filter", "results_limit", "sort"}, name


READ_TOOLS = (
    "search_leads",
    "get_lead",
    "lookup",
    "list_bulk_jobs",
    "get_bulk_job",
    "wait_for_bulk_job",
)

READ_ANNOTATIONS = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(toolsets=None, n_leads=5)  # every toolset
async def test_tools_list_shows_every_read_tool_with_its_contract(h: Harness) -> None:
    listed = {tool.name: tool for tool in (await h.client.list_tools()).tools}
    for name in READ_TOOLS:
        tool = listed[name]
        assert tool.title, name
        assert tool.description, name
        assert tool.annotations is not None
        annotations = tool.annotations.model_dump(by_alias=True, exclude_none=True)
        assert annotations == READ_ANNOTATIONS, name
        assert tool.input_schema["type"] == "object"
        assert "properties" in tool.input_schema
        assert tool.output_schema is not None
        assert tool.output_schema["type"] == "object"
        assert tool.output_schema["required"], name  # what clients check results against
