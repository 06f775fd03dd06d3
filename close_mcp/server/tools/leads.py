"""Reading leads and names: `search_leads` (the dry-run engine) and `lookup` (toolset `search`)."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from close_mcp.close.activities import lead_subscriptions
from close_mcp.close.catalog import KINDS, Kind, normalize_name
from close_mcp.close.jobs import CrmResult
from close_mcp.close.lead_walk import lead_page, resume_after
from close_mcp.close.timezone import local_date
from close_mcp.errors import ArgumentError, NotFound
from close_mcp.selection import every_lead
from close_mcp.selection.forms import forms, named_fields
from close_mcp.selection.handles import HeldSelection, keep_selection
from close_mcp.selection.resolve import resolve_selection
from close_mcp.selection.sample import LeadSample
from close_mcp.server.tools.declare import DirectTool, Invocation
from close_mcp.server.tools.ids import LeadIdArg
from close_mcp.server.tools.selection import SAMPLE_FIELDS, LeadSelection, lead_sample

MAX_LOOKUP_ITEMS = 100
MAX_SAMPLE = 200  # one Close search page
# What a search result may take of the 1,500 o200k tokens, with a margin for the estimate. A
# lead line costs ~32 tokens in the sandbox (~45 with Close's longer ids), so a page holds 30
# to 40 leads, whatever sample_size asked (measured with bench/tokens.py).
RESULT_TOKENS = 1_400
MAX_LEAD_CONTACTS = 50
MAX_LEAD_SUBSCRIPTIONS = 10  # ~35 tokens each, beside up to 50 contacts
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
    next_cursor: str | None = Field(
        default=None,
        description="More leads: repeat the call with cursor set to this. Null at the end.",
    )
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


# The catalog's kinds, and the query grammar (not a Close object: selection.grammar). One
# flat enum, not a union (a union lists as anyOf: more tokens on every turn).
LookupKind = Literal[
    "lead_statuses", "custom_fields", "email_templates", "sequences", "smart_views",
    "email_accounts", "users", "opportunity_statuses", "s_query",
]  # fmt: skip
assert get_args(LookupKind) == (*KINDS, "s_query"), "lookup's kinds must follow the catalog's"
SQUERY_NOTE = (
    "s_query forms: id is the type, name what it is (node, field, condition, moment; "
    "object_type lists fields), details its keys (? optional). Every node may carry "
    "negate: true. Whole grammar: resource close://schemas/s_query."
)


class LookupResult(CrmResult):
    kind: LookupKind
    items: list[LookupItem]
    total: int = Field(description="Items of this kind (before the name filter).")
    truncated: bool = False
    note: str | SkipJsonSchema[None] = Field(default=None, description="How to read the items.")
    OMIT_NONE = ("note",)

    def holds_crm_text(self) -> bool:
        return bool(self.items) and self.kind != "s_query"


def squery_items() -> list[LookupItem]:
    """The grammar's forms, then the object types with the fields queries name."""
    items = [LookupItem(id=f.type, name=f.role, details=f.keys) for f in forms()]
    items += [
        LookupItem(id=kind, name="object_type", details={"fields": fields})
        for kind, fields in named_fields().items()
    ]
    return items


class LeadContact(BaseModel):
    id: str
    name: str | None = None
    title: str | None = None
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)


class LeadSubscription(BaseModel):
    sequence: str = Field(description="The sequence's name (its id if Close has no such one).")
    status: str | None = None
    contact_id: str | None = None


class LeadDetail(CrmResult):
    id: str
    display_name: str | None = None
    status_label: str | None = None
    status_id: str | None = None
    date_created: str | None = None
    date_updated: str | None = None
    contacts: list[LeadContact]
    contacts_total: int = Field(description="Contacts the lead has (at most 50 are listed).")
    subscriptions: list[LeadSubscription] = Field(
        default_factory=list, description="Its contacts' sequence subscriptions (at most 10)."
    )
    subscriptions_total: int = 0


def _values(entries: object, key: str) -> list[str]:
    """The addresses (or numbers) of Close's `[{email, type}, ...]` lists, in order, once each."""
    listed = entries if isinstance(entries, list) else []
    found = [
        str(entry[key])
        for entry in listed
        if isinstance(entry, dict) and isinstance(entry.get(key), str) and entry[key]
    ]
    return list(dict.fromkeys(found))


def lead_detail(
    raw: dict[str, Any],
    subscriptions: list[dict[str, Any]] | None = None,
    sequence_names: dict[str, str] | None = None,
) -> LeadDetail:
    """A lead as Close returns it, cut down to what choosing a recipient needs, with its
    sequence subscriptions (sequence by name, status, contact)."""
    subs = subscriptions or []
    names = sequence_names or {}
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
        subscriptions=[
            LeadSubscription(
                sequence=names.get(str(s.get("sequence_id")), str(s.get("sequence_id"))),
                status=s.get("status"),
                contact_id=s.get("contact_id"),
            )
            for s in subs[:MAX_LEAD_SUBSCRIPTIONS]
        ],
        subscriptions_total=len(subs),
    )


