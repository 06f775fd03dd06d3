"""`search_leads` names the selection it resolved (`selection: "sel_..."`): kept in the state
store for an hour, for the caller (Close key) that made it, and given back whole by
`resolve_handle`; another key, or the same key after an hour, gets "unknown or expired"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from close_mcp.errors import ArgumentError
from close_mcp.sandbox import Sandbox
from close_mcp.selection.handles import KEPT_S, resolve_handle
from tests.harness import MODES, Harness, StartHarness

pytestmark = pytest.mark.anyio

FILTER = {"lead_status": "Potential", "created_within": "90d", "not_emailed_within": "30d"}


def caller_of(h: Harness) -> str:
    return h.runtime.client_for({}).caller


@pytest.mark.parametrize("mode", MODES)
async def test_a_handle_gives_back_the_selection_search_leads_resolved(h: Harness) -> None:
    found = await h.call("search_leads", {"filter": FILTER, "results_limit": 40, "sort": ["name"]})
    held = await resolve_handle(h.runtime.store, found["selection"], caller_of(h))
    assert held.filter == FILTER
    selection = held.selection
    assert (selection.s_query, selection.results_limit, selection.sort) == (
        found["s_query"],
        40,
        found["sort"],
    )
    assert selection.source == "filter"
    again = await h.call("search_leads", {"filter": FILTER, "results_limit": 40, "sort": ["name"]})
    assert again["selection"] == found["selection"]  # the same selection, the same name
    other = await h.call("search_leads", {"filter": FILTER})
    assert other["selection"] != found["selection"]
    raw = await h.call("search_leads", {"s_query": found["s_query"]})
    held = await resolve_handle(h.runtime.store, raw["selection"], caller_of(h))
    assert (held.filter, held.selection.source) == (None, "s_query")


async def test_a_handle_expires_after_an_hour(h: Harness) -> None:
    found = await h.call("search_leads", {"filter": FILTER})
    h.clock.advance(KEPT_S - 1)
    await resolve_handle(h.runtime.store, found["selection"], caller_of(h))
    h.clock.advance(1)
    with pytest.raises(ArgumentError) as info:
        await resolve_handle(h.runtime.store, found["selection"], caller_of(h))
    assert str(info.value) == (
        f"selection: {found['selection']} is unknown or expired (a handle lasts an hour, for "
        "the key that made it); run search_leads again"
    )


async def owner_and_stranger(
    start_harness: StartHarness, tmp_path: Path
) -> tuple[Harness, dict[str, Any], Harness]:
    """A selection one key found, and a server of another organization's key that shares the
    finder's state store."""
    store = {"CLOSE_MCP_STORE": str(tmp_path / "state.sqlite3")}
    owner = await start_harness(env=store)
    found = await owner.call("search_leads", {"filter": FILTER})
    other_org = Sandbox(n_leads=20, seed=99, api_key="api_other_org_012345", clock=owner.clock)
    stranger = await start_harness(
        env={**store, "CLOSE_API_KEY": "api_other_org_012345"}, sandbox=other_org
    )
    return owner, found, stranger


async def test_another_key_cannot_use_a_handle_even_through_a_shared_store(
    tmp_path: Path, start_harness: StartHarness
) -> None:
    owner, found, stranger = await owner_and_stranger(start_harness, tmp_path)
    assert caller_of(stranger) != caller_of(owner)
    await resolve_handle(stranger.runtime.store, found["selection"], caller_of(owner))
    with pytest.raises(ArgumentError, match="is unknown or expired"):
        await resolve_handle(stranger.runtime.store, found["selection"], caller_of(stranger))


@pytest.mark.parametrize(
    "handle", ["sel_", "sel_" + "0" * 31, "sel_" + "G" * 32, "lead_abc", "sel_" + "0" * 33]
)
async def test_a_malformed_handle_says_what_a_handle_is(h: Harness, handle: str) -> None:
    with pytest.raises(ArgumentError) as info:
        await resolve_handle(h.runtime.store, handle, caller_of(h))
    assert str(info.value) == (
        "selection: not a selection handle (sel_ and 32 hex digits, from search_leads)"
    )


# -- the bulk tools take the handle -------------------------------------------------------------

EDIT = {"type": "set_lead_status", "lead_status": "Qualified"}


@pytest.mark.parametrize("mode", MODES)
async def test_a_bulk_tool_given_a_handle_acts_on_the_selection_search_leads_resolved(
    h: Harness,
) -> None:
    found = await h.call("search_leads", {"filter": FILTER, "results_limit": 3, "sort": ["name"]})
    by_handle = await h.call(
        "create_bulk_edit", {"selection": found["selection"], "edit": EDIT, "dry_run": True}
    )
    by_filter = await h.call(
        "create_bulk_edit",
        {"filter": FILTER, "results_limit": 3, "sort": ["name"], "edit": EDIT, "dry_run": True},
    )
    assert by_handle["preview"]["request"] == by_filter["preview"]["request"]
    assert by_handle["preview"]["request"]["results_limit"] == 3
    assert by_handle["preview"]["matched"] == min(3, found["total"])
    assert h.writes() == []


