"""After a write whose outcome is unknown: find what it made in Close, never send it again.

A POST that timed out may have been carried out. Before anything is reported, Close's recent
jobs (or emails) are searched for an object this exact write made: created after the request
left, showing what the request asked (`RecentLookup.matches`), and not already attributed to
another write (each write marks what it made in the state store). The same search tells a
token replayed on another replica (a job made since the token was minted means it was used).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from close_mcp.close.client import CloseClient
from close_mcp.close.jobs import JobKind, job_echo, job_path, untold
from close_mcp.close.times import close_time
from close_mcp.errors import CloseError
from close_mcp.writes.sender import Reconcile, WriteContext

# After an ambiguous failure, only an object created after the request left counts as its
# own (less this much for clocks that disagree); an id already attributed never does.
RECONCILE_SKEW_S = 2.0
ATTRIBUTED_TTL_S = 24 * 3600.0
# Close documents no order for its job and email-activity lists, so a lookup reads the whole
# list (each item's `date_created` decides), up to this many pages of Close's default size.
LOOKUP_PAGE = 100
LOOKUP_MAX_PAGES = 10
# How far before the look-up's start the list filter reaches: clocks of this machine and
# Close's may differ a little; `_created_after` then decides to the second.
LOOKUP_SLACK_S = 60.0
# A token that already did its write: a fresh one would only invite the same call again.
USED_TOKEN = "the confirmation token was already used"  # noqa: S105 (a message)


@dataclass(frozen=True)
class RecentLookup:
    """Where to look for a write whose outcome is unknown, and what must match."""

    path: str
    params: dict[str, Any]
    keys: tuple[str, ...]  # body keys compared with the found object
    where: str  # for messages: "the recent bulk delete jobs"
    # Values the found object must show that the body does not hold as is: what a job echoes
    # of its request (`job_echo`), under Close's names and in Close's forms.
    echo: dict[str, Any] = field(default_factory=dict)
    # Statuses the object may have moved on to since (an outbox email becomes sent).
    later_status: dict[str, frozenset[str]] = field(default_factory=dict)
    # Keys that, left out of the body, must be empty on the object too: a job with a
    # `results_limit` acted on fewer leads than a request without one.
    absent_alike: tuple[str, ...] = ()
    # A list filter Close documents for "created on or after" (`date_created__gte` on
    # /activity/email/): sent with the look-up's start, so the list holds only the new.
    since_param: str | None = None
    # Why the object cannot be told apart from another write's (what it shows leaves out
    # part of the request); then reconciliation never claims one. Empty: it can.
    untold: str = ""

    def matches(self, item: dict[str, Any], body: dict[str, Any]) -> bool:
        if "status" in body and item.get("status") not in {
            body["status"],
            *self.later_status.get(body["status"], ()),
        }:
            return False
        if any(item.get(key) not in (None, [], {}) for key in self.absent_alike if key not in body):
            return False
        if any(item.get(key) != value for key, value in self.echo.items()):
            return False
        return all(item.get(key) == body[key] for key in self.keys if key in body)

    @classmethod
    def for_job(
        cls, kind: JobKind, body: dict[str, Any], echo: dict[str, Any] | None
    ) -> RecentLookup:
        """Where a bulk job of `kind` is found again: Close's recent jobs of that kind, showing
        what the job echoes of `body` (`echo`: what the tool said it shows, None: `job_echo`)."""
        return cls(
            path=job_path(kind),
            params={},
            keys=(),
            echo=echo if echo is not None else job_echo(kind, body),
            absent_alike=("results_limit", "sort"),
            where=f"the recent bulk {kind} jobs (list_bulk_jobs)",
            untold=untold(kind, body),
        )


class Reconciler:
    """Looks in Close for what one write made, and remembers in the store which write made it."""

    def __init__(self, context: WriteContext, client: CloseClient) -> None:
        self.context = context
        self.client = client

    def reconciler(self, lookup: RecentLookup | None, body: dict[str, Any]) -> Reconcile:
        """After an ambiguous failure: the object the write of `body` made, if Close shows
        one (None `lookup`: nothing is looked for)."""
        started = self.context.clock.time()

        async def reconcile() -> tuple[dict[str, Any] | None, str]:
            if lookup is None:
                return None, ""
            if lookup.untold:
                # What Close shows of the object cannot tell this write from another one:
                # claiming a look-alike would report someone else's job as this one.
                return None, (
                    f" {lookup.untold}, so a job among {lookup.where} cannot be told apart "
                    "from another's; look there before trying again."
                )
            try:
                found, complete = await self.find_recent(
                    lookup, body, since=started - RECONCILE_SKEW_S, owner=None
                )
            except Exception as failed:
                # Never let the lookup's own error ("try again shortly"), nor the store's,
                # stand in for this.
                reason = failed.message if isinstance(failed, CloseError) else str(failed)
                return None, (
                    f" Looking among {lookup.where} failed too ({reason}): it could "
                    "not be checked; look there before trying again."
                )
            looked = f" Nothing matching was found among {lookup.where}"
            if not complete:
                looked += f" (only the first {LOOKUP_PAGE * LOOKUP_MAX_PAGES} Close listed)"
            return found, looked + "; look there before trying again."

        return reconcile

    async def replayed(
        self, lookup: RecentLookup | None, body: dict[str, Any], token: str
    ) -> str | None:
        """A job with this exact request made since the token was minted means it was used."""
        minted_at = self.context.tokens.minted_at(token)
        if minted_at is None:
            return None
        found, _complete = await self.find_recent(
            lookup, body, since=minted_at, owner=owner_of(token)
        )
        if found is not None:
            return f"{USED_TOKEN} ({found.get('id')})"
        return None

    async def find_recent(
        self, lookup: RecentLookup | None, body: dict[str, Any], *, since: float, owner: str | None
    ) -> tuple[dict[str, Any] | None, bool]:
        """The object this exact write created since `since`, if Close has one, and whether
        the whole list was read.

        Close documents no order for these lists, so every page is read (up to
        LOOKUP_MAX_PAGES) and each item's `date_created` decides, never its position. An
        object the store attributes to another write is passed over: only one attributed to
        `owner` (this token), or to no write the store knows, counts."""
        if lookup is None:
            return None, True
        for page in range(LOOKUP_MAX_PAGES):
            params = {**lookup.params, "_skip": page * LOOKUP_PAGE, "_limit": LOOKUP_PAGE}
            if lookup.since_param is not None:
                params[lookup.since_param] = datetime.fromtimestamp(
                    since - LOOKUP_SLACK_S, tz=UTC
                ).isoformat()
            recent = await self.client.get(lookup.path, params)
            items = recent.get("data", []) if isinstance(recent, dict) else []
            for item in items:
                if not _created_after(item, since) or not lookup.matches(item, body):
                    continue
                attributed = await self.attributed(item.get("id"))
                if attributed is not None and attributed != owner:
                    continue
                return dict(item), True
            if not items or not (isinstance(recent, dict) and recent.get("has_more")):
                return None, True
        return None, False

    async def attributed(self, object_id: Any) -> str | None:
        """Which write made this object (its owner mark), if the store knows."""
        return await self.context.store.get(f"attributed:{object_id}")

    async def attribute(self, object_id: str | None, owner: str) -> None:
        """Remember which write made this object, so no other write claims it."""
        if object_id:
            await self.context.store.put(f"attributed:{object_id}", owner, ttl_s=ATTRIBUTED_TTL_S)


def _created_after(job: dict[str, Any], since: float) -> bool:
    created = close_time(job.get("date_created"))
    return created is not None and created.timestamp() >= since - 1.0


def owner_of(token: str | None) -> str:
    """The mark a write leaves on what it made: its token's digest (a write that needs no
    token, a draft email say, is no one's in particular)."""
    if token is None:
        return "unconfirmed"
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
