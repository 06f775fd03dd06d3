"""Real close-mcp processes for tests that cross a process boundary (HTTP replicas, clients).

A process is started on a free loopback port and waited for by polling its health URL, with
a bound; it is always stopped, and its output is kept for the failure message.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without a Close key, with no audit file unless asked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOSE_API", "CLOSE_MCP"))}
    env["CLOSE_MCP_AUDIT_LOG"] = "off"
    env.update(extra)
    return env


def child_env(home: Path) -> dict[str, str]:
    """Only what a child needs: PATH, a throwaway HOME, and the audit log switched off."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "CLOSE_MCP_AUDIT_LOG": "off",
    }


@contextmanager
def sandbox_close(folder: Path, leads: int = 60) -> Iterator[str]:
    """`close-mcp sandbox` on a free port until the block ends (its log in `folder`): the
    base URL of its Close API."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1/"
    args = ["sandbox", "--port", str(port), "--leads", str(leads)]
    with running(args, env=clean_env(), health=base + "me/", log=folder / "sandbox.log"):
        yield base


@contextmanager
def running(
    args: list[str], *, env: Mapping[str, str], health: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m close_mcp ARGS` until the block ends; `health` must answer first."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "close_mcp", *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        with started(proc):
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:  # bounded polling until the process answers
                if proc.poll() is not None:
                    raise RuntimeError(f"close-mcp {args} exited: {log.read_text()}")
                try:
                    if httpx.get(health, timeout=1.0).status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"close-mcp {args} not up in {STARTUP_TIMEOUT_S}s")
                time.sleep(0.1)
            yield proc


@contextmanager
def started(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """`proc` until the block ends, then stopped (killed if it does not stop in 10 s)."""
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
