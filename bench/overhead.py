"""Per-call overhead: a read tool over stdio against the sandbox on loopback, minus the same
Close request made directly with httpx.

The sandbox runs as `close-mcp sandbox` in a child process; `close-mcp serve` (another child)
points at it. Like is compared with like: `get_bulk_job` makes one GET, and `search_leads`
with a raw `s_query` makes one `/data/search/` POST (counted in bench/requests.py), so each is
timed against exactly that request. The SDK's own floor is a minimal `MCPServer` whose one
tool makes the same GET with httpx.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.client.stdio import StdioServerParameters

from bench.common import (
    PYTHON,
    REPO,
    SANDBOX_API_KEY,
    base_env,
    confirmed,
    direct_client,
    median,
    minimal_server_file,
    sandbox_process,
    serve_params,
    stdio_client,
)
from bench.report import Row

TARGET_MS = 2.0
SAMPLE_FIELDS = ["id", "display_name", "status_label"]


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def measure(calls: int = 300, warmup: int = 30) -> list[Row]:
    with sandbox_process() as sb, minimal_server_file() as minimal:
        minimal_params = StdioServerParameters(
            command=PYTHON,
            args=[str(minimal)],
            env=base_env(MINIMAL_BASE_URL=sb.base_url, MINIMAL_KEY=SANDBOX_API_KEY),
            cwd=str(REPO),
        )
        async with (
            direct_client(sb.base_url) as http,
            stdio_client(serve_params(sb.server_env())) as mcp,
            stdio_client(minimal_params) as floor,
        ):
            found = await mcp.call_tool(
                "search_leads", {"filter": {"lead_status": "Potential"}, "sample_size": 1}
            )
            assert found.structured_content, found
            s_query = found.structured_content["s_query"]
            made = await confirmed(
                mcp,
                "create_bulk_edit",
                {
                    "s_query": s_query,
                    "results_limit": 1,
                    "edit": {"type": "set_lead_status", "lead_status": "Potential"},
                },
            )
            assert made.get("job"), made
            job_id = made["job"]["id"]
            job_path = f"bulk_action/edit/{job_id}/"
            search_body = {
                "query": s_query,
                "_limit": 5,
                "_fields": {"lead": SAMPLE_FIELDS},
                "include_counts": True,
            }

            async def direct_get() -> None:
                (await http.get(job_path)).raise_for_status()

            async def direct_search() -> None:
                (await http.post("data/search/", json=search_body)).raise_for_status()

            async def tool_get() -> None:
                result = await mcp.call_tool("get_bulk_job", {"job_id": job_id})
                assert not result.is_error, result

            async def tool_search() -> None:
                result = await mcp.call_tool("search_leads", {"s_query": s_query})
                assert not result.is_error, result

            async def floor_get() -> None:
                result = await floor.call_tool("get", {"path": job_path})
                assert not result.is_error, result

            cases = {
                "direct GET": direct_get,
                "get_bulk_job": tool_get,
                "minimal GET": floor_get,
                "direct search": direct_search,
                "search_leads": tool_search,
            }
            times: dict[str, list[float]] = {name: [] for name in cases}
            for i in range(warmup + calls):
                for name, fn in cases.items():  # interleaved, so drift hits all alike
                    elapsed = await timed(fn)
                    if i >= warmup:
                        times[name].append(elapsed)
    med = {name: median(values) * 1000 for name, values in times.items()}
    floor_added = med["minimal GET"] - med["direct GET"]
    rows = [
        Row(
            "per call: minimal MCPServer GET (SDK floor)",
            f"+{floor_added:.2f} ms",
            f"{med['direct GET']:.2f} ms direct",
            f"{med['minimal GET']:.2f} ms total",
        )
    ]
    for tool, base in (("get_bulk_job", "direct GET"), ("search_leads", "direct search")):
        added = med[tool] - med[base]
        rows.append(
            Row(
                f"per call: {tool} over stdio, added",
                f"+{added:.2f} ms",
                f"{med[base]:.2f} ms {base}",
                f"{med[tool]:.2f} ms total; +{added - floor_added:.2f} over floor",
                f"< {TARGET_MS:.0f} ms added",
                added < TARGET_MS,
            )
        )
    return rows
