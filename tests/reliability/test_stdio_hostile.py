"""Issue 23, item 19: over real stdio, every request gets an answer.

A real `close-mcp serve --sandbox` process, spoken to line by line as a hostile client
would: dates at the very ends of the calendar get a tool error naming the field (not a bare
"Error executing tool"), and a request nested 5,000 deep, which the SDK's parser refuses
and used to drop without a word (the client waited forever), gets a JSON-RPC error with its
own id. Each read has a deadline, so a server that stays silent fails the test, never hangs it.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

DEADLINE_S: Final = 30.0
DEEP: Final = 5_000


class Wire:
    """A child's stdin and stdout as JSON-RPC lines, each read bounded by a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def answer(self, request_id: object) -> dict[str, Any]:
        """The next message with this id (notifications in between are skipped)."""
        while True:
            try:
                line = self.lines.get(timeout=DEADLINE_S)
            except queue.Empty:
                raise AssertionError(f"no answer to request {request_id!r}") from None
            message: dict[str, Any] = json.loads(line)
            if message.get("id") == request_id:
                return message

    def answer_before_ping(self, request_id: object) -> dict[str, Any]:
        """The answer to `request_id`, which must come before the answer to a ping sent right
        after it: a line the reader cannot parse is answered as it is read, before the next
        line is, so a server that drops it is caught at the ping, not after a deadline."""
        self.send(json.dumps({"jsonrpc": "2.0", "id": "ping-after", "method": "ping"}))
        answers: dict[object, dict[str, Any]] = {}
        while "ping-after" not in answers:
            message = self.answer_any()
            answers[message.get("id")] = message
        assert request_id in answers, f"no answer to request {request_id!r} before the ping's"
        return answers[request_id]

    def answer_any(self) -> dict[str, Any]:
        """The next message that answers a request (notifications are skipped)."""
        while True:
            try:
                line = self.lines.get(timeout=DEADLINE_S)
            except queue.Empty:
                raise AssertionError("no answer") from None
            message: dict[str, Any] = json.loads(line)
            if "id" in message:
                return message


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Wire]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "CLOSE_MCP_AUDIT_LOG": "off",
    }
    with (tmp_path / "stderr.txt").open("wb") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "close_mcp", "serve", "--sandbox"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
        )
        try:
            connection = Wire(proc)
            connection.send(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "protocolVersion": "2025-11-25",
                            "capabilities": {},
                            "clientInfo": {"name": "hostile", "version": "1"},
                        },
                    }
                )
            )
            assert connection.answer(1)["result"]["serverInfo"]["name"] == "close-mcp"
            connection.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
            yield connection
        finally:
            proc.kill()
            proc.wait(timeout=10)


def search(request_id: int, filter: dict[str, Any]) -> str:
    params = {"name": "search_leads", "arguments": {"filter": filter}}
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    )


def test_dates_at_the_ends_of_the_calendar_get_a_tool_error_naming_the_field(
    wire: Wire,
) -> None:
    ends = {"created_after": "0001-01-01", "created_before": "9999-12-31T23:59:59+14:00"}
    wire.send(search(2, ends))
    result = wire.answer(2)["result"]
    assert result["isError"] is True
    (text,) = [part["text"] for part in result["content"]]
    assert text == (
        "Error executing tool search_leads: filter.created_after: '0001-01-01' is out of range: "
        "in UTC it falls outside the years 1 to 9999 (the first whole day allowed is 0001-01-02)"
    )
    # An instant that is in year 0 in UTC names its own field.
    wire.send(search(3, {"updated_before": "0001-01-01T00:00:00+01:00"}))
    (other,) = [part["text"] for part in wire.answer(3)["result"]["content"]]
    assert other.startswith("Error executing tool search_leads: filter.updated_before: ")
    assert "out of range" in other
    # The server is still there and answers the next call.
    wire.send(search(4, {"lead_status": "Qualified"}))
    assert wire.answer(4)["result"]["structuredContent"]["total"] > 0


def test_a_request_nested_5000_deep_gets_a_json_rpc_error_with_its_id(wire: Wire) -> None:
    deep = "[" * DEEP + "]" * DEEP
    line = (
        '{"jsonrpc": "2.0", "id": "deep-7", "method": "tools/call", "params": '
        '{"name": "search_leads", "arguments": {"s_query": ' + deep + "}}}"
    )
    wire.send(line)
    answer = wire.answer_before_ping("deep-7")
    assert answer["error"]["code"] == -32700
    assert "nested" in answer["error"]["message"]
    # A line that is no JSON-RPC message at all is answered too (id null: none to echo).
    wire.send('{"jsonrpc": "2.0", "id": 8, "params": {}}')
    assert wire.answer(8)["error"]["code"] == -32600
    wire.send("[" * DEEP)
    assert wire.answer(None)["error"]["code"] == -32700
    wire.send(search(9, {"lead_status": "Qualified"}))
    assert wire.answer(9)["result"]["structuredContent"]["total"] > 0
