"""Does a selection match every lead? Decided here, once, for every tool.

First by its wording (`matches_everything`): simple rules that prove a tree matches every
lead, checked before anything is sent, once per resolved selection (its `worded_every_lead`
carries the verdict on). Then by its count: a query can match every lead in ways no rule
about its wording catches (`created_after: 1900-01-01`, a list holding every
status, `exists` on `id`, "X or not X" with the items reordered), so once the selection's
count is known from its preview it is compared with the organization's total: one count
request, taken at that moment, on every call (its confirmation included). A total kept for a
while was fooled by deletes (the server's own among them): a selection of every lead left
then counted fewer than the kept total and passed as narrower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from close_mcp.close.client import CloseClient
from close_mcp.errors import EveryLeadRefused
from close_mcp.selection.nodes import LEAD_NODE


@dataclass(frozen=True)
class EveryLead:
    """The decision: is the selection every lead, and the refusal when that is not allowed."""

    every_lead: bool
    refusal: EveryLeadRefused | None


async def decide(
    worded: bool,
    source: str,
    *,
    allow: bool,
    client: CloseClient | None = None,
    matched: int | None = None,
) -> EveryLead:
    """Is the resolved selection (given as `source`: filter or s_query) every lead? It is when
    its wording proves it (`worded`: the selection's `worded_every_lead`, decided once) or,
    given its count (`matched`) and a client to count the organization with now, when that
    count is every lead there is.

    Without `allow` (the caller's `allow_all_leads`) every lead comes with its refusal;
    resolving a selection asks before anything is counted, a tool again after its preview.
    """
    everything = worded
    if not everything and client is not None and matched is not None:
        everything = await _counts_every_lead(client, matched)
    refusal = None
    if everything and not allow:
        refusal = EveryLeadRefused(
            source,
            "the selection matches every lead in the organization; pass "
            "`allow_all_leads: true` if that is really meant",
        )
    return EveryLead(everything, refusal)


async def _counts_every_lead(client: CloseClient, matched: int) -> bool:
    """True when `matched` leads are every lead of the organization (and it has some): one
    count request, never kept."""
    if matched <= 0:
        return False
    return matched >= await client.count(dict(LEAD_NODE))


# -- by its wording ------------------------------------------------------------------------


def matches_everything(tree: object) -> bool:
    """True when simple rules prove the tree (for leads) matches every lead.

    Errs towards True: a false alarm costs an `allow_all_leads: true`, a miss could touch
    every lead. Field conditions and related queries are taken as real filters, so this is
    only the fast path: `decide` also compares the selection's count with the
    organization's (`saved_search` nodes are inlined before either looks at the tree).
    """
    return _all(tree)


def _strip_negate(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != "negate"}


def _complementary(nodes: list[dict[str, Any]]) -> bool:
    """Some node appears both plain and negated (X or not X)."""
    plain = [_strip_negate(n) for n in nodes if not n.get("negate")]
    return any(_strip_negate(n) in plain for n in nodes if n.get("negate"))


def _all(node: object) -> bool:
    if not isinstance(node, dict):
        return False
    return _base_none(node) if node.get("negate") else _base_all(node)


def _none(node: object) -> bool:
    if not isinstance(node, dict):
        return False
    return _base_all(node) if node.get("negate") else _base_none(node)


def _children(node: dict[str, Any]) -> list[dict[str, Any]]:
    queries = node.get("queries")
    return [q for q in queries if isinstance(q, dict)] if isinstance(queries, list) else []


def _base_all(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if kind == "match_all":
        return True
    if kind == "object_type":
        return node.get("object_type") == "lead"
    if kind == "and":
        return all(_all(child) for child in _children(node))
    if kind == "or":
        children = _children(node)
        return any(_all(child) for child in children) or _complementary(children)
    return False


def _base_none(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if kind == "match_all":
        return False
    if kind == "object_type":
        return node.get("object_type") != "lead"
    if kind == "and":
        children = _children(node)
        return any(_none(child) for child in children) or _complementary(children)
    if kind == "or":
        return all(_none(child) for child in _children(node))
    return False
