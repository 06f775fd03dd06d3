"""A LangChain tool-calling agent with close-mcp's tools from `langchain-mcp-adapters` (stdio).

langchain-mcp-adapters 0.3 requires `mcp<2` and close-mcp requires `mcp>=2.3`, so they cannot
share one environment. They do not need to: the adapters' own MCP client (mcp 1.x) launches
close-mcp as a separate process and speaks the protocol to it over stdio. Install the adapters
in their own virtual environment and point them at close-mcp's command:

    python3 -m venv /tmp/lc
    /tmp/lc/bin/pip install langchain-mcp-adapters==0.3.2 langchain-core==1.7.2
    /tmp/lc/bin/python examples/langchain_agent.py -- /abs/path/to/close-mcp serve --sandbox

Without `--model` a small scripted chat model (a LangChain `BaseChatModel`) plays the calls a
careful assistant makes: look up statuses, search the selection, preview a bulk edit (dry run),
ask for a bulk delete, and stop when the server answers `confirmation_required`. The tool calls
are real MCP calls. With `--model provider:name` (needs `pip install langchain` and the
provider's package, e.g. `langchain-openai`) a real model drives the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.client import MultiServerMCPClient
from pydantic import Field

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
MAX_TURNS = 12


def content_text(content: Any) -> str:
    """A message's text: a string, or content blocks with text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(content_text(block) for block in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)


def summarize(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return f"The server answered: {text[:200]}"
    if data.get("status") == "confirmation_required":
        return (
            f"Nothing deleted yet: {data['message']} Please confirm and I will pass the token back."
        )
    return f"The server answered: {data.get('message', text[:200])}"


class ScriptedChatModel(BaseChatModel):
    """Plays PLAN one tool call per turn, then answers from the last tool message."""

    plan: list[tuple[str, dict[str, Any]]]
    offered: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.model_copy(update={"offered": [tool.name for tool in tools]})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn = sum(isinstance(message, AIMessage) for message in messages)
        if turn < len(self.plan):
            name, args = self.plan[turn]
            if name not in self.offered:
                raise RuntimeError(f"the agent was not given the tool {name!r}: {self.offered}")
            call = {"name": name, "args": args, "id": f"call_{turn}", "type": "tool_call"}
            reply = AIMessage(content="", tool_calls=[call])
        else:
            tools = [message for message in messages if isinstance(message, ToolMessage)]
            last = content_text(tools[-1].content) if tools else ""
            reply = AIMessage(content=summarize(last))
        return ChatResult(generations=[ChatGeneration(message=reply)])


async def run_agent(model: BaseChatModel, tools: list[BaseTool], task: str) -> str:
    """The classic tool-calling loop: ask the model, run the tools it calls, repeat."""
    bound = model.bind_tools(tools)
    by_name = {tool.name: tool for tool in tools}
    messages: list[BaseMessage] = [SystemMessage(INSTRUCTIONS), HumanMessage(task)]
    for _ in range(MAX_TURNS):
        reply = await bound.ainvoke(messages)
        messages.append(reply)
        if not isinstance(reply, AIMessage) or not reply.tool_calls:
            return content_text(reply.content)
        for call in reply.tool_calls:
            print(f"-> {call['name']} {json.dumps(call['args'])}")
            result = await by_name[call["name"]].ainvoke(call)
            print(f"   <- {' '.join(content_text(result.content).split())[:100]}...")
            messages.append(result)
    raise RuntimeError(f"no answer after {MAX_TURNS} turns")


def server_command(given: list[str]) -> list[str]:
    if given:
        return given
    found = shutil.which("close-mcp")
    if found:
        return [found, "serve", "--sandbox"]
    raise SystemExit("close-mcp is not on PATH: pass its command after --")


async def main(command: list[str], model_name: str | None) -> str:
    env = dict(os.environ)
    env.setdefault("CLOSE_MCP_AUDIT_LOG", "off")
    client = MultiServerMCPClient(
        {"close": {"transport": "stdio", "command": command[0], "args": command[1:], "env": env}}
    )
    tools = await client.get_tools()
    if model_name is None:
        model: BaseChatModel = ScriptedChatModel(plan=PLAN)
    else:
        from langchain.chat_models import init_chat_model  # type: ignore[import-not-found]

        model = init_chat_model(model_name)
    answer = await run_agent(model, tools, TASK)
    print(f"agent: {answer}")
    return answer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="LangChain + close-mcp (sandbox)")
    parser.add_argument("--model", help="a real model, e.g. openai:gpt-4.1-mini")
    parser.add_argument("command", nargs="*", help="server command (after --)")
    args = parser.parse_args()
    asyncio.run(main(server_command(args.command), args.model))
