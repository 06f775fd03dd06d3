"""What the command line says about itself, through real processes (issue 29).

Over HTTP it names the URL it listens on; on stdio in a terminal it says it waits for a client
(piped, as clients run it, it says nothing); a busy port is one line naming the port and
`--port` with nothing printed before it; a mistyped command names the commands; `serve --help`
gives each default as it is in each mode.
"""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.processes import child_env, free_port, started

TIMEOUT_S = 30


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return child_env(tmp_path)


def close_mcp(*args: str) -> list[str]:
    return [sys.executable, "-m", "close_mcp", *args]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        close_mcp(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def read_line(fd: int, deadline: float) -> str:
    """One line from a pipe or pty, waiting at most until `deadline` (bounded)."""
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no full line in time; got {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 1)
            if not chunk:
                raise AssertionError(f"closed before a full line; got {data!r}")
            data += chunk
    return data.decode()


@contextmanager
def occupied_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


def test_http_says_on_stderr_the_url_it_listens_on(env: dict[str, str]) -> None:
    port = free_port()
    args = ["serve", "--sandbox", "--transport", "http", "--port", str(port)]
    proc = subprocess.Popen(
        close_mcp(*args), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    with started(proc):
        assert proc.stderr is not None
        line = read_line(proc.stderr.fileno(), time.monotonic() + TIMEOUT_S)
        # The line comes once the port is bound: the URL it names answers at once.
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
    assert proc.stderr.read() == b""  # that one line, nothing else until it stopped
    assert line == (
        f"close-mcp: serving MCP (Streamable HTTP) at http://127.0.0.1:{port}/mcp "
        f"(health: http://127.0.0.1:{port}/health); Ctrl-C stops it\n"
    )
    assert health.status_code == 200


def test_stdio_in_a_terminal_says_it_waits_for_a_client(env: dict[str, str]) -> None:
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            close_mcp("serve", "--sandbox"), env=env, stdin=terminal, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        with started(proc):
            assert proc.stderr is not None
            line = read_line(proc.stderr.fileno(), time.monotonic() + TIMEOUT_S)
        rest = proc.stderr.read()
    finally:
        os.close(controller)
        os.close(terminal)
    assert rest == b""  # one line, nothing else until it was stopped
    assert line == (
        "close-mcp: waiting for an MCP client on stdin (this is a stdio server: an MCP client "
        "starts it; Ctrl-C stops it)\n"
    )


def test_stdio_from_a_client_prints_nothing(env: dict[str, str]) -> None:
    """A client's pipe is not a terminal: no line on stderr (stdin at EOF ends the server)."""
    done = run(["serve", "--sandbox"], env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.parametrize(
    "command",
    [["sandbox", "--leads", "5"], ["serve", "--sandbox", "--transport", "http"]],
    ids=["sandbox", "serve-http"],
)
def test_a_busy_port_is_one_line_naming_it_and_the_flag(
    env: dict[str, str], command: list[str]
) -> None:
    with occupied_port() as port:
        done = run([*command, "--port", str(port)], env)
    assert done.returncode == 2
    assert done.stdout == ""  # no banner pointing at the other program
    assert done.stderr == (
        f"close-mcp: error: port {port} on 127.0.0.1 is already in use; choose another with "
        "--port\n"
    )


def test_an_unknown_command_names_the_commands(env: dict[str, str]) -> None:
    done = run(["bogus"], env)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines()[-1] == (
        "close-mcp: error: unknown command 'bogus'; the commands are: check, demo, restore, "
        "sandbox, schemas, serve (without one: serve)"
    )


def test_serve_options_still_mean_serve(env: dict[str, str]) -> None:
    """Without a command the arguments are serve's: `close-mcp --toolsets search --sandbox`."""
    done = run(["--toolsets", "search", "--sandbox"], env)
    assert (done.returncode, done.stderr) == (0, "")


def test_serve_help_gives_the_store_default_of_each_mode(env: dict[str, str]) -> None:
    done = run(["serve", "--help"], env)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert (
        "CLOSE_MCP_STORE the state store: a SQLite path or redis://host:port/db (default: "
        "state.sqlite3 in the state dir; with --sandbox: :memory:, forgotten when the server "
        "stops)"
    ) in text
    assert "--port PORT HTTP port, with --transport http (default: 8000)" in text
