"""Serving over stdio, where every request gets an answer, even one the SDK cannot read.

The SDK's stdio reader hands a line it cannot parse (JSON nested deeper than its parser's
limit, or JSON that is no JSON-RPC message) to the server as an exception, and the server
drops it without a word: the client would wait forever for an answer to that id.
`Answering` sits between the two: such a line is answered with the JSON-RPC error its
kind calls for (-32700 parse error, -32600 invalid request), carrying the request's id when it
can be found at the top level of the line, else `null` as JSON-RPC asks.
"""

from __future__ import annotations

import json
import re
from types import TracebackType
from typing import Any, Final, Self

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import ErrorData, JSONRPCError
from pydantic import ValidationError

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
_TOP_LEVEL_ID: Final = re.compile(r'\s*"id"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')
_ID_LIMIT: Final = 200  # characters of an id worth echoing back


def _input_of(error: Exception) -> object:
    """What the SDK failed to read: the raw line (not JSON it could parse) or the parsed JSON."""
    if isinstance(error, ValidationError):
        for detail in error.errors():
            if "input" in detail:
                return detail["input"]
    return None


def _usable_id(value: object) -> str | int | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return value if isinstance(value, int) or len(value) <= _ID_LIMIT else None


def _top_level_id(line: str) -> str | int | None:
    """The `id` member of the outermost object, found without parsing what is nested in it.

    A scan that counts brackets outside strings: the id of a request nested 5,000 deep sits at
    depth 1, where a recursive parser never gets to look once it gave up on the rest.
    """
    depth, in_string, escaped = 0, False, False
    for index, char in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            if depth == 1 and (found := _TOP_LEVEL_ID.match(line, index)):
                return _usable_id(json.loads(found.group(1)))
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return None


def answer_for(error: Exception) -> JSONRPCError | None:
    """The error that answers what the SDK could not read, or None: nothing to answer (an
    exception of another kind, or a malformed message without an id: nobody waits for it)."""
    given = _input_of(error)
    if isinstance(given, dict):
        if "id" not in given:
            return None
        request_id = _usable_id(given["id"])
        code, message = INVALID_REQUEST, "the message is not a valid JSON-RPC 2.0 message"
    elif isinstance(given, str):
        request_id = _top_level_id(given)
        try:
            json.loads(given)
        except RecursionError:
            code, message = PARSE_ERROR, "the message is nested too deeply to be read"
        except ValueError:
            code, message = PARSE_ERROR, "the message is not valid JSON"
        else:
            code, message = INVALID_REQUEST, "the message is not a valid JSON-RPC 2.0 message"
    else:
        return None
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))


class Answering:
    """The SDK's read stream, with unreadable lines answered instead of passed on."""

    def __init__(self, inner: Any, write: Any) -> None:
        self._inner = inner
        self._write = write

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        while True:
            item: SessionMessage | Exception = await self._inner.receive()
            answer = answer_for(item) if isinstance(item, Exception) else None
            if answer is None:
                return item
            await self._write.send(SessionMessage(answer))

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None


async def serve_stdio(server: MCPServer) -> None:
    """`server.run("stdio")`, with every line answered (module docstring)."""
    lowlevel = server._lowlevel_server  # the SDK offers no hook between stdio and the server
    async with stdio_server() as (read_stream, write_stream):
        await lowlevel.run(
            Answering(read_stream, write_stream),
            write_stream,
            lowlevel.create_initialization_options(),
        )


def run_stdio(server: MCPServer) -> None:
    anyio.run(serve_stdio, server)
