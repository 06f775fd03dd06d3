"""Release metadata (release/check.py, which .ci/release runs first): it passes on the repository
as it is, and each thing it guards, broken in a copy, fails it with a line saying what.

The check runs as a real process on a copy of the files it reads, so a broken copy never
touches the checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from close_mcp import __version__

REPO = Path(__file__).resolve().parents[1]
READS = ("release", "server.json", "pyproject.toml", "README.md", "close_mcp/__init__.py")


def run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "release" / "check.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for name in READS:
        source, target = REPO / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    shutil.copytree(REPO / "tool_schemas", tmp_path / "tool_schemas")
    return tmp_path


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def test_the_repository_passes() -> None:
    done = run_check(REPO)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout == (
        f"release metadata ok: version {__version__} everywhere; server.json valid against the "
        "registry schema 2025-12-11 (sha256 3fba09590c99...); bundle manifest sound\n"
    )


def test_server_json_describes_the_pypi_package_over_stdio_with_a_secret_key() -> None:
    server = json.loads((REPO / "server.json").read_text())
    [package] = server["packages"]
    assert (package["registryType"], package["identifier"], package["version"]) == (
        "pypi",
        "close-mcp",
        __version__,
    )
    assert package["transport"] == {"type": "stdio"}
    variables = {item["name"]: item for item in package["environmentVariables"]}
    assert variables["CLOSE_API_KEY"]["isSecret"] is True
    assert not any(
        item.get("isSecret") for name, item in variables.items() if name != "CLOSE_API_KEY"
    )


def _set(path: list[str | int], value: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return change


BROKEN = {
    "version": (
        "server.json",
        _set(["packages", 0, "version"], "9.9.9"),
        "server.json packages[0].version is '9.9.9', not '" + __version__ + "'",
    ),
    "secret": (
        "server.json",
        _set(["packages", 0, "environmentVariables", 0, "isSecret"], False),
        "server.json: CLOSE_API_KEY must be required and isSecret",
    ),
    "schema": (
        "server.json",
        _set(["description"], "x" * 101),
        "server.json description: '" + "x" * 101 + "' is too long",
    ),
    "sensitive": (
        "release/mcpb/manifest.json",
        _set(["user_config", "api_key", "sensitive"], False),
        "manifest.json: user_config.api_key must be required and sensitive",
    ),
    "undeclared": (
        "release/mcpb/manifest.json",
        _set(["server", "mcp_config", "env", "CLOSE_MCP_CONFIRM"], "${user_config.confirm}"),
        "manifest.json: ${user_config.confirm} is not declared in user_config",
    ),
    "manifest-version": (
        "release/mcpb/manifest.json",
        _set(["version"], "0.0.1"),
        "release/mcpb/manifest.json version is '0.0.1', not '" + __version__ + "'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_guard_fails_with_a_line_saying_what(copy: Path, case: str) -> None:
    name, change, line = BROKEN[case]
    edit_json(copy / name, change)
    done = run_check(copy)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"release/check.py: {line}"]


def test_a_changed_schema_file_is_refused(copy: Path) -> None:
    schema = copy / "release" / "registry" / "server.schema.json"
    schema.write_bytes(schema.read_bytes().replace(b'"maxLength": 100', b'"maxLength": 1000'))
    done = run_check(copy)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "release/check.py: server.schema.json: sha256 is not the pinned "
        "3fba09590c99f61735d234822279f4223fab9e300c0a81e81c91ab62a4114de0"
    ]


def test_the_version_has_one_source() -> None:
    """pyproject reads it from close_mcp/__init__.py; the CLI prints the same."""
    done = subprocess.run(
        [sys.executable, "-m", "close_mcp", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout == f"close-mcp {__version__}\n"
    assert 'dynamic = ["version"]' in (REPO / "pyproject.toml").read_text()
