"""Cold start: process spawn to the `tools/list` answer over stdio.

Variants, run round-robin so they share the machine's state: `python -c pass`, a minimal
`MCPServer` with one tool (the floor for this SDK), `close-mcp serve` configured for Close
with a dummy key (a real deployment), and `close-mcp serve --sandbox`.
"""

from __future__ import annotations

import subprocess
import time

from mcp.client.stdio import StdioServerParameters

from bench.common import PYTHON, REPO, base_env, median, minimal_server_file, stdio_client
from bench.report import Row, ms, ratio

TARGET = 1.5


async def time_to_tools(params: StdioServerParameters) -> float:
    started = time.perf_counter()
    async with stdio_client(params) as client:
        await client.list_tools()
        return time.perf_counter() - started


def time_bare() -> float:
    started = time.perf_counter()
    subprocess.run([PYTHON, "-c", "pass"], check=True, env=base_env())
    return time.perf_counter() - started


async def measure(runs: int = 7) -> tuple[list[Row], dict[str, float]]:
    env_close = base_env(
        CLOSE_API_KEY="api_dummy_bench_key",
        CLOSE_API_BASE_URL="http://127.0.0.1:9/api/v1/",  # never contacted at start
        CLOSE_MCP_AUDIT_LOG="off",
    )
    env_sandbox = base_env(CLOSE_MCP_AUDIT_LOG="off")
    with minimal_server_file() as minimal:
        variants: dict[str, StdioServerParameters] = {
            "minimal MCPServer": StdioServerParameters(
                command=PYTHON, args=[str(minimal)], env=base_env(), cwd=str(REPO)
            ),
            "close-mcp serve": StdioServerParameters(
                command=PYTHON, args=["-m", "close_mcp", "serve"], env=env_close, cwd=str(REPO)
            ),
            "close-mcp serve --sandbox": StdioServerParameters(
                command=PYTHON,
                args=["-m", "close_mcp", "serve", "--sandbox"],
                env=env_sandbox,
                cwd=str(REPO),
            ),
        }
        times: dict[str, list[float]] = {"python -c pass": []} | {k: [] for k in variants}
        for params in variants.values():  # warm the bytecode caches
            await time_to_tools(params)
        for _ in range(runs):
            times["python -c pass"].append(time_bare())
            for name, params in variants.items():
                times[name].append(await time_to_tools(params))
    med = {name: median(values) for name, values in times.items()}
    floor, bare = med["minimal MCPServer"], med["python -c pass"]
    rows = [
        Row("cold start: python -c pass", ms(bare)),
        Row("cold start: minimal MCPServer", ms(floor), ms(bare), ratio(floor, bare)),
    ]
    for name in ("close-mcp serve", "close-mcp serve --sandbox"):
        rows.append(
            Row(
                f"cold start: {name}",
                ms(med[name]),
                f"{ms(floor)} (minimal)",
                f"{ratio(med[name], floor)} ({ratio(med[name], bare)} bare)",
                f"<= {TARGET}x minimal",
                med[name] <= TARGET * floor,
            )
        )
    return rows + breakdown(), med


BREAKDOWN = """\
import sys, time
t0 = time.perf_counter()
import mcp.server.mcpserver
t1 = time.perf_counter()
import jsonschema
t2 = time.perf_counter()
import httpx
t3 = time.perf_counter()
from close_mcp.cli.main import build_parser
from close_mcp.cli.commands import make_runtime, settings_from_args
from close_mcp.server.app import build_server
from close_mcp.server.tools import declarations
declarations()
t4 = time.perf_counter()
runtime = make_runtime(settings_from_args(build_parser().parse_args(["serve"])))
t5 = time.perf_counter()
build_server(runtime)
t6 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)
"""
PARTS = (
    "import the MCP SDK",
    "import jsonschema (s_query checks)",
    "import httpx (Close client)",
    "import close_mcp",
    "settings and runtime",
    "build_server (the tools' schemas)",
)


def breakdown(runs: int = 5) -> list[Row]:
    """Where `close-mcp serve`'s start-up goes (in-process timings, median of `runs`)."""
    env = base_env(CLOSE_API_KEY="api_dummy_bench_key", CLOSE_MCP_AUDIT_LOG="off")
    samples: list[list[float]] = []
    for _ in range(runs):
        out = subprocess.run(
            [PYTHON, "-c", BREAKDOWN], env=env, cwd=str(REPO), check=True, capture_output=True
        ).stdout
        samples.append([float(x) for x in out.split()])
    return [
        Row(f"  start-up: {name}", ms(median([s[i] for s in samples])))
        for i, name in enumerate(PARTS)
    ]
