"""Run every benchmark and print one table: `python bench/run.py` (about seven minutes).

    python bench/run.py                 # everything, full counts
    python bench/run.py --quick         # smaller counts, for a smoke run (~1 minute)
    python bench/run.py --only tools    # one group: cold, overhead, tools, sizes, results,
                                        # ratelimit, memory, growth
    python bench/run.py --growth-100k   # growth also at 100,000 leads (several minutes more)

Figures, not assertions: the table marks each figure against its target (pass / MISS), and
the exit code is 0 either way unless a benchmark itself broke.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `close_mcp` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio

from bench import cold_start, growth, memory, overhead, ratelimit, results, scenarios, tool_list
from bench.report import Row, render

GROUPS = ("cold", "overhead", "tools", "sizes", "results", "ratelimit", "memory", "growth")


def build(quick: bool, growth_100k: bool = False) -> dict[str, Callable[[], Awaitable[list[Row]]]]:
    async def cold() -> list[Row]:
        rows, _ = await cold_start.measure(runs=3 if quick else 7)
        return rows

    async def per_call() -> list[Row]:
        return await overhead.measure(calls=60 if quick else 300, warmup=10 if quick else 30)

    async def tools() -> list[Row]:
        return tool_list.rows(await tool_list.measure())

    async def sizes() -> list[Row]:
        fig = await scenarios.collect()
        return scenarios.rows(fig) + scenarios.request_rows(fig)

    async def tokens() -> list[Row]:
        return await results.measure(leads=5_000 if quick else results.REVERT_LEADS)

    async def limited() -> list[Row]:
        return await ratelimit.measure(reads=100 if quick else 500)

    async def mem() -> list[Row]:
        rows, _ = await memory.measure(calls=2000 if quick else 10_000)
        return rows

    async def grow() -> list[Row]:
        sizes = (1_000,) if quick else growth.SIZES
        return growth.rows(await growth.collect(sizes + ((growth.LARGE,) if growth_100k else ())))

    return {
        "cold": cold,
        "overhead": per_call,
        "tools": tools,
        "sizes": sizes,
        "results": tokens,
        "ratelimit": limited,
        "memory": mem,
        "growth": grow,
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (smoke run)")
    parser.add_argument("--only", choices=GROUPS, action="append", help="run only these groups")
    parser.add_argument(
        "--growth-100k", action="store_true", help="growth also at 100,000 leads (opt-in: slow)"
    )
    args = parser.parse_args(argv)
    groups = build(args.quick, args.growth_100k)
    rows: list[Row] = []
    broken = 0
    for name in args.only or GROUPS:
        started = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            rows += await groups[name]()
        except Exception as exc:  # a broken benchmark is a row, and the rest still run
            broken += 1
            rows.append(
                Row(f"{name}: benchmark failed", f"{type(exc).__name__}: {exc}"[:120], ok=False)
            )
        print(f"[bench] {name} done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(
        f"close-mcp benchmarks on {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}{' (quick)' if args.quick else ''}\n"
    )
    print(render(rows))
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
