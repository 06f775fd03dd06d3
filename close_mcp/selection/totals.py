"""Does a selection match every lead? Counted, not only read from its wording.

A query can match every lead in ways no rule about its wording catches: `created_after:
1900-01-01`, a list holding every status, `exists` on `id`, "X or not X" with the items
reordered. So besides `matches_everything` (the fast path), a bulk action compares the
selection's count, known from its preview, with the organization's total: one count request,
taken at that moment, on every call (its confirmation included). A total kept for a while
was fooled by deletes (the server's own among them): a selection of every lead left then
counted fewer than the kept total and passed as narrower.
"""

from __future__ import annotations

from close_mcp.close.client import CloseClient
from close_mcp.selection.query import LEAD_NODE

__all__ = ["counts_every_lead", "lead_total"]


async def lead_total(client: CloseClient) -> int:
    """How many leads the organization has now: one count request, never kept."""
    return await client.count(dict(LEAD_NODE))


async def counts_every_lead(client: CloseClient, matched: int) -> bool:
    """True when `matched` leads are every lead of the organization (and it has some)."""
    if matched <= 0:
        return False
    return matched >= await lead_total(client)
