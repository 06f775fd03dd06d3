"""Shared pieces of the benchmarks: processes, sandboxes, clients, statistics.

Everything here is bounded: every wait has a deadline and every process started is stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from close_mcp.sandbox import SANDBOX_API_KEY, Sandbox

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent
TOKEN_BYTES = 4  # the usual rough estimate: a token is about four bytes of JSON


def tokens(n_bytes: int) -> int:
    return round(n_bytes / TOKEN_BYTES)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def base_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this one, without a real key, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOSE_API", "CLOSE_MCP"))}
    env.update(extra)
    return env


@dataclass
class SandboxProcess:
    """`close-mcp sandbox` in a child process, on a free loopback port."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/"

    def server_env(self, audit_log: str = "off") -> dict[str, str]:
        """The environment that points `close-mcp serve` at this sandbox."""
        return base_env(
            CLOSE_API_BASE_URL=self.base_url,
            CLOSE_API_KEY=SANDBOX_API_KEY,
            CLOSE_MCP_AUDIT_LOG=audit_log,
        )


@contextlib.contextmanager
def sandbox_process(
    *, rate_limit: str | None = None, leads: int = 1000
) -> Iterator[SandboxProcess]:
    port = free_port()
    args = [PYTHON, "-m", "close_mcp", "sandbox", "--port", str(port), "--leads", str(leads)]
    if rate_limit:
        args += ["--rate-limit", rate_limit]
    process = subprocess.Popen(
        args, env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield SandboxProcess(port, process)
    finally:
        stop(process)


@dataclass
class SandboxThread:
    """A sandbox served by uvicorn on a thread of this process, so its request log is readable."""

    sandbox: Sandbox
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/"

    def server_env(self, audit_log: str = "off") -> dict[str, str]:
        return base_env(
            CLOSE_API_BASE_URL=self.base_url,
            CLOSE_API_KEY=SANDBOX_API_KEY,
            CLOSE_MCP_AUDIT_LOG=audit_log,
        )


@contextlib.contextmanager
def sandbox_thread(**options: Any) -> Iterator[SandboxThread]:
    import uvicorn

    sandbox = Sandbox(**options)
    port = free_port()
    config = uvicorn.Config(sandbox.app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="sandbox", daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield SandboxThread(sandbox, port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def serve_params(env: dict[str, str], *extra: str) -> StdioServerParameters:
    """`close-mcp serve` on stdio, as a desktop client launches it."""
    return StdioServerParameters(
        command=PYTHON, args=["-m", "close_mcp", "serve", *extra], env=env, cwd=str(REPO)
    )


@contextlib.asynccontextmanager
async def stdio_client(params: StdioServerParameters) -> AsyncIterator[Client]:
    # Client-side checks of results against output schemas are the client's business, not the
    # server's; they are left on (that is what clients do) and apply equally to the baseline.
    async with Client(params, read_timeout_seconds=60) as client:
        yield client


async def confirmed(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """A write through both steps: the first call only previews (every action is confirmed by
    default), the second sends with its token. The structured result of the second."""
    first = await client.call_tool(tool, args)
    content = first.structured_content
    assert content, first
    assert content.get("status") == "confirmation_required", content
    done = await client.call_tool(
        tool, {**args, "confirmation_token": content["confirmation_token"]}
    )
    assert done.structured_content, done
    return dict(done.structured_content)


def direct_client(base_url: str) -> httpx.AsyncClient:
    """A plain httpx client to the sandbox: the baseline every tool call is compared against."""
    return httpx.AsyncClient(
        base_url=base_url, auth=httpx.BasicAuth(SANDBOX_API_KEY, ""), timeout=30.0
    )


MINIMAL_SERVER = '''\
"""The floor: a minimal MCPServer with one tool (written by bench/common.py)."""
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("minimal", log_level="WARNING")
_http = None


@server.tool()
async def get(path: str) -> dict:
    """GET a path of the API at MINIMAL_BASE_URL and return its JSON."""
    global _http
    if _http is None:
        import httpx  # lazily, so the cold-start floor is the SDK alone

        _http = httpx.AsyncClient(
            base_url=os.environ.get("MINIMAL_BASE_URL", "http://127.0.0.1:9/"),
            auth=(os.environ.get("MINIMAL_KEY", ""), ""),
        )
    return (await _http.get(path)).json()


if __name__ == "__main__":
    server.run("stdio")
'''


@contextlib.contextmanager
def minimal_server_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="close-mcp-bench-") as tmp:
        path = Path(tmp) / "minimal_server.py"
        path.write_text(MINIMAL_SERVER)
        yield path


def wire_size(model: Any) -> int:
    """Bytes of a result or tool as JSON on the wire (compact, aliases, no nulls)."""
    data = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


def find_child(cmd_part: str) -> int:
    for pid in children_of(os.getpid()):
        with contextlib.suppress(OSError):
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
            if cmd_part.encode() in cmdline:
                return pid
    raise LookupError(f"no child process running {cmd_part!r}")


def rss_kib(pid: int) -> int:
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for {pid}")
