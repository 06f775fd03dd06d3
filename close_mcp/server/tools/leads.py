"""Reading leads and names: `search_leads` (the dry-run engine) and `lookup` (toolset `search`)."""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import BaseModel, Field

from close_mcp.close.catalog import Kind, normalize_name
from close_mcp.close.jobs import CrmResult
from close_mcp.close.timezone import local_date
from close_mcp.errors import ArgumentError, NotFound
from close_mcp.selection import every_lead
from close_mcp.selection.handles import HeldSelection, keep_selection
from close_mcp.selection.resolve import resolve_selection
from close_mcp.selection.sample import LeadSample
from close_mcp.server.tools.declare import DirectTool, Invocation
from close_mcp.server.tools.selection import LeadSelection, preview_selection

MAX_LOOKUP_ITEMS = 100
MAX_LEAD_CONTACTS = 50
LEAD_FIELDS = "id,display_name,status_id,status_label,date_created,date_updated,contacts"


class SearchResult(CrmResult):
    s_query: dict[str, Any] = Field(description="The Close query the selection resolved to.")
    results_limit: int | None = None
    sort: list[dict[str, Any]] | None = None
    total: int = Field(
        description="Leads matching the query (a bulk action with results_limit touches at "
        "most results_limit of them)."
    )
    sample: list[LeadSample]
    matches_every_lead: bool = Field(
        description="The selection matches every lead in the organization (a bulk action "
        "on it is refused without allow_all_leads: true)."
    )
    today: str = Field(
        description="Today in the server's time zone, the one date filters are days in."
    )
    selection: str = Field(description="This selection's handle, kept an hour for this key.")

    def holds_crm_text(self) -> bool:
        return bool(self.sample)


class LookupItem(BaseModel):
    id: str
    name: str
    details: dict[str, Any] = Field(default_factory=dict)


class LookupResult(CrmResult):
    kind: Kind
    items: list[LookupItem]
    total: int = Field(description="Items of this kind (before the name filter).")
    truncated: bool = False

    def holds_crm_text(self) -> bool:
        return bool(self.items)


class LeadContact(BaseModel):
    id: str
    name: str | None = None
    title: str | None = None
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)


class LeadDetail(CrmResult):
    id: str
    display_name: str | None = None
    status_label: str | None = None
    status_id: str | None = None
    date_created: str | None = None
    date_updated: str | None = None
    contacts: list[LeadContact]
    contacts_total: int = Field(description="Contacts the lead has (at most 50 are listed).")


def _values(entries: object, key: str) -> list[str]:
    """The addresses (or numbers) of Close's `[{email, type}, ...]` lists, in order, once each."""
    listed = entries if isinstance(entries, list) else []
    found = [
        str(entry[key])
        for entry in listed
        if isinstance(entry, dict) and isinstance(entry.get(key), str) and entry[key]
    ]
    return list(dict.fromkeys(found))


def lead_detail(raw: dict[str, Any]) -> LeadDetail:
    """A lead as Close returns it, cut down to what choosing a recipient needs."""
    contacts = [c for c in raw.get("contacts") or [] if isinstance(c, dict)]
    return LeadDetail(
        id=str(raw.get("id")),
        display_name=raw.get("display_name"),
        status_label=raw.get("status_label"),
        status_id=raw.get("status_id"),
        date_created=raw.get("date_created"),
        date_updated=raw.get("date_updated"),
        contacts=[
            LeadContact(
                id=str(c.get("id")),
                name=c.get("name") or c.get("display_name") or None,
                title=c.get("title") or None,
                emails=_values(c.get("emails"), "email"),
                phones=_values(c.get("phones"), "phone"),
            )
            for c in contacts[:MAX_LEAD_CONTACTS]
        ],
        contacts_total=len(contacts),
    )


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


class SearchArguments(LeadSelection):
    sample_size: Annotated[int, Field(ge=0, le=50, description="Leads to show.")] = 5


async def search_leads(invocation: Invocation, args: SearchArguments) -> SearchResult:
    call, runtime = invocation.call, invocation.runtime
    selection = await resolve_selection(
        filter=args.filter,
        s_query=args.s_query,
        results_limit=args.results_limit,
        sort=args.sort,
        allow_all_leads=args.allow_all_leads,
        catalog=call.catalog,
    )
    seen = await preview_selection(call.client, selection, args.sample_size)
    # A search is only a read: counted as every lead, it says so rather than refusing.
    everything = (
        await every_lead.decide(
            selection.s_query,
            selection.source,
            allow=args.allow_all_leads,
            client=call.client,
            matched=seen.matched,
        )
    ).every_lead
    friendly = (
        None if args.filter is None else args.filter.model_dump(mode="json", exclude_none=True)
    )
    handle = await keep_selection(
        runtime.store, call.client.caller, HeldSelection(selection, friendly)
    )
    return SearchResult(
        s_query=selection.s_query,
        results_limit=selection.results_limit,
        sort=selection.sort,
        total=seen.total,
        sample=seen.sample,
        matches_every_lead=everything,
        today=local_date(runtime.settings.timezone, runtime.clock.time()).isoformat(),
        selection=handle,
    )


class LeadArguments(BaseModel):
    lead_id: Annotated[
        str, Field(pattern=r"^lead_[A-Za-z0-9]+$", max_length=100, description="A lead_ id.")
    ]


async def get_lead(invocation: Invocation, args: LeadArguments) -> LeadDetail:
    try:
        raw = await invocation.call.client.get(f"lead/{args.lead_id}/", {"_fields": LEAD_FIELDS})
    except NotFound:
        raise ArgumentError(
            "lead_id",
            f"Close has no lead {args.lead_id!r} (or this key cannot see it); find leads "
            "with search_leads",
        ) from None
    return lead_detail(raw if isinstance(raw, dict) else {"id": args.lead_id})


class LookupArguments(BaseModel):
    kind: Annotated[Kind, Field(description="What to list.")]
    name: Annotated[
        str | None, Field(max_length=200, description="Only items whose name is like this.")
    ] = None


async def lookup(invocation: Invocation, args: LookupArguments) -> LookupResult:
    items: list[Any] = list(await getattr(invocation.call.catalog, args.kind)())
    total = len(items)
    if args.name:
        items = [item for item in items if _matches(item.name, args.name)]
    listed = [
        LookupItem(id=item.id, name=item.name, details=_details(args.kind, item))
        for item in items[:MAX_LOOKUP_ITEMS]
    ]
    return LookupResult(
        kind=args.kind, items=listed, total=total, truncated=len(items) > MAX_LOOKUP_ITEMS
    )


TOOLS = (
    DirectTool(
        name="search_leads",
        toolset="search",
        title="Search leads (dry run)",
        description="Count and sample the leads a selection (filter or s_query) matches, with "
        "Close's query. Use it before a bulk action.",
        arguments=SearchArguments,
        run=search_leads,
        result=SearchResult,
    ),
    DirectTool(
        name="get_lead",
        toolset="search",
        title="Get a lead",
        description="Read one lead: its status, and its contacts with their emails and phones, "
        "to pick send_email's recipient (contact_id, to).",
        arguments=LeadArguments,
        run=get_lead,
        result=LeadDetail,
    ),
    DirectTool(
        name="lookup",
        toolset="search",
        title="Look up ids and names",
        description="List the ids and names of one kind of Close object, to find the exact "
        "names filters and bulk actions take.",
        arguments=LookupArguments,
        run=lookup,
        result=LookupResult,
    ),
)
