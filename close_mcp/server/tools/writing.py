"""What every write tool shares: the resolver that asks the person, and the run through the
write pipeline.

No `from __future__ import annotations` here or in any tool module: the SDK reads the
`Resolve(...)` markers from evaluated annotations, and with postponed annotations a resolver
silently becomes a tool argument (tests/test_tool_modules.py fails if one does).
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp.server.mcpserver.exceptions import ToolError

from close_mcp.errors import CloseAPIError
from close_mcp.server.runtime import Runtime
from close_mcp.writes.gate import Decision, question
from close_mcp.writes.pipeline import Pipeline
from close_mcp.writes.progress import Progress
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.results import WriteResult

Prepare = Callable[..., Awaitable[WriteRequest]]
# Close saying no to a change of an object's state (not paused, already sent, gone).
CLOSE_REFUSALS: Final = frozenset({400, 404, 405})

# Preview first (CLOSE_MCP_CONFIRM names every action by default). The two steps are told
# once, in the server's instructions (which also name the actions a person took out of the
# list), not in every write tool's description: `tools/list` is read on every turn.


def confirmer(runtime: Runtime, prepare: Prepare) -> Callable[..., Awaitable[Any]]:
    """The resolver that asks the person (elicitation) about the request `prepare` built."""

    async def confirm(
        ctx: Context,
        request: Annotated[WriteRequest, Resolve(prepare)],
        dry_run: bool,
        confirmation_token: str | None,
    ) -> Elicit[Any] | Decision:
        caller = runtime.client_for(ctx.headers).caller
        return await question(
            ctx, runtime.writes, request, dry_run, confirmation_token, caller=caller
        )

    return confirm


async def run_write(
    runtime: Runtime,
    ctx: Context,
    request: WriteRequest,
    answer: ElicitationResult[Any],
    *,
    dry_run: bool,
    token: str | None,
    refused: str | None = None,
) -> WriteResult:
    """The tool body of every write tool: the pipeline decides what happens; its long steps
    send progress notifications to the client (when it asked for them). With `refused`, a
    refusal from Close (`CLOSE_REFUSALS`) is a tool error that starts with it."""
    client = runtime.client_for(ctx.headers)
    progress = request.progress or Progress(ctx.report_progress, runtime.clock)
    try:
        return await Pipeline(runtime.writes, client, progress, runtime.server_jobs).run(
            request, dry_run=dry_run, token=token, answer=answer
        )
    except CloseAPIError as exc:
        if refused is not None and exc.status in CLOSE_REFUSALS:
            raise ToolError(f"{refused}: {exc.message}") from exc
        raise
