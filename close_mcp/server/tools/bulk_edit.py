"""`create_bulk_edit` (toolset `edit`): set the lead status, or set or clear a custom field,
on the leads of a selection, as one Close bulk job; a snapshot of the old values is taken
first (`revert_bulk_edit` puts them back)."""

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from close_mcp.close.catalog import Catalog, CustomField
from close_mcp.close.jobs import job_echo
from close_mcp.errors import ArgumentError
from close_mcp.safety.snapshot_writer import SnapshotBeforeEdit
from close_mcp.selection.values import check_custom_value
from close_mcp.server.tools.bulk import selection_request
from close_mcp.server.tools.declare import CHANGES, Invocation, WriteTool
from close_mcp.server.tools.selection import BulkSelection
from close_mcp.wording import leads
from close_mcp.writes.request import WriteRequest


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


class EditArguments(BulkSelection):
    edit: Annotated[EditSpec, Field(description="What to change.")]


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


async def prepare_edit(invocation: Invocation, args: EditArguments) -> WriteRequest:
    runtime, call = invocation.runtime, invocation.call
    fields, what, field_name = await _edit_fields(args.edit, call.catalog)
    request = await selection_request(
        invocation,
        args,
        tool="create_bulk_edit",
        action="edit",
        kind="edit",
        fields=fields,
        describe=lambda n: f"Bulk edit: {what} on {leads(n)}",
    )
    request = replace(request, echo=job_echo("edit", request.body, custom_field_name=field_name))
    snapshot = SnapshotBeforeEdit(runtime.settings, runtime.clock, call.client, runtime.store)
    return snapshot.prepare(request).attach(request)


TOOLS = (
    WriteTool(
        name="create_bulk_edit",
        toolset="edit",
        title="Bulk edit leads",
        description="Set the lead status, or set or clear a custom field, on the leads of a "
        "selection (one Close bulk job). Undo: revert_bulk_edit.",
        annotations=CHANGES,
        arguments=EditArguments,
        prepare=prepare_edit,
    ),
)
