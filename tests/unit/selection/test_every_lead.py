""" "Every lead" decided in one function: by the wording of the tree, then by its count."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.close.catalog import Catalog
from close_mcp.close.client import CloseClient
from close_mcp.selection.every_lead import decide, matches_everything
from close_mcp.selection.resolve import resolve_selection
from tests.queries import HAS_EMAIL, LEAD, custom, fc, lead_and, regular
from tests.unit.selection.support import selection_error

pytestmark = pytest.mark.anyio


RAW = fc(custom("cf_ind"), {"type": "term", "values": ["Retail"]})


M = {"type": "match_all"}


CONTACT = {"type": "object_type", "object_type": "contact"}


EVERYTHING = {
    "lead node": LEAD,
    "match_all": M,
    "and of lead and match_all": {"type": "and", "queries": [LEAD, M]},
    "nested and": {"type": "and", "queries": [LEAD, {"type": "and", "queries": [M, LEAD]}]},
    "or with a match_all": {"type": "or", "queries": [RAW, M]},
    "or with the lead node": {"type": "or", "queries": [RAW, LEAD]},
    "X or not X": {"type": "or", "queries": [RAW, {**RAW, "negate": True}]},
    "not match nothing": {"type": "and", "queries": [M, {**CONTACT, "negate": True}]},
    "double negation": {
        "type": "and",
        "negate": True,
        "queries": [{"type": "match_all", "negate": True}],
    },
    "negated contradiction": {
        "type": "and",
        "negate": True,
        "queries": [RAW, {**RAW, "negate": True}],
    },
    "negated or of nothing": {"type": "or", "negate": True, "queries": [CONTACT]},
}


SOMETHING = {
    "a condition": lead_and(RAW),
    "negated match_all": {"type": "match_all", "negate": True},
    "and with a condition": {"type": "and", "queries": [M, RAW]},
    "or of conditions": {"type": "or", "queries": [RAW, fc(regular("name"), {"type": "exists"})]},
    "negated lead node": {**LEAD, "negate": True},
    "a saved search": {"type": "saved_search", "saved_search_id": "save_1"},
    "has_related": HAS_EMAIL,
    "not a dict": [],
}


@pytest.mark.parametrize("tree", EVERYTHING.values(), ids=EVERYTHING.keys())
def test_matches_everything(tree: dict[str, Any]) -> None:
    assert matches_everything(tree)


@pytest.mark.parametrize("tree", SOMETHING.values(), ids=SOMETHING.keys())
def test_does_not_match_everything(tree: object) -> None:
    assert not matches_everything(tree)


@pytest.mark.parametrize("tree", [M, LEAD, {"type": "or", "queries": [RAW, M]}])
async def test_all_leads_needs_allow_all_leads(catalog: Catalog, tree: dict[str, Any]) -> None:
    assert await selection_error(catalog, s_query=tree) == (
        "s_query: the selection matches every lead in the organization; pass "
        "`allow_all_leads: true` if that is really meant"
    )
    selection = await resolve_selection(s_query=tree, allow_all_leads=True, catalog=catalog)
    verdict = await decide(selection.worded_every_lead, selection.source, allow=True)
    assert (verdict.every_lead, verdict.refusal) == (True, None)


async def test_allow_all_leads_does_not_mark_a_narrow_selection(catalog: Catalog) -> None:
    selection = await resolve_selection(s_query=RAW, allow_all_leads=True, catalog=catalog)
    verdict = await decide(selection.worded_every_lead, selection.source, allow=True)
    assert (verdict.every_lead, verdict.refusal) == (False, None)


async def test_a_smart_view_matching_everything_is_refused(catalog: Catalog) -> None:
    assert await selection_error(catalog, filter={"smart_view": "Bare view"}) == (
        "filter: the selection matches every lead in the organization; pass "
        "`allow_all_leads: true` if that is really meant"
    )


# -- by its count --------------------------------------------------------------------------

SEARCH = "/api/v1/data/search/"
COUNT_ALL = {"query": LEAD, "include_counts": True, "results_limit": 0, "_limit": 0}
NARROW = lead_and(RAW)
REFUSAL = (
    "{}: the selection matches every lead in the organization; pass `allow_all_leads: true` "
    "if that is really meant"
)


class Organization:
    """A Close whose every count is the organization's total; keeps the requests it saw."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.seen: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"data": [], "count": {"total": self.total}})

    def client(self) -> CloseClient:
        transport = httpx.MockTransport(self)
        return CloseClient("api_UNIT_key", "https://close.test/api/v1/", transport=transport,
                           clock=FakeClock())  # fmt: skip


@pytest.mark.parametrize(("source", "allow"), [("filter", False), ("s_query", True)])
async def test_a_count_of_every_lead_is_every_lead(source: str, allow: bool) -> None:
    """The wording says narrow; the count, taken now, says every lead: refused unless allowed."""
    org = Organization(total=40)
    async with org.client() as client:
        verdict = await decide(
            matches_everything(NARROW), source, allow=allow, client=client, matched=40
        )
    assert verdict.every_lead is True
    assert (str(verdict.refusal) if verdict.refusal else None) == (
        None if allow else REFUSAL.format(source)
    )
    assert org.seen == [("POST", SEARCH, COUNT_ALL)]


async def test_fewer_than_every_lead_is_not_every_lead() -> None:
    org = Organization(total=40)
    async with org.client() as client:
        verdict = await decide(
            matches_everything(NARROW), "filter", allow=False, client=client, matched=39
        )
    assert (verdict.every_lead, verdict.refusal) == (False, None)
    assert org.seen == [("POST", SEARCH, COUNT_ALL)]


async def test_each_decision_counts_the_organization_again() -> None:
    """Never a kept total: leads deleted in between make the same count every lead."""
    org = Organization(total=40)
    async with org.client() as client:
        first = await decide(
            matches_everything(NARROW), "filter", allow=False, client=client, matched=30
        )
        org.total = 30
        second = await decide(
            matches_everything(NARROW), "filter", allow=False, client=client, matched=30
        )
    assert (first.every_lead, second.every_lead) == (False, True)
    assert org.seen == [("POST", SEARCH, COUNT_ALL)] * 2


@pytest.mark.parametrize(
    ("tree", "matched", "every_lead"),
    [(lead_and(M), 5, True), (NARROW, 0, False), (NARROW, None, False)],
    ids=["the wording decides", "nothing matched", "no count given"],
)
async def test_no_count_is_asked_for_when_it_cannot_change_the_answer(
    tree: dict[str, Any], matched: int | None, every_lead: bool
) -> None:
    org = Organization(total=0)
    async with org.client() as client:
        verdict = await decide(
            matches_everything(tree), "s_query", allow=False, client=client, matched=matched
        )
    assert verdict.every_lead is every_lead
    assert (verdict.refusal is not None) is every_lead
    assert org.seen == []
