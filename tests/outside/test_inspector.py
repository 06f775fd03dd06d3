"""The MCP Inspector CLI (npm, pinned) as an outside client of close-mcp.

Over stdio it launches `python -m close_mcp serve --sandbox` itself, exactly as a desktop client
does; over HTTP it talks to `serve --transport http`. Skips only when npm cannot be reached.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.outside.conftest import server_env
from tests.outside.toolcache import NpmTools
from tests.served import default_tools

pytestmark = pytest.mark.slow

SERVE = [sys.executable, "-m", "close_mcp", "serve", "--sandbox"]
TIMEOUT_S = 120
INSPECTOR_TOOL_ERROR_EXIT = 5  # the Inspector's exit code when a tool answers isError


def schema_tool_names() -> set[str]:
    """What a server with the default settings lists."""
    return set(default_tools())


def inspect(
    npm: NpmTools, tmp_path: Path, target: list[str], *args: str, expect_rc: int = 0
) -> Any:
    done = subprocess.run(
        [*npm.inspector, *target, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=server_env(tmp_path),
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == expect_rc, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def test_tools_list_over_stdio(npm: NpmTools, tmp_path: Path) -> None:
    listed = inspect(npm, tmp_path, SERVE, "--method", "tools/list")
    tools = {tool["name"]: tool for tool in listed["tools"]}
    assert set(tools) == schema_tool_names()
    for tool in tools.values():
        assert tool["description"], tool["name"]
        assert tool["inputSchema"]["type"] == "object", tool["name"]
        assert "outputSchema" in tool, tool["name"]
        hints = tool["annotations"]
        for hint in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
            assert isinstance(hints.get(hint), bool), (tool["name"], hint)
    assert tools["search_leads"]["annotations"]["readOnlyHint"] is True
    assert tools["create_bulk_delete"]["annotations"]["destructiveHint"] is True


def test_read_tool_call_over_stdio(npm: NpmTools, tmp_path: Path) -> None:
    args = ["--method", "tools/call", "--tool-name", "lookup", "--tool-arg", "kind=lead_statuses"]
    result = inspect(npm, tmp_path, SERVE, *args)
    assert result.get("isError") in (None, False)
    names = [item["name"] for item in result["structuredContent"]["items"]]
    assert "Potential" in names
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]


def test_bad_argument_is_a_tool_error(npm: NpmTools, tmp_path: Path) -> None:
    args = ["--method", "tools/call", "--tool-name", "lookup", "--tool-arg", "kind=bogus"]
    result = inspect(npm, tmp_path, SERVE, *args, expect_rc=INSPECTOR_TOOL_ERROR_EXIT)
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "kind" in text
    assert "lead_statuses" in text  # names what is allowed


def test_read_only_hides_write_tools(npm: NpmTools, tmp_path: Path) -> None:
    listed = inspect(npm, tmp_path, [*SERVE, "--read-only"], "--method", "tools/list")
    names = {tool["name"] for tool in listed["tools"]}
    assert "search_leads" in names
    assert not {name for name in names if name.startswith("create_")}
    for tool in listed["tools"]:
        assert tool["annotations"]["readOnlyHint"] is True, tool["name"]


def test_tools_list_and_call_over_http(npm: NpmTools, tmp_path: Path, http_server: str) -> None:
    listed = inspect(npm, tmp_path, [http_server], "--method", "tools/list")
    assert {tool["name"] for tool in listed["tools"]} == schema_tool_names()
    args = ["--method", "tools/call", "--tool-name", "search_leads"]
    result = inspect(
        npm, tmp_path, [http_server], *args, "--tool-arg", 'filter={"lead_status": "Potential"}'
    )
    assert result["structuredContent"]["total"] > 0
