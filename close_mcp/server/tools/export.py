"""`export_leads` (toolset `export`, opt-in): Close's lead export (`POST /export/lead/`) for a
lead selection, JSON or CSV. An export carries CRM data out of Close, so it is confirmed like
any write (the action `export` in CLOSE_MCP_CONFIRM): the preview shows the selection, its
count and a sample, and the token binds the exact leads. Once sent, the call follows the
export for up to `WAIT_S` (progress on each look) and answers its download link when done;
a longer one is followed with the resource `close://exports/{id}` (and Close emails the
link unless `send_done_email` is false).
"""

import hashlib
import json
from dataclasses import replace
from typing import Annotated, Any, Final, Literal

from pydantic import Field

from close_mcp.close.client import CloseClient
from close_mcp.close.crm import EXPORT_KEYS
from close_mcp.errors import MalformedResponse
from close_mcp.server.tools.bulk import selection_request
from close_mcp.server.tools.declare import Invocation, WriteTool, writes
from close_mcp.server.tools.selection import BulkSelection
from close_mcp.wording import leads
from close_mcp.writes.progress import Progress
from close_mcp.writes.reconcile import RecentLookup, Reconciler
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.results import PlanAnswer
from close_mcp.writes.sender import Sender, WriteContext

TOOL: Final = "export_leads"
PATH: Final = "export/lead/"
WAIT_S: Final = 30.0
POLL_S: Final = 2.0
FIELDS_SHOWN_CHARS: Final = 600  # of field names (as JSON) a preview shows whole

FormatArg = Annotated[Literal["json", "csv"], Field()]
TypeArg = Annotated[
    Literal["leads", "contacts", "lead_opps"],
    Field(),
]
FieldsArg = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=200)]] | None,
    Field(max_length=100, description="Close's export field names."),
]


class ExportArguments(BulkSelection):
    format: FormatArg = "json"
    type: TypeArg = "leads"
    fields: FieldsArg = None


def export_uri(export_id: str) -> str:
    return f"close://exports/{export_id}"


def shown(answer: Any) -> dict[str, Any]:
    """What a result shows of an export: its id, status, size and (when done) its link."""
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
        raise MalformedResponse("Close's export had no id.", path=PATH)
    return {k: answer.get(k) for k in (*EXPORT_KEYS, "n_leads", "format", "type")}


def follower(
    context: WriteContext,
    client: CloseClient,
    lookup: RecentLookup,
    body: dict[str, Any],
    matched: int,
) -> Any:  # the plan `WriteRequest.send` runs
    """POST the export once, then read it until it is done, fails, or WAIT_S passes. An
    answer lost (a 504, a timeout, an unreadable body) is looked for among the recent exports,
    as a bulk job is: "outcome unknown" would only invite a second export of the same leads."""
    clock = context.clock

    async def send(sender: Sender, progress: Progress | None) -> PlanAnswer:
        found = Reconciler(context, client).reconciler(lookup, body)
        answer = await sender.send("POST", PATH, body, matched=matched, reconcile=found)
        export = shown(answer)
        sender.record("submitted", path="/" + PATH, body=body, matched=matched,
                      job_id=export["id"])  # fmt: skip
        started = clock.time()
        looks = int(WAIT_S / POLL_S)
        for look in range(1, looks + 1):
            if export.get("status") in ("done", "error"):
                break
            if progress is not None:
                await progress.step(look, looks, f"export {export['id']}: {export['status']}")
            await clock.sleep(POLL_S)
            try:
                export = shown(await client.get(f"export/{export['id']}/"))
            except Exception:  # the export exists: a failed look is not a failed write
                break
            if clock.time() - started >= WAIT_S:
                break
        if export.get("status") == "done" and export.get("download_url"):
            follow = " Its file (gzip-compressed) is at result.download_url."
        else:
            emailed = " (Close also emails the link)" if body.get("send_done_email") else ""
            follow = (
                f" It is {export.get('status')}: read {export_uri(export['id'])} for its "
                f"download_url once done{emailed}."
            )
        return PlanAnswer(jobs=[], result=export, sent=f"export {export['id']}", follow=follow)

    return send


def shown_fields(fields: list[str]) -> list[str] | dict[str, Any]:
    """The field names as a preview shows them (and its token binds them): whole, or, when
    long (up to 100 names of 200 characters: 3,500 tokens), their count, the first few
    clipped, and the sha256 of the whole list as JSON."""
    text = json.dumps(fields)
    if len(text) <= FIELDS_SHOWN_CHARS:
        return fields
    first = [f if len(f) <= 40 else f[:39] + "…" for f in fields[:3]]
    return {
        "count": len(fields),
        "first": first,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


async def prepare(invocation: Invocation, args: ExportArguments) -> WriteRequest:
    """The export of the selected leads, with their count and a sample."""
    fields: dict[str, Any] = {"format": args.format, "type": args.type}
    if args.fields:
        fields["fields"] = list(dict.fromkeys(args.fields))
    request = await selection_request(
        invocation,
        args,
        tool=TOOL,
        action="export",
        kind=None,
        path=PATH,
        fields=fields,
        describe=lambda n: f"Export {leads(n)} as {args.format} ({args.type})",
    )
    waits = (
        "Close writes the file and gives a download link; this call waits up to "
        f"{WAIT_S:.0f} s for it."
    )
    sent = request.body  # what is POSTed, every field named
    shown = {**sent, "fields": shown_fields(sent["fields"])} if "fields" in sent else sent
    recent = RecentLookup(
        path="export/",
        params={},
        keys=("format", "type", "results_limit"),
        # The whole list of fields, not the shortened one the token's body holds.
        echo={
            "s_query": request.s_query,
            **({"fields": sent["fields"]} if "fields" in sent else {}),
        },
        where="the recent exports",
    )
    return replace(
        request,
        body=shown,
        recent=recent,
        notes=(waits, *request.notes),
        send=follower(
            invocation.runtime.writes,
            invocation.call.client,
            recent,
            sent,
            request.matched,
        ),
    )


TOOLS = (
    WriteTool(
        name=TOOL,
        toolset="export",
        title="Export leads",
        description="Close's lead export (a JSON or CSV file) of a selection; answers its "
        "download link.",
        annotations=writes(destructive=False, open_world=True),
        arguments=ExportArguments,
        prepare=prepare,
    ),
)
