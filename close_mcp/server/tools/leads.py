"""Reading leads and names: `search_leads` (the dry-run engine) and `lookup` (toolset `search`)."""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from close_mcp.close.catalog import Kind, normalize_name
from close_mcp.close.jobs import CRM_DATA_NOTICE
from close_mcp.selection.query import resolve_selection
from close_mcp.selection.totals import counts_every_lead
from close_mcp.server.tools import Registrar
from close_mcp.server.tools.job_reads import READ
from close_mcp.server.tools.selection import (
    AllLeadsArg,
    FilterArg,
    ResultsLimitArg,
    SortArg,
    SQueryArg,
    preview_selection,
)
from close_mcp.writes.pipeline import LeadSample

MAX_LOOKUP_ITEMS = 100


class SearchResult(BaseModel):
    s_query: dict[str, Any] = Field(description="The Close query the selection resolved to.")
    results_limit: int | None = None
    sort: list[dict[str, Any]] | None = None
    total: int = Field(description="Leads matching the query.")
    matched: int = Field(description="Leads a bulk action would touch (total capped by limit).")
    sample: list[LeadSample]
    matches_every_lead: bool = Field(
        description="The selection matches every lead in the organization (a bulk action "
        "on it is refused without allow_all_leads: true)."
    )
    crm_data_notice: str = CRM_DATA_NOTICE


class LookupItem(BaseModel):
    id: str
    name: str
    details: dict[str, Any] = Field(default_factory=dict)


class LookupResult(BaseModel):
    kind: Kind
    items: list[LookupItem]
    total: int = Field(description="Items of this kind (before the name filter).")
    truncated: bool = False
    crm_data_notice: str = CRM_DATA_NOTICE


def _details(kind: Kind, item: BaseModel) -> dict[str, Any]:
    data = item.model_dump(exclude_none=True)
    keep: dict[str, tuple[str, ...]] = {
        "custom_fields": ("type", "accepts_multiple_values", "choices"),
        "email_templates": ("subject",),
        "sequences": ("status",),
        "smart_views": ("type",),
        "email_accounts": ("identities", "user_id"),
        "users": ("email",),
    }
    return {k: data[k] for k in keep.get(kind, ()) if data.get(k) not in (None, [], "")}


def _matches(name: str, wanted: str) -> bool:
    a, b = normalize_name(name), normalize_name(wanted)
    return b in a or difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def register(reg: Registrar) -> None:
    runtime = reg.runtime

    async def search_leads(
        ctx: Context,
        filter: FilterArg = None,
        s_query: SQueryArg = None,
        results_limit: ResultsLimitArg = None,
        sort: SortArg = None,
        sample_size: Annotated[int, Field(ge=0, le=50, description="Leads to show.")] = 5,
        allow_all_leads: AllLeadsArg = False,
    ) -> SearchResult:
        call = runtime.call(ctx.headers)
        selection = await resolve_selection(
            filter=filter,
            s_query=s_query,
            results_limit=results_limit,
            sort=sort,
            allow_all_leads=allow_all_leads,
            catalog=call.catalog,
        )
        seen = await preview_selection(call.client, selection, sample_size)
        everything = selection.matches_everything or await counts_every_lead(
            call.client, runtime.clock, seen.matched
        )
        return SearchResult(
            s_query=selection.s_query,
            results_limit=selection.results_limit,
            sort=selection.sort,
            total=seen.total,
            matched=seen.matched,
            sample=seen.sample,
            matches_every_lead=everything,
        )

    async def lookup(
        ctx: Context,
        kind: Annotated[Kind, Field(description="What to list.")],
        name: Annotated[
            str | None, Field(max_length=200, description="Only items whose name is like this.")
        ] = None,
    ) -> LookupResult:
        call = runtime.call(ctx.headers)
        items: list[Any] = list(await getattr(call.catalog, kind)())
        total = len(items)
        if name:
            items = [item for item in items if _matches(item.name, name)]
        listed = [
            LookupItem(id=item.id, name=item.name, details=_details(kind, item))
            for item in items[:MAX_LOOKUP_ITEMS]
        ]
        return LookupResult(
            kind=kind, items=listed, total=total, truncated=len(items) > MAX_LOOKUP_ITEMS
        )

    reg.add(
        search_leads,
        name="search_leads",
        toolset="search",
        title="Search leads (dry run)",
        description="Resolve a selection (filter or raw s_query) to Close's query and show how "
        "many leads match and a sample. Use it before any bulk action; it changes nothing.",
        annotations=READ,
    )
    reg.add(
        lookup,
        name="lookup",
        toolset="search",
        title="Look up ids and names",
        description="List the ids and names of one kind of Close object, to find the exact "
        "names filters and bulk actions take.",
        annotations=READ,
    )
