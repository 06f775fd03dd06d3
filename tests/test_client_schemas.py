"""Our real `tools/list`, fed to the schema converters of two major clients (no network).

- google-genai: its MCP adapter (`mcp_to_gemini_tool`) and its JSON Schema to Gemini
  `Schema` conversion, with unsupported fields raising instead of being dropped. Gemini
  answers 400 to an object declared without properties, so none may come out.
- OpenAI Agents SDK: its MCP conversion with `convert_schemas_to_strict=True`. Strict mode
  needs every object closed and every property listed, which a raw `s_query` (an open query
  tree) cannot be: the tools that take one (README "Clients and strict mode") fall back to
  non-strict, and an agent run below shows them working that way; every other tool must
  convert to strict, and a strict model's call (every property given, `null` for the unused
  ones) must be valid for the converted schema and work.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from agents import Agent, Runner, set_tracing_disabled
from agents.items import ModelResponse
from agents.mcp import MCPServer as AgentsMCPServer
from agents.mcp import MCPUtil
from agents.models.interface import Model
from agents.run_context import RunContextWrapper
from agents.tool import FunctionTool
from agents.usage import Usage
from google.genai import _mcp_utils
from google.genai import types as gemini
from jsonschema import Draft202012Validator
from mcp import types
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from tests.harness import Harness
from tests.ids import status_id

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=30)]

# The tools that take a raw s_query: strict mode cannot express an open query tree.
NOT_STRICT = {
    "search_leads",
    "create_bulk_edit",
    "create_bulk_email",
    "create_bulk_sequence_subscription",
    "create_bulk_delete",
}


async def listed(h: Harness) -> list[types.Tool]:
    tools = (await h.client.list_tools()).tools
    assert len(tools) >= 13
    return tools


def objects_without_properties(schema: gemini.Schema, path: str = "") -> list[str]:
    """Paths of Gemini schemas that are untyped, or objects with no properties."""
    found = []
    if schema.type is None and not schema.any_of:
        found.append(f"{path or '<root>'}: no type")
    if schema.type == gemini.Type.OBJECT and not schema.properties:
        found.append(f"{path or '<root>'}: object without properties")
    for name, sub in (schema.properties or {}).items():
        found += objects_without_properties(sub, f"{path}.{name}")
    if schema.items is not None:
        found += objects_without_properties(schema.items, f"{path}[]")
    for i, arm in enumerate(schema.any_of or []):
        found += objects_without_properties(arm, f"{path}|{i}")
    return found


# -- google-genai -----------------------------------------------------------------------------


async def test_google_genai_adapter_converts_every_tool(h: Harness) -> None:
    for tool in await listed(h):
        converted = _mcp_utils.mcp_to_gemini_tool(tool)
        (declaration,) = converted.function_declarations or []
        assert declaration.name == tool.name
        assert declaration.parameters is not None
        assert objects_without_properties(declaration.parameters) == [], tool.name


async def test_gemini_schema_conversion_accepts_every_input_schema_unchanged(h: Harness) -> None:
    for tool in await listed(h):
        schema = gemini.Schema.from_json_schema(
            json_schema=gemini.JSONSchema(**tool.input_schema),
            raise_error_on_unsupported_field=True,
        )
        assert objects_without_properties(schema) == [], tool.name
        assert set(schema.properties or {}) == set(tool.input_schema["properties"]), tool.name


# -- OpenAI Agents SDK --------------------------------------------------------------------------


class InProcessServer(AgentsMCPServer):
    """The Agents SDK's view of an MCP server, backed by the harness's MCP client session."""

    def __init__(self, h: Harness) -> None:
        super().__init__(use_structured_content=True)
        self.h = h

    @property
    def name(self) -> str:
        return "close-mcp"

    async def connect(self) -> None:
        return None

    async def cleanup(self) -> None:
        return None

    async def list_tools(self, run_context: Any = None, agent: Any = None) -> list[types.Tool]:
        return await listed(self.h)

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> types.CallToolResult:
        return await self.h.client.call_tool(tool_name, arguments or {})

    async def list_prompts(self) -> types.ListPromptsResult:
        return await self.h.client.list_prompts()

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None
    ) -> types.GetPromptResult:
        return await self.h.client.get_prompt(name, arguments)


async def strict_tools(h: Harness) -> dict[str, FunctionTool]:
    agent = Agent(name="close", instructions="")
    converted = await MCPUtil.get_function_tools(
        InProcessServer(h), True, RunContextWrapper(context=None), agent
    )
    return {tool.name: tool for tool in converted if isinstance(tool, FunctionTool)}


async def test_agents_sdk_strict_conversion_covers_every_tool_without_an_open_query(
    h: Harness,
) -> None:
    tools = await strict_tools(h)
    assert set(tools) == {t.name for t in await listed(h)}
    strict = {name for name, tool in tools.items() if tool.strict_json_schema}
    assert set(tools) - strict == NOT_STRICT
    for name in strict:
        Draft202012Validator.check_schema(tools[name].params_json_schema)


class ScriptedModel(Model):
    """Plays its calls one per turn, as a strict model would send them, then stops."""

    def __init__(self, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self.calls = list(calls)
        self.outputs: list[str] = []

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        items = kwargs.get("input", args[1] if len(args) > 1 else [])
        if isinstance(items, list):
            self.outputs = [
                str(item.get("output"))
                for item in items
                if item.get("type") == "function_call_output"
            ]
        turn = len(self.outputs)
        if self.calls:
            name, arguments = self.calls.pop(0)
            output: Any = ResponseFunctionToolCall(
                type="function_call",
                id=f"fc_{turn}",
                call_id=f"call_{turn}",
                name=name,
                arguments=json.dumps(arguments),
            )
        else:
            output = ResponseOutputMessage(
                id="msg",
                type="message",
                role="assistant",
                status="completed",
                content=[ResponseOutputText(type="output_text", text="done", annotations=[])],
            )
        return ModelResponse(output=[output], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def strict_call(tool: FunctionTool, given: dict[str, Any]) -> dict[str, Any]:
    """Every property of the strict schema: `given`, else null (as a strict model sends)."""
    schema = tool.params_json_schema
    assert schema["required"] == list(schema["properties"])
    call = {name: given.get(name) for name in schema["properties"]}
    Draft202012Validator(schema).validate(call)
    return call


async def test_an_agent_in_strict_mode_drafts_an_email_and_searches_non_strict(
    h: Harness,
) -> None:
    set_tracing_disabled(True)
    tools = await strict_tools(h)
    lead = next(iter(h.sandbox.store.leads.values()))
    draft = strict_call(
        tools["send_email"],
        {"lead_id": lead.id, "subject": "Hello", "body_text": "Hi there", "status": "draft"},
    )
    jobs = strict_call(tools["list_bulk_jobs"], {"status": "paused"})
    search = {"filter": {"lead_status": "Qualified"}, "sample_size": 1}  # non-strict: as is
    model = ScriptedModel(
        [("send_email", draft), ("list_bulk_jobs", jobs), ("search_leads", search)]
    )
    agent = Agent(
        name="close",
        instructions="",
        model=model,
        mcp_servers=[InProcessServer(h)],
        mcp_config={"convert_schemas_to_strict": True},
    )
    result = await Runner.run(agent, "Draft a hello to a lead, list paused jobs, count Qualified.")
    assert result.final_output == "done"
    outputs = [json.loads(text) for text in model.outputs]
    assert [o.get("status") for o in outputs[:1]] == ["submitted"]
    assert outputs[0]["result"]["status"] == "draft"
    assert outputs[1]["jobs"] == []
    qualified = status_id(h.sandbox, "Qualified")
    assert outputs[2]["total"] == len(
        [x for x in h.sandbox.store.leads.values() if x.status_id == qualified]
    )