async def test_a_handle_with_its_own_filter_or_limit_is_refused_before_anything_is_read(
    h: Harness,
) -> None:
    found = await h.call("search_leads", {"filter": FILTER})
    h.clear()
    text = await h.error(
        "create_bulk_delete",
        {"selection": found["selection"], "filter": FILTER, "results_limit": 2},
    )
    assert text == (
        "selection: names the leads, their limit and order already; leave out filter, "
        "results_limit, or run search_leads again with them"
    )
    assert h.sandbox.requests == []


async def test_a_bulk_tool_without_leads_says_how_to_name_them(h: Harness) -> None:
    text = await h.error("create_bulk_delete", {"dry_run": True})
    assert text == "name the leads: selection (from search_leads), filter or s_query"


async def test_another_keys_handle_is_unknown_to_a_bulk_tool(
    tmp_path: Path, start_harness: StartHarness
) -> None:
    _, found, stranger = await owner_and_stranger(start_harness, tmp_path)
    text = await stranger.error(
        "create_bulk_delete", {"selection": found["selection"], "dry_run": True}
    )
    assert "is unknown or expired" in text
    assert stranger.writes() == []


async def test_bulk_tools_list_the_handle_and_leave_the_filter_to_search_leads(
    h: Harness,
) -> None:
    listed = {t.name: t.input_schema for t in (await h.client.list_tools()).tools}
    assert "filter" in listed["search_leads"]["properties"]
    for name in ("create_bulk_edit", "create_bulk_email", "create_bulk_delete"):
        properties = set(listed[name]["properties"])
        assert "selection" in properties
        assert not properties & {"filter", "results_limit", "sort"}, name


# -- the per-record tools take the handle -------------------------------------------------------

RECORD_TOOLS = {
    "update_opportunities": {"change": {"confidence": 77}},
    "update_tasks": {"change": {"due_date": "2026-04-01"}},
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=120, toolsets="all")
async def test_update_opportunities_given_a_handle_acts_on_the_leads_search_leads_chose(
    h: Harness,
) -> None:
    """A handle with a limit and an order: the run touches the opportunities of exactly the
    leads search_leads showed (its sample is the whole selection here), one PUT each."""
    found = await h.call(
        "search_leads",
        {"filter": {"lead_status": "Qualified"}, "results_limit": 5, "sort": ["display_name"]},
    )
    chosen = {lead["id"] for lead in found["sample"]}
    assert len(chosen) == 5
    store = h.sandbox.store
    planned = sorted(
        o.id for o in store.opportunities.values() if o.lead_id in chosen and o.confidence != 77
    )
    assert planned
    args = {"selection": found["selection"], **RECORD_TOOLS["update_opportunities"]}
    h.clear()
    first = await h.call("update_opportunities", args)
    assert first["status"] == "confirmation_required"
    body = first["preview"]["request"]
    assert body["leads"] == {
        "s_query": found["s_query"],
        "results_limit": 5,
        "sort": found["sort"],
    }
    assert body["requests_count"] == len(planned) == first["preview"]["matched"]
    assert h.writes() == []
    done = await h.call("update_opportunities", {**args,
                        "confirmation_token": first["confirmation_token"]})  # fmt: skip
    assert done["status"] == "submitted", done
    assert [(w.method, w.path, w.json) for w in h.writes()] == [
        ("PUT", f"/api/v1/opportunity/{i}/", {"confidence": 77}) for i in planned
    ]
    assert {o.id for o in store.opportunities.values() if o.confidence == 77} >= set(planned)


@pytest.mark.harness(n_leads=120, toolsets="all")
@pytest.mark.parametrize("tool", sorted(RECORD_TOOLS))
async def test_a_handle_and_a_filter_give_the_same_per_record_preview(
    h: Harness, tool: str
) -> None:
    found = await h.call("search_leads", {"filter": FILTER})
    by_handle = await h.call(tool, {"selection": found["selection"], **RECORD_TOOLS[tool],
                                    "dry_run": True})  # fmt: skip
    by_filter = await h.call(tool, {"filter": FILTER, **RECORD_TOOLS[tool], "dry_run": True})
    assert by_handle["preview"]["request"] == by_filter["preview"]["request"]
    assert by_handle["preview"]["request"]["leads"] == {"s_query": found["s_query"]}
    assert h.writes() == []


