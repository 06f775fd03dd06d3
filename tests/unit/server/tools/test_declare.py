"""The tool declaration layer: what the SDK is handed for a declared tool, and that a tool's
step is a plain function of an `Invocation` and its argument model."""

import inspect
from collections import Counter
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from close_mcp.config import load_settings
from close_mcp.errors import ArgumentError
from close_mcp.server.runtime import Runtime
from close_mcp.server.tools import build_tools, declarations
from close_mcp.server.tools.declare import DirectTool, Invocation, WriteTool, tool_function
from close_mcp.server.tools.selection import BulkSelection
from close_mcp.settings_table import TOOLSETS
from close_mcp.writes.request import WriteRequest


class EchoArguments(BaseModel):
    word: Annotated[str, Field(max_length=10, description="A word.")]
    times: Annotated[int, Field(ge=1, le=3, description="How often.")] = 1


class Echoed(BaseModel):
    text: str


async def echo(invocation: Invocation, args: EchoArguments) -> Echoed:
    return Echoed(text=" ".join([args.word] * args.times))


ECHO = DirectTool(
    name="echo",
    toolset="search",
    title="Echo",
    description="Says a word.",
    arguments=EchoArguments,
    run=echo,
    result=Echoed,
)


class MarkArguments(BulkSelection):
    mark: Annotated[str, Field(description="What to mark.")]


async def prepare_mark(invocation: Invocation, args: MarkArguments) -> WriteRequest:
    raise ArgumentError("mark", f"cannot mark {args.mark!r}")


MARK = WriteTool(
    name="mark_leads",
    toolset="edit",
    title="Mark",
    description="Marks leads.",
    annotations=ECHO.annotations.model_copy(update={"read_only_hint": False}),
    arguments=MarkArguments,
    prepare=prepare_mark,
)


@pytest.fixture
def runtime() -> Runtime:
    return Runtime(load_settings(sandbox=True))


def _shape(fn: Any) -> list[tuple[str, Any]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]


def test_a_direct_tool_is_signed_with_its_arguments_and_their_defaults(runtime: Runtime) -> None:
    fn = tool_function(ECHO, runtime)
    empty = inspect.Parameter.empty
    assert fn.__name__ == "echo"
    assert _shape(fn) == [("ctx", empty), ("word", empty), ("times", 1)]
    assert inspect.signature(fn).return_annotation is Echoed


@pytest.mark.anyio
async def test_a_direct_tool_runs_its_step_with_the_argument_model(runtime: Runtime) -> None:
    class Ctx:
        headers = None
        report_progress = None

    answer = await tool_function(ECHO, runtime)(Ctx(), word="hi", times=2)
    assert answer == Echoed(text="hi hi")


def test_a_write_tool_lists_its_own_arguments_then_the_selection_then_confirmation(
    runtime: Runtime,
) -> None:
    fn = tool_function(MARK, runtime)
    empty = inspect.Parameter.empty
    assert _shape(fn) == [
        ("ctx", empty),
        ("request", empty),
        ("answer", empty),
        ("mark", empty),
        ("filter", None),
        ("s_query", None),
        ("results_limit", None),
        ("sort", None),
        ("allow_all_leads", False),
        ("selection", None),
        ("send_done_email", True),
        ("dry_run", False),
        ("confirmation_token", None),
    ]
    prepare = fn.__annotations__["request"].__metadata__[0].fn
    # The resolver takes the tool's arguments (filled in by the SDK), none of the pipeline's.
    assert [name for name, _ in _shape(prepare)] == [
        "ctx", "mark", "filter", "s_query", "results_limit", "sort", "allow_all_leads",
        "selection", "send_done_email",
    ]  # fmt: skip


@pytest.mark.anyio
async def test_a_write_tools_prepare_errors_reach_the_model_as_tool_errors(
    runtime: Runtime,
) -> None:
    from mcp.server.mcpserver.exceptions import ToolError

    class Ctx:
        headers = None
        report_progress = None

    prepare = tool_function(MARK, runtime).__annotations__["request"].__metadata__[0].fn
    with pytest.raises(ToolError, match=r"^mark: cannot mark 'x'"):
        await prepare(Ctx(), mark="x", filter=None, s_query=None, results_limit=None,
                      sort=None, allow_all_leads=False, selection=None,
                      send_done_email=True)  # fmt: skip


def test_every_module_declares_its_tools_once_in_toolset_order() -> None:
    found = declarations()
    names = Counter(tool.name for tool in found)
    assert [name for name, n in names.items() if n > 1] == []
    ranks = [TOOLSETS.index(tool.toolset) for tool in found]
    assert ranks == sorted(ranks)
    assert {"search_leads", "create_bulk_edit", "send_email", "resume_bulk_job"} <= set(names)


def test_the_registry_serves_every_enabled_declaration(runtime: Runtime) -> None:
    served = [tool.name for tool in build_tools(runtime).tools]
    assert served == [t.name for t in declarations() if t.toolset in runtime.settings.toolsets]


def test_read_only_mode_serves_only_tools_that_do_not_write() -> None:
    runtime = Runtime(load_settings(sandbox=True, read_only=True))
    served = {tool.name for tool in build_tools(runtime).tools}
    assert served == {t.name for t in declarations() if t.annotations.read_only_hint}
