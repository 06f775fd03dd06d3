"""Selection handles: `search_leads` names the selection it resolved (`sel_...`), and a bulk
tool given that name acts on the same selection, without the model repeating the filter (or
1,000 lead ids) in every call.

A handle keeps the resolved `s_query`, `results_limit`, `sort` and the friendly filter it came
from, in the state store (shared by replicas) for an hour, under the caller that made it
(`CloseClient.caller`, the digest tokens are bound to): the store serves every key a team
sends, so another key that learns a handle gets "unknown", as for an id list
(`server.idlists`). A handle names what was resolved, not the leads: a bulk
tool counts again, and its token binds the leads it will really touch.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from close_mcp.errors import ArgumentError
from close_mcp.selection.resolve import Selection
from close_mcp.store.base import StateStore

__all__ = ["KEPT_S", "HeldSelection", "keep_selection", "resolve_handle"]

KEPT_S: Final = 3600.0
PATH: Final = "selection"
_HANDLE: Final = re.compile(r"^sel_[0-9a-f]{32}$")


@dataclass(frozen=True)
class HeldSelection:
    """What a handle names: the resolved selection and the friendly filter it came from."""

    selection: Selection
    filter: dict[str, Any] | None


def _key(caller: str, handle: str) -> str:
    return f"selection:{caller}:{handle}"


def _record(held: HeldSelection) -> str:
    s = held.selection
    return json.dumps(
        {
            "s_query": s.s_query,
            "results_limit": s.results_limit,
            "sort": s.sort,
            "source": s.source,
            "filter": held.filter,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


async def keep_selection(store: StateStore, caller: str, held: HeldSelection) -> str:
    """Keep `held` for `caller` for an hour (again from now, if it was kept before) and
    answer its handle: the same selection gets the same handle."""
    record = _record(held)
    handle = "sel_" + hashlib.sha256(record.encode()).hexdigest()[:32]
    await store.put(_key(caller, handle), record, ttl_s=KEPT_S)
    return handle


async def resolve_handle(store: StateStore, handle: str, caller: str) -> HeldSelection:
    """The selection `handle` names for `caller`; ArgumentError on `selection` when it is
    malformed, unknown, expired or another caller's (told apart from none of the others)."""
    if not isinstance(handle, str) or not _HANDLE.match(handle):
        raise ArgumentError(
            PATH, "not a selection handle (sel_ and 32 hex digits, from search_leads)"
        )
    text = await store.get(_key(caller, handle))
    if text is None:
        raise ArgumentError(
            PATH,
            f"{handle} is unknown or expired (a handle lasts an hour, for the key that made "
            "it); run search_leads again",
        )
    data = json.loads(text)
    selection = Selection(
        s_query=data["s_query"],
        results_limit=data["results_limit"],
        sort=data["sort"],
        source=data["source"],
    )
    return HeldSelection(selection, data["filter"])
