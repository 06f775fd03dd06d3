"""The four bulk actions: edit, email, sequence subscription, delete.

Each tool only works out its exact Close request (names resolved to ids, Close's rules
checked) in a `prepare` resolver (wrapped in `tool_errors`, since resolvers run outside the
tool body); `close_mcp.writes.pipeline` decides whether it is previewed,
confirmed, refused or sent. Resolvers run before the tool body so that elicitation works
in both protocol eras.

No `from __future__ import annotations` here (see `writing.py`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from close_mcp.close.catalog import Catalog, CustomField
from close_mcp.close.jobs import JobKind, job_echo, job_path
from close_mcp.errors import ArgumentError, EveryLeadRefused
from close_mcp.safety.snapshot_writer import BackupBeforeDelete, SnapshotBeforeEdit
from close_mcp.selection.query import Selection, all_leads_refused, resolve_selection
from close_mcp.selection.totals import counts_every_lead
from close_mcp.selection.values import check_custom_value
from close_mcp.server.runtime import Call
from close_mcp.server.tools import Registrar, tool_errors
from close_mcp.server.tools.reach import (
    bulk_sender,
    count_reach,
    email_note,
    sequence_note,
    subscribed_contacts,
)
from close_mcp.server.tools.rendering import render_bulk_email
from close_mcp.server.tools.selection import (
    AllLeadsArg,
    DryRunArg,
    FilterArg,
    ResultsLimitArg,
    SendDoneEmailArg,
    SortArg,
    SQueryArg,
    TokenArg,
    preview_selection,
)
from close_mcp.server.tools.writing import confirmer, run_write
from close_mcp.writes.audit import AuditLog
from close_mcp.writes.pipeline import WriteRequest, WriteResult, quoted

SAMPLE_SIZE = 5


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SetLeadStatus(_Spec):
    type: Literal["set_lead_status"]
    lead_status: str = Field(max_length=200, description="Status label or stat_ id.")


class SetCustomField(_Spec):
    type: Literal["set_custom_field"]
    custom_field: str = Field(max_length=200, description="Custom field name or cf_ id.")
    value: str | int | float | bool | None = Field(
        default=None, description="For single-value fields."
    )
    values: list[str] | None = Field(
        default=None, max_length=100, description="For multi-value fields."
    )
    operation: Literal["replace", "add", "remove"] | None = Field(
        default=None, description="Multi-value: replace (default), add or remove."
    )


class ClearCustomField(_Spec):
    type: Literal["clear_custom_field"]
    custom_field: str = Field(max_length=200, description="Custom field name or cf_ id.")


EditSpec = Annotated[SetLeadStatus | SetCustomField | ClearCustomField, Field(discriminator="type")]


# Each argument a tool and its `prepare` resolver share is declared once, here.
EditArg = Annotated[EditSpec, Field(description="What to change.")]
TemplateArg = Annotated[str, Field(max_length=200, description="Email template name or tmpl_ id.")]
EmailContactsArg = Annotated[
    Literal["lead", "contact", "all"],
    Field(
        description="lead: first contact with an email; contact: each contact's first "
        "address; all: undocumented by Close."
    ),
]
ActionTypeArg = Annotated[
    Literal["subscribe", "pause", "resume", "resume_finished"],
    Field(
        description="subscribe contacts never sent the sequence, or pause active "
        "subscriptions, resume paused ones, resume_finished finished ones."
    ),
]
SequenceArg = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Sequence name or seq_ id. Required for subscribe; otherwise this or "
        "all_sequences.",
    ),
]
AllSequencesArg = Annotated[
    bool,
    Field(description="Not for subscribe: true acts on every sequence."),
]
SenderAccountArg = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Required for subscribe (only): email account (email or emailacct_).",
    ),
]
SenderNameArg = Annotated[
    str | None,
    Field(max_length=200, description="Subscribe only; default: the identity's name."),
]
SenderEmailArg = Annotated[
    str | None,
    Field(
        max_length=254,
        description="Subscribe only: an identity of sender_account; default: its first.",
    ),
]
SequenceContactsArg = Annotated[
    Literal["lead", "contact"],
    Field(description="Subscribe: lead (primary contact) or contact (each contact)."),
]


@dataclass(frozen=True)
class Chosen:
    """The selection arguments every bulk tool shares, as the caller gave them."""

    filter: Any
    s_query: dict[str, Any] | None
    results_limit: int | None
    sort: list[str | dict[str, Any]] | None
    allow_all_leads: bool
    send_done_email: bool


async def chosen(
    filter: FilterArg,
    s_query: SQueryArg,
    results_limit: ResultsLimitArg,
    sort: SortArg,
    allow_all_leads: AllLeadsArg,
    send_done_email: SendDoneEmailArg,
) -> Chosen:
    """A resolver: gathers the shared arguments once for every bulk tool's `prepare`."""
    return Chosen(filter, s_query, results_limit, sort, allow_all_leads, send_done_email)


