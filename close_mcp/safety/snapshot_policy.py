"""When a snapshot (before an edit) or a backup (before a delete) is taken, and what the
preview says about it.

One is taken when CLOSE_MCP_SNAPSHOT allows it for the leads the write touches
(`Settings.snapshot_refusal`: off, or above the limit) and Close can walk exactly those leads
(a `results_limit` past Close's cursor cap picks leads no walk reaches). Without one the write
cannot be undone, so it is confirmed whatever CLOSE_MCP_CONFIRM says. The decision is made
once, when the request is prepared, and comes back as a `Guard` the caller attaches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from close_mcp.close import lead_walk as walking
from close_mcp.config import Settings
from close_mcp.writes.guard import Guard

if TYPE_CHECKING:
    from close_mcp.writes.request import Safeguard, WriteRequest


def search_cost(n_leads: int) -> int:
    """Search requests to read n leads (`close.lead_walk.read_cost`)."""
    return walking.read_cost(n_leads)


def edit_field(body: dict[str, Any]) -> str:
    """The lead field a bulk edit body changes: `status_id` or `custom.<cf_id>`."""
    if body.get("type") == "set_lead_status":
        return "status_id"
    return f"custom.{body['custom_field_id']}"


def why_not(settings: Settings, request: WriteRequest) -> str | None:
    """Why no snapshot (edit) or backup (delete) will be taken, or None when one will."""
    refusal = settings.snapshot_refusal(request.matched)
    if refusal is not None:
        return refusal
    limit_decides = request.results_limit is not None and request.matched >= request.results_limit
    if limit_decides and request.matched > walking.CURSOR_CAP:
        return (
            f"results_limit picks the first {request.results_limit} leads in sort order, and "
            f"Close ends a walk in that order at {walking.CURSOR_CAP} leads"
        )
    return None


def safeguarding(settings: Settings, request: WriteRequest, safeguard: Safeguard) -> Guard:
    """What `safeguard` adds to `request`: itself when it will save something, the preview's
    note on it, and, when nothing can be saved, that the write is always confirmed."""
    if request.matched == 0:  # nothing to save (and the pipeline refuses it as empty)
        return Guard(None)
    what = safeguard.what
    reason = why_not(settings, request)
    if reason is not None:
        undo = "revert_bulk_edit" if what == "snapshot" else "restore_leads"
        note = (
            f"No {what} will be taken because {reason}: this cannot be undone with {undo}. "
            "Confirmation is required."
        )
        return Guard(None, (note,), always_confirm=True)
    saves = safeguard if request.s_query is not None else None
    cost = search_cost(request.matched) + (0 if what == "snapshot" else 1)
    if what == "snapshot":
        note = (
            f"Before sending, the current {_field_words(request.body)} of the "
            f"{request.matched} leads is saved so revert_bulk_edit can put it back "
            f"({cost} more Close request{'s' if cost != 1 else ''})."
        )
    else:
        note = (
            f"Before sending, the full records of the {request.matched} leads (fields, custom "
            f"fields, contacts) are saved ({cost} more Close requests): restore_leads "
            "re-creates them with new ids; activities, opportunities and tasks are not restored."
        )
    return Guard(saves, (note,))


def _field_words(body: dict[str, Any]) -> str:
    field = edit_field(body)
    return "status" if field == "status_id" else f"value of custom field {field[7:]}"
