"""A tool is one declaration: a value that names it, its toolset, annotations and argument
model, and the one step that does its work (`run` for a tool that answers the call itself,
`prepare` for one whose write the pipeline confirms). Everything else is made here from that
value: the function signature the SDK reads (its input schema), and for a write tool the two
resolvers (work out the exact Close request, then ask the person) and the body that hands the
request to the write pipeline.

The argument model is a plain pydantic model; a tool's own fields come first, then the lead
selection (`BulkSelection`), then, for a write tool, `dry_run` and `confirmation_token`.
A step gets the arguments as that model, so it can be called and tested without a server.

No `from __future__ import annotations` here: the SDK reads `Resolve(...)` markers from
evaluated annotations, and the ones below are built as objects.
"""

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Final, ParamSpec, TypeVar

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from close_mcp.errors import ERROR_CRM_NOTICE, CloseAPIError, CloseMcpError
from close_mcp.server.runtime import Call, Runtime
from close_mcp.server.tools.selection import BulkSelection, DryRunArg, TokenArg
from close_mcp.writes.gate import Decision, question
from close_mcp.writes.pipeline import Pipeline
from close_mcp.writes.progress import Progress, Sink
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.results import WriteResult

P = ParamSpec("P")
R = TypeVar("R")
# Close saying no to a change of an object's state (not paused, already sent, gone).
CLOSE_REFUSALS: Final = frozenset({400, 404, 405})
READ: Final = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


