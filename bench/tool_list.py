"""The size of `tools/list` in tokens, as a model meets it: `python bench/tool_list.py`.

Two figures, both with o200k_base (bench/tokens.py) over compact JSON of the answer with the
default toolsets on: the whole answer ("full": what a client receives and may cache) and what a
client passes on to the model ("model-visible": each tool's name, description and input
schema); then both again with every toolset on (`CLOSE_MCP_TOOLSETS=all`, the opt-in ones too).
Token counts are deterministic, so `tests/test_tool_list.py` asserts the targets too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `close_mcp` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio

from bench.report import Row, render
from bench.tokens import count_json_tokens

FULL_TARGET = 5000
VISIBLE_TARGET = 3500
ALL_FULL_TARGET = 6000  # every toolset on
VISIBLE_KEYS = ("name", "description", "inputSchema")


@dataclass
class ToolListFigures:
    full: int
    visible: int
    per_tool: dict[str, tuple[int, int]]  # name -> (full, model-visible)


def visible_part(tool: dict[str, Any]) -> dict[str, Any]:
    """What clients pass to the model: name, description and input schema."""
    return {key: tool[key] for key in VISIBLE_KEYS if key in tool}


def measure_documents(tools: list[dict[str, Any]]) -> ToolListFigures:
    """Token figures of a `tools/list` answer, given as its JSON tool objects."""
    return ToolListFigures(
        full=count_json_tokens({"tools": tools}),
        visible=count_json_tokens([visible_part(tool) for tool in tools]),
        per_tool={
            tool["name"]: (count_json_tokens(tool), count_json_tokens(visible_part(tool)))
            for tool in tools
        },
    )


async def measure(toolsets: str | None = None) -> ToolListFigures:
    """`tools/list` of a server with the default toolsets on (or `toolsets`, "all" say),
    through an in-process MCP client."""
    from mcp.client import Client

    from close_mcp.config import load_settings
    from close_mcp.server.app import build_server
    from close_mcp.server.runtime import Runtime

    runtime = Runtime(load_settings({}, sandbox=True, audit_log="off", toolsets=toolsets))
    try:
        async with Client(build_server(runtime)) as client:
            listed = await client.list_tools()
    finally:
        await runtime.aclose()
    tools = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools]
    return measure_documents(tools)


def rows(fig: ToolListFigures) -> list[Row]:
    out = [
        Row(
            f"tools/list, {len(fig.per_tool)} tools, full (o200k_base)",
            f"{fig.full:,} tok",
            target=f"<= {FULL_TARGET:,} tok",
            ok=fig.full <= FULL_TARGET,
        ),
        Row(
            "tools/list, model-visible (name, description, input schema)",
            f"{fig.visible:,} tok",
            target=f"<= {VISIBLE_TARGET:,} tok",
            ok=fig.visible <= VISIBLE_TARGET,
        ),
    ]
    for name, (full, visible) in sorted(fig.per_tool.items(), key=lambda kv: -kv[1][0]):
        out.append(Row(f"  tools/list: {name}", f"{full:,} tok", ratio=f"{visible:,} visible"))
    return out


def all_rows(fig: ToolListFigures) -> list[Row]:
    return [
        Row(
            f"tools/list, every toolset (all), {len(fig.per_tool)} tools, full",
            f"{fig.full:,} tok",
            target=f"<= {ALL_FULL_TARGET:,} tok",
            ok=fig.full <= ALL_FULL_TARGET,
        ),
        Row("tools/list, every toolset (all), model-visible", f"{fig.visible:,} tok"),
    ]


async def main() -> int:
    every = await measure("all")
    print(render(rows(await measure()) + all_rows(every)))
    return 0


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
