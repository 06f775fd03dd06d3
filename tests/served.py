"""The tools a server serves with its default settings, read from `tool_schemas/` (every
tool's file names its toolset): the opt-in toolsets (export, merge, opportunities, tasks) are off
unless CLOSE_MCP_TOOLSETS names them."""

from __future__ import annotations

import json
from pathlib import Path

from close_mcp.settings_table import DEFAULT_TOOLSETS

SCHEMAS = Path(__file__).resolve().parents[1] / "tool_schemas"


def every_tool() -> list[str]:
    return sorted(p.stem for p in SCHEMAS.glob("*.json") if not p.name.endswith(".schema.json"))


def default_tools() -> list[str]:
    return [
        name
        for name in every_tool()
        if json.loads((SCHEMAS / f"{name}.json").read_text())["_meta"]["toolset"]
        in DEFAULT_TOOLSETS
    ]