def writes(
    *, destructive: bool = True, idempotent: bool = False, open_world: bool = False
) -> ToolAnnotations:
    """The annotations of a tool that changes data in Close, every hint said explicitly:
    destructive unless it only adds, idempotent when a repeat changes nothing more, open
    world when it reaches people outside the CRM (emails)."""
    return ToolAnnotations(
        read_only_hint=False,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


# The annotations most write tools share, named once.
CHANGES: Final = writes()  # changes or deletes what is in Close
ADDS: Final = writes(destructive=False)  # only adds to Close
EMAILS: Final = writes(open_world=True)  # reaches people outside the CRM


@dataclass(frozen=True)
class Invocation:
    """What a tool's step gets besides its arguments: the server, and this call's caller
    (the headers that choose the Close key) and progress channel."""

    runtime: Runtime
    headers: Mapping[str, str] | None = None
    report_progress: Sink | None = None

    @cached_property
    def call(self) -> Call:
        """The client for this caller's key and a catalog over it, made once per call."""
        return self.runtime.call(self.headers)

    def progress(self) -> Progress:
        return Progress(self.report_progress, self.runtime.clock)


RunStep = Callable[[Invocation, Any], Awaitable[BaseModel]]
PrepareStep = Callable[[Invocation, Any], Awaitable[WriteRequest]]
Recover = Callable[[Invocation, Any, WriteRequest, CloseAPIError], Awaitable[WriteResult | None]]


@dataclass(frozen=True, kw_only=True)
class Tool:
    """What every tool declares; `tools/list` shows each field (`arguments` as the input
    schema, `toolset` in `_meta`)."""

    name: str
    title: str
    description: str
    toolset: str
    annotations: ToolAnnotations
    arguments: type[BaseModel]


@dataclass(frozen=True, kw_only=True)
class DirectTool(Tool):
    """A tool whose `run` answers the call itself: the reads, and pausing a job (the safe
    direction, never confirmed)."""

    run: RunStep
    result: type[BaseModel]
    annotations: ToolAnnotations = field(default_factory=lambda: READ)


@dataclass(frozen=True, kw_only=True)
class WriteTool(Tool):
    """A tool whose `prepare` works out one exact write; the pipeline previews, confirms,
    refuses or sends it.

    `refused` names what Close refused (`cannot cancel <id>`): a refusal from Close
    (`CLOSE_REFUSALS`) is then a tool error that starts with it. `recover`, given that
    refusal, may still find the write done (a resume Close refused because it had resumed).
    """

    prepare: PrepareStep
    refused: Callable[[Any], str] | None = None
    recover: Recover | None = None


def tool_function(tool: Tool, runtime: Runtime) -> Callable[..., Awaitable[Any]]:
    """The function the SDK registers for `tool`: its signature is the tool's input schema."""
    if isinstance(tool, WriteTool):
        return _write_function(tool, runtime)
    assert isinstance(tool, DirectTool)
    return _direct_function(tool, runtime)


def _direct_function(tool: DirectTool, runtime: Runtime) -> Callable[..., Awaitable[Any]]:
    async def run(ctx: Context, **arguments: Any) -> Any:
        invocation = Invocation(runtime, ctx.headers, ctx.report_progress)
        return await tool.run(invocation, tool.arguments.model_construct(**arguments))

    return _signed(run, tool.name, _parameters(tool.arguments), tool.result)


def _write_function(tool: WriteTool, runtime: Runtime) -> Callable[..., Awaitable[Any]]:
    own = _parameters(tool.arguments, defaults=False)

    async def work_out(ctx: Context, **arguments: Any) -> WriteRequest:
        invocation = Invocation(runtime, ctx.headers, ctx.report_progress)
        return await tool.prepare(invocation, tool.arguments.model_construct(**arguments))

    prepare = _signed(tool_errors(work_out), f"prepare_{tool.name}", own, WriteRequest)

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

    async def write(
        ctx: Context,
        request: WriteRequest,
        answer: ElicitationResult[Any],
        **arguments: Any,
    ) -> WriteResult:
        dry_run = arguments.pop("dry_run")
        token = arguments.pop("confirmation_token")
        client = runtime.client_for(ctx.headers)
        progress = request.progress or Progress(ctx.report_progress, runtime.clock)
        pipeline = Pipeline(runtime.writes, client, progress, runtime.server_jobs)
        try:
            return await pipeline.run(request, dry_run=dry_run, token=token, answer=answer)
        except CloseAPIError as exc:
            if tool.refused is None or exc.status not in CLOSE_REFUSALS:
                raise
            args = tool.arguments.model_construct(**arguments)
            if tool.recover is not None:
                invocation = Invocation(runtime, ctx.headers, ctx.report_progress)
                done = await tool.recover(invocation, args, request, exc)
                if done is not None:
                    return done
            raise ToolError(f"{tool.refused(args)}: {exc.message}") from exc

    confirmation = [
        _parameter("dry_run", DryRunArg, False),
        _parameter("confirmation_token", TokenArg, None),
    ]
    resolved = [
        _parameter("request", Annotated[WriteRequest, Resolve(prepare)]),
        _parameter("answer", Annotated[ElicitationResult[Any], Resolve(confirm)]),
    ]
    return _signed(
        write, tool.name, [*resolved, *_parameters(tool.arguments), *confirmation], WriteResult
    )


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Raise anticipated failures as `ToolError`, so the model reads a message it can act on;
    one that quotes CRM text ends with the notice that it is data. Resolvers run outside the
    tool body, so a write tool's `prepare` is wrapped too."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except CloseMcpError as exc:
            if exc.quotes_crm_text:
                raise ToolError(f"{exc} ({ERROR_CRM_NOTICE})") from exc
            raise ToolError(str(exc)) from exc

    return wrapper


def _parameters(model: type[BaseModel], *, defaults: bool = True) -> list[inspect.Parameter]:
    """The model's fields as keyword parameters: the tool's own fields first, then those of
    the lead selection (as every bulk tool lists them)."""
    shared = set(BulkSelection.model_fields)
    names = sorted(model.model_fields, key=lambda name: name in shared)
    params = []
    for name in names:
        info = model.model_fields[name]
        described = Field(
            description=info.description,
            json_schema_extra=info.json_schema_extra,
            discriminator=info.discriminator,
        )
        annotation: Any = Annotated.__class_getitem__(  # type: ignore[attr-defined]
            (info.annotation, *info.metadata, described)
        )
        default = (
            inspect.Parameter.empty
            if info.is_required() or not defaults
            else info.get_default(call_default_factory=True)
        )
        params.append(_parameter(name, annotation, default))
    return params


def _parameter(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> Any:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)  # fmt: skip


def _signed(
    fn: Callable[..., Awaitable[Any]],
    name: str,
    params: list[inspect.Parameter],
    returns: Any,
) -> Callable[..., Awaitable[Any]]:
    """`fn` with the signature (and evaluated annotations) the SDK reads."""
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Context)
    fn.__signature__ = inspect.Signature([context, *params], return_annotation=returns)  # type: ignore[attr-defined]
    fn.__annotations__ = {
        "ctx": Context,
        **{p.name: p.annotation for p in params},
        "return": returns,
    }
    fn.__name__ = fn.__qualname__ = name
    return fn
