"""`create_bulk_email` (toolset `email`): email a template to the leads of a selection, as
one Close bulk job. Close sends at once (its bulk email has no schedule); the preview says
how many emails go out, from which sender, and shows the template rendered for a lead."""

from dataclasses import replace
from typing import Annotated, Literal

from pydantic import Field

from close_mcp.server.tools.bulk import selection_request
from close_mcp.server.tools.declare import EMAILS, Invocation, WriteTool
from close_mcp.server.tools.reach import bulk_sender, count_reach, email_note
from close_mcp.server.tools.rendering import active_template, render_bulk_email
from close_mcp.server.tools.selection import BulkSelection
from close_mcp.wording import leads
from close_mcp.writes.request import WriteRequest


class EmailArguments(BulkSelection):
    template: Annotated[str, Field(max_length=200, description="Email template name or tmpl_ id.")]
    contact_preference: Annotated[
        Literal["lead", "contact", "all"],
        Field(
            description="lead: first contact with an email; contact: each contact's first "
            "address; all: undocumented by Close."
        ),
    ] = "lead"


RECIPIENTS = {
    "lead": "the first contact",
    "contact": "every contact",
    "all": "the recipients of contact_preference all (undocumented by Close)",
}


async def prepare_email(invocation: Invocation, args: EmailArguments) -> WriteRequest:
    call = invocation.call
    found = await active_template(call.catalog, args.template)
    who = RECIPIENTS[args.contact_preference]
    request = await selection_request(
        invocation,
        args,
        tool="create_bulk_email",
        action="email",
        kind="email",
        fields={"template_id": found.id, "contact_preference": args.contact_preference},
        describe=lambda n: f"Bulk email: send {found.name!r} to {who} of {leads(n)}",
    )
    if request.sample:
        rendering, note = await render_bulk_email(
            call.client, found.id, request.sample, args.contact_preference
        )
        request = replace(request, rendering=rendering, notes=(*request.notes, note))
    if request.matched:
        reach = await count_reach(call.client, request, args.contact_preference)
        sender = await bulk_sender(call.client)
        request = replace(
            request,
            notes=(email_note(reach, request.matched, sender), *request.notes),
            summary=f"Bulk email: send {found.name!r} now, {reach.recipients} emails to {who} "
            f"of {leads(request.matched)}",
        )
    return request


TOOLS = (
    WriteTool(
        name="create_bulk_email",
        toolset="email",
        title="Bulk email leads",
        description="Email a template to the leads of a selection (one Close bulk job); real "
        "emails reach customers.",
        annotations=EMAILS,
        arguments=EmailArguments,
        prepare=prepare_email,
    ),
)
