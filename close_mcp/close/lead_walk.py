"""Reading every lead a selection touches, page by page, past Close's cursor limit.

The snapshot before an edit, the backup before a delete and the binding a confirmation
carries all need the same leads the job will touch, read the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from close_mcp.close.client import CloseClient
from close_mcp.close.times import utc_text
from close_mcp.errors import ArgumentError, InvalidRequest

PAGE_SIZE: Final = 200  # Close's largest search page
CURSOR_CAP = 10_000  # one cursor walk of /data/search/ ends here (a variable, for tests)


def _created_since(query: dict[str, Any], moment: str) -> dict[str, Any]:
    condition = {
        "type": "field_condition",
        "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"},
        "condition": {
            "type": "moment_range",
            "on_or_after": {"type": "fixed_utc", "value": utc_text(moment)},
        },
    }
    return {"type": "and", "queries": [query, condition]}


_BY_CREATED: Final = [
    {
        "direction": "asc",
        "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"},
    }
]


def read_cost(n_leads: int) -> int:
    """Search requests to read n leads: pages of 200, plus one new walk per 10,000 (about)."""
    return max(1, -(-n_leads // PAGE_SIZE)) + n_leads // CURSOR_CAP


async def iter_leads(
    client: CloseClient,
    query: dict[str, Any],
    fields: list[str],
    *,
    results_limit: int | None,
    sort: list[dict[str, Any]] | None,
) -> AsyncIterator[dict[str, Any]]:
    """Every lead a bulk action with this selection touches, with `fields` (id always), as
    Close pages them: a caller that writes each page down holds one page, not the selection.

    Close ends one cursor walk at 10,000 leads. When `results_limit` is at most that, one
    walk with the request's exact query, results_limit and sort sees exactly the leads the
    job will. Otherwise the order does not matter (every match is touched), so this walks
    by `date_created` ascending and, when a walk reaches the cap, starts a new one at the
    last `date_created` seen (`on_or_after` is inclusive: leads created in that same
    instant are read again and deduplicated by id, so the ids seen are kept, not the
    leads). A new walk that adds nothing means more than 10,000 leads share one creation
    instant: that is refused rather than cut short.
    """
    wanted = list(dict.fromkeys(["id", *fields]))
    if results_limit is not None and results_limit <= CURSOR_CAP:
        async for lead in client.search_iter(
            query, fields=wanted, results_limit=results_limit, sort=sort, page_size=PAGE_SIZE
        ):
            yield _hit(lead)
        return
    keyed = list(dict.fromkeys([*wanted, "date_created"]))
    seen: set[str] = set()
    current = query
    while True:
        walked = 0
        added = 0
        last: str | None = None
        async for lead in client.search_iter(
            current, fields=keyed, sort=_BY_CREATED, page_size=PAGE_SIZE
        ):
            walked += 1
            last = lead.get("date_created") or last
            if lead["id"] not in seen:
                seen.add(lead["id"])
                added += 1
                yield _hit(lead)
        if walked < CURSOR_CAP:
            return
        if added == 0 or last is None:
            raise ArgumentError(
                None,
                f"More than {CURSOR_CAP} of the selected leads were created in the same "
                "instant, so they cannot be read past Close's search limit; narrow the "
                "selection.",
            )
        current = _created_since(query, last)


async def pages(
    leads: AsyncIterator[dict[str, Any]], size: int = PAGE_SIZE
) -> AsyncIterator[list[dict[str, Any]]]:
    """`leads` in lists of `size` (the last one shorter)."""
    page: list[dict[str, Any]] = []
    async for lead in leads:
        page.append(lead)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _hit(lead: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in lead.items() if k != "__object_type"}


# -- one page at a time, for a reader that comes back later ---------------------------------


@dataclass
class LeadPage:
    leads: list[dict[str, Any]]
    total: int | None  # every match (Close's count), when Close gave it
    offset: int  # leads before this page
    cursor: str | None  # this module's cursor for the next page; None: this was the last
    digest: str  # the selection the cursor is for


def resume_after(page: LeadPage, shown: int) -> str | None:
    """A cursor for the lead after the first `shown` of this page (a page cut to fit): it
    holds no Close cursor, so the next page walks to its offset again."""
    if shown >= len(page.leads) and page.cursor is None:
        return None
    return _encode_cursor("", page.offset + shown, page.digest)


def _selection_digest(
    query: dict[str, Any], sort: list[dict[str, Any]] | None, results_limit: int | None
) -> str:
    text = json.dumps([query, sort, results_limit], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_cursor(close_cursor: str, offset: int, digest: str) -> str:
    raw = json.dumps({"c": close_cursor, "o": offset, "d": digest}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, digest: str) -> tuple[str, int]:
    """Close's cursor and the leads already shown, from a cursor `lead_page` handed out for
    this same selection; anything else is an argument error, never a different walk."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        close_cursor, offset, made_for = raw["c"], raw["o"], raw["d"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        raise ArgumentError(
            "cursor", "not a cursor this tool handed out; leave it out for the first page"
        ) from None
    if not (isinstance(close_cursor, str) and isinstance(offset, int) and offset >= 0):
        raise ArgumentError("cursor", "not a cursor this tool handed out")
    if made_for != digest:
        raise ArgumentError(
            "cursor",
            "it belongs to another selection; repeat the call that gave it with the same "
            "filter or s_query, results_limit and sort",
        )
    return close_cursor, offset