def text_tokens(text: str, per_token: float = 2.5) -> float:
    """An upper estimate of o200k tokens without a tokenizer: ASCII at `per_token` characters
    a token (JSON with ids ~2.5, words ~3), other letters (accents, CJK) two tokens each."""
    wide = sum(1 for ch in text if ord(ch) > 127)
    return (len(text) - wide) / per_token + 2 * wide


def _line_tokens(lead: LeadSample) -> float:
    """A sample line as the result's JSON shows it: a random id at ~1.6 characters a token,
    the name and status at ~2.4 (names can look random too), ~12 tokens of keys and quotes."""
    words = (lead.display_name or "") + (lead.status_label or "")
    return len(lead.id) / 1.6 + text_tokens(words, 2.4) + 12


def fit_sample(leads: list[LeadSample], budget: float) -> list[LeadSample]:
    """The first leads whose lines fit the budget (at least one)."""
    kept: list[LeadSample] = []
    spent = 0.0
    for lead in leads:
        spent += _line_tokens(lead)
        if kept and spent > budget:
            break
        kept.append(lead)
    return kept


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
    sample_size: Annotated[
        int,
        Field(ge=0, le=MAX_SAMPLE, description="Leads to show, at most 200 (fewer if too long)."),
    ] = 5
    cursor: Annotated[
        str | None, Field(max_length=2000, description="next_cursor of the last page.")
    ] = None


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
    page = await lead_page(
        call.client,
        selection.s_query,
        SAMPLE_FIELDS,
        limit=max(args.sample_size, 1),
        sort=selection.sort,
        results_limit=selection.results_limit,
        cursor=args.cursor,
    )
    total = len(page.leads) if page.total is None else page.total
    matched = total if selection.results_limit is None else min(total, selection.results_limit)
    shown = page.leads[: max(0, min(args.sample_size, matched - page.offset))]
    rows = [lead_sample(lead) for lead in shown]
    # A search is only a read: counted as every lead, it says so rather than refusing.
    everything = (
        await every_lead.decide(
            selection.worded_every_lead,
            selection.source,
            allow=args.allow_all_leads,
            client=call.client,
            matched=matched,
        )
    ).every_lead
    friendly = (
        None if args.filter is None else args.filter.model_dump(mode="json", exclude_none=True)
    )
    handle = await keep_selection(
        runtime.store, call.client.caller, HeldSelection(selection, friendly)
    )
    result = SearchResult(
        s_query=selection.s_query,
        results_limit=selection.results_limit,
        sort=selection.sort,
        total=total,
        sample=[],
        next_cursor=page.cursor if args.sample_size else None,
        matches_every_lead=everything,
        today=local_date(runtime.settings.timezone, runtime.clock.time()).isoformat(),
        selection=handle,
    )
    # The rest of the result as the client gets it (compact JSON), and the cursor.
    rest = text_tokens(result.model_dump_json()) + 50
    result.sample = fit_sample(rows, RESULT_TOKENS - rest)
    if len(result.sample) < len(rows):  # cut to fit: go on right after the last shown
        result.next_cursor = resume_after(page, len(result.sample))
    if page.offset + len(result.sample) >= matched:  # results_limit reached
        result.next_cursor = None
    return result


class LeadArguments(BaseModel):
    lead_id: LeadIdArg


async def get_lead(invocation: Invocation, args: LeadArguments) -> LeadDetail:
    try:
        raw = await invocation.call.client.get(f"lead/{args.lead_id}/", {"_fields": LEAD_FIELDS})
    except NotFound:
        raise ArgumentError(
            "lead_id",
            f"Close has no lead {args.lead_id!r} (or this key cannot see it); find leads "
            "with search_leads",
        ) from None
    call = invocation.call
    subs, _ = await lead_subscriptions(call.client, args.lead_id)
    names = {s.id: s.name for s in await call.catalog.sequences()} if subs else {}
    return lead_detail(raw if isinstance(raw, dict) else {"id": args.lead_id}, subs, names)


class LookupArguments(BaseModel):
    kind: Annotated[LookupKind, Field(description="What to list.")]
    name: Annotated[
        str | None, Field(max_length=200, description="Only items whose name is like this.")
    ] = None


async def lookup(invocation: Invocation, args: LookupArguments) -> LookupResult:
    if args.kind == "s_query":
        grammar = squery_items()
        shown = [i for i in grammar if not args.name or _matches(f"{i.name} {i.id}", args.name)]
        return LookupResult(kind=args.kind, items=shown, total=len(grammar), note=SQUERY_NOTE)
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
        description="Read one lead: its status, its contacts with their emails and phones, "
        "to pick send_email's recipient (contact_id, to), and sequences.",
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
