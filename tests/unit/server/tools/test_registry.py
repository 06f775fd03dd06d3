"""Adding a write tool is adding one module, and nothing else (issue 24).

The checkout's `close_mcp` package is copied, one new module declaring a small write tool is
put into the copy's `server/tools/`, and nothing else in the copy changes (checked byte for
byte). A real `close-mcp serve --sandbox` process started from the copy then lists the tool
and runs it through the write pipeline: a preview with a token first, the token refused for
other leads or another tool, exactly one bulk job for it, refused when used again, and the
tool not registered in read-only mode. A change that made a new tool need a line elsewhere
(a list of names, a table, a schema file read at start) fails here.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

import close_mcp
from tests.harness import Mode
from tests.processes import child_env

pytestmark = pytest.mark.anyio

DEADLINE_S: Final = 30.0  # for each answer
SESSION_S: Final = 60.0  # for a whole session, its start and end included
NAME: Final = "mark_leads_qualified"
# The whole new module, kept beside this test as a module ruff checks: the public declaration
# API, and the helpers bulk_edit.py uses.
MODULE: Final = Path(__file__).with_name("new_write_tool.py")
# The child says which close_mcp it imported (on stderr: stdout is the protocol), then runs
# `python -m close_mcp` as the console script would.
LAUNCH: Final = (
    "import runpy, sys, close_mcp; "
    "print('close_mcp from', close_mcp.__file__, file=sys.stderr, flush=True); "
    "runpy.run_module('close_mcp', run_name='__main__', alter_sys=True)"
)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding a copy of the checkout's `close_mcp` with the one new module."""
    original = Path(close_mcp.__file__).resolve().parent
    root = tmp_path_factory.mktemp("copy")
    package = root / "close_mcp"
    shutil.copytree(original, package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(MODULE, package / "server" / "tools" / f"{NAME}.py")
    return root


def test_the_copy_differs_from_the_checkout_by_the_one_new_module(copy: Path) -> None:
    original = _files(Path(close_mcp.__file__).resolve().parent)
    copied = _files(copy / "close_mcp")
    new = f"server/tools/{NAME}.py"
    assert set(copied) - set(original) == {new}
    assert {path: data for path, data in copied.items() if path != new} == original


@asynccontextmanager
async def _served(copy: Path, errlog: Path, mode: Mode, **env: str) -> AsyncIterator[Client]:
    """A `close-mcp serve --sandbox` process run from the copy, as an MCP client's session.
    Its working directory is the copy's folder, so the checkout cannot shadow the copy."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", LAUNCH, "serve", "--sandbox"],
        env={
            **child_env(copy / "home"),
            "PYTHONPATH": str(copy),
            "PYTHONDONTWRITEBYTECODE": "1",
            **env,
        },
        cwd=copy,
    )
    with errlog.open("w", encoding="utf-8") as err, anyio.fail_after(SESSION_S):
        async with Client(stdio_client(params, errlog=err), mode=mode) as client:
            yield client
    first = (await anyio.Path(errlog).read_text(encoding="utf-8")).splitlines()[0]
    assert first == f"close_mcp from {copy / 'close_mcp' / '__init__.py'}"


async def _tools(client: Client) -> dict[str, types.Tool]:
    with anyio.fail_after(DEADLINE_S):
        return {tool.name: tool for tool in (await client.list_tools()).tools}


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
    with anyio.fail_after(DEADLINE_S):
        return await client.call_tool(tool, arguments)


def _content(result: types.CallToolResult) -> dict[str, Any]:
    """A tool's structured answer. Checked after the session ends: an assertion raised in it
    would reach pytest inside an exception group."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_a_write_tool_in_a_new_module_is_listed_confirmed_and_sent_once(
    copy: Path, tmp_path: Path
) -> None:
    potential = {"filter": {"lead_status": "Potential"}}
    qualified_leads = {"filter": {"lead_status": "Qualified"}, "sample_size": 1}
    async with _served(copy, tmp_path / "stderr.txt", "auto") as client:
        tools = await _tools(client)
        searched = await _call(client, "search_leads", {**potential, "sample_size": 5})
        qualified_search = await _call(client, "search_leads", qualified_leads)
        previewed = await _call(client, NAME, potential)
        jobs_before = await _call(client, "list_bulk_jobs", {"kind": "edit"})
        token = (previewed.structured_content or {}).get("confirmation_token")
        other_leads = await _call(
            client, NAME, {"filter": {"lead_status": "Customer"}, "confirmation_token": token}
        )
        other_tool = await _call(
            client,
            "create_bulk_edit",
            {
                **potential,
                "edit": {"type": "set_lead_status", "lead_status": "Qualified"},
                "confirmation_token": token,
            },
        )
        jobs_between = await _call(client, "list_bulk_jobs", {"kind": "edit"})
        confirmed = await _call(client, NAME, {**potential, "confirmation_token": token})
        replayed = await _call(client, NAME, {**potential, "confirmation_token": token})
        jobs_after = await _call(client, "list_bulk_jobs", {"kind": "edit"})
    found, qualified = _content(searched), _content(qualified_search)
    first, before = _content(previewed), _content(jobs_before)
    sent, again, after = _content(confirmed), _content(replayed), _content(jobs_after)
    elsewhere, by_other_tool = _content(other_leads), _content(other_tool)
    between = _content(jobs_between)

    # Listed as declared; its arguments (the shared selection) listed as create_bulk_delete,
    # which declares the same model, lists them.
    assert NAME in tools
    tool, delete = tools[NAME], tools["create_bulk_delete"]
    assert (tool.title, tool.meta) == ("Mark leads qualified", {"toolset": "edit"})
    assert tool.annotations == tools["create_bulk_edit"].annotations
    assert tool.annotations is not None
    assert tool.annotations.destructive_hint is True
    assert tool.input_schema == delete.input_schema
    assert set(tool.input_schema["properties"]) == {
        "selection", "s_query", "allow_all_leads", "send_done_email", "dry_run",
        "confirmation_token",
    }  # fmt: skip
    assert tool.output_schema == delete.output_schema

    # Without a token: a preview naming the count, and a token; nothing sent.
    (qualified_id,) = qualified["s_query"]["queries"][1]["condition"]["object_ids"]
    body = {
        "s_query": found["s_query"],
        "send_done_email": True,
        "type": "set_lead_status",
        "lead_status_id": qualified_id,
    }
    n = found["total"]
    assert 0 < n < 1000
    assert first["status"] == "confirmation_required"
    assert first["message"] == (
        f"Mark {n} leads as 'Qualified'. Show this preview to the user; if they agree, call "
        f"{NAME} again with the same arguments and confirmation_token."
    )
    assert {k: first["preview"][k] for k in ("path", "request", "matched", "sample")} == {
        "path": "/bulk_action/edit/",
        "request": body,
        "matched": n,
        "sample": found["sample"],
    }
    assert before == {"jobs": [], "has_more": False, "complete": True}

    # The token is bound to this tool and these arguments: other leads, or another tool
    # sending the very same body, are refused with a fresh preview, and nothing is sent.
    assert (elsewhere["status"], elsewhere["reason"]) == (
        "refused",
        "the confirmation token was issued for different arguments; confirm the new preview "
        "instead",
    )
    assert elsewhere["confirmation_token"] not in (None, token)
    assert (by_other_tool["status"], by_other_tool["reason"]) == (
        "refused",
        f"the confirmation token was issued for {NAME!r}",
    )
    assert by_other_tool["preview"]["request"] == body
    assert between == before

    # With the token: exactly one bulk edit job, the one the answer names.
    assert sent["status"] == "submitted"
    assert sent["preview"]["request"] == body
    job = sent["job"]
    assert (job["kind"], job["details"]) == (
        "edit",
        {"type": "set_lead_status", "lead_status_id": qualified_id},
    )
    assert after == {"jobs": [job], "has_more": False, "complete": True}

    # The same token again: refused, nothing sent.
    assert (again["status"], again["reason"], again["job"]) == (
        "refused",
        "the confirmation token was already used",
        None,
    )


async def test_in_read_only_mode_the_new_write_tool_is_not_registered(
    copy: Path, tmp_path: Path
) -> None:
    errlog = tmp_path / "stderr.txt"
    async with _served(copy, errlog, "legacy", CLOSE_MCP_READ_ONLY="true") as client:
        tools = await _tools(client)
        with anyio.fail_after(DEADLINE_S):
            refused = await client.call_tool(NAME, {"filter": {"lead_status": "Potential"}})
    assert "search_leads" in tools
    assert NAME not in tools
    assert all(t.annotations and t.annotations.read_only_hint for t in tools.values())
    assert refused.is_error
