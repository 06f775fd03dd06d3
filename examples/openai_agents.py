"""An OpenAI Agents SDK agent with close-mcp as its MCP server (stdio, sandbox).

    pip install 'close-mcp[examples]'
    python examples/openai_agents.py                       # scripted model: no key, no network
    OPENAI_API_KEY=... python examples/openai_agents.py --model gpt-4.1-mini
    python examples/openai_agents.py -- uvx close-mcp serve --sandbox

The agent gets close-mcp's tools through `agents.mcp.MCPServerStdio`. Without `--model` it runs
a small scripted model (a real `agents.models.interface.Model`) that makes the calls a careful
assistant makes: look up statuses, search the selection, preview a bulk edit (dry run), ask for a
bulk delete, and stop when the server answers `confirmation_required`. The tool calls are real:
they go over MCP to `close-mcp serve --sandbox`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, Runner, set_tracing_disabled
from agents.items import ModelResponse, ToolCallItem, ToolCallOutputItem
from agents.mcp import MCPServerStdio
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

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


def output_text(output: Any) -> str:
    """A function_call_output's text: a string, or a list of content parts with text."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(output_text(part) for part in output)
    if isinstance(output, dict):
        return str(output.get("text", ""))
    return str(output)


def summarize(tool_output: str) -> str:
    """The scripted model's last word: what the server said about the last call."""
    try:
        data = json.loads(tool_output)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return f"The server answered: {tool_output[:200]}"
    if data.get("status") == "confirmation_required":
        return (
            f"Nothing deleted yet: {data['message']} Please confirm and I will pass the token back."
        )
    return f"The server answered: {data.get('message', tool_output[:200])}"


class ScriptedModel(Model):
    """Plays PLAN one tool call per turn, then answers from the last tool output."""

    def __init__(self, plan: list[tuple[str, dict[str, Any]]]) -> None:
        self.plan = list(plan)
        self.turn = 0

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[Any],
        model_settings: Any,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
        **kwargs: Any,
    ) -> ModelResponse:
        self.turn += 1
        if self.plan:
            name, args = self.plan.pop(0)
            offered = {getattr(tool, "name", "") for tool in tools}
            if name not in offered:
                raise RuntimeError(f"the agent was not given the tool {name!r}: {sorted(offered)}")
            call = ResponseFunctionToolCall(
                type="function_call",
                id=f"fc_{self.turn}",
                call_id=f"call_{self.turn}",
                name=name,
                arguments=json.dumps(args),
                status="completed",
            )
            return ModelResponse(output=[call], usage=Usage(), response_id=None)
        outputs = [
            item
            for item in (input if isinstance(input, list) else [])
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        ]
        last = outputs[-1]["output"] if outputs else ""
        text = summarize(output_text(last))
        message = ResponseOutputMessage(
            type="message",
            id=f"msg_{self.turn}",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the scripted model does not stream")


def server_command(given: list[str]) -> list[str]:
    if given:
        return given
    found = shutil.which("close-mcp")
    if found:
        return [found, "serve", "--sandbox"]
    return [sys.executable, "-m", "close_mcp", "serve", "--sandbox"]


async def main(command: list[str], model_name: str | None) -> str:
    if model_name is None:
        set_tracing_disabled(True)  # the scripted run sends nothing anywhere
    env = dict(os.environ)
    env.setdefault("CLOSE_MCP_AUDIT_LOG", "off")
    async with MCPServerStdio(
        name="close-mcp",
        params={"command": command[0], "args": command[1:], "env": env},
        cache_tools_list=True,
        client_session_timeout_seconds=60,
    ) as server:
        agent = Agent(
            name="Close assistant",
            instructions=INSTRUCTIONS,
            mcp_servers=[server],
            model=model_name or ScriptedModel(PLAN),
        )
        result = await Runner.run(agent, TASK, max_turns=12)
    for item in result.new_items:
        if isinstance(item, ToolCallItem):
            raw = item.raw_item
            print(f"-> {getattr(raw, 'name', '?')} {getattr(raw, 'arguments', '')}")
        elif isinstance(item, ToolCallOutputItem):
            print(f"   <- {' '.join(output_text(item.output).split())[:100]}...")
    print(f"agent: {result.final_output}")
    return str(result.final_output)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="OpenAI Agents SDK + close-mcp (sandbox)")
    parser.add_argument("--model", help="a real model name (needs OPENAI_API_KEY)")
    parser.add_argument("command", nargs="*", help="server command (after --)")
    args = parser.parse_args()
    asyncio.run(main(server_command(args.command), args.model))
