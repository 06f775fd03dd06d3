"""The merge journal's own parts: what a preview says of several pairs of unknown outcome, and
the atomic replacement of an entry (only while it is still the entry read)."""

from __future__ import annotations

import pytest

from close_mcp.safety.merge_journal import LOCK_TTL_S, Review, entry, swap
from close_mcp.safety.merge_pairs import Pair
from close_mcp.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio
AT = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def pairs(*sources: str) -> list[Pair]:
    return [Pair(s, "lead_dest") for s in sources]


def test_the_notes_of_several_pairs_name_the_first_and_their_number() -> None:
    review = Review(
        merged=pairs("lead_m1", "lead_m2"),
        gone=pairs("lead_g1", "lead_g2"),
        again={"lead_a1": "{}", "lead_a2": "{}"},
        waiting=[(Pair("lead_w1", "lead_dest"), AT), (Pair("lead_w2", "lead_dest"), AT + 60)],
        busy=pairs("lead_b1", "lead_b2"),
        unread=pairs("lead_u1", "lead_u2"),
    )
    unknown = "2 pairs whose earlier attempt had an unknown outcome"
    assert review.notes() == [
        "2 pairs were merged by an earlier run: left out (lead_m1, ...).",
        f"{unknown} have lost their sources: Close merged them; marked merged, left out "
        "(lead_g1, ...).",
        f"{unknown} still have their source an hour later: not merged, offered again.",
        f"{unknown} are held back until 2026-01-01T00:01:00Z at the latest (an hour after it, "
        "when no run can still be sending them); then a preview offers them again if their "
        "sources still exist (lead_w1, ...).",
        f"{unknown} are held back while a merge run is being sent; once it is done a preview "
        "offers them again if their sources still exist (lead_b1, ...).",
        f"{unknown} could not be checked: their sources could not be read from Close; held "
        "back (lead_u1, ...).",
    ]
    assert Review().notes() == []


async def test_an_entry_is_replaced_only_while_it_is_still_the_entry_read() -> None:
    store = SQLiteStore(":memory:")
    key = "merge-pair:lead_x"
    seen = entry("leadmerge_a", "lead_dest", "outcome_unknown", AT)
    mine = entry("leadmerge_b", "lead_dest", "sending", AT + LOCK_TTL_S)
    other = entry("leadmerge_c", "lead_dest", "sending", AT + LOCK_TTL_S)
    assert not await swap(store, key, seen, mine)  # absent: nothing written
    assert await store.get(key) is None
    await store.put(key, seen)
    assert await swap(store, key, seen, mine)
    assert await store.get(key) == mine
    assert not await swap(store, key, seen, other)  # no longer the entry read
    assert await store.get(key) == mine
    await store.aclose()