@pytest.mark.harness(toolsets="all")
@pytest.mark.parametrize("tool", sorted(RECORD_TOOLS))
@pytest.mark.parametrize("also", [{"filter": FILTER}, {"s_query": {"type": "match_all"}}])
async def test_a_handle_with_its_own_leads_is_refused_by_a_per_record_tool_before_any_read(
    h: Harness, tool: str, also: dict[str, Any]
) -> None:
    found = await h.call("search_leads", {"filter": FILTER})
    h.clear()
    text = await h.error(tool, {"selection": found["selection"], **also, **RECORD_TOOLS[tool]})
    assert text == (
        f"selection: names the leads, their limit and order already; leave out {''.join(also)}, "
        "or run search_leads again with them"
    )
    assert h.sandbox.requests == []


@pytest.mark.harness(toolsets="all")
@pytest.mark.parametrize("tool", sorted(RECORD_TOOLS))
async def test_an_expired_handle_is_refused_by_a_per_record_tool(h: Harness, tool: str) -> None:
    found = await h.call("search_leads", {"filter": FILTER})
    h.clock.advance(KEPT_S)
    h.clear()
    text = await h.error(tool, {"selection": found["selection"], **RECORD_TOOLS[tool]})
    assert text == (
        f"selection: {found['selection']} is unknown or expired (a handle lasts an hour, for "
        "the key that made it); run search_leads again"
    )
    assert h.writes() == []


@pytest.mark.parametrize("tool", sorted(RECORD_TOOLS))
async def test_another_keys_handle_is_unknown_to_a_per_record_tool(
    tmp_path: Path, start_harness: StartHarness, tool: str
) -> None:
    store = {"CLOSE_MCP_STORE": str(tmp_path / "state.sqlite3")}
    owner = await start_harness(env=store, toolsets="all")
    found = await owner.call("search_leads", {"filter": FILTER})
    other_org = Sandbox(n_leads=20, seed=99, api_key="api_other_org_012345", clock=owner.clock)
    stranger = await start_harness(
        env={**store, "CLOSE_API_KEY": "api_other_org_012345"}, sandbox=other_org, toolsets="all"
    )
    text = await stranger.error(tool, {"selection": found["selection"], **RECORD_TOOLS[tool]})
    assert "is unknown or expired" in text
    assert stranger.writes() == []


@pytest.mark.harness(toolsets="all")
async def test_per_record_tools_list_the_handle_and_leave_the_filter_to_search_leads(
    h: Harness,
) -> None:
    listed = {t.name: t.input_schema for t in (await h.client.list_tools()).tools}
    for name in RECORD_TOOLS:
        properties = set(listed[name]["properties"])
        assert {"selection", "s_query"} <= properties, name
        assert not properties & {"filter", "results_limit", "sort"}, name


# -- every lead, decided once: by the wording at resolution, passed on with the selection -------

EVERY_LEAD = (
    "s_query: the selection matches every lead in the organization; pass "
    "`allow_all_leads: true` if that is really meant"
)
# Worded as every lead, counted as three: only the wording says every lead.
FIRST_THREE = {"s_query": {"type": "match_all"}, "results_limit": 3}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(audited=True)
async def test_every_lead_by_wording_is_refused_by_arguments_and_by_handle(h: Harness) -> None:
    """The same decision on both paths: named by its arguments, the selection is refused
    before anything is read; named by a handle search_leads made with `allow_all_leads`, it is
    refused after its preview's reads (the count alone would let three leads pass), audited,
    and nothing is written."""
    error = await h.error("create_bulk_delete", FIRST_THREE)
    assert error == EVERY_LEAD
    assert h.sandbox.requests == []
    found = await h.call("search_leads", {**FIRST_THREE, "allow_all_leads": True})
    assert found["matches_every_lead"] is True
    h.clear()
    error = await h.error("create_bulk_delete", {"selection": found["selection"]})
    assert error == EVERY_LEAD
    assert {r.method for r in h.sandbox.requests} == {"POST"}  # the preview's searches
    entries = h.audit.entries()
    assert [
        (e["tool"], e["outcome"], e["path"], e.get("matched"), e["reason"]) for e in entries
    ] == [
        ("create_bulk_delete", "refused", "/bulk_action/delete/", None, EVERY_LEAD),
        ("create_bulk_delete", "refused", "/bulk_action/delete/", 3, EVERY_LEAD),
    ]
    assert h.writes() == []
    allowed = await h.call(
        "create_bulk_delete", {"selection": found["selection"], "allow_all_leads": True}
    )
    assert allowed["status"] == "confirmation_required"
    assert allowed["preview"]["notes"][0] == (
        "This selection matches every lead in the organization."
    )
