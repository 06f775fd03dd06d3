"""What the four bulk actions (edit, email, sequence subscription, delete) share: the request
for a bulk job on a lead selection, with the count and sample it touches.

Each bulk tool is its own module (`bulk_edit`, `bulk_email`, `bulk_sequence`, `bulk_delete`):
its `prepare` works out the job's own fields (names resolved to ids, Close's rules checked)
and calls `selection_request`; `close_mcp.writes.pipeline` decides whether it is previewed,
confirmed, refused or sent.
"""

from collections.abc import Callable
from typing import Any, Final

from close_mcp.close.jobs import JobKind, job_path
from close_mcp.errors import ArgumentError, EveryLeadRefused
from close_mcp.selection import every_lead
from close_mcp.selection.handles import resolve_handle
from close_mcp.selection.resolve import Selection, resolve_selection
from close_mcp.server.tools.declare import Invocation
from close_mcp.server.tools.selection import BulkSelection, preview_selection
from close_mcp.writes.request import WriteRequest

SAMPLE_SIZE: Final = 5


async def selection_request(
    invocation: Invocation,
    chosen: BulkSelection,
    *,
    tool: str,
    action: str,
    kind: JobKind | None,
    fields: dict[str, Any],
    describe: Callable[[int], str],
    path: str | None = None,
) -> WriteRequest:
    """The request for a bulk action on a selection, with the count and sample it touches.

    Every lead (`every_lead.decide`: by its wording, or by its count taken now) is refused
    without `allow_all_leads`, and audited; with it, it always needs confirmation. `path`:
    where a write on a selection that is not a bulk job goes (`kind` None: a lead export).
    """
    call, audit = invocation.call, invocation.runtime.audit
    path = path if path is not None else job_path(kind) if kind is not None else None
    assert path is not None, "a selection request goes to a bulk job's path or to `path`"

    def refused(exc: EveryLeadRefused, body: Any = None, matched: int | None = None) -> None:
        audit.record(tool=tool, outcome="refused", path="/" + path, request=body,
                     matched=matched, reason=str(exc))  # fmt: skip

    try:
        selection = await chosen_selection(invocation, chosen)
    except EveryLeadRefused as exc:
        refused(exc)
        raise
    body: dict[str, Any] = {"s_query": selection.s_query}
    if selection.results_limit is not None:
        body["results_limit"] = selection.results_limit
    if selection.sort:
        body["sort"] = selection.sort
    body["send_done_email"] = chosen.send_done_email
    body.update(fields)
    seen = await preview_selection(call.client, selection, SAMPLE_SIZE)
    verdict = await every_lead.decide(
        selection.worded_every_lead,
        selection.source,
        allow=chosen.allow_all_leads,
        client=call.client,
        matched=seen.matched,
    )
    if verdict.refusal is not None:
        refused(verdict.refusal, body, seen.matched)
        raise verdict.refusal
    everything = verdict.every_lead
    notes = []
    if everything:
        notes.append("This selection matches every lead in the organization.")
    if seen.matched == 0:
        notes.append("The selection matches no leads: there is nothing to do.")
    return WriteRequest(
        tool=tool,
        action=action,
        path=path,
        body=body,
        matched=seen.matched,
        summary=describe(seen.matched),
        job_kind=kind,
        selects_everything=everything,
        s_query=selection.s_query,
        results_limit=selection.results_limit,
        sort=selection.sort,
        sample=seen.sample,
        notes=notes,
    )


async def chosen_selection(invocation: Invocation, chosen: BulkSelection) -> Selection:
    """The selection a bulk tool's arguments name: a search_leads handle, or a filter or
    s_query resolved as search_leads resolves them."""
    if chosen.selection is None:
        if chosen.filter is None and chosen.s_query is None:
            raise ArgumentError(
                None, "name the leads: selection (from search_leads), filter or s_query"
            )
        return await resolve_selection(
            filter=chosen.filter,
            s_query=chosen.s_query,
            results_limit=chosen.results_limit,
            sort=chosen.sort,
            allow_all_leads=chosen.allow_all_leads,
            catalog=invocation.call.catalog,
        )
    also = [n for n in ("filter", "s_query", "results_limit", "sort") if getattr(chosen, n)]
    return await handle_selection(invocation, chosen.selection, also)


async def handle_selection(invocation: Invocation, handle: str, also: list[str]) -> Selection:
    """The selection a search_leads handle names for this caller. A call that also names
    leads, a limit or an order (`also`) would mean two selections: refused before anything
    is read."""
    if also:
        raise ArgumentError(
            "selection",
            f"names the leads, their limit and order already; leave out {', '.join(also)}, "
            "or run search_leads again with them",
        )
    runtime = invocation.runtime
    held = await resolve_handle(runtime.store, handle, invocation.call.client.caller)
    return held.selection
