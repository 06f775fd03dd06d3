"""`search_leads` names the selection it resolved (`selection: "sel_..."`): kept in the state
store for an hour, for the caller (Close key) that made it, and given back whole by
`resolve_handle`; another key, or the same key after an hour, gets "unknown or expired"."""

from __future__ import annotations

from pathlib import Path

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


async def test_another_key_cannot_use_a_handle_even_through_a_shared_store(
    tmp_path: Path, start_harness: StartHarness
) -> None:
    store = {"CLOSE_MCP_STORE": str(tmp_path / "state.sqlite3")}
    owner = await start_harness(env=store)
    found = await owner.call("search_leads", {"filter": FILTER})
    other_org = Sandbox(n_leads=20, seed=99, api_key="api_other_org_012345", clock=owner.clock)
    stranger = await start_harness(
        env={**store, "CLOSE_API_KEY": "api_other_org_012345"}, sandbox=other_org
    )
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
