"""`prepare_edit` as a plain function: the exact bulk-edit request it works out for a
selection, without a server or a client in between (the sandbox answers over HTTP)."""

import pytest

from close_mcp.clock import FakeClock
from close_mcp.config import load_settings
from close_mcp.errors import ArgumentError
from close_mcp.sandbox import Sandbox
from close_mcp.server.runtime import Runtime
from close_mcp.server.tools.bulk_edit import (
    EditArguments,
    SetCustomField,
    SetLeadStatus,
    prepare_edit,
)
from close_mcp.server.tools.declare import Invocation
from tests.ids import field_id, status_id
from tests.queries import status_query

pytestmark = pytest.mark.anyio


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(n_leads=30, clock=FakeClock())


@pytest.fixture
async def invocation(sandbox: Sandbox) -> Invocation:
    env = {"CLOSE_MCP_SECRET": "test-secret-0123456789abcdef", "CLOSE_MCP_TIMEZONE": "UTC"}
    runtime = Runtime(load_settings(env, sandbox=True, audit_log="off"), sandbox=sandbox)
    return Invocation(runtime)


async def test_a_status_edit_names_the_status_id_and_the_selection(
    invocation: Invocation, sandbox: Sandbox
) -> None:
    args = EditArguments(
        edit=SetLeadStatus(type="set_lead_status", lead_status="Qualified"),
        filter={"lead_status": "Potential"},
    )
    request = await prepare_edit(invocation, args)
    assert request.path == "bulk_action/edit/"
    assert request.body == {
        "s_query": status_query(status_id(sandbox, "Potential")),
        "send_done_email": True,
        "type": "set_lead_status",
        "lead_status_id": status_id(sandbox, "Qualified"),
    }
    potential = status_id(sandbox, "Potential")
    assert request.matched == sum(
        1 for lead in sandbox.store.leads.values() if lead.status_id == potential
    )
    assert request.summary == f"Bulk edit: set the status to 'Qualified' on {request.matched} leads"


async def test_a_single_value_field_refuses_a_list_of_values(
    invocation: Invocation, sandbox: Sandbox
) -> None:
    args = EditArguments(
        edit=SetCustomField(type="set_custom_field", custom_field="Deal Size", values=["1"]),
        filter={"lead_status": "Potential"},
    )
    with pytest.raises(ArgumentError, match=r"^edit.values: 'Deal Size' holds one value"):
        await prepare_edit(invocation, args)
    assert field_id(sandbox, "Deal Size").startswith("cf_")
    assert sandbox.writes() == []
