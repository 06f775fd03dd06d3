"""The commands with settings: `serve` (the MCP server on stdio or Streamable HTTP) and
`restore` (re-create leads from a pre-delete backup)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from close_mcp.config import Settings, load_settings
from close_mcp.server.runtime import Runtime

SANDBOX_JOB_SPEED = 60.0  # objects per second


def settings_from_args(args: argparse.Namespace) -> Settings:
    return load_settings(
        sandbox=args.sandbox,
        # Over HTTP each request may bring its own key (Close-API-Key), so none is required.
        key_per_request=getattr(args, "transport", "stdio") == "http",
        read_only=args.read_only,
        toolsets=args.toolsets,
        confirm=args.confirm,
        require_human=args.require_human,
        audit_log=args.audit_log,
        snapshot=args.snapshot,
    )


def make_runtime(settings: Settings) -> Runtime:
    sandbox = None
    if settings.sandbox:
        from close_mcp.sandbox import Sandbox

        # Jobs advance at a human pace, so progress and pause/resume can be watched.
        sandbox = Sandbox(job_speed=SANDBOX_JOB_SPEED)
    return Runtime(settings, sandbox=sandbox)


def serve(args: argparse.Namespace) -> int:
    from close_mcp.server.app import build_server

    settings = settings_from_args(args)
    runtime = make_runtime(settings)
    server = build_server(runtime)
    if args.transport == "stdio":
        server.run("stdio")
        return 0
    from close_mcp.server.http import run_http

    run_http(server, runtime, host=args.host, port=args.port)
    return 0


def restore(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Preview on stderr, confirmation, one POST per lead not restored yet, journaled in the
    progress file beside the backup; old -> new ids as JSON on stdout."""
    import anyio

    from close_mcp.errors import SafetyNetError
    from close_mcp.safety.restore import Progress, Report, confirmed, preview_text, restore_leads
    from close_mcp.safety.snapshots import read_backup
    from close_mcp.writes.sender import Sender

    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    path = Path(args.backup)
    retry_unknown = bool(getattr(args, "retry_unknown", False))
    try:
        leads = read_backup(path)
        progress = Progress.load(path, sandbox=args.sandbox)
    except (OSError, SafetyNetError) as exc:
        print(f"close-mcp: cannot read the backup: {exc}", file=stderr)
        return 1
    settings = load_settings(sandbox=args.sandbox)
    print(preview_text(path, leads, progress, retry_unknown=retry_unknown), file=stderr)
    if not leads:
        return 0
    sending = progress.to_send(leads, retry_unknown=retry_unknown)

    def ask(prompt: str) -> str:
        print(prompt, end="", file=stderr, flush=True)
        return stdin.readline()

    if sending and not confirmed(
        len(sending), yes=args.yes, interactive=stdin.isatty(), ask=ask, err=stderr
    ):
        return 1

    runtime = make_runtime(settings)

    async def run() -> Report:
        try:
            return await restore_leads(
                Sender(runtime.audit, runtime.client_for(), "restore"),
                leads,
                progress=progress,
                retry_unknown=retry_unknown,
                backup=str(path),
            )
        finally:
            await runtime.aclose()

    report = anyio.run(run)
    print(json.dumps(report.to_json(), indent=2), file=stdout)
    parts = [f"close-mcp: restored {len(report.restored)} of {len(leads)} leads"]
    if report.already_restored:
        parts.append(f"{len(report.already_restored)} already restored by an earlier run")
    if report.failed:
        parts.append(f"{len(report.failed)} failed (see 'failed'; a re-run sends them again)")
    if report.outcome_unknown:
        parts.append(
            f"{len(report.outcome_unknown)} outcome unknown: see 'outcome_unknown', check in "
            "Close whether they exist, then --retry-unknown sends them again"
        )
    if report.stopped:
        parts.append(f"stopped: {report.stopped}")
    print("; ".join(parts), file=stderr)
    return 0 if report.complete else 1
