"""The tools, one module per toolset family, registered according to the settings.

Every tool is declared through `Registrar.add`, which knows its toolset and whether it
writes. A tool outside the enabled toolsets, or a writing tool in read-only mode, is never
registered. Every anticipated failure (bad arguments, unknown names, errors from Close)
reaches the model as a tool error whose text says what to fix.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations

from close_mcp.errors import ERROR_CRM_NOTICE, CloseMcpError
from close_mcp.server.compact import SharedDefinitions, compact_input, compact_output, listed_input
from close_mcp.server.runtime import Runtime

P = ParamSpec("P")
R = TypeVar("R")


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Raise anticipated failures as `ToolError`, so the model reads a message it can act on;
    one that quotes CRM text ends with the notice that it is data."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except CloseMcpError as exc:
            if exc.quotes_crm_text:
                raise ToolError(f"{exc} ({ERROR_CRM_NOTICE})") from exc
            raise ToolError(str(exc)) from exc

    return wrapper


class Registrar:
    """Collects the enabled tools, with compact schemas, before the server is built.

    Each tool keeps two input schemas: the full one the server enforces (`enforced`, every
    limit; checked in under `tool_schemas/enforced/`) and the lean one `tools/list` shows
    (`compact.listed_input`), which every tool gets here, whoever wrote it.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tools: list[Tool] = []
        self.enforced: dict[str, dict[str, Any]] = {}
        self._shared = SharedDefinitions()

    def enabled(self, toolset: str, *, writes: bool) -> bool:
        settings = self.runtime.settings
        return toolset in settings.toolsets and not (writes and settings.read_only)

    def add(
        self,
        fn: Callable[..., Awaitable[Any]],
        *,
        name: str,
        toolset: str,
        title: str,
        description: str,
        annotations: ToolAnnotations,
    ) -> None:
        writes = not annotations.read_only_hint
        if not self.enabled(toolset, writes=writes):
            return
        tool = Tool.from_function(
            tool_errors(fn),
            name=name,
            title=title,
            description=description,
            annotations=annotations,
            meta={"toolset": toolset},
            structured_output=True,
        )
        self.enforced[name] = compact_input(tool.parameters)
        tool.parameters = listed_input(self.enforced[name], tool=name, shared=self._shared)
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = compact_output(tool.fn_metadata.output_schema)
        self.tools.append(tool)


def build_tools(runtime: Runtime) -> Registrar:
    """Every enabled tool, with the input schemas the server enforces."""
    registrar = Registrar(runtime)
    for register in _modules():
        register(registrar)
    return registrar


def _modules() -> list[Callable[[Registrar], None]]:
    from close_mcp.server.tools import (
        bulk,
        cancel,
        emails,
        job_control,
        job_reads,
        leads,
        revert,
        send,
    )

    return [
        leads.register,
        emails.register,
        job_reads.register,
        job_control.register,
        bulk.register,
        revert.register,
        send.register,
        cancel.register,
    ]
