"""The desktop extension (release/mcpb): packed with the pinned mcpb CLI, unpacked, and started
exactly as its manifest's launch configuration says, the user's settings substituted the way a
host does (`${__dirname}`, `${user_config.NAME}`, booleans as true/false); then its tools are
listed over stdio.

The launch is `uv run` in the unpacked bundle, which installs the wheel the bundle carries and
its dependencies from PyPI (uv's cache makes a second run quick). Without npm or PyPI this
skips on a developer's machine and fails in CI, like the other outside clients.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.outside.toolcache import InstallFailed, Unavailable, in_ci, mcpb_cli
from tests.served import default_tools, every_tool

REPO = Path(__file__).resolve().parents[2]
TOOLS = every_tool()
DEFAULT_TOOLS = default_tools()  # what the bundle serves with its default settings
READ_TOOLS = [
    "get_bulk_job",
    "get_lead",
    "list_bulk_jobs",
    "list_emails",
    "lookup",
    "search_leads",
    "wait_for_bulk_job",
]
STEP_TIMEOUT_S = 300


def need(what: str, exc: Exception) -> None:
    if in_ci() or isinstance(exc, InstallFailed):
        pytest.fail(f"{what}: {exc}", pytrace=False)
    pytest.skip(f"{what}: {exc}")


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        need("uv", Unavailable("uv is not installed (pip install -e '.[test]' brings it)"))
    assert found is not None
    return found


def step(argv: list[str], what: str, **kwargs: Any) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False, **kwargs
    )
    if done.returncode != 0:
        output = f"{done.stdout}\n{done.stderr}"
        if any(sign in output for sign in ("Failed to fetch", "dns error", "Connection refused")):
            need(what, Unavailable(output.strip()[-400:]))
        raise AssertionError(f"{what} failed ({done.returncode}):\n{output[-3000:]}")
    return done.stdout


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle as .ci/release makes it (release/mcpb with the wheel in server/), packed,
    then unpacked into a folder of its own."""
    try:
        mcpb = mcpb_cli()
    except (Unavailable, InstallFailed) as exc:
        need("the mcpb CLI", exc)
    tmp = tmp_path_factory.mktemp("bundle")
    step([uv(), "build", "--wheel", "--out-dir", str(tmp / "dist"), str(REPO)], "uv build")
    stage = tmp / "stage"
    shutil.copytree(REPO / "release" / "mcpb", stage)
    (wheel,) = (tmp / "dist").glob("close_mcp-*.whl")
    shutil.copy(wheel, stage / "server")
    step([*mcpb, "pack", str(stage), str(tmp / "close-mcp.mcpb")], "mcpb pack")
    step([*mcpb, "unpack", str(tmp / "close-mcp.mcpb"), str(tmp / "unpacked")], "mcpb unpack")
    return tmp / "unpacked"


def substitute(value: str, bundle: Path, settings: dict[str, Any]) -> str:
    """A host's substitution in the launch configuration."""

    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name == "__dirname":
            return str(bundle)
        setting = settings[name.removeprefix("user_config.")]
        return ("true" if setting else "false") if isinstance(setting, bool) else str(setting)

    return re.sub(r"\$\{([\w.]+)\}", one, value)


def launch(bundle: Path, chosen: dict[str, Any], home: Path) -> StdioServerParameters:
    manifest = json.loads((bundle / "manifest.json").read_text())
    settings = {
        name: chosen.get(name, spec.get("default"))
        for name, spec in manifest["user_config"].items()
    }
    config = manifest["server"]["mcp_config"]
    # The host's own environment (proxies, certificates), without any Close setting of the
    # developer's, and with uv on PATH.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOSE_API", "CLOSE_MCP"))}
    env.update(
        PATH=f"{Path(uv()).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        HOME=str(home),  # no audit file in the developer's state dir
        XDG_STATE_HOME=str(home / "state"),
        UV_PYTHON_DOWNLOADS="never",  # the machine's Python 3.11+, as the manifest allows
    )
    # uv's own cache, not the throwaway HOME's, so a second launch installs nothing again
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"
    env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR") or str(cache)
    env.update({k: substitute(v, bundle, settings) for k, v in config.get("env", {}).items()})
    return StdioServerParameters(
        command=substitute(config["command"], bundle, settings),
        args=[substitute(arg, bundle, settings) for arg in config.get("args", [])],
        env=env,
        cwd=str(home),
    )


async def listed(params: StdioServerParameters) -> list[str]:
    async with Client(params) as client:
        return sorted(tool.name for tool in (await client.list_tools()).tools)


@pytest.mark.anyio
async def test_the_unpacked_bundle_starts_as_its_manifest_says_and_lists_its_tools(
    unpacked: Path, tmp_path: Path
) -> None:
    manifest = json.loads((unpacked / "manifest.json").read_text())
    assert manifest["user_config"]["api_key"]["sensitive"] is True
    assert sorted(tool["name"] for tool in manifest["tools"]) == TOOLS
    params = launch(unpacked, {"api_key": "api_bundle_test_key"}, tmp_path)
    assert params.env is not None
    assert params.env["CLOSE_API_KEY"] == "api_bundle_test_key"
    assert "api_bundle_test_key" not in params.args  # the key travels in the environment only
    assert await listed(params) == DEFAULT_TOOLS


SEARCH_AND_EDIT = [
    "create_bulk_edit",
    "get_lead",
    "list_emails",
    "lookup",
    "revert_bulk_edit",
    "search_leads",
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("chosen", "tools"),
    [({"read_only": True}, READ_TOOLS), ({"toolsets": "search,edit"}, SEARCH_AND_EDIT)],
    ids=["read-only", "toolsets"],
)
async def test_the_read_only_and_toolsets_settings_reach_the_server(
    unpacked: Path, tmp_path: Path, chosen: dict[str, Any], tools: list[str]
) -> None:
    params = launch(unpacked, {"api_key": "api_bundle_test_key", **chosen}, tmp_path)
    assert await listed(params) == tools


def test_the_time_zone_setting_reaches_the_server(unpacked: Path, tmp_path: Path) -> None:
    """A zone the server does not know stops it with its one line; a real one starts it."""

    def start(zone: str) -> subprocess.CompletedProcess[str]:
        params = launch(unpacked, {"api_key": "api_bundle_test_key", "timezone": zone}, tmp_path)
        return subprocess.run(
            [params.command, *params.args],
            env=params.env,
            cwd=params.cwd,
            stdin=subprocess.DEVNULL,  # EOF: a server that started ends at once
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )

    good, bad = start("America/New_York"), start("Mars/Olympus_Mons")
    assert good.returncode == 0, good.stderr
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1].startswith(
        "close-mcp: error: CLOSE_MCP_TIMEZONE must be an IANA time zone"
    ), bad.stderr
