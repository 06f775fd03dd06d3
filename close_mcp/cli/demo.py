"""`close-mcp demo`: the main job, end to end, against the sandbox, through a real MCP session.

It starts `close-mcp serve --sandbox` as a child process over stdio, exactly as a desktop
client would, and walks through what an assistant does: look up statuses, preview a
selection, run a bulk edit with a progress bar, pause and resume a job, try a bulk delete
(confirmation required, then confirmed), and draft an email. Every write's first call only
previews (CLOSE_MCP_CONFIRM names every action by default); the demo plays the user who agrees
and calls again with the token; each write says why it needs a confirmation or not. The audit
log goes to `demo/audit.jsonl` in the state dir (apart from the real audit log and its
snapshots), and the demo says where. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.syntax import Syntax
from rich.table import Table

from close_mcp.config import default_audit_path
from close_mcp.errors import DemoFailed

console = Console(stderr=False, highlight=False)


class Demo:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = 0

    async def call(self, tool: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        console.print(f"[dim]→ {tool}({_brief(args)})[/dim]")
        result = await self.client.call_tool(tool, args, **kwargs)
        if result.is_error or result.structured_content is None:
            text = "".join(getattr(c, "text", "") for c in result.content)
            raise DemoFailed(f"{tool} failed: {text}")
        return dict(result.structured_content)

    async def agree(
        self, tool: str, args: dict[str, Any], first: dict[str, Any], why: str
    ) -> dict[str, Any]:
        """The second step: `first` sent nothing; the user agrees and the token is passed.

        `why` says why this action is confirmed. When a person took the action out of
        CLOSE_MCP_CONFIRM, `first` already ran it, and the demo says so instead."""
        if first["status"] != "confirmation_required":
            _why(f"no confirmation: {tool} is not in CLOSE_MCP_CONFIRM here, so it ran at once.")
            return first
        _why(why)
        console.print("The user agrees; the assistant calls again with the token:")
        return await self.call(tool, {**args, "confirmation_token": first["confirmation_token"]})

    async def wait(self, job_id: str, label: str) -> dict[str, Any]:
        with Progress(
            TextColumn(f"  {label}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar:
            task = bar.add_task(label, total=None)

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                bar.update(task, completed=done, total=total)

            result = await self.call(
                "wait_for_bulk_job",
                {"job_id": job_id, "timeout_s": 120},
                progress_callback=on_progress,
            )
            job = result["job"]
            if job.get("n_objects") is not None:
                bar.update(task, completed=job["n_objects_processed"], total=job["n_objects"])
        return dict(result)


def _brief(args: dict[str, Any]) -> str:
    text = json.dumps(args, ensure_ascii=False)
    return text if len(text) < 110 else text[:107] + "..."


def _why(text: str) -> None:
    console.print(f"[italic]Why: {text}[/italic]")


def _without_query(body: dict[str, Any], shown: dict[str, Any]) -> dict[str, Any]:
    """The request body with the s_query the demo already printed named, not repeated."""
    if body.get("s_query") != shown:
        return body
    return {**body, "s_query": "(the s_query shown above)"}


def _count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def demo_audit_path(env: dict[str, str]) -> Path:
    """The demo's own audit file, in a folder of its own under the state dir: the sandbox's
    audit lines and snapshots never mix with real ones."""
    return default_audit_path(env).parent / "demo" / "audit.jsonl"


def _step(number: int, title: str) -> None:
    console.rule(f"[bold]{number}. {title}")


def _sample_table(sample: list[dict[str, Any]]) -> Table:
    table = Table("id", "lead (CRM data)", "status")
    for lead in sample:
        table.add_row(lead["id"], str(lead.get("display_name")), str(lead.get("status_label")))
    return table


def _json(data: Any) -> Syntax:
    return Syntax(json.dumps(data, indent=2, ensure_ascii=False), "json", word_wrap=True)


async def walk_through(demo: Demo) -> None:
    _step(1, "Look up the lead statuses")
    statuses = await demo.call("lookup", {"kind": "lead_statuses"})
    table = Table("id", "label")
    for item in statuses["items"]:
        table.add_row(item["id"], item["name"])
    console.print(table)

    _step(2, "Preview a selection: Potential leads that have an email address")
    selection = {"lead_status": "Potential", "has_email": True}
    found = await demo.call("search_leads", {"filter": selection, "sample_size": 3})
    console.print("The filter resolves to this Close query:")
    console.print(_json(found["s_query"]))
    console.print(f"[bold]{found['total']}[/bold] leads match. A sample:")
    console.print(_sample_table(found["sample"]))

    _step(3, "Bulk edit: mark them Qualified (a preview first, then confirmed)")
    edit_args = {
        "filter": selection,
        "edit": {"type": "set_lead_status", "lead_status": "Qualified"},
    }
    first = await demo.call("create_bulk_edit", edit_args)
    console.print(f"[bold]{first['status']}[/bold]: {first['message']}")
    console.print(f"POST {first['preview']['path']}")
    console.print(_json(_without_query(first["preview"]["request"], found["s_query"])))
    run = await demo.agree(
        "create_bulk_edit",
        edit_args,
        first,
        "a bulk edit changes every matched lead at once and Close has no dry run, so the first "
        "call only previews; the token is bound to this exact request and lead count.",
    )
    console.print(f"[green]{run['message']}[/green]")
    waited = await demo.wait(run["job"]["id"], "bulk edit")
    console.print(f"Job {waited['job']['id']}: [bold]{waited['job']['status']}[/bold]")
    after = await demo.call("search_leads", {"filter": {"lead_status": "Potential"}})
    console.print(f"Potential leads left: {after['total']}")

    _step(4, "Pause and resume a running job")
    big = {
        "filter": {"lead_status": ["Bad Fit", "Canceled"]},
        "edit": {"type": "set_custom_field", "custom_field": "Lead Source", "value": "demo"},
    }
    second = await demo.agree(
        "create_bulk_edit",
        big,
        await demo.call("create_bulk_edit", big),
        "another bulk edit, another preview and token.",
    )
    job_id = second["job"]["id"]
    paused = await demo.call("pause_bulk_job", {"job_id": job_id})
    _why("no confirmation to pause: pausing only stops the job; it changes no lead.")
    console.print(f"Paused: {paused['job']['status']}")
    job = {"job_id": job_id}
    resumed = await demo.agree(
        "resume_bulk_job",
        job,
        await demo.call("resume_bulk_job", job),
        "resuming a bulk edit changes leads again, so it is confirmed like the edit itself.",
    )
    console.print(f"Resumed: {resumed['job']['status']}")
    waited = await demo.wait(job_id, "resumed job")
    console.print(f"Job {job_id}: [bold]{waited['job']['status']}[/bold]")

    _step(5, "Bulk delete: confirmation is required")
    doomed = {"lead_status": "Canceled", "created_before": "2025-06-01"}
    first = await demo.call("create_bulk_delete", {"filter": doomed})
    console.print(
        Panel(
            f"status: [bold]{first['status']}[/bold]\n{first['message']}\n"
            f"matched: {first['preview']['matched']}\nexpires: {first['expires_at']}",
            title="nothing was deleted yet",
        )
    )
    console.print(_sample_table(first["preview"]["sample"]))
    _why(
        "a delete is always confirmed (delete cannot be taken out of CLOSE_MCP_CONFIRM): Close "
        "cannot undo it. The server backs the leads up first, for close-mcp restore."
    )
    console.print("The user agrees; the assistant calls again with the token:")
    confirmed = await demo.call(
        "create_bulk_delete", {"filter": doomed, "confirmation_token": first["confirmation_token"]}
    )
    console.print(f"[green]{confirmed['message']}[/green]")
    await demo.wait(confirmed["job"]["id"], "bulk delete")
    replay = await demo.call(
        "create_bulk_delete", {"filter": doomed, "confirmation_token": first["confirmation_token"]}
    )
    console.print(
        f"Replaying the same token: [yellow]{replay['status']}[/yellow] ({replay['reason']})"
    )

    _step(6, "Draft an email to one lead")
    lead_id = found["sample"][0]["id"]
    draft = await demo.call(
        "send_email",
        {"lead_id": lead_id, "template": "Intro", "status": "draft"},
    )
    _why(
        "no confirmation for a draft: it is saved on the lead and nothing is sent; status "
        "outbox or scheduled would send it and is confirmed (the send action)."
    )
    console.print(f"[green]{draft['message']}[/green]")
    if draft["preview"].get("rendering"):
        console.print(_json(draft["preview"]["rendering"]))


async def present(client: Client, audit: Path) -> int:
    """The walk-through over a connected client; `audit` is where the server writes its log."""
    info = client.server_info
    tools = await client.list_tools()
    console.print(
        f"Connected to {info.name if info else '?'} {info.version if info else ''}"
        f" ({len(tools.tools)} tools, protocol {client.protocol_version})"
    )
    console.print(f"Audit log of this demo: {audit}")
    demo = Demo(client)
    try:
        await walk_through(demo)
    except DemoFailed as exc:
        console.print(f"[red]demo failed: {exc}[/red]")
        return 1
    lines = _count_lines(audit)
    console.rule("[bold]Done")
    console.print(
        f"{demo.calls} tool calls; {lines} lines in the audit log recorded the writes and "
        f"refusals (without the API key): {audit}\nA real server writes its own log to "
        "CLOSE_MCP_AUDIT_LOG (default: audit.jsonl in the state dir)."
    )
    return 0


async def run(argv_server: list[str] | None = None) -> int:
    audit = demo_audit_path(dict(os.environ))
    audit.parent.mkdir(parents=True, exist_ok=True)
    # This run's lines and snapshots only (the sandbox's jobs are gone when the demo ends).
    audit.unlink(missing_ok=True)
    shutil.rmtree(audit.parent / "snapshots", ignore_errors=True)
    env = {
        **{k: v for k, v in os.environ.items() if k != "CLOSE_API_KEY"},
        "CLOSE_MCP_AUDIT_LOG": str(audit),
    }
    params = StdioServerParameters(
        command=sys.executable,
        args=argv_server or ["-m", "close_mcp", "serve", "--sandbox"],
        env=env,
    )
    console.print(
        Panel(
            "close-mcp demo: a real MCP client talks to `close-mcp serve --sandbox` over "
            "stdio.\nThe sandbox is a local fake Close with ~1,000 seeded leads; nothing "
            "leaves this machine.",
            title="close-mcp",
        )
    )
    async with Client(params) as client:
        return await present(client, audit)


def run_demo() -> int:
    return anyio.run(run)