ChosenArg = Annotated[Chosen, Resolve(chosen)]


async def _selection_request(
    call: Call,
    chosen: Chosen,
    *,
    tool: str,
    action: str,
    kind: JobKind,
    fields: dict[str, Any],
    describe: Callable[[int], str],
    audit: AuditLog,
) -> WriteRequest:
    """The request for a bulk action on a selection, with the count and sample it touches.

    A selection matches every lead when its wording says so (`matches_everything`) or when
    its count, taken now (never a kept total: leads deleted meanwhile would make every lead
    left look narrower), is the organization's total: either is refused without
    `allow_all_leads`, and audited; with it, it always needs confirmation.
    """

    def refused(exc: EveryLeadRefused, body: Any = None, matched: int | None = None) -> None:
        audit.record(tool=tool, outcome="refused", path="/" + job_path(kind), request=body,
                     matched=matched, reason=str(exc))  # fmt: skip

    try:
        selection: Selection = await resolve_selection(
            filter=chosen.filter,
            s_query=chosen.s_query,
            results_limit=chosen.results_limit,
            sort=chosen.sort,
            allow_all_leads=chosen.allow_all_leads,
            catalog=call.catalog,
        )
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
    everything = selection.matches_everything or await counts_every_lead(call.client, seen.matched)
    if everything and not chosen.allow_all_leads:
        refusal = all_leads_refused(selection.source)
        refused(refusal, body, seen.matched)
        raise refusal
    notes = []
    if everything:
        notes.append("This selection matches every lead in the organization.")
    if seen.matched == 0:
        notes.append("The selection matches no leads: there is nothing to do.")
    return WriteRequest(
        tool=tool,
        action=action,
        path=job_path(kind),
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


def _leads(n: int) -> str:
    return f"{n} lead" if n == 1 else f"{n} leads"


async def _edit_fields(edit: Any, catalog: Catalog) -> tuple[dict[str, Any], str, str | None]:
    """The edit's request fields, a phrase for people, and the custom field's name (the job
    Close makes echoes the name, not the id)."""
    if isinstance(edit, SetLeadStatus):
        status = await catalog.resolve_status(edit.lead_status)
        return (
            {"type": "set_lead_status", "lead_status_id": status.id},
            f"set the status to {status.label!r}",
            None,
        )
    field: CustomField = await catalog.resolve_custom_field(edit.custom_field)
    if isinstance(edit, ClearCustomField):
        return (
            {"type": "clear_custom_field", "custom_field_id": field.id},
            f"clear the custom field {field.name!r}",
            field.name,
        )
    fields: dict[str, Any] = {"type": "set_custom_field", "custom_field_id": field.id}
    if field.accepts_multiple_values:
        if edit.value is not None:
            raise ArgumentError(
                "edit.value", f"{field.name!r} holds several values; pass them as edit.values"
            )
        if not edit.values:
            raise ArgumentError("edit.values", f"give at least one value for {field.name!r}")
        fields["custom_field_values"] = [
            await check_custom_value(field, v, catalog, f"edit.values[{i}]")
            for i, v in enumerate(edit.values)
        ]
        fields["custom_field_operation"] = edit.operation or "replace"
        verb = {"replace": "set", "add": "add", "remove": "remove"}[edit.operation or "replace"]
        return fields, f"{verb} {fields['custom_field_values']!r} on {field.name!r}", field.name
    if edit.operation is not None:
        raise ArgumentError(
            "edit.operation",
            f"only multi-value fields take an operation, and {field.name!r} holds one value; "
            "leave it out",
        )
    if edit.values is not None:
        raise ArgumentError("edit.values", f"{field.name!r} holds one value; use edit.value")
    if edit.value is None:
        raise ArgumentError(
            "edit.value", f"give the new value for {field.name!r} (or use clear_custom_field)"
        )
    fields["custom_field_value"] = await check_custom_value(
        field, edit.value, catalog, "edit.value"
    )
    return fields, f"set {field.name!r} to {fields['custom_field_value']!r}", field.name


def register(reg: Registrar) -> None:
    runtime = reg.runtime

    # -- edit --------------------------------------------------------------------------

    @tool_errors
    async def prepare_edit(
        ctx: Context,
        edit: EditArg,
        chosen: ChosenArg,
    ) -> WriteRequest:
        call = runtime.call(ctx.headers)
        fields, what, field_name = await _edit_fields(edit, call.catalog)
        request = await _selection_request(
            call,
            chosen,
            tool="create_bulk_edit",
            action="edit",
            kind="edit",
            fields=fields,
            describe=lambda n: f"Bulk edit: {what} on {_leads(n)}",
            audit=runtime.audit,
        )
        request.echo = job_echo("edit", request.body, custom_field_name=field_name)
        snapshot = SnapshotBeforeEdit(runtime.settings, runtime.clock, call.client, runtime.store)
        return snapshot.prepare(request).attach(request)

    confirm_edit = confirmer(runtime, prepare_edit)

    async def create_bulk_edit(
        ctx: Context,
        request: Annotated[WriteRequest, Resolve(prepare_edit)],
        answer: Annotated[ElicitationResult[Any], Resolve(confirm_edit)],
        edit: EditArg,
        filter: FilterArg = None,
        s_query: SQueryArg = None,
        results_limit: ResultsLimitArg = None,
        sort: SortArg = None,
        allow_all_leads: AllLeadsArg = False,
        send_done_email: SendDoneEmailArg = True,
        dry_run: DryRunArg = False,
        confirmation_token: TokenArg = None,
    ) -> WriteResult:
        return await run_write(
            runtime, ctx, request, answer, dry_run=dry_run, token=confirmation_token
        )

    reg.add(
        create_bulk_edit,
        name="create_bulk_edit",
        toolset="edit",
        title="Bulk edit leads",
        description="Set the lead status, or set or clear a custom field, on the leads of a "
        "selection (one Close bulk job). Undo: revert_bulk_edit.",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )

    # -- email -------------------------------------------------------------------------

    @tool_errors
    async def prepare_email(
        ctx: Context,
        template: TemplateArg,
        contact_preference: EmailContactsArg,
        chosen: ChosenArg,
    ) -> WriteRequest:
        call = runtime.call(ctx.headers)
        found = await call.catalog.resolve_template(template)
        if found.is_archived:
            raise ArgumentError(
                "template",
                f"{quoted(found.name)} is archived; pick an active one",
                quotes_crm_text=True,
            )
        who = {
            "lead": "the first contact",
            "contact": "every contact",
            "all": "the recipients of contact_preference all (undocumented by Close)",
        }[contact_preference]
        request = await _selection_request(
            call,
            chosen,
            tool="create_bulk_email",
            action="email",
            kind="email",
            fields={"template_id": found.id, "contact_preference": contact_preference},
            describe=lambda n: f"Bulk email: send {found.name!r} to {who} of {_leads(n)}",
            audit=runtime.audit,
        )
        if request.sample:
            request.rendering, note = await render_bulk_email(
                call.client, found.id, request.sample, contact_preference
            )
            request.notes.append(note)
        if request.matched:
            reach = await count_reach(call.client, request, contact_preference)
            sender = await bulk_sender(call.client)
            request.notes.insert(0, email_note(reach, request.matched, sender))
            request.summary = (
                f"Bulk email: send {found.name!r} now, {reach.recipients} emails to {who} of "
                f"{_leads(request.matched)}"
            )
        return request

    confirm_email = confirmer(runtime, prepare_email)

    async def create_bulk_email(
        ctx: Context,
        request: Annotated[WriteRequest, Resolve(prepare_email)],
        answer: Annotated[ElicitationResult[Any], Resolve(confirm_email)],
        template: TemplateArg,
        contact_preference: EmailContactsArg = "lead",
        filter: FilterArg = None,
        s_query: SQueryArg = None,
        results_limit: ResultsLimitArg = None,
        sort: SortArg = None,
        allow_all_leads: AllLeadsArg = False,
        send_done_email: SendDoneEmailArg = True,
        dry_run: DryRunArg = False,
        confirmation_token: TokenArg = None,
    ) -> WriteResult:
        return await run_write(
            runtime, ctx, request, answer, dry_run=dry_run, token=confirmation_token
        )

    reg.add(
        create_bulk_email,
        name="create_bulk_email",
        toolset="email",
        title="Bulk email leads",
        description="Email a template to the leads of a selection (one Close bulk job); real "
        "emails reach customers.",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )

    # -- sequence subscription ---------------------------------------------------------

    @tool_errors
    async def prepare_sequence(
        ctx: Context,
        action_type: ActionTypeArg,
        sequence: SequenceArg,
        all_sequences: AllSequencesArg,
        sender_account: SenderAccountArg,
        sender_name: SenderNameArg,
        sender_email: SenderEmailArg,
        contact_preference: SequenceContactsArg,
        chosen: ChosenArg,
    ) -> WriteRequest:
        if action_type == "subscribe" and all_sequences:
            raise ArgumentError(
                "all_sequences", "not for subscribe, which takes one sequence; leave it out"
            )
        if action_type != "subscribe" and (sequence is None) == (not all_sequences):
            raise ArgumentError(
                "sequence",
                f"give a sequence, or all_sequences: true to {action_type.replace('_', ' ')} "
                "every sequence"
                if sequence is None
                else "give a sequence or all_sequences: true, not both",
            )
        call = runtime.call(ctx.headers)
        fields: dict[str, Any] = {"action_type": action_type}
        seq_name = "all sequences"
        if sequence is not None:
            found = await call.catalog.resolve_sequence(sequence)
            fields["sequence_id"] = found.id
            seq_name = repr(found.name)
        if action_type == "subscribe":
            missing = [
                name
                for name, value in (("sequence", sequence), ("sender_account", sender_account))
                if value is None
            ]
            if missing:
                raise ArgumentError(", ".join(missing), "required when action_type is subscribe")
            assert sender_account is not None
            account = await call.catalog.resolve_email_account(
                sender_account, path="sender_account"
            )
            identities = {i.email.lower(): i for i in account.identities}
            email = sender_email or (account.identities[0].email if account.identities else None)
            if email is None or (identities and email.lower() not in identities):
                allowed = ", ".join(identities) or "none"
                raise ArgumentError(
                    "sender_email",
                    f"{email!r} is not an identity of {account.id}; allowed: {allowed}",
                )
            name = sender_name or (identities[email.lower()].name if identities else "")
            if not name:
                raise ArgumentError("sender_name", "required when action_type is subscribe")
            fields.update(
                sender_account_id=account.id,
                sender_name=name,
                sender_email=email,
                contact_preference=contact_preference,
            )
        else:
            given = [
                n
                for n, v in (
                    ("sender_account", sender_account),
                    ("sender_name", sender_name),
                    ("sender_email", sender_email),
                )
                if v is not None
            ]
            if given:
                raise ArgumentError(
                    ", ".join(given), f"only for action_type subscribe; leave out for {action_type}"
                )
        verbs = {
            "subscribe": f"subscribe contacts of {{}} to {seq_name}",
            "pause": f"pause {seq_name} for {{}}",
            "resume": f"resume {seq_name} for {{}}",
            "resume_finished": f"resume finished {seq_name} for {{}}",
        }
        request = await _selection_request(
            call,
            chosen,
            tool="create_bulk_sequence_subscription",
            action="sequences",
            kind="sequence_subscription",
            fields=fields,
            describe=lambda n: "Bulk sequence: " + verbs[action_type].format(_leads(n)),
            audit=runtime.audit,
        )
        if action_type == "subscribe" and request.matched:
            taken = await subscribed_contacts(call.client, fields["sequence_id"])
            reach = await count_reach(call.client, request, contact_preference, taken)
            request.notes.insert(0, sequence_note(reach, request.matched, contact_preference))
            request.summary = (
                f"Bulk sequence: subscribe {reach.recipients} contacts of "
                f"{_leads(request.matched)} to {seq_name}"
            )
        return request

    confirm_sequence = confirmer(runtime, prepare_sequence)

    async def create_bulk_sequence_subscription(
        ctx: Context,
        request: Annotated[WriteRequest, Resolve(prepare_sequence)],
        answer: Annotated[ElicitationResult[Any], Resolve(confirm_sequence)],
        action_type: ActionTypeArg,
        sequence: SequenceArg = None,
        all_sequences: AllSequencesArg = False,
        sender_account: SenderAccountArg = None,
        sender_name: SenderNameArg = None,
        sender_email: SenderEmailArg = None,
        contact_preference: SequenceContactsArg = "lead",
        filter: FilterArg = None,
        s_query: SQueryArg = None,
        results_limit: ResultsLimitArg = None,
        sort: SortArg = None,
        allow_all_leads: AllLeadsArg = False,
        send_done_email: SendDoneEmailArg = True,
        dry_run: DryRunArg = False,
        confirmation_token: TokenArg = None,
    ) -> WriteResult:
        return await run_write(
            runtime, ctx, request, answer, dry_run=dry_run, token=confirmation_token
        )

    reg.add(
        create_bulk_sequence_subscription,
        name="create_bulk_sequence_subscription",
        toolset="sequences",
        title="Bulk sequence subscriptions",
        description="Subscribe the contacts of a selection to a sequence (which then emails "
        "them), or pause or resume their subscriptions, as one Close bulk job.",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )

    # -- delete ------------------------------------------------------------------------

    @tool_errors
    async def prepare_delete(
        ctx: Context,
        chosen: ChosenArg,
    ) -> WriteRequest:
        call = runtime.call(ctx.headers)
        request = await _selection_request(
            call,
            chosen,
            tool="create_bulk_delete",
            action="delete",
            kind="delete",
            fields={},
            describe=lambda n: f"Bulk delete: permanently delete {_leads(n)}",
            audit=runtime.audit,
        )

        async def custom_field_ids() -> list[str]:
            return [cf.id for cf in await call.catalog.custom_fields()]

        backup = BackupBeforeDelete(
            runtime.settings, runtime.clock, call.client, runtime.store, custom_field_ids
        )
        return backup.prepare(request).attach(request)

    confirm_delete = confirmer(runtime, prepare_delete)

    async def create_bulk_delete(
        ctx: Context,
        request: Annotated[WriteRequest, Resolve(prepare_delete)],
        answer: Annotated[ElicitationResult[Any], Resolve(confirm_delete)],
        filter: FilterArg = None,
        s_query: SQueryArg = None,
        results_limit: ResultsLimitArg = None,
        sort: SortArg = None,
        allow_all_leads: AllLeadsArg = False,
        send_done_email: SendDoneEmailArg = True,
        dry_run: DryRunArg = False,
        confirmation_token: TokenArg = None,
    ) -> WriteResult:
        return await run_write(
            runtime, ctx, request, answer, dry_run=dry_run, token=confirmation_token
        )

    reg.add(
        create_bulk_delete,
        name="create_bulk_delete",
        toolset="delete",
        title="Bulk delete leads",
        description="Permanently delete the leads of a selection, with their contacts and "
        "activities (one Close bulk job). Always confirmed.",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
