"""Resources and prompts through the MCP client, in both eras."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError, types
from mcp.client import Client

from close_mcp.config import load_settings
from close_mcp.sandbox import Sandbox
from close_mcp.selection.grammar import SQUERY_SCHEMA
from close_mcp.server.app import build_server
from close_mcp.server.runtime import Runtime
from tests.harness import MODES, Harness, StartHarness, run_to_done

API = "/api/v1/"

pytestmark = pytest.mark.anyio


def _text(result: types.ReadResourceResult) -> str:
    (content,) = result.contents
    assert isinstance(content, types.TextResourceContents)
    return content.text


async def _confirmed_edit(h: Harness) -> dict[str, Any]:
    """Every Qualified lead made a Customer, confirmed (an edit is confirmed by default)."""
    args = {
        "filter": {"lead_status": "Qualified"},
        "edit": {"type": "set_lead_status", "lead_status": "Customer"},
    }
    first = await h.call("create_bulk_edit", args)
    token = first["confirmation_token"]
    submitted = await h.call("create_bulk_edit", {**args, "confirmation_token": token})
    assert submitted["status"] == "submitted"
    return submitted


@pytest.mark.parametrize("mode", MODES)
async def test_squery_schema_resource(h: Harness) -> None:
    listed = await h.client.list_resources()
    assert [(r.uri, r.mime_type) for r in listed.resources] == [
        ("close://schemas/s_query", "application/schema+json")
    ]
    schema = json.loads(_text(await h.client.read_resource("close://schemas/s_query")))
    assert schema == SQUERY_SCHEMA


@pytest.mark.parametrize("mode", MODES)
async def test_bulk_job_resource_template(h: Harness) -> None:
    templates = await h.client.list_resource_templates()
    assert [t.uri_template for t in templates.resource_templates] == [
        "close://bulk-jobs/{id}",
        "close://reverts/{job_id}",
        "close://id-lists/{sha256}",
    ]
    submitted = await _confirmed_edit(h)
    job_id = submitted["job"]["id"]
    job = json.loads(_text(await h.client.read_resource(f"close://bulk-jobs/{job_id}")))
    assert job["id"] == job_id
    assert job["kind"] == "edit"
    assert job["s_query"] == submitted["preview"]["request"]["s_query"]


async def test_bulk_job_resource_rejects_unknown_ids(h: Harness) -> None:
    with pytest.raises(Exception, match="is not a Close bulk job id"):
        await h.client.read_resource("close://bulk-jobs/lead_abc")


@pytest.mark.harness(toolsets="search")
async def test_jobs_template_follows_toolsets(h: Harness) -> None:
    templates = await h.client.list_resource_templates()
    # Every result may shorten an id list (issue 26): its whole list is always readable.
    assert [t.uri_template for t in templates.resource_templates] == ["close://id-lists/{sha256}"]


@pytest.mark.harness(read_only=True)
async def test_revert_plans_are_not_offered_read_only(h: Harness) -> None:
    templates = await h.client.list_resource_templates()
    assert [t.uri_template for t in templates.resource_templates] == [
        "close://bulk-jobs/{id}",
        "close://id-lists/{sha256}",
    ]


async def test_revert_plan_resource_of_an_edit_never_reverted_and_of_a_non_edit(h: Harness) -> None:
    with pytest.raises(MCPError, match="'bulkdelete_abc' is not a bulk edit id"):
        await h.client.read_resource("close://reverts/bulkdelete_abc")
    with pytest.raises(MCPError, match="is not a bulk job id"):
        await h.client.read_resource("close://reverts/bulkedit_a:b")
    assert h.sandbox.requests == []
    # An edit Close does not know: refused (whatever the store holds).
    with pytest.raises(MCPError, match="Close does not show the bulk edit bulkedit_abc"):
        await h.client.read_resource("close://reverts/bulkedit_abc")
    # An edit never reverted: its document, with no plan yet.
    job_id = (await _confirmed_edit(h))["job"]["id"]
    plan = json.loads(_text(await h.client.read_resource(f"close://reverts/{job_id}")))
    assert plan == {"job_id": job_id, "plan": None, "sent": []}


@pytest.mark.parametrize("mode", MODES)
async def test_safe_cleanup_prompt(h: Harness) -> None:
    prompts = await h.client.list_prompts()
    assert [p.name for p in prompts.prompts] == ["safe_bulk_cleanup"]
    got = await h.client.get_prompt("safe_bulk_cleanup", {"goal": "remove duplicate leads"})
    (message,) = got.messages
    assert isinstance(message.content, types.TextContent)
    text = message.content.text
    assert text.startswith("Help me clean up leads in Close safely: remove duplicate leads")
    assert "dry_run true" in text
    assert "Never invent or reuse a token." in text


async def test_bulk_job_resource_without_any_key_is_a_clear_error() -> None:
    sandbox = Sandbox(n_leads=5)
    runtime = Runtime(
        load_settings({}, key_per_request=True, audit_log="off"), transport=sandbox.transport()
    )
    async with Client(build_server(runtime)) as client:
        with pytest.raises(MCPError, match="No Close API key"):
            await client.read_resource("close://bulk-jobs/bulkedit_abc")
    assert sandbox.requests == []


async def test_a_revert_plan_is_read_only_with_a_key_close_shows_the_edit_to(
    tmp_path: Path, start_harness: StartHarness
) -> None:
    """The plan holds lead ids, old values and request bodies. Servers sharing one store
    (replicas of a team) read it only for a caller whose key Close shows the edit to: not
    for a key Close rejects, nor for a key of another organization."""
    store = {"CLOSE_MCP_STORE": str(tmp_path / "state.sqlite3")}
    owner = await start_harness(env=store)
    job_id = (await _confirmed_edit(owner))["job"]["id"]
    await run_to_done(owner, job_id)
    await owner.call("revert_bulk_edit", {"job_id": job_id, "dry_run": True})
    uri = f"close://reverts/{job_id}"
    plan = json.loads(_text(await owner.client.read_resource(uri)))
    assert plan["plan"]["requests"], plan  # the owner reads the whole plan
    reverted = re.findall(r"lead_[A-Za-z0-9]+", json.dumps(plan["plan"]))
    assert reverted

    rejected = await start_harness(
        env={**store, "CLOSE_API_KEY": "api_revoked_0123456789"},
        sandbox=owner.sandbox,
        clock=owner.clock,
    )
    other_org = Sandbox(n_leads=20, seed=99, api_key="api_other_org_012345", clock=owner.clock)
    stranger = await start_harness(
        env={**store, "CLOSE_API_KEY": "api_other_org_012345"}, sandbox=other_org
    )
    for caller, why in ((rejected, "401"), (stranger, "404")):
        with pytest.raises(MCPError) as refused:
            await caller.client.read_resource(uri)
        message = str(refused.value)
        assert f"Close does not show the bulk edit {job_id} to this API key" in message, why
        assert not [i for i in reverted if i in message], why
    # Each refusal asked Close about the job with the caller's own key, and read nothing else.
    asked = [r for r in owner.sandbox.requests if r.path.endswith(f"bulk_action/edit/{job_id}/")]
    assert asked[-1].status == 401
    assert [(r.method, r.path.removeprefix(API), r.status) for r in other_org.requests] == [
        ("GET", f"bulk_action/edit/{job_id}/", 404)
    ]
