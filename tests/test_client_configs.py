"""Every client config in examples/ and README's first one start a server that lists its tools.

The configs are written for a checkout's virtual environment (close-mcp is not on PyPI yet):
`/ABSOLUTE/PATH/TO/close-mcp` is replaced by this checkout and its venv, the key placeholder or
the client's variable by a test key, and each server is launched with its own command, args
and env, over stdio, as the client would. The one `uvx --from` server runs through uv, which
installs the checkout and its dependencies (PyPI, or uv's cache): without them it skips on a
developer's machine and fails in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.outside.toolcache import Unavailable, in_ci, switched_off
from tests.served import default_tools

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
PLACEHOLDER = "/ABSOLUTE/PATH/TO/close-mcp"
TOOLS = default_tools()  # what the configs start, with the default toolsets
TEST_KEY = "api_client_config_test_key"
READ_TOOLS = [
    "get_bulk_job",
    "get_lead",
    "list_bulk_jobs",
    "list_emails",
    "lookup",
    "search_leads",
    "wait_for_bulk_job",
]


def readme_first_config() -> dict[str, Any]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Connect a client") :]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None
    return dict(json.loads(block[1]))


def servers() -> list[tuple[str, dict[str, Any]]]:
    """Each distinct launch line (command, args, env names) once, named by every config that
    has it: most files share `serve` and `serve --sandbox`, and each start costs seconds."""
    found: dict[str, tuple[list[str], dict[str, Any]]] = {}

    def add(name: str, server: dict[str, Any]) -> None:
        line = json.dumps(
            [server["command"], server.get("args", []), sorted(server.get("env", {}))]
        )
        found.setdefault(line, ([], server))[0].append(name)

    for name, server in readme_first_config()["mcpServers"].items():
        add(f"README/{name}", server)
    for path in sorted(EXAMPLES.rglob("*.json")):
        config = json.loads(path.read_text())
        for name, server in (config.get("mcpServers") or config["servers"]).items():
            add(f"{path.relative_to(EXAMPLES).as_posix()}/{name}", server)
    return [("+".join(names), server) for names, server in found.values()]


def local(server: dict[str, Any], home: Path) -> StdioServerParameters:
    """The server's launch line with the checkout's paths and a test key."""
    venv_bin = Path(sys.executable).parent
    command = str(server["command"])
    args = [str(arg).replace(PLACEHOLDER, str(REPO)) for arg in server.get("args", [])]
    if command == f"{PLACEHOLDER}/.venv/bin/close-mcp":
        command = str(venv_bin / "close-mcp")
    elif Path(command).name == "uvx":  # installs from PyPI: an outside tool
        try:
            switched_off()
        except Unavailable as exc:
            if in_ci():
                pytest.fail(f"{exc} (CI is set: the outside clients must run)", pytrace=False)
            pytest.skip(str(exc))
        uv = shutil.which("uv", path=str(venv_bin)) or shutil.which("uv")
        if uv is None:
            pytest.skip("uv is not installed (pip install -e '.[test]' brings it)")
        command, args = str(uv), ["tool", "run", *args]
    else:
        raise AssertionError(f"a launcher this test does not know: {command}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOSE_API", "CLOSE_MCP"))}
    env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"), UV_PYTHON_DOWNLOADS="never")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"
    env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR") or str(cache)
    for key, value in server.get("env", {}).items():
        env[key] = TEST_KEY if key == "CLOSE_API_KEY" else str(value)
    return StdioServerParameters(command=command, args=args, env=env, cwd=str(home))


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "server"), servers(), ids=[name for name, _ in servers()])
async def test_the_config_starts_a_server_that_lists_its_tools(
    name: str, server: dict[str, Any], tmp_path: Path
) -> None:
    assert str(server["command"]).startswith("/"), f"{name}: desktop apps need a full path"
    params = local(server, tmp_path)
    try:
        async with Client(params) as client:
            tools = (await client.list_tools()).tools
    except Exception as exc:  # uv could not install: a skip offline, a failure in CI
        if params.command.endswith("uv") and not in_ci():
            pytest.skip(f"{name}: uv could not run the checkout: {exc}")
        raise
    if "--read-only" in server.get("args", []):
        assert sorted(tool.name for tool in tools) == READ_TOOLS
    else:
        assert sorted(tool.name for tool in tools) == TOOLS
