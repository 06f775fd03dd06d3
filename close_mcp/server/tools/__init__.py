"""The tools: each module of this package declares its tools (`TOOLS`, see `declare`), and
the registry here finds them, keeps those the settings enable, and builds their schemas.

A tool outside the enabled toolsets, or a writing tool in read-only mode, is never
registered. Adding a tool is adding a module: nothing here names one. Every anticipated
failure (bad arguments, unknown names, errors from Close) reaches the model as a tool error
whose text says what to fix.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from mcp.server.mcpserver.tools import Tool as SdkTool

from close_mcp.server.compact import SharedDefinitions, compact_input, compact_output, listed_input
from close_mcp.server.runtime import Runtime
from close_mcp.server.tools.declare import Tool, tool_errors, tool_function
from close_mcp.settings_table import TOOLSETS


def declarations() -> list[Tool]:
    """Every tool the package declares, as `tools/list` shows them: by toolset (in the
    settings' order), in each toolset the read tools first, then by module and place."""
    found: list[Tool] = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        found += getattr(importlib.import_module(f"{__name__}.{module.name}"), "TOOLS", ())
    rank = {toolset: i for i, toolset in enumerate(TOOLSETS)}
    return sorted(
        found, key=lambda t: (rank.get(t.toolset, len(rank)), not t.annotations.read_only_hint)
    )


class Registrar:
    """Collects the enabled tools, with compact schemas, before the server is built.

    Each tool keeps two input schemas: the full one the server enforces (`enforced`, every
    limit; checked in under `tool_schemas/enforced/`) and the lean one `tools/list` shows
    (`compact.listed_input`).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tools: list[SdkTool] = []
        self.enforced: dict[str, dict[str, Any]] = {}
        self._shared = SharedDefinitions()

    def enabled(self, tool: Tool) -> bool:
        settings = self.runtime.settings
        writes = not tool.annotations.read_only_hint
        return tool.toolset in settings.toolsets and not (writes and settings.read_only)

    def add(self, tool: Tool) -> None:
        if not self.enabled(tool):
            return
        sdk_tool = SdkTool.from_function(
            tool_errors(tool_function(tool, self.runtime)),
            name=tool.name,
            title=tool.title,
            description=tool.description,
            annotations=tool.annotations,
            meta={"toolset": tool.toolset},
            structured_output=True,
        )
        self.enforced[tool.name] = compact_input(sdk_tool.parameters)
        sdk_tool.parameters = listed_input(
            self.enforced[tool.name], tool=tool.name, shared=self._shared
        )
        for name in getattr(tool.arguments, "UNLISTED", ()):
            del sdk_tool.parameters["properties"][name]
        if sdk_tool.fn_metadata.output_schema is not None:
            sdk_tool.fn_metadata.output_schema = compact_output(sdk_tool.fn_metadata.output_schema)
        self.tools.append(sdk_tool)


def build_tools(runtime: Runtime) -> Registrar:
    """Every enabled tool, with the input schemas the server enforces."""
    registrar = Registrar(runtime)
    for tool in declarations():
        registrar.add(tool)
    return registrar
