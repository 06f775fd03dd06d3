"""The selection arguments every lead tool shares, and the dry-run engine behind them.

One Close search answers both "how many" and "which ones": `include_counts` with a small
`_limit` returns the total and the first leads, so a preview costs a single request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field

from close_mcp.close.client import CloseClient
from close_mcp.selection.filter import LeadFilter
from close_mcp.selection.resolve import Selection
from close_mcp.selection.sample import LeadSample

SAMPLE_FIELDS = ["id", "display_name", "status_label"]

FilterArg = Annotated[
    LeadFilter | None,
    Field(description="Friendly selection, its fields ANDed. Give this or s_query."),
]
# An open query tree, checked against the s_query grammar (selection.grammar). Its root's
# `type` is declared so that no client sees an object without properties (Gemini answers
# those with a 400); the rest stays open.
SQueryArg = Annotated[
    dict[str, Any] | None,
    Field(
        description="A raw Close query tree; grammar: resource close://schemas/s_query.",
        json_schema_extra={"properties": {"type": {"type": "string"}}},
    ),
]
# A sort key is a field name, "-" first for descending (as Close's `_order_by`), or the
# {direction, field} object of the s_query grammar, which is accepted but not listed (an
# open object: see `compact.listed_input`); selection.raw_query checks either in full.
_SORT_KEY = {"anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": True}]}
ResultsLimitArg = Annotated[
    int | None,
    Field(ge=1, le=100_000, description="At most this many leads, in sort order."),
]
SortArg = Annotated[
    list[str | dict[str, Any]] | None,
    Field(
        max_length=5,
        description='Lead fields or cf_ ids, "-" first for descending: ["-date_created"].',
        json_schema_extra={"items": _SORT_KEY},
    ),
]
AllLeadsArg = Annotated[
    bool,
    Field(description="Required to select every lead."),
]
SelectionArg = Annotated[
    str | None,
    Field(
        max_length=40,
        pattern=r"^sel_[0-9a-f]{32}$",
        description="The leads of a search_leads result (its selection). Or filter or s_query "
        "as in search_leads.",
    ),
]
SendDoneEmailArg = Annotated[bool, Field(description="Close emails the user when the job ends.")]
DryRunArg = Annotated[bool, Field(description="Only preview.")]
TokenArg = Annotated[
    str | None,
    Field(
        max_length=1024,
        description="From this tool's preview, once the user agreed to it.",
    ),
]


class LeadSelection(BaseModel):
    """The arguments that choose leads, as search_leads takes them."""

    filter: FilterArg = None
    s_query: SQueryArg = None
    results_limit: ResultsLimitArg = None
    sort: SortArg = None
    allow_all_leads: AllLeadsArg = False


class BulkSelection(LeadSelection):
    """The arguments every bulk tool shares: the leads, and whether Close mails the user.

    The leads are named once: search_leads describes the filter and answers a handle
    (`selection`) that a bulk tool takes. A bulk tool still takes `filter`, `results_limit`
    and `sort` as search_leads does, but `tools/list` leaves them out of its schema
    (`UNLISTED`): each copy of the filter cost the model ~150 tokens on every turn.
    """

    UNLISTED: ClassVar[frozenset[str]] = frozenset({"filter", "results_limit", "sort"})

    selection: SelectionArg = None
    send_done_email: SendDoneEmailArg = True


@dataclass
class SelectionPreview:
    total: int
    matched: int
    sample: list[LeadSample]


def lead_sample(lead: dict[str, Any]) -> LeadSample:
    """A lead of a search page as a sample line."""
    return LeadSample(
        id=str(lead.get("id")),
        display_name=lead.get("display_name"),
        status_label=lead.get("status_label"),
    )


async def preview_selection(
    client: CloseClient, selection: Selection, sample_size: int
) -> SelectionPreview:
    page = await client.search_page(
        selection.s_query,
        fields=SAMPLE_FIELDS,
        limit=max(sample_size, 1),
        sort=selection.sort,
        include_counts=True,
    )
    try:
        total = int(page["count"]["total"])
    except (KeyError, TypeError, ValueError):
        total = len(page["data"])
    matched = total if selection.results_limit is None else min(total, selection.results_limit)
    sample = [lead_sample(lead) for lead in page["data"][: min(sample_size, matched)]]
    return SelectionPreview(total=total, matched=matched, sample=sample)
