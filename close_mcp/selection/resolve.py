"""The selection every tool takes (a friendly `filter` or a raw `s_query`) -> one Close query.

Every bulk tool and search selects leads the same way, and every preview shows the resolved
tree: this is the one entry that checks the arguments, resolves names, inlines smart views
and refuses a selection whose wording already says it is every lead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, Literal

from pydantic import ValidationError

from close_mcp.close.catalog import Catalog
from close_mcp.errors import ArgumentError
from close_mcp.selection.every_lead import decide, matches_everything
from close_mcp.selection.filter import LeadFilter, filter_error
from close_mcp.selection.nodes import with_lead_node
from close_mcp.selection.raw_query import validate_s_query, validate_sort
from close_mcp.selection.smart_views import inline_views, limited_view
from close_mcp.selection.sort import resolve_sort
from close_mcp.selection.tree import resolve_filter

MAX_RESULTS_LIMIT: Final = 100_000


@dataclass(frozen=True)
class Selection:
    """The resolved selection: exactly what a preview shows and a bulk request carries."""

    s_query: dict[str, Any]
    results_limit: int | None
    sort: list[dict[str, Any]] | None
    source: Literal["filter", "s_query"]

    @cached_property
    def worded_every_lead(self) -> bool:
        """Whether its wording proves it matches every lead: decided once per selection and
        passed on with it (a tool decides again only by the count, `every_lead.decide`)."""
        return matches_everything(self.s_query)


async def resolve_selection(
    *,
    filter: LeadFilter | dict[str, Any] | None = None,
    s_query: dict[str, Any] | None = None,
    results_limit: int | None = None,
    sort: list[Any] | None = None,
    allow_all_leads: bool = False,
    catalog: Catalog,
) -> Selection:
    """Check and resolve a tool's selection arguments; `ArgumentError` says what to fix."""
    if (filter is None) == (s_query is None):
        got = "both" if filter is not None else "neither"
        raise ArgumentError(
            None,
            f"pass exactly one of `filter` (friendly fields) or `s_query` (a raw Close query "
            f"tree); got {got}",
        )
    if results_limit is not None and (
        isinstance(results_limit, bool)
        or not isinstance(results_limit, int)
        or not 1 <= results_limit <= MAX_RESULTS_LIMIT
    ):
        raise ArgumentError(
            "results_limit",
            f"must be a whole number from 1 to {MAX_RESULTS_LIMIT}, not {results_limit!r}",
        )
    if sort is not None:
        sort = await resolve_sort(sort, catalog)
        validate_sort(sort)

    source: Literal["filter", "s_query"]
    if filter is not None:
        source = "filter"
        if not isinstance(filter, LeadFilter):
            try:
                filter = LeadFilter.model_validate(filter)
            except ValidationError as exc:
                raise filter_error(exc) from None
        tree = await resolve_filter(filter, catalog)
        if filter.smart_view is not None:
            view = await catalog.resolve_smart_view(filter.smart_view)
            results_limit, sort = limited_view(filter, view, results_limit, sort)
    else:
        source = "s_query"
        validate_s_query(s_query)
        assert isinstance(s_query, dict)
        tree = with_lead_node(await inline_views(s_query, catalog, "s_query", ()))

    selection = Selection(
        s_query=tree,
        results_limit=results_limit,
        sort=[dict(key) for key in sort] if sort else None,
        source=source,
    )
    refusal = (await decide(selection.worded_every_lead, source, allow=allow_all_leads)).refusal
    if refusal is not None:
        raise refusal
    return selection
