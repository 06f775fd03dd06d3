"""Result tokens as a model reads them: the text content a client receives, o200k_base.

Two figures against the 1,500-token bound of issue 18:

- the demo walk-through (`close_mcp.cli.demo.walk_through`, its calls unchanged): every
  result, the largest named;
- a revert of a bulk edit of every lead of a large organisation (50,000 leads; `--quick`
  5,000): the confirmation request (the first call) and the confirmed result. Its plan is
  50 bulk edits; the result shows the first few and points at `close://reverts/<job_id>`.

Run alone: `python bench/results.py [--leads N]`; `bench/run.py` runs it as `results`.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `close_mcp` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio
from mcp import types
from mcp.client import Client

from bench.report import Row, render
from bench.scenarios import in_process
from bench.tokens import count_tokens
from close_mcp.clock import FakeClock

RESULT_TOKENS_TARGET = 1500
REVERT_LEADS = 50_000
EVERY_LEAD = {"type": "match_all"}
EDIT = {"type": "set_lead_status", "lead_status": "Qualified"}


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def result_tokens(result: types.CallToolResult) -> int:
    """Tokens of what a client hands the model: the result's text content."""
    return count_tokens(text_of(result))


@dataclass
class Measured:
    tool: str
    tokens: int
    status: str = ""


@dataclass
class DemoFigures:
    calls: list[Measured] = field(default_factory=list)

    @property
    def largest(self) -> Measured:
        return max(self.calls, key=lambda c: c.tokens)


async def demo_results() -> DemoFigures:
    """Every result of the demo walk-through, in process on a fake clock."""
    import rich.console

    from close_mcp.cli import demo

    figures = DemoFigures()

    class MeasuringDemo(demo.Demo):
        async def call(self, tool: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            self.calls += 1
            result = await self.client.call_tool(tool, args, **kwargs)
            if result.is_error or result.structured_content is None:
                raise demo.DemoFailed(f"{tool} failed: {text_of(result)}")
            content = dict(result.structured_content)
            figures.calls.append(Measured(tool, result_tokens(result), content.get("status", "")))
            return content

    quiet = rich.console.Console(file=io.StringIO(), width=120)
    loud, demo.console = demo.console, quiet
    try:
        async with in_process() as rec:
            await demo.walk_through(MeasuringDemo(rec.client))
    finally:
        demo.console = loud
    return figures


@dataclass
class RevertFigures:
    leads: int
    reverted: int
    jobs: int
    confirmation: int  # tokens of the first call's answer (confirmation_required)
    confirmed: int  # tokens of the confirmed call's answer (submitted)
    seconds: float


async def _ok(client: Client, tool: str, args: dict[str, Any]) -> types.CallToolResult:
    result = await client.call_tool(tool, args)
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"{tool} failed: {text_of(result)[:300]}")
    return result


async def revert_results(leads: int = REVERT_LEADS) -> RevertFigures:
    """Edit every lead of a `leads`-lead sandbox, then revert it: the revert's two answers."""
    started = time.perf_counter()
    async with in_process(n_leads=leads) as rec:
        client = rec.client
        args = {"s_query": EVERY_LEAD, "allow_all_leads": True, "edit": EDIT}
        first = await _ok(client, "create_bulk_edit", args)
        token = first.structured_content["confirmation_token"] if first.structured_content else ""
        done = await _ok(client, "create_bulk_edit", {**args, "confirmation_token": token})
        job_id = (done.structured_content or {})["job"]["id"]
        clock = rec.sandbox.clock
        assert isinstance(clock, FakeClock)
        await _finish(client, clock, job_id)
        asked = await _ok(client, "revert_bulk_edit", {"job_id": job_id})
        content = asked.structured_content or {}
        if content.get("status") != "confirmation_required":
            raise RuntimeError(f"revert answered {content.get('status')}: {text_of(asked)[:300]}")
        confirmed = await _ok(
            client,
            "revert_bulk_edit",
            {"job_id": job_id, "confirmation_token": content["confirmation_token"]},
        )
        answer = confirmed.structured_content or {}
        return RevertFigures(
            leads=leads,
            reverted=int(answer["preview"]["matched"]),
            jobs=int(answer["result"]["jobs_count"]),
            confirmation=result_tokens(asked),
            confirmed=result_tokens(confirmed),
            seconds=time.perf_counter() - started,
        )


async def _finish(client: Client, clock: FakeClock, job_id: str) -> None:
    """Advance the fake clock until the job is done (sandbox jobs progress with time)."""
    for _ in range(10_000):
        job = (await _ok(client, "get_bulk_job", {"job_id": job_id})).structured_content or {}
        if job.get("status") in ("done", "error"):
            return
        clock.advance(60)
    raise RuntimeError(f"{job_id} did not finish")


def rows(demo: DemoFigures, revert: RevertFigures) -> list[Row]:
    target = f"< {RESULT_TOKENS_TARGET:,} tok"
    largest = demo.largest
    out = [
        Row(
            f"result tokens: largest in the demo ({largest.tool} {largest.status})".rstrip(),
            f"{largest.tokens:,} tok",
            ratio=f"{len(demo.calls)} results, {sum(c.tokens for c in demo.calls):,} tok in all",
            target=target,
            ok=largest.tokens < RESULT_TOKENS_TARGET,
        )
    ]
    what = f"revert of {revert.leads:,} leads ({revert.reverted:,} back, {revert.jobs} jobs)"
    for label, tokens in (
        ("confirmation request", revert.confirmation),
        ("confirmed result", revert.confirmed),
    ):
        out.append(
            Row(
                f"result tokens: {what}, {label}",
                f"{tokens:,} tok",
                ratio=f"{revert.seconds:.0f} s to seed, edit and revert" if tokens else "",
                target=target,
                ok=tokens < RESULT_TOKENS_TARGET,
            )
        )
    return out


async def measure(leads: int = REVERT_LEADS) -> list[Row]:
    return rows(await demo_results(), await revert_results(leads))


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=REVERT_LEADS, help="leads to edit and revert")
    args = parser.parse_args(argv)
    print(render(await measure(args.leads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
