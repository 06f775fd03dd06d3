"""Release metadata agrees with itself: one version, a valid server.json, a sound bundle manifest.

    python release/check.py

- The version: `close_mcp/__init__.py` (the one source; hatch reads it) equals `server.json`'s
  `version` and its PyPI package's, the bundle manifest's and the bundle's pyproject (its pin
  and the wheel it names).
- `server.json` validates against the MCP Registry's published schema, kept in
  `release/registry/` (see its README: where it comes from, its pinned sha256); the key is a
  secret; the name is the one README declares (`mcp-name:`, how the registry checks that the
  PyPI package is ours) and the repository is pyproject's.
- The bundle manifest (`release/mcpb/manifest.json`): the API key is a sensitive user setting;
  every `${user_config.X}` it uses is declared; its tools are the tools close-mcp has
  (`tool_schemas/`).

Prints one line per problem and exits 1, or one line saying what was checked.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "release" / "registry" / "server.schema.json"
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
SCHEMA_SHA256 = "3fba09590c99f61735d234822279f4223fab9e300c0a81e81c91ab62a4114de0"
BUNDLE = REPO / "release" / "mcpb"


def source_version() -> str:
    text = (REPO / "close_mcp" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if match is None:
        raise SystemExit("close_mcp/__init__.py has no __version__ line")
    return match[1]


def check() -> list[str]:
    problems: list[str] = []
    version = source_version()
    server: dict[str, Any] = json.loads((REPO / "server.json").read_text())
    manifest: dict[str, Any] = json.loads((BUNDLE / "manifest.json").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bundle_project = tomllib.loads((BUNDLE / "pyproject.toml").read_text())

    # One version everywhere.
    if project.get("dynamic") != ["version"] or "version" in project:
        problems.append("pyproject.toml: the version must be dynamic (read from close_mcp)")
    wheel = f"server/close_mcp-{version}-py3-none-any.whl"
    seen = {
        "server.json version": server.get("version"),
        "server.json packages[0].version": server["packages"][0].get("version"),
        "release/mcpb/manifest.json version": manifest.get("version"),
        "release/mcpb/pyproject.toml version": bundle_project["project"].get("version"),
        "release/mcpb/pyproject.toml dependency": bundle_project["project"]["dependencies"][0],
        "release/mcpb/pyproject.toml wheel": bundle_project["tool"]["uv"]["sources"]["close-mcp"][
            "path"
        ],
    }
    wanted = {
        "release/mcpb/pyproject.toml dependency": f"close-mcp=={version}",
        "release/mcpb/pyproject.toml wheel": wheel,
    }
    for where, value in seen.items():
        if value != wanted.get(where, version):
            problems.append(f"{where} is {value!r}, not {wanted.get(where, version)!r}")

    # server.json against the registry's schema, as published.
    raw_schema = SCHEMA.read_bytes()
    if hashlib.sha256(raw_schema).hexdigest() != SCHEMA_SHA256:
        problems.append(f"{SCHEMA.name}: sha256 is not the pinned {SCHEMA_SHA256}")
    schema = json.loads(raw_schema)
    if schema.get("$id") != SCHEMA_URL or server.get("$schema") != SCHEMA_URL:
        problems.append(f"server.json $schema and the kept schema's $id must be {SCHEMA_URL}")
    validator = Draft7Validator(schema, format_checker=FormatChecker())
    for error in sorted(validator.iter_errors(server), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        problems.append(f"server.json {where}: {error.message}")
    package = server["packages"][0]
    if (package.get("registryType"), package.get("identifier")) != ("pypi", project["name"]):
        problems.append(f"server.json packages[0] must be the PyPI package {project['name']}")
    if package.get("transport") != {"type": "stdio"}:
        problems.append("server.json packages[0].transport must be stdio")
    variables = {item["name"]: item for item in package.get("environmentVariables", [])}
    key = variables.get("CLOSE_API_KEY", {})
    if not (key.get("isSecret") is True and key.get("isRequired") is True):
        problems.append("server.json: CLOSE_API_KEY must be required and isSecret")
    readme = (REPO / "README.md").read_text()
    if f"mcp-name: {server.get('name')}" not in readme:
        problems.append(f"README.md must say 'mcp-name: {server.get('name')}' (PyPI ownership)")
    if server.get("repository", {}).get("url") != project["urls"]["Repository"]:
        problems.append("server.json repository.url differs from pyproject's Repository")

    # The bundle manifest.
    settings = manifest.get("user_config", {})
    api_key = settings.get("api_key", {})
    if not (api_key.get("sensitive") is True and api_key.get("required") is True):
        problems.append("manifest.json: user_config.api_key must be required and sensitive")
    config = manifest["server"]["mcp_config"]
    if config.get("env", {}).get("CLOSE_API_KEY") != "${user_config.api_key}":
        problems.append("manifest.json: CLOSE_API_KEY must come from ${user_config.api_key}")
    if any("api_key" in arg for arg in config.get("args", [])):
        problems.append("manifest.json: the key must never be an argument")
    used = set(re.findall(r"\$\{user_config\.(\w+)\}", json.dumps(config)))
    for name in sorted(used - set(settings)):
        problems.append(f"manifest.json: ${{user_config.{name}}} is not declared in user_config")
    tools = {path.stem for path in (REPO / "tool_schemas").glob("*.json")} - {"s_query.schema"}
    listed = {tool["name"] for tool in manifest.get("tools", [])}
    if listed != tools:
        problems.append(f"manifest.json tools differ from tool_schemas/: {sorted(listed ^ tools)}")
    return problems


def main() -> int:
    problems = check()
    for problem in problems:
        print(f"release/check.py: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"release metadata ok: version {source_version()} everywhere; server.json valid against "
        f"the registry schema 2025-12-11 (sha256 {SCHEMA_SHA256[:12]}...); bundle manifest sound"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