async def lead_page(
    client: CloseClient,
    query: dict[str, Any],
    fields: list[str],
    *,
    limit: int,
    sort: list[dict[str, Any]] | None,
    results_limit: int | None,
    cursor: str | None = None,
) -> LeadPage:
    """One page of a selection's leads with the total of every match (`results_limit` is
    the caller's to apply), and a cursor for the next.

    Close's own cursor expires 30 seconds after its page, sooner than a person or a model
    may come back, so the cursor handed out also holds how many leads were shown and the
    selection it is for. When Close refuses its cursor (expired), the walk starts again and
    skips to that offset (pages of 200, the last one cut to land on it): slower, not wrong.
    """
    digest = _selection_digest(query, sort, results_limit)
    # Close counts past `results_limit` only without it, so it is not sent: the total is
    # every match, and the caller stops at results_limit (the digest still binds it).
    page_args: dict[str, Any] = {"fields": fields, "sort": sort, "include_counts": True}
    offset = 0
    if cursor is None:
        page = await client.search_page(query, limit=limit, **page_args)
    else:
        close_cursor, offset = _decode_cursor(cursor, digest)
        page = await _resume(client, query, close_cursor, offset, limit, page_args)
    leads = [_hit(lead) for lead in page["data"]]
    try:
        total: int | None = int(page["count"]["total"])
    except (KeyError, TypeError, ValueError):
        total = None
    after = offset + len(leads)
    more = page.get("cursor")
    return LeadPage(
        leads=leads,
        total=total,
        offset=offset,
        cursor=_encode_cursor(more, after, digest) if more and leads else None,
        digest=digest,
    )


async def _resume(
    client: CloseClient,
    query: dict[str, Any],
    close_cursor: str,
    offset: int,
    limit: int,
    page_args: dict[str, Any],
) -> dict[str, Any]:
    """The page at `offset`: from Close's cursor while it lives, else by walking again (a
    page cut to fit holds no Close cursor)."""
    if close_cursor:
        try:
            return await client.search_page(query, limit=limit, cursor=close_cursor, **page_args)
        except InvalidRequest:
            pass  # expired (how Close says so is unverified): a 400 for another reason
            # comes back from the walk below, which asks the same without the cursor
    return await _skip_to(client, query, offset, limit, page_args)


async def _skip_to(
    client: CloseClient,
    query: dict[str, Any],
    offset: int,
    limit: int,
    page_args: dict[str, Any],
) -> dict[str, Any]:
    """The page at `offset`, walking a new cursor past the leads before it."""
    close_cursor: str | None = None
    walked = 0
    while walked < offset:
        step = min(PAGE_SIZE, offset - walked)
        skipped = await client.search_page(
            query, **{**page_args, "fields": ["id"]}, limit=step, cursor=close_cursor
        )
        walked += len(skipped["data"])
        close_cursor = skipped.get("cursor")
        if not close_cursor or not skipped["data"]:
            return {"data": [], "cursor": None, "count": skipped.get("count")}
    return await client.search_page(query, limit=limit, cursor=close_cursor, **page_args)
