"""A Pydantic AI agent with close-mcp as an MCP toolset (stdio, sandbox).

    pip install 'close-mcp[examples]'
    python examples/pydantic_ai_agent.py                          # scripted model, offline
    pip install 'pydantic-ai-slim[openai]'
    OPENAI_API_KEY=... python examples/pydantic_ai_agent.py --model openai:gpt-4.1-mini
    python examples/pydantic_ai_agent.py -- uvx close-mcp serve --sandbox

The agent gets close-mcp's tools through `pydantic_ai.mcp.MCPToolset` over a stdio transport.
Without `--model` it runs Pydantic AI's own `FunctionModel` with a small script: look up statuses,
search the selection, preview a bulk edit (dry run), ask for a bulk delete, and stop when the
server answers `confirmation_required`. The tool calls are real MCP calls to
`close-mcp serve --sandbox`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any

import anyio
from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

INSTRUCTIONS = (
    "You run Close CRM bulk actions through close-mcp. Always search or dry-run first, show the "
    "person what would change, and never pass a confirmation_token the person did not approve."
)
TASK = (
    "Mark Potential leads that have an email address as Qualified (preview only), then delete "
    "the Canceled leads created before June 2025."
)
SELECTION = {"lead_status": "Potential", "has_email": True}
PLAN: list[tuple[str, dict[str, Any]]] = [
    ("lookup", {"kind": "lead_statuses"}),
    ("search_leads", {"filter": SELECTION, "sample_size": 3}),
    (
        "create_bulk_edit",
        {
            "filter": SELECTION,
            "edit": {"type": "set_lead_status", "lead_status": "Qualified"},
            "dry_run": True,
        },
    ),
    ("create_bulk_delete", {"filter": {"lead_status": "Canceled", "created_before": "2025-06-01"}}),
]


def as_data(content: Any) -> dict[str, Any] | None:
    """A tool return as a dict: structured content as is, JSON text parsed."""
    if isinstance(content, dict):
        return content
    if isinstance(content, str):
        try:
            data = json.loads(content)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return None


def summarize(content: Any) -> str:
    data = as_data(content)
    if data is None:
        return f"The server answered: {str(content)[:200]}"
    if data.get("status") == "confirmation_required":
        return (
            f"Nothing deleted yet: {data['message']} Please confirm and I will pass the token back."
        )
    return f"The server answered: {data.get('message', str(content)[:200])}"


def scripted_model(plan: list[tuple[str, dict[str, Any]]]) -> FunctionModel:
    """Pydantic AI's FunctionModel playing PLAN one tool call per turn, then answering."""
    remaining = list(plan)

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        offered = {tool.name for tool in info.function_tools}
        if remaining:
            name, args = remaining.pop(0)
            if name not in offered:
                raise RuntimeError(f"the agent was not given the tool {name!r}: {sorted(offered)}")
            return ModelResponse(parts=[ToolCallPart(name, args, tool_call_id=f"call_{name}")])
        returns = [
            part
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]
        last = returns[-1].content if returns else ""
        return ModelResponse(parts=[TextPart(summarize(last))])

    return FunctionModel(respond, model_name="scripted")


def server_command(given: list[str]) -> list[str]:
    if given:
        return given
    found = shutil.which("close-mcp")
    if found:
        return [found, "serve", "--sandbox"]
    return [sys.executable, "-m", "close_mcp", "serve", "--sandbox"]


async def main(command: list[str], model_name: str | None) -> str:
    env = dict(os.environ)
    env.setdefault("CLOSE_MCP_AUDIT_LOG", "off")
    transport = StdioTransport(command[0], command[1:], env=env, keep_alive=False)
    # `serve --sandbox` seeds its organization before it answers: more than the default 5 s
    # to initialize on a busy machine.
    toolset: MCPToolset[None] = MCPToolset(
        transport, id="close-mcp", tool_error_behavior="failed", init_timeout=30
    )
    agent = Agent(model_name or scripted_model(PLAN), toolsets=[toolset], instructions=INSTRUCTIONS)
    async with agent:
        result = await agent.run(TASK)
    for message in result.all_messages():
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                print(f"-> {part.tool_name} {part.args_as_json_str()}")
            elif isinstance(part, ToolReturnPart):
                text = json.dumps(part.content) if isinstance(part.content, dict) else part.content
                print(f"   <- {' '.join(str(text).split())[:100]}...")
    print(f"agent: {result.output}")
    return str(result.output)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Pydantic AI + close-mcp (sandbox)")
    parser.add_argument("--model", help="a real model, e.g. openai:gpt-4.1-mini")
    parser.add_argument("command", nargs="*", help="server command (after --)")
    args = parser.parse_args()
    anyio.run(main, server_command(args.command), args.model)
