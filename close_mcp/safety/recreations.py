"""Records an undo created again (a task a run deleted): under which new id each old one
lives, and, after a re-creating POST whose answer (or whose mark) was lost, which record Close
made for it.

Close has no idempotency key: a POST that timed out or answered 5xx may have made the task,
and a store failing (or a process stopping) between Close's answer and the mark
`records-recreated:<old id>` loses the new id. Sending it again on the next undo would make a
second task. So before the POST leaves, `records-recreate-unknown:<old id>` notes the moment;
after a lost answer, and on every later undo that finds no mark, the lead's records are
searched, as a bulk job is (`close_mcp.writes.reconcile`), for one made since then holding
every field the POST sent and claimed by no other re-creation (`records-recreation-of:<new
id>`, set atomically). Found: it is the re-creation, never sent again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from close_mcp.close.client import CloseClient
from close_mcp.close.times import close_time
from close_mcp.errors import CloseError
from close_mcp.store import StateStore

RECREATIONS_MAX: Final = 100  # a chain of undos of undos followed at most this far
SKEW_S: Final = 2.0  # clocks of this machine and Close's may disagree this much
Same = Callable[[Any, Any], bool]


@dataclass(frozen=True)
class Wanted:
    """A record to create again: where its kind is listed (`task/`), its old id, its lead,
    the fields it is created from, and how two values of a field compare."""

    path: str
    old_id: str
    lead_id: str | None
    backup: dict[str, Any]
    same: Same

    @classmethod
    def of(cls, path: str, change: Any, same: Same) -> Wanted:
        """The one a run's request (a `RecordChange` deleting or re-creating it) names."""
        return cls(path, change.id, change.lead_id, change.before, same)


# Whose re-creation a record is: claimed once, so that one record answers one POST.
ORIGIN: Final = "records-recreation-of:"
# A re-creation whose answer was lost: the moment its POST left.
UNKNOWN: Final = "records-recreate-unknown:"


def recreated_key(record_id: str) -> str:
    return f"records-recreated:{record_id}"


async def latest_recreation(store: StateStore, record_id: str) -> str | None:
    """The id `record_id` was last created again under (following re-creations of
    re-creations); None when it never was."""
    latest = None
    for _ in range(RECREATIONS_MAX):
        found = await store.get(recreated_key(latest or record_id))
        if found is None:
            break
        latest = found
    return latest


async def recorded(store: StateStore, old_id: str, new_id: str) -> None:
    """`new_id` is the re-creation of `old_id`, from now on."""
    await store.add(ORIGIN + new_id, old_id)
    await store.put(recreated_key(old_id), new_id)


async def find_made(
    client: CloseClient, store: StateStore, wanted: Wanted, since: float
) -> dict[str, Any] | None:
    """The record Close made for the re-creating POST of `wanted` sent at `since` (claimed
    for it here), or None when its lead has none; CloseError when the search fails."""
    fields = ",".join(dict.fromkeys(("id", "date_created", *wanted.backup)))
    params: dict[str, Any] = {"lead_id": wanted.lead_id, "_fields": fields}
    if "_type" in wanted.backup:
        params["_type"] = wanted.backup["_type"]
    for record in await client.list_all(wanted.path, params, page_size=200):
        made = close_time(str(record.get("date_created") or ""))
        if (
            str(record.get("id")) == wanted.old_id
            or made is None
            or made.timestamp() < since - SKEW_S
            or not all(wanted.same(record.get(k), v) for k, v in wanted.backup.items())
        ):
            continue
        claim = ORIGIN + str(record["id"])
        if await store.add(claim, wanted.old_id) or await store.get(claim) == wanted.old_id:
            return record
    return None


async def made_unseen(client: CloseClient, store: StateStore, wanted: Wanted) -> str | None:
    """The record Close made for an earlier re-creation of `wanted` whose answer was lost,
    found now (and recorded as its re-creation); None when there is none."""
    since = await store.get(UNKNOWN + wanted.old_id)
    if since is None:
        return None
    made = await find_made(client, store, wanted, float(since))
    if made is None:
        return None
    await recorded(store, wanted.old_id, str(made["id"]))
    return str(made["id"])


def reconciler(
    client: CloseClient, store: StateStore, wanted: Wanted, since: float
) -> Callable[[], Awaitable[tuple[dict[str, Any] | None, str]]]:
    """The `Sender`'s look-up after a re-creating POST whose outcome is unknown."""

    async def reconcile() -> tuple[dict[str, Any] | None, str]:
        where = f" The lead {wanted.lead_id} was searched for it"
        try:
            found = await find_made(client, store, wanted, since)
        except CloseError as exc:
            return None, f"{where}, but the search failed ({exc})."
        return found, f"{where}: none made since it was sent."

    return reconcile
