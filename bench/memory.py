"""Memory: resident set (VmRSS) of `close-mcp serve` idle and after many calls.

The server runs on stdio in a child process against `close-mcp sandbox` in another, so
nothing but the server is in the figure. Calls are `get_bulk_job` (one GET each), a few in
flight at once so 10,000 fit in about a minute. Growth is read from 1,000 calls (caches and
pools warm) to the end, so start-up allocation does not count as a leak.
"""

from __future__ import annotations

import time

import anyio

from bench.common import confirmed, find_child, rss_kib, sandbox_process, serve_params, stdio_client
from bench.report import Row

IN_FLIGHT = 8
MAX_SECONDS = 150.0
NOISE_KIB = 2048  # 2 MiB: allocator and GC noise on a ~100 MiB process


async def measure(calls: int = 10_000) -> tuple[list[Row], dict[int, int]]:
    samples: dict[int, int] = {}
    with sandbox_process(leads=200) as sb:
        async with stdio_client(serve_params(sb.server_env())) as mcp:
            pid = find_child("close_mcp serve")
            await mcp.list_tools()
            samples[0] = rss_kib(pid)
            made = await confirmed(
                mcp,
                "create_bulk_edit",
                {
                    "filter": {"lead_status": "Potential"},
                    "results_limit": 1,
                    "edit": {"type": "set_lead_status", "lead_status": "Potential"},
                },
            )
            assert made.get("job"), made
            job_id = made["job"]["id"]
            done = 0
            checkpoints = {1000, calls // 2, calls}
            deadline = time.monotonic() + MAX_SECONDS
            errors = 0

            async def worker() -> None:
                nonlocal done, errors
                while done < calls and time.monotonic() < deadline:
                    done += 1
                    result = await mcp.call_tool("get_bulk_job", {"job_id": job_id})
                    errors += bool(result.is_error)
                    if done in checkpoints:
                        samples[done] = rss_kib(pid)

            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(IN_FLIGHT):
                    tg.start_soon(worker)
            elapsed = time.perf_counter() - started
            samples[done] = rss_kib(pid)
    idle = samples[0]
    warm = samples.get(1000, idle)
    final = samples[done]
    growth = final - warm
    return [
        Row("memory: idle server RSS", f"{idle / 1024:.1f} MiB"),
        Row(
            f"memory: RSS after {done:,} calls ({elapsed:.0f} s, {errors} errors)",
            f"{final / 1024:.1f} MiB",
            f"{warm / 1024:.1f} MiB after 1,000",
            f"{growth / 1024:+.1f} MiB",
            "growth < 2 MiB",
            growth < NOISE_KIB and done == calls and errors == 0,
        ),
    ], samples
