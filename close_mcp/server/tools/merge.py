"""`merge_leads` (toolset `merge`, opt-in): merge duplicate leads, pairs given or found by a
key within a lead selection; each source backed up first; confirmed by the number of pairs
typed. The pairs, the backup, the journal and the sending are `close_mcp.safety.merge`.

No `from __future__ import annotations` here (see `declare.py`).
"""

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from close_mcp.errors import ArgumentError
from close_mcp.safety.merge import TOOL, merge_request, plan_merge
from close_mcp.safety.merge_pairs import MAX_PAIRS, Key
from close_mcp.server.tools.bulk import chosen_selection
from close_mcp.server.tools.declare import CHANGES, Invocation, WriteTool
from close_mcp.server.tools.ids import LeadIdArg
from close_mcp.server.tools.selection import BulkSelection
from close_mcp.writes.request import WriteRequest


class MergePair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: LeadIdArg
    destination: LeadIdArg


class MergeArguments(BulkSelection):
    # Close sends no done email for a merge: the flag is accepted, never listed.
    UNLISTED: ClassVar[frozenset[str]] = BulkSelection.UNLISTED | {"send_done_email"}

    pairs: Annotated[list[MergePair] | None, Field(max_length=MAX_PAIRS)] = None
    key: Annotated[Key | None, Field(description="Or duplicates in the selection by.")] = None


async def prepare(invocation: Invocation, args: MergeArguments) -> WriteRequest:
    runtime, call = invocation.runtime, invocation.call
    if (args.pairs is None) == (args.key is None):
        raise ArgumentError(
            "pairs",
            "give pairs ([{source, destination}] lead ids) or key (contact_email, "
            "email_domain, exact_name) with a selection",
        )
    selection = None
    if args.pairs is not None:
        named = [n for n in ("selection", "filter", "s_query") if getattr(args, n) is not None]
        if named:
            raise ArgumentError("pairs", f"name the leads themselves: leave out {named[0]}")
        what: dict[str, Any] = {"given": "pairs"}
    else:
        selection = await chosen_selection(invocation, args)
        what = {"key": args.key, "s_query": selection.s_query}
        if selection.results_limit is not None:
            what["results_limit"] = selection.results_limit
    plan = await plan_merge(
        runtime.store,
        runtime.clock,
        call.client,
        pairs=None if args.pairs is None else [(p.source, p.destination) for p in args.pairs],
        key=args.key,
        selection=selection,
    )

    async def custom_field_ids() -> list[str]:
        return [cf.id for cf in await call.catalog.custom_fields()]

    return merge_request(
        runtime.store, runtime.clock, call.client, plan, what=what,
        custom_field_ids=custom_field_ids,
    )  # fmt: skip


TOOLS = (
    WriteTool(
        name=TOOL,
        toolset="merge",
        title="Merge duplicate leads",
        description="Merge leads: `pairs`, or duplicates by `key` in a selection (the oldest "
        "kept). Close deletes each source; backed up first.",
        annotations=CHANGES,
        arguments=MergeArguments,
        prepare=prepare,
    ),
)
