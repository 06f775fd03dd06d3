"""A close-mcp server wired to an in-process sandbox, driven through a real MCP client.

Tests take it from the fixtures in tests/conftest.py: `h`, configured by `harness` markers,

    @pytest.mark.harness(n_leads=60)
    async def test_search(h: Harness) -> None:
        result = await h.call("search_leads", {"filter": {"lead_status": "Qualified"}})
        assert h.writes() == []

or `start_harness(**options)` when the options are made in the test (a sandbox, a clock).

`h.sandbox` is the sandbox (its `requests` are exactly what reached "Close"), `h.clock` a
FakeClock shared by server and sandbox, `h.audit` the audit log, `h.runtime` the runtime.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from mcp import types
from mcp.client import Client
from mcp.server.mcpserver import MCPServer

from close_mcp.clock import FakeClock
from close_mcp.config import load_settings
from close_mcp.sandbox import RecordedRequest, Sandbox
from close_mcp.server.app import build_server
from close_mcp.server.runtime import Runtime
from close_mcp.writes.audit import AuditLog

Mode = Literal["legacy", "auto"]
MODES: tuple[Mode, ...] = ("legacy", "auto")
ElicitAnswer = Callable[[str], types.ElicitResult]


class ToolFailed(AssertionError):
    """A tool call answered is_error when the test expected a result."""


@dataclass
class Harness:
    client: Client
    server: MCPServer
    runtime: Runtime
    sandbox: Sandbox
    clock: FakeClock
    questions: list[str] = field(default_factory=list)

    @property
    def audit(self) -> AuditLog:
        return self.runtime.audit

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        *,
        mode: Mode = "legacy",
        n_leads: int = 120,
        env: dict[str, str] | None = None,
        audit_dir: Path | None = None,
        elicit: ElicitAnswer | None = None,
        sandbox: Sandbox | None = None,
        clock: FakeClock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sandbox_options: dict[str, Any] | None = None,
        **settings: Any,
    ) -> AsyncIterator[Harness]:
        clock = clock or FakeClock()
        sandbox = sandbox or Sandbox(n_leads=n_leads, clock=clock, **(sandbox_options or {}))
        audit = str(audit_dir / "audit.jsonl") if audit_dir else "off"
        # With the audit log off, snapshots go to the state dir: a temporary one, not ~.
        state = tempfile.TemporaryDirectory(prefix="close-mcp-state-")
        loaded = load_settings(
            {
                "CLOSE_MCP_SECRET": "test-secret-0123456789abcdef",
                "XDG_STATE_HOME": state.name,
                # Dates in filters are days in this zone: UTC, whatever the machine's zone is.
                "CLOSE_MCP_TIMEZONE": "UTC",
                **(env or {}),
            },
            sandbox=True,
            audit_log=settings.pop("audit_log", audit),
            **settings,
        )
        runtime = Runtime(loaded, sandbox=sandbox, clock=clock, transport=transport)
        server = build_server(runtime)
        questions: list[str] = []
        callback = None
        if elicit is not None:
            answer = elicit

            async def callback(
                context: Any, params: types.ElicitRequestParams
            ) -> types.ElicitResult:
                questions.append(params.message)
                return answer(params.message)

        async with Client(server, mode=mode, elicitation_callback=callback) as client:
            yield cls(client, server, runtime, sandbox, clock, questions)
        await runtime.aclose()
        state.cleanup()

    async def call_raw(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return await self.client.call_tool(tool, arguments)

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The structured result; fails the test on a tool error."""
        result = await self.call_raw(tool, arguments)
        if result.is_error:
            raise ToolFailed(f"{tool} failed: {error_text(result)}")
        assert result.structured_content is not None
        assert json.loads(text_of(result)) == result.structured_content
        return result.structured_content

    async def confirmed(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Preview, then confirm with its token: the confirmed call's result."""
        first = await self.call(tool, arguments)
        assert first["status"] == "confirmation_required", first
        return await self.call(
            tool, {**arguments, "confirmation_token": first["confirmation_token"]}
        )

    async def error(self, tool: str, arguments: dict[str, Any]) -> str:
        """The error text without the SDK's prefix; fails the test when the call succeeds."""
        result = await self.call_raw(tool, arguments)
        assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
        return error_text(result).removeprefix(f"Error executing tool {tool}: ")

    def writes(self) -> list[RecordedRequest]:
        """Requests that could change data in Close (every POST but searches, every PUT/DELETE)."""
        return [r for r in self.sandbox.requests if is_write(r)]

    def clear(self) -> None:
        self.sandbox.clear_requests()


def is_write(request: RecordedRequest) -> bool:
    if request.method == "GET":
        return False
    return not (request.method == "POST" and request.path.endswith("/data/search/"))


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def error_text(result: types.CallToolResult) -> str:
    return text_of(result)


def accept(content: dict[str, Any]) -> ElicitAnswer:
    return lambda _message: types.ElicitResult(action="accept", content=content)


def decline() -> ElicitAnswer:
    return lambda _message: types.ElicitResult(action="decline")


def cancel() -> ElicitAnswer:
    return lambda _message: types.ElicitResult(action="cancel")


async def run_to_done(h: Harness, job_id: str, *, step: float = 5.0, limit: int = 200) -> None:
    """Advance the fake clock until the sandbox job is finished."""
    for _ in range(limit):
        job = await h.call("get_bulk_job", {"job_id": job_id})
        if job["status"] in ("done", "error"):
            return
        h.clock.advance(step)
    raise AssertionError(f"{job_id} did not finish")


Step = Callable[[Harness], Awaitable[None]]
StartHarness = Callable[..., Awaitable[Harness]]  # the start_harness fixture (tests/conftest.py)
