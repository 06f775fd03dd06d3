"""Reading every lead a selection touches, page by page, past Close's cursor limit.

The snapshot before an edit, the backup before a delete and the binding a confirmation
carries all need the same leads the job will touch, read the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

from close_mcp.close.client import CloseClient
from close_mcp.close.times import utc_text
from close_mcp.errors import ArgumentError

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
