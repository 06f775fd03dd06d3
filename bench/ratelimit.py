"""Rate-limit efficiency: 500 reads through the server against a sandbox limited to 20/s.

The sandbox is served by uvicorn on a thread of this process, so its request log shows
every 429 it answered; `close-mcp serve` runs on stdio in a child process. Each read is
`get_bulk_job` (one GET). Passing: no 429 reaches the caller as a tool error, and reads
complete at 90% of the limit or better. The sandbox allows bursts of `rate` requests, so
the first second runs above the limit; the figure is taken over the whole run.
"""

from __future__ import annotations

import time

import anyio

from bench.common import confirmed, sandbox_thread, serve_params, stdio_client
from bench.report import Row

RATE = 20.0
TARGET_SHARE = 0.9


async def measure(reads: int = 500) -> list[Row]:
    with sandbox_thread(n_leads=200, rate_limit=RATE) as sb:
        async with stdio_client(serve_params(sb.server_env())) as mcp:
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
            await anyio.sleep(1.5)  # let the bucket refill after the set-up calls
            before = len(sb.sandbox.requests)
            errors = 0
            started = time.perf_counter()
            for _ in range(reads):
                result = await mcp.call_tool("get_bulk_job", {"job_id": job_id})
                errors += bool(result.is_error)
            elapsed = time.perf_counter() - started
        answered = [r.status for r in sb.sandbox.requests[before:]]
    limited = answered.count(429)
    rate = (reads - errors) / elapsed
    return [
        Row(
            f"rate limit {RATE:.0f}/s: {reads} reads, 429s surfaced as tool errors",
            str(errors),
            f"{limited} 429s answered by the sandbox, retried",
            "",
            "0",
            errors == 0,
        ),
        Row(
            f"rate limit {RATE:.0f}/s: throughput",
            f"{rate:.1f} reads/s ({elapsed:.1f} s)",
            f"{RATE:.0f}/s limit",
            f"{rate / RATE:.0%} of limit",
            f">= {TARGET_SHARE:.0%} of limit",
            rate >= TARGET_SHARE * RATE,
        ),
    ]
