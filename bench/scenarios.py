"""In-process scenarios: result sizes and Close requests per call (tools/list: tool_list.py).

A real MCP `Client` talks to the server in process; the server talks to an in-process
sandbox whose request log counts exactly what reached "Close". Time is a FakeClock, so the
demo's jobs finish at once. Three scenario sets:

- the demo walk-through (`close_mcp.cli.demo.walk_through`, its calls unchanged);
- a dry-run preview of every write tool, once with a friendly `filter` (names to resolve)
  and once with a raw `s_query`;
- the read tools at their largest arguments (informational).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from mcp import types
from mcp.client import Client

from bench.common import tokens, wire_size
from bench.report import Row
from close_mcp.clock import FakeClock
from close_mcp.config import load_settings
from close_mcp.sandbox import Sandbox
from close_mcp.server.app import build_server
from close_mcp.server.runtime import Runtime

RESULT_TARGET = 4000
DETAIL_ARGS = ("kind", "limit", "sample_size")
SELECTION = {"lead_status": "Potential", "has_email": True}


@dataclass
class Call:
    tool: str
    label: str
    size: int
    requests: int
    error: str | None = None
    detail: str = ""


@dataclass
class Recorder:
    client: Client
    sandbox: Sandbox
    calls: list[Call] = field(default_factory=list)
    label: str = ""

    async def call(self, tool: str, args: dict[str, Any], **kwargs: Any) -> types.CallToolResult:
        """Call a tool; record its result size and the Close requests it made."""
        before = len(self.sandbox.requests)
        result = await self.client.call_tool(tool, args, **kwargs)
        error = None
        if result.is_error:
            error = "".join(getattr(c, "text", "") for c in result.content)
        self.calls.append(
            Call(
                tool,
                self.label,
                wire_size(result),
                len(self.sandbox.requests) - before,
                error,
                ", ".join(f"{k}={v}" for k, v in args.items() if k in DETAIL_ARGS),
            )
        )
        return result

    async def data(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.call(tool, args)
        if result.is_error or result.structured_content is None:
            raise RuntimeError(f"{tool}({args}) failed: {self.calls[-1].error}")
        return result.structured_content


@contextlib.asynccontextmanager
async def in_process(n_leads: int = 1000) -> AsyncIterator[Recorder]:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=n_leads, clock=clock)
    settings = load_settings(
        {"CLOSE_MCP_SECRET": "bench-secret-0123456789abcdef"}, sandbox=True, audit_log="off"
    )
    runtime = Runtime(settings, sandbox=sandbox, clock=clock)
    server = build_server(runtime)
    async with Client(server, mode="legacy") as client:
        yield Recorder(client, sandbox)
    await runtime.aclose()


async def run_demo(rec: Recorder) -> None:
    import rich.console

    from close_mcp.cli import demo

    class RecordingDemo(demo.Demo):
        async def call(self, tool: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            self.calls += 1
            result = await rec.call(tool, args, **kwargs)
            if result.is_error or result.structured_content is None:
                raise demo.DemoFailed(f"{tool} failed: {rec.calls[-1].error}")
            return result.structured_content

    quiet = rich.console.Console(file=io.StringIO(), width=120)
    loud, demo.console = demo.console, quiet
    rec.label = "demo"
    try:
        await demo.walk_through(RecordingDemo(rec.client))
    finally:
        demo.console = loud


async def run_previews(rec: Recorder) -> None:
    rec.label = "setup"
    found = await rec.data("search_leads", {"filter": SELECTION, "sample_size": 1})
    lead_id = found["sample"][0]["id"]
    accounts = await rec.data("lookup", {"kind": "email_accounts"})
    account = accounts["items"][0]
    identities = account["details"].get("identities") or []
    identity = identities[0] if identities else {}
    sequences = await rec.data("lookup", {"kind": "sequences"})
    templates = await rec.data("lookup", {"kind": "email_templates"})
    fields = await rec.data("lookup", {"kind": "custom_fields"})
    text_field = next(f for f in fields["items"] if f["details"].get("type") == "text")
    writes: list[tuple[str, dict[str, Any]]] = [
        ("create_bulk_edit", {"edit": {"type": "set_lead_status", "lead_status": "Qualified"}}),
        (
            "create_bulk_edit",
            {
                "edit": {
                    "type": "set_custom_field",
                    "custom_field": text_field["name"],
                    "value": "bench",
                }
            },
        ),
        (
            "create_bulk_edit",
            {"edit": {"type": "clear_custom_field", "custom_field": text_field["name"]}},
        ),
        ("create_bulk_email", {"template": templates["items"][0]["name"]}),
        (
            "create_bulk_sequence_subscription",
            {
                "action_type": "subscribe",
                "sequence": sequences["items"][0]["name"],
                "sender_account": account["name"],
                "sender_name": identity.get("name") or "Bench",
                "sender_email": identity.get("email") or account["name"],
            },
        ),
        ("create_bulk_sequence_subscription", {"action_type": "pause", "all_sequences": True}),
        ("create_bulk_delete", {}),
    ]
    for selection in ("filter", "s_query"):
        rec.label = f"preview ({selection})"
        chosen = {"filter": SELECTION} if selection == "filter" else {"s_query": found["s_query"]}
        for tool, args in writes:
            await rec.call(tool, {**chosen, **args, "dry_run": True})
    rec.label = "preview"
    await rec.call(
        "send_email",
        {"lead_id": lead_id, "template": templates["items"][0]["name"], "dry_run": True},
    )
    await rec.call(
        "send_email",
        {"lead_id": lead_id, "subject": "Hello", "body_text": "Hi there", "dry_run": True},
    )


async def run_largest_reads(rec: Recorder) -> None:
    rec.label = "largest"
    await rec.call("search_leads", {"filter": {"has_email": True}, "sample_size": 50})
    for kind in (
        "lead_statuses",
        "custom_fields",
        "email_templates",
        "sequences",
        "smart_views",
        "email_accounts",
        "users",
    ):
        await rec.call("lookup", {"kind": kind})
    await rec.call("list_bulk_jobs", {"limit": 100})
    jobs = await rec.data("list_bulk_jobs", {"limit": 1})
    await rec.call("get_bulk_job", {"job_id": jobs["jobs"][0]["id"]})


@dataclass
class Figures:
    calls: list[Call]


async def collect() -> Figures:
    async with in_process() as rec:  # the demo changes data: it gets its own sandbox
        await run_demo(rec)
        await run_largest_reads(rec)  # after the demo, so there are jobs to list
        calls = rec.calls
    async with in_process() as rec:
        await run_previews(rec)
        return Figures(calls + rec.calls)


def rows(fig: Figures) -> list[Row]:
    out: list[Row] = []
    errors = [c for c in fig.calls if c.error]
    for c in errors:
        out.append(
            Row(f"  tool error in {c.label}: {c.tool}", c.error[:60] if c.error else "", ok=False)
        )
    demo = [c for c in fig.calls if c.label == "demo"]
    previews = [c for c in fig.calls if c.label.startswith("preview")]
    for title, calls in (("demo", demo), ("previews", previews)):
        largest: dict[str, int] = {}
        for c in calls:
            largest[c.tool] = max(largest.get(c.tool, 0), c.size)
        for tool, size in sorted(largest.items(), key=lambda kv: -kv[1]):
            out.append(
                Row(
                    f"largest result ({title}): {tool}",
                    f"{size:,} B ≈ {tokens(size):,} tok",
                    target=f"< {RESULT_TARGET:,} tok",
                    ok=tokens(size) < RESULT_TARGET,
                )
            )
    for c in (c for c in fig.calls if c.label == "largest"):
        out.append(
            Row(
                f"result at max arguments: {c.tool}({c.detail})",
                f"{c.size:,} B ≈ {tokens(c.size):,} tok",
                target=f"< {RESULT_TARGET:,} tok",
                ok=tokens(c.size) < RESULT_TARGET,
            )
        )
    return out


def request_rows(fig: Figures) -> list[Row]:
    """Close requests per preview of each write tool (fewer is better; no target)."""
    out: list[Row] = []
    seen: dict[tuple[str, str], list[int]] = {}
    for c in fig.calls:
        if c.label.startswith("preview"):
            seen.setdefault((c.tool, c.label), []).append(c.requests)
    for (tool, label), counts in seen.items():
        shown = ", ".join(str(n) for n in counts)
        out.append(Row(f"Close requests per {label}: {tool}", shown))
    return out


def dump(fig: Figures) -> str:
    return json.dumps([c.__dict__ for c in fig.calls], indent=1)
