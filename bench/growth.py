"""Growth: search, preview, edit with snapshot, revert, delete with backup at 1k to 100k leads.

    python -m bench.growth                        # 1,000 and 10,000 leads (about 2 minutes)
    python -m bench.growth --sizes 1000,10000,100000 --json out.json   # 100k: ~5-10 minutes
    python -m bench.growth --before main.json --after branch.json   # compare two runs

`close-mcp serve` runs on stdio in a child process (so the RSS is the server's alone), with
`CLOSE_MCP_SNAPSHOT=200000` and its state store and snapshots in a temporary directory. It
talks to a sandbox in another child process, served over HTTP by this module
(`--serve-sandbox`), whose jobs run at `JOB_SPEED` leads a second and which answers
`/_bench/stats` (requests received, its CPU time) beside the API. For each action:

- **requests**: requests the sandbox received during the call.
- **wall**: the tool call, from the client's side.
- **own**: the server process's CPU time (user + system, from /proc) during the call, less
  what the concurrent reads cost it (their number times the CPU time of one read, measured
  on the idle server): what close-mcp itself spends on the action, whatever it waits for.
- **at 20/s**: `requests / 20 + own`, the least the same call takes against Close's 20
  requests a second.
- **RSS peak**: the server's peak resident set during the call (VmHWM, reset before it via
  /proc/PID/clear_refs, and 20 ms samples) minus its idle RSS after start-up; **held**: what
  it still holds after the call, over idle.
- **longest read**: a concurrent loop of cheap reads on the same session while the action
  runs (the `close://schemas/s_query` resource, which the server answers without asking the
  sandbox: only the server's own stalls count, and the sandbox counts only the action's
  requests): the longest one.
- **progress**: notifications the call sent (its `progressToken`), and the longest gap
  between the call's start, each notification and its end.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # run as a script: make `bench` and `close_mcp` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio
import httpx
from mcp import types
from mcp.client import Client

from bench.common import (
    PYTHON,
    REPO,
    base_env,
    free_port,
    serve_params,
    stop,
    wait_for_port,
)
from bench.report import Row, table
from close_mcp.sandbox import SANDBOX_API_KEY

if TYPE_CHECKING:
    from mcp.shared.dispatcher import ProgressFnT as ProgressFn

SIZES = (1_000, 10_000)
LARGE = 100_000
JOB_SPEED = 20_000.0  # leads a second: a 100k job takes 5 s, so waiting is not the figure
SNAPSHOT_LIMIT = "200000"
STATS_PATH = "/_bench/stats"
READ_URI = "close://schemas/s_query"  # a read the server answers without asking Close
READ_PAUSE = 0.05  # between two concurrent reads
CALIBRATION_READS = 50
SAMPLE_EVERY = 0.02
CALL_TIMEOUT = 900.0
RATE = 20.0
EDIT_FIELD = "Lead Source"  # a text field: reverting it takes one job per old value
# Targets of issue 19, at 100k leads.
PEAK_TARGET_MIB = 100.0
STALL_TARGET_S = 0.2
REVERT_OWN_TARGET_S = 3.0
PROGRESS_GAP_TARGET_S = 5.0
LONG_WRITES = ("edit + snapshot", "revert", "delete + backup")


# -- the sandbox process ----------------------------------------------------------------------


def serve_sandbox(port: int, leads: int, job_speed: float) -> None:
    """A sandbox on loopback that also answers its request count and CPU time."""
    import uvicorn

    from close_mcp.sandbox import Sandbox

    sandbox = Sandbox(n_leads=leads, job_speed=job_speed)
    inner = sandbox.app

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == STATS_PATH:
            stats = {"requests": len(sandbox.requests), "cpu_s": time.process_time()}
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(stats).encode()})
            return
        await inner(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextlib.contextmanager
def sandbox_child(leads: int) -> Iterator[str]:
    """The sandbox process; yields its API root."""
    port = free_port()
    args = [PYTHON, "-m", "bench.growth", "--serve-sandbox", str(port), str(leads)]
    process = subprocess.Popen(
        args, env=base_env(), cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, timeout=300.0)  # seeding 100k leads takes a while
        yield f"http://127.0.0.1:{port}/api/v1/"
    finally:
        stop(process)


async def sandbox_stats(base_url: str) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=30.0) as http:
        answer = await http.get(base_url.split("/api/v1/")[0] + STATS_PATH)
        stats: dict[str, float] = answer.json()
        return stats


# -- the server process -----------------------------------------------------------------------


def _status_kib(pid: int, key: str) -> int:
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(f"no {key} for {pid}")


def cpu_seconds(pid: int) -> float:
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False where that is not allowed."""
    try:
        (Path("/proc") / str(pid) / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def server_pid(client_pid: int) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == client_pid and b"close_mcp serve" in cmdline:
                return int(entry.name)
    raise LookupError("no close-mcp serve child")


class PeakSampler:
    """VmRSS every 20 ms on a thread, for where VmHWM cannot be reset."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, LookupError):
                self.peak = max(self.peak, _status_kib(self.pid, "VmRSS"))
            self._stop.wait(SAMPLE_EVERY)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Figure:
    leads: int
    action: str
    requests: int = 0
    wall_s: float = 0.0
    own_s: float = 0.0
    own_with_reads_s: float = 0.0
    sandbox_s: float = 0.0
    peak_mib: float = 0.0
    held_mib: float = 0.0
    longest_read_s: float = 0.0
    median_read_s: float = 0.0
    reads: int = 0
    progress: int = 0
    progress_gap_s: float = 0.0
    error: str | None = None

    @property
    def at_rate_s(self) -> float:
        return self.requests / RATE + self.own_s


@dataclass
class Session:
    client: Client
    pid: int
    base_url: str
    leads: int
    idle_kib: int
    read_cpu_s: float  # the server's CPU time per concurrent read, measured idle
    figures: list[Figure] = field(default_factory=list)

    async def measure(
        self, action: str, call: Callable[[ProgressFn], Awaitable[types.CallToolResult]]
    ) -> dict[str, Any]:
        """Run one tool call with the concurrent reader; record its figure; its result."""
        figure = Figure(self.leads, action)
        ticks: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            ticks.append(time.perf_counter())

        latencies: list[float] = []
        done = anyio.Event()

        async def reader() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await self.client.read_resource(READ_URI, cache_mode="bypass")
                latencies.append(time.perf_counter() - started)
                with anyio.move_on_after(READ_PAUSE):
                    await done.wait()

        before = await sandbox_stats(self.base_url)
        cpu_before = cpu_seconds(self.pid)
        hwm = reset_peak(self.pid)
        result: types.CallToolResult | None = None
        with PeakSampler(self.pid) as sampler:
            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                try:
                    result = await call(on_progress)
                finally:
                    ended = time.perf_counter()
                    done.set()
        peak = max(sampler.peak, _status_kib(self.pid, "VmHWM") if hwm else 0)
        after = await sandbox_stats(self.base_url)
        figure.requests = int(after["requests"] - before["requests"])
        figure.wall_s = ended - started
        figure.own_with_reads_s = cpu_seconds(self.pid) - cpu_before
        figure.own_s = max(0.0, figure.own_with_reads_s - len(latencies) * self.read_cpu_s)
        figure.sandbox_s = after["cpu_s"] - before["cpu_s"]
        figure.peak_mib = (peak - self.idle_kib) / 1024
        figure.held_mib = (_status_kib(self.pid, "VmRSS") - self.idle_kib) / 1024
        figure.longest_read_s = max(latencies, default=0.0)
        figure.median_read_s = statistics.median(latencies) if latencies else 0.0
        figure.reads = len(latencies)
        figure.progress = len(ticks)
        moments = [started, *ticks, ended]
        figure.progress_gap_s = max(b - a for a, b in itertools.pairwise(moments))
        self.figures.append(figure)
        assert result is not None
        if result.is_error or result.structured_content is None:
            figure.error = "".join(getattr(c, "text", "") for c in result.content)[:200]
            raise RuntimeError(f"{action} at {self.leads:,} leads failed: {figure.error}")
        print(f"[growth] {self.leads:,} {action}: {_summary(figure)}", file=sys.stderr)
        return dict(result.structured_content)

    async def tool(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(name, args)
        if result.is_error or result.structured_content is None:
            text = "".join(getattr(c, "text", "") for c in result.content)
            raise RuntimeError(f"{name} failed: {text[:300]}")
        return dict(result.structured_content)

    async def wait_job(self, job_id: str) -> None:
        for _ in range(20):
            waited = await self.tool("wait_for_bulk_job", {"job_id": job_id, "timeout_s": 60})
            if waited.get("finished"):
                return
        raise RuntimeError(f"job {job_id} did not finish")

    def call(
        self, tool: str, args: dict[str, Any]
    ) -> Callable[[ProgressFn], Awaitable[types.CallToolResult]]:
        def run(on_progress: ProgressFn) -> Awaitable[types.CallToolResult]:
            return self.client.call_tool(tool, args, progress_callback=on_progress)

        return run


def _summary(f: Figure) -> str:
    return (
        f"{f.requests} req, {f.wall_s:.2f} s wall, {f.own_s:.2f} s own, "
        f"+{f.peak_mib:.1f} MiB peak, {f.longest_read_s * 1000:.0f} ms longest read, "
        f"{f.progress} progress (gap {f.progress_gap_s:.1f} s)"
    )


@contextlib.asynccontextmanager
async def server_session(base_url: str, leads: int) -> AsyncIterator[Session]:
    with tempfile.TemporaryDirectory(prefix="close-mcp-growth-") as state:
        env = base_env(
            CLOSE_API_BASE_URL=base_url,
            CLOSE_API_KEY=SANDBOX_API_KEY,
            CLOSE_MCP_AUDIT_LOG="off",
            CLOSE_MCP_SNAPSHOT=SNAPSHOT_LIMIT,
            XDG_STATE_HOME=state,
        )
        async with Client(serve_params(env), read_timeout_seconds=CALL_TIMEOUT) as client:
            pid = server_pid(os.getpid())
            await client.list_tools()
            for _ in range(3):  # warms the path the reader takes
                await client.read_resource(READ_URI, cache_mode="bypass")
            cpu_before = cpu_seconds(pid)
            for _ in range(CALIBRATION_READS):
                await client.read_resource(READ_URI, cache_mode="bypass")
            read_cpu = (cpu_seconds(pid) - cpu_before) / CALIBRATION_READS
            yield Session(client, pid, base_url, leads, _status_kib(pid, "VmRSS"), read_cpu)


# -- the scenario -------------------------------------------------------------------------------


def _token(preview: dict[str, Any]) -> str:
    token = preview.get("confirmation_token")
    if preview.get("status") != "confirmation_required" or not token:
        raise RuntimeError(f"expected a preview with a token, got {str(preview)[:300]}")
    return str(token)


async def run_size(leads: int) -> list[Figure]:
    everything: dict[str, Any] = {"s_query": {"type": "match_all"}, "allow_all_leads": True}
    edit = {"type": "set_custom_field", "custom_field": EDIT_FIELD, "value": "growth bench"}
    with sandbox_child(leads) as base_url:
        async with server_session(base_url, leads) as s:
            await s.measure("search", s.call("search_leads", {**everything, "sample_size": 5}))
            edit_args = {**everything, "edit": edit}
            preview = await s.measure("preview edit", s.call("create_bulk_edit", edit_args))
            made = await s.measure(
                "edit + snapshot",
                s.call("create_bulk_edit", {**edit_args, "confirmation_token": _token(preview)}),
            )
            job_id = made["job"]["id"]
            await s.wait_job(job_id)
            revert_args = {"job_id": job_id}
            preview = await s.measure("preview revert", s.call("revert_bulk_edit", revert_args))
            reverted = await s.measure(
                "revert",
                s.call("revert_bulk_edit", {**revert_args, "confirmation_token": _token(preview)}),
            )
            for job in _jobs_of(reverted):
                await s.wait_job(job)
            preview = await s.measure("preview delete", s.call("create_bulk_delete", everything))
            await s.measure(
                "delete + backup",
                s.call("create_bulk_delete", {**everything, "confirmation_token": _token(preview)}),
            )
            return s.figures


def _jobs_of(result: dict[str, Any]) -> list[str]:
    """Job ids anywhere in a result (a revert answers the jobs it sent)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "id" and isinstance(value, str) and value.startswith("bulkedit_"):
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(result)
    return list(dict.fromkeys(found))


async def collect(sizes: tuple[int, ...] = SIZES) -> list[Figure]:
    figures: list[Figure] = []
    for leads in sizes:
        try:
            figures += await run_size(leads)
        except Exception as exc:
            cause: BaseException = exc
            while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
                cause = cause.exceptions[0]
            print(f"[growth] {leads:,} failed: {cause!r}", file=sys.stderr)
            error = f"{type(cause).__name__}: {cause}"[:300]
            figures.append(Figure(leads, "failed", error=error))
    return figures


# -- output -------------------------------------------------------------------------------------

HEADERS = (
    "leads", "action", "requests", "wall", "own", "at 20/s", "RSS peak", "held after",
    "longest read (median, reads)", "progress (max gap)",
)  # fmt: skip


def figure_table(figures: list[Figure]) -> str:
    lines: list[tuple[str, ...]] = []
    for f in figures:
        if f.error and f.action == "failed":
            lines.append((f"{f.leads:,}", "failed", f.error[:80], "", "", "", "", "", "", ""))
            continue
        lines.append(
            (
                f"{f.leads:,}",
                f.action,
                f"{f.requests:,}",
                f"{f.wall_s:.2f} s",
                f"{f.own_s:.2f} s",
                f"{f.at_rate_s:.1f} s",
                f"{f.peak_mib:+.1f} MiB",
                f"{f.held_mib:+.1f} MiB",
                f"{f.longest_read_s * 1000:.0f} ms ({f.median_read_s * 1000:.0f}, {f.reads})",
                f"{f.progress} ({f.progress_gap_s:.1f} s)",
            )
        )
    return table(HEADERS, lines)


COMPARE_HEADERS = (
    "leads", "action", "requests before", "requests after", "at 20/s before", "at 20/s after",
)  # fmt: skip


def compare_table(before: list[Figure], after: list[Figure]) -> str:
    """Requests and the least time at Close's 20 requests a second, per size and action,
    of two runs (`--before`): what a change costs or saves, whatever the machine's load."""
    earlier = {(f.leads, f.action): f for f in before if f.action != "failed"}
    lines: list[tuple[str, ...]] = []
    for f in after:
        if f.action == "failed":
            continue
        b = earlier.get((f.leads, f.action))
        lines.append(
            (
                f"{f.leads:,}",
                f.action,
                f"{b.requests:,}" if b else "-",
                f"{f.requests:,}",
                f"{b.at_rate_s:.1f} s" if b else "-",
                f"{f.at_rate_s:.1f} s",
            )
        )
    return table(COMPARE_HEADERS, lines)


def load(path: str) -> list[Figure]:
    return [Figure(**item) for item in json.loads(Path(path).read_text())]


def target_rows(figures: list[Figure]) -> list[Row]:
    """Issue 19's targets, shown for the largest size measured and judged at 100k only."""
    largest = max((f.leads for f in figures if f.action != "failed"), default=0)
    at = {f.action: f for f in figures if f.leads == largest}
    size = f"{largest:,} leads"
    rows: list[Row] = []
    for action in ("delete + backup", "revert"):
        if action in at:
            peak = at[action].peak_mib
            rows.append(
                Row(
                    f"growth {size}: RSS peak over idle, {action}",
                    f"{peak:+.1f} MiB",
                    target=f"< {PEAK_TARGET_MIB:.0f} MiB",
                    ok=peak < PEAK_TARGET_MIB,
                )
            )
    if at:
        worst = max(at.values(), key=lambda f: f.longest_read_s)
        rows.append(
            Row(
                f"growth {size}: longest concurrent read (any action)",
                f"{worst.longest_read_s * 1000:.0f} ms ({worst.action})",
                target=f"<= {STALL_TARGET_S * 1000:.0f} ms",
                ok=worst.longest_read_s <= STALL_TARGET_S,
            )
        )
    if "revert" in at:
        own = at["revert"].own_s
        rows.append(
            Row(
                f"growth {size}: close-mcp's own time, revert",
                f"{own:.2f} s",
                f"{at['revert'].wall_s:.1f} s wall",
                target=f"< {REVERT_OWN_TARGET_S:.0f} s",
                ok=own < REVERT_OWN_TARGET_S,
            )
        )
    for action in LONG_WRITES:
        if action in at:
            f = at[action]
            rows.append(
                Row(
                    f"growth {size}: progress during {action}",
                    f"{f.progress} notifications, max gap {f.progress_gap_s:.1f} s",
                    target=f"gap <= {PROGRESS_GAP_TARGET_S:.0f} s",
                    ok=f.progress_gap_s <= PROGRESS_GAP_TARGET_S,
                )
            )
    if largest < LARGE:  # the targets are for 100k leads: a smaller run shows, not judges
        for row in rows:
            row.target, row.ok = f"{row.target} at 100k", None
    return rows


def rows(figures: list[Figure]) -> list[Row]:
    """One row per size and action for `bench/run.py`'s table, then the targets."""
    out: list[Row] = []
    for f in figures:
        if f.action == "failed":
            out.append(Row(f"growth {f.leads:,}: benchmark failed", f.error or "", ok=False))
            continue
        out.append(
            Row(
                f"growth {f.leads:,}: {f.action}",
                f"{f.wall_s:.2f} s wall, {f.own_s:.2f} s own",
                f"{f.requests:,} req ({f.at_rate_s:.1f} s at 20/s)",
                f"RSS {f.peak_mib:+.0f} MiB, read {f.longest_read_s * 1000:.0f} ms, "
                f"{f.progress} progress",
            )
        )
    return out + target_rows(figures)


def save(figures: list[Figure], path: str) -> None:
    Path(path).write_text(json.dumps([asdict(f) for f in figures], indent=1))


def parse_sizes(raw: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in raw.split(",") if part.strip())


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES), type=parse_sizes)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument(
        "--before",
        action="append",
        default=[],
        help="figures (--json) of an earlier run to "
        "compare with, requests and time at 20/s per action (repeatable: one file per size)",
    )
    parser.add_argument(
        "--after",
        action="append",
        default=[],
        help="compare these figures (--json) with --before instead of running",
    )
    args = parser.parse_args(argv)
    if args.after:
        figures = [f for path in args.after for f in load(path)]
    else:
        figures = await collect(args.sizes)
    print(figure_table(figures))
    print()
    if args.before:
        print(compare_table([f for path in args.before for f in load(path)], figures))
        print()
    from bench.report import render

    print(render(target_rows(figures)))
    if args.json:
        save(figures, args.json)
    return 1 if any(f.error for f in figures) else 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--serve-sandbox":
        serve_sandbox(int(sys.argv[2]), int(sys.argv[3]), JOB_SPEED)
    else:
        raise SystemExit(anyio.run(main))
