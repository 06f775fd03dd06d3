"""Does a selection match every lead? Counted, not only read from its wording.

A query can match every lead in ways no rule about its wording catches: `created_after:
1900-01-01`, a list holding every status, `exists` on `id`, "X or not X" with the items
reordered. So besides `matches_everything` (the fast path), a bulk action compares the
selection's count, known from its preview, with the organization's total: one count request
for all leads, kept `TOTAL_SECONDS` per client (per API key) by the runtime's clock.
"""

from __future__ import annotations

from typing import Final
from weakref import WeakKeyDictionary

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.selection.query import LEAD_NODE

__all__ = ["TOTAL_SECONDS", "counts_every_lead", "lead_total"]

# Short: a total kept while leads are deleted could let a selection of every remaining lead
# pass as narrower (leads created meanwhile only err towards refusing).
TOTAL_SECONDS: Final = 30.0

_TOTALS: WeakKeyDictionary[CloseClient, tuple[float, int]] = WeakKeyDictionary()


async def lead_total(client: CloseClient, clock: Clock) -> int:
    """How many leads the organization has: one count request, then kept for a while."""
    now = clock.time()
    kept = _TOTALS.get(client)
    if kept is not None and kept[0] <= now < kept[0] + TOTAL_SECONDS:
        return kept[1]
    total = await client.count(dict(LEAD_NODE))
    _TOTALS[client] = (now, total)
    return total


async def counts_every_lead(client: CloseClient, clock: Clock, matched: int) -> bool:
    """True when `matched` leads are every lead of the organization (and it has some)."""
    if matched <= 0:
        return False
    return matched >= await lead_total(client, clock)
