"""`create_bulk_sequence_subscription` (toolset `sequences`): subscribe the contacts of a
selection to a sequence (which then emails them), or pause or resume their subscriptions,
as one Close bulk job. `subscribe` takes one sequence and a sender; pause and resume act on
one sequence, or on every sequence only with `all_sequences: true`."""

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field

from close_mcp.errors import ArgumentError
from close_mcp.server.tools.bulk import selection_request
from close_mcp.server.tools.declare import EMAILS, Invocation, WriteTool
from close_mcp.server.tools.reach import count_reach, sequence_note, subscribed_contacts
from close_mcp.server.tools.selection import BulkSelection
from close_mcp.wording import leads
from close_mcp.writes.request import WriteRequest

Action = Literal["subscribe", "pause", "resume", "resume_finished"]


class SequenceArguments(BulkSelection):
    action_type: Annotated[
        Action,
        Field(
            description="subscribe contacts never sent the sequence, or pause active "
            "subscriptions, resume paused ones, resume_finished finished ones."
        ),
    ]
    sequence: Annotated[
        str | None,
        Field(
            max_length=200,
            description="Sequence name or seq_ id. Required for subscribe; otherwise this or "
            "all_sequences.",
        ),
    ] = None
    all_sequences: Annotated[
        bool, Field(description="Not for subscribe: true acts on every sequence.")
    ] = False
    sender_account: Annotated[
        str | None,
        Field(
            max_length=200,
            description="Required for subscribe (only): email account (email or emailacct_).",
        ),
    ] = None
    sender_name: Annotated[
        str | None,
        Field(max_length=200, description="Subscribe only; default: the identity's name."),
    ] = None
    sender_email: Annotated[
        str | None,
        Field(
            max_length=254,
            description="Subscribe only: an identity of sender_account; default: its first.",
        ),
    ] = None
    contact_preference: Annotated[
        Literal["lead", "contact"],
        Field(description="Subscribe: lead (primary contact) or contact (each contact)."),
    ] = "lead"


def _check_targets(args: SequenceArguments) -> None:
    """One sequence for subscribe; for the others one sequence or all of them, said so."""
    if args.action_type == "subscribe" and args.all_sequences:
        raise ArgumentError(
            "all_sequences", "not for subscribe, which takes one sequence; leave it out"
        )
    if args.action_type != "subscribe" and (args.sequence is None) == (not args.all_sequences):
        raise ArgumentError(
            "sequence",
            f"give a sequence, or all_sequences: true to {args.action_type.replace('_', ' ')} "
            "every sequence"
            if args.sequence is None
            else "give a sequence or all_sequences: true, not both",
        )


async def _sender_fields(invocation: Invocation, args: SequenceArguments) -> dict[str, Any]:
    """The sender of a subscribe (an identity of the account), or a refusal of sender
    arguments given to another action."""
    if args.action_type != "subscribe":
        given = [
            n
            for n, v in (
                ("sender_account", args.sender_account),
                ("sender_name", args.sender_name),
                ("sender_email", args.sender_email),
            )
            if v is not None
        ]
        if given:
            raise ArgumentError(
                ", ".join(given),
                f"only for action_type subscribe; leave out for {args.action_type}",
            )
        return {}
    missing = [
        name
        for name, value in (("sequence", args.sequence), ("sender_account", args.sender_account))
        if value is None
    ]
    if missing:
        raise ArgumentError(", ".join(missing), "required when action_type is subscribe")
    assert args.sender_account is not None
    account = await invocation.call.catalog.resolve_email_account(
        args.sender_account, path="sender_account"
    )
    identities = {i.email.lower(): i for i in account.identities}
    email = args.sender_email or (account.identities[0].email if account.identities else None)
    if email is None or (identities and email.lower() not in identities):
        allowed = ", ".join(identities) or "none"
        raise ArgumentError(
            "sender_email",
            f"{email!r} is not an identity of {account.id}; allowed: {allowed}",
        )
    name = args.sender_name or (identities[email.lower()].name if identities else "")
    if not name:
        raise ArgumentError("sender_name", "required when action_type is subscribe")
    return {
        "sender_account_id": account.id,
        "sender_name": name,
        "sender_email": email,
        "contact_preference": args.contact_preference,
    }


async def prepare_sequence(invocation: Invocation, args: SequenceArguments) -> WriteRequest:
    _check_targets(args)
    call = invocation.call
    fields: dict[str, Any] = {"action_type": args.action_type}
    seq_name = "all sequences"
    if args.sequence is not None:
        found = await call.catalog.resolve_sequence(args.sequence)
        fields["sequence_id"] = found.id
        seq_name = repr(found.name)
    fields.update(await _sender_fields(invocation, args))
    verbs = {
        "subscribe": f"subscribe contacts of {{}} to {seq_name}",
        "pause": f"pause {seq_name} for {{}}",
        "resume": f"resume {seq_name} for {{}}",
        "resume_finished": f"resume finished {seq_name} for {{}}",
    }
    request = await selection_request(
        invocation,
        args,
        tool="create_bulk_sequence_subscription",
        action="sequences",
        kind="sequence_subscription",
        fields=fields,
        describe=lambda n: "Bulk sequence: " + verbs[args.action_type].format(leads(n)),
    )
    if args.action_type == "subscribe" and request.matched:
        taken = await subscribed_contacts(call.client, fields["sequence_id"])
        reach = await count_reach(call.client, request, args.contact_preference, taken)
        note = sequence_note(reach, request.matched, args.contact_preference)
        request = replace(
            request,
            notes=(note, *request.notes),
            summary=f"Bulk sequence: subscribe {reach.recipients} contacts of "
            f"{leads(request.matched)} to {seq_name}",
        )
    return request


TOOLS = (
    WriteTool(
        name="create_bulk_sequence_subscription",
        toolset="sequences",
        title="Bulk sequence subscriptions",
        description="Subscribe the contacts of a selection to a sequence (which then emails "
        "them), or pause or resume their subscriptions, as one Close bulk job.",
        annotations=EMAILS,
        arguments=SequenceArguments,
        prepare=prepare_sequence,
    ),
)
