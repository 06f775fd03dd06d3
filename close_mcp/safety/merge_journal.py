"""The journal of `merge_leads`: one entry per source, `merge-pair:<source>`, saying what
became of its pair (`sending`, `merged`, `failed`, `outcome_unknown`) and when (`at`, the
clock's seconds).

A pair whose entry is `sending` (the process died between its claim and its mark, or the
mark failed) or `outcome_unknown` (the answer was lost) is reviewed at every preview and at
the confirmed call (`review`): its source looked up in Close.

- Gone: Close merged it; the entry becomes `merged` and the pair is left out.
- Still there, the entry at least `LOCK_TTL_S` old and no merge run holding the lock: no run
  can still be sending it (a live run renews the lock) and Close is not still merging it, so
  the merge did not happen: the pair is offered again. Its claim (`claimable`) then takes
  only that very entry, atomically, so of two replicas offering it one sends it.
- Otherwise it is held back, and the preview says until when.

An entry written before entries had a time gets one at its first look.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.errors import CloseError, EntryChanged, NotFound
from close_mcp.safety.merge_pairs import Pair
from close_mcp.store import StateStore, is_held

LOCK: Final = "merge:leads"
LOCK_TTL_S: Final = 3600.0
AFTER: Final = "an hour"  # LOCK_TTL_S in the preview's words
UNKNOWN: Final = ("sending", "outcome_unknown")


def journal_key(source: str) -> str:
    return f"merge-pair:{source}"


def entry(run_id: str, destination: str, state: str, at: float) -> str:
    return json.dumps({"run_id": run_id, "destination": destination, "state": state, "at": at})


def state_of(value: str | None) -> str | None:
    return None if value is None else json.loads(value).get("state")


def claimable(offered_on: str | None) -> Callable[[str | None], bool]:
    """Whether a pair may be claimed from the journal's current entry: none, a merge Close
    refused, or exactly the entry it was offered again on (None: it was not)."""

    def may(current: str | None) -> bool:
        return (
            current is None
            or state_of(current) == "failed"
            or (offered_on is not None and current == offered_on)
        )

    return may


def _pairs(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@dataclass
class Review:
    """The pairs to send, and why each of the others is left out."""

    send: list[Pair] = field(default_factory=list)
    again: dict[str, str] = field(default_factory=dict)  # source -> the entry offered on
    merged: list[Pair] = field(default_factory=list)  # the journal says so
    gone: list[Pair] = field(default_factory=list)  # unknown outcome, source gone: merged
    waiting: list[tuple[Pair, float]] = field(default_factory=list)  # until when
    busy: list[Pair] = field(default_factory=list)  # old, but a merge run is being sent
    unread: list[Pair] = field(default_factory=list)  # the source could not be read

    def notes(self) -> list[str]:
        """One sentence per reason a pair is left out or offered again."""
        notes: list[str] = []
        if self.merged:
            n = len(self.merged)
            were = "pair was" if n == 1 else "pairs were"
            notes.append(f"{n} {were} merged by an earlier run: left out ({_first(self.merged)}).")
        if self.gone:
            w = _Words(len(self.gone))
            notes.append(
                f"{w.pairs} {w.has} lost {w.source}: Close merged {w.it}; marked merged, "
                f"left out ({_first(self.gone)})."
            )
        if self.again:
            w = _Words(len(self.again))
            notes.append(
                f"{w.pairs} still {w.has} {w.its} source {AFTER} later: not merged, offered again."
            )
        if self.waiting:
            until = datetime.fromtimestamp(max(at for _, at in self.waiting), tz=UTC)
            latest = "" if len(self.waiting) == 1 else " at the latest"
            notes.append(
                _held_back(
                    [p for p, _ in self.waiting],
                    lambda w: (
                        f"until {until:%Y-%m-%dT%H:%M:%SZ}{latest} ({AFTER} after it, "
                        f"when no run can still be sending {w.it}); then"
                    ),
                )
            )
        if self.busy:
            notes.append(
                _held_back(self.busy, lambda w: "while a merge run is being sent; once it is done")
            )
        if self.unread:
            w = _Words(len(self.unread))
            notes.append(
                f"{w.pairs} could not be checked: {w.source} could not be read from Close; "
                f"held back ({_first(self.unread)})."
            )
        return notes


@dataclass(frozen=True)
class _Words:
    """A sentence about `n` pairs whose earlier attempt had an unknown outcome."""

    n: int

    @property
    def pairs(self) -> str:
        return f"{self.n} {'pair' if self.n == 1 else 'pairs'} {UNKNOWN_WORDS}"

    def __getattr__(self, name: str) -> str:
        if name not in _FORMS:
            raise AttributeError(name)
        one, many = _FORMS[name]
        return one if self.n == 1 else many


UNKNOWN_WORDS: Final = "whose earlier attempt had an unknown outcome"
_FORMS: Final = {
    "has": ("has", "have"),
    "its": ("its", "their"),
    "source": ("its source", "their sources"),
    "it": ("it", "them"),
    "is_": ("is", "are"),
    "exists": ("exists", "exist"),
}


def _held_back(pairs: list[Pair], why: Callable[[_Words], str]) -> str:
    """Pairs of unknown outcome held back for now, `why`, and when they are offered again."""
    w = _Words(len(pairs))
    return (
        f"{w.pairs} {w.is_} held back {why(w)} a preview offers {w.it} again if {w.source} "
        f"still {w.exists} ({_first(pairs)})."
    )


def _first(pairs: list[Pair]) -> str:
    return pairs[0].source + (", ..." if len(pairs) > 1 else "")


async def review(store: StateStore, clock: Clock, client: CloseClient, pairs: list[Pair]) -> Review:
    """What the journal and Close say of each pair (module docstring)."""
    found = Review()
    for pair in pairs:
        key = journal_key(pair.source)
        seen = await store.get(key)
        state = state_of(seen)
        if state in (None, "failed"):
            found.send.append(pair)
        elif state not in UNKNOWN or seen is None:
            found.merged.append(pair)
        else:
            await _unknown(store, clock, client, pair, seen, found)
    return found


async def _unknown(
    store: StateStore, clock: Clock, client: CloseClient, pair: Pair, seen: str, found: Review
) -> None:
    """Review one pair whose earlier attempt had an unknown outcome."""
    key = journal_key(pair.source)
    now = clock.time()
    at = json.loads(seen).get("at")
    if not isinstance(at, int | float):  # written before entries had a time: first look
        at, stamped = now, json.dumps({**json.loads(seen), "at": now})
        if not await swap(store, key, seen, stamped):
            found.busy.append(pair)  # another run changed it just now
            return
        seen = stamped
    try:
        await client.get(f"lead/{pair.source}/", params={"_fields": "id"})
    except NotFound:
        merged = json.dumps({**json.loads(seen), "state": "merged", "at": now})
        (found.gone if await swap(store, key, seen, merged) else found.busy).append(pair)
        return
    except CloseError:
        found.unread.append(pair)
        return
    if now - at < LOCK_TTL_S:
        found.waiting.append((pair, at + LOCK_TTL_S))
    elif await is_held(store, LOCK):
        found.busy.append(pair)
    else:
        found.send.append(pair)
        found.again[pair.source] = seen


async def swap(store: StateStore, key: str, seen: str, new: str) -> bool:
    """Replace the entry `seen` under `key` by `new`, atomically, only if it is still `seen`."""

    def change(current: str | None) -> tuple[str, bool]:
        if current != seen:
            raise EntryChanged(key)
        return new, True

    try:
        return await store.update(key, change)
    except EntryChanged:
        return False
