"""The commands with settings: `serve` (the MCP server on stdio or Streamable HTTP) and
`restore` (re-create leads from a pre-delete backup)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from close_mcp.config import Settings, load_settings
from close_mcp.server.runtime import Runtime
from close_mcp.settings_table import SETTINGS
from close_mcp.wording import sentences

if TYPE_CHECKING:
    from close_mcp.safety.restore import Report

SANDBOX_JOB_SPEED = 60.0  # objects per second
RESTORE_PROGRESS_S = 5.0  # a progress line on stderr at most this often
# The flags of the settings table as argparse names them (`--audit-log`: `audit_log`).
FLAG_NAMES = tuple(row.flag[2:].replace("-", "_") for row in SETTINGS if row.flag)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """`Settings` from the environment and the flags given: each settings-table flag is
    passed on under its argparse name, which is `load_settings`' keyword for it."""
    flags = {name: getattr(args, name) for name in FLAG_NAMES}
    return load_settings(
        sandbox=args.sandbox,
        # Over HTTP each request may bring its own key (Close-API-Key), so none is required.
        key_per_request=getattr(args, "transport", "stdio") == "http",
        oauth=getattr(args, "oauth", None),
        **flags,
    )


def make_runtime(settings: Settings) -> Runtime:
    sandbox = None
    if settings.sandbox:
        from close_mcp.sandbox import Sandbox

        # Jobs advance at a human pace, so progress and pause/resume can be watched.
        sandbox = Sandbox(job_speed=SANDBOX_JOB_SPEED)
    return Runtime(settings, sandbox=sandbox)


def _oauth_public_url(settings: Settings, args: argparse.Namespace) -> Settings:
    """OAuth is for HTTP; on loopback the public URL defaults to the address served."""
    from dataclasses import replace

    from close_mcp.errors import ConfigError
    from close_mcp.server.http import LOOPBACK

    if args.transport != "http":
        if args.oauth:
            raise ConfigError("OAuth sign-in works over HTTP: add --transport http")
        return replace(settings, oauth=False)  # the app's variables set, serving stdio
    if settings.public_url is not None:
        return settings
    if args.host not in LOOPBACK:
        raise ConfigError("OAuth needs CLOSE_MCP_PUBLIC_URL, the server's external base URL")
    host = "[::1]" if args.host == "::1" else args.host
    return replace(settings, public_url=f"http://{host}:{args.port}")


def serve(args: argparse.Namespace) -> int:
    from close_mcp.cli.ports import listen, url
    from close_mcp.server.app import build_server

    settings = settings_from_args(args)
    if settings.oauth:
        settings = _oauth_public_url(settings, args)
    # Over HTTP the port is taken first, before any line names it: a busy port is one line,
    # at once rather than after the sandbox is seeded.
    sock = listen(args.host, args.port) if args.transport == "http" else None
    runtime = make_runtime(settings)
    server = build_server(runtime)
    if args.transport == "stdio":
        if sys.stdin.isatty():  # a person ran it in a terminal: say it is not hung
            print(
                "close-mcp: waiting for an MCP client on stdin (this is a stdio server: an MCP "
                "client starts it; Ctrl-C stops it)",
                file=sys.stderr,
                flush=True,
            )
        from close_mcp.server.stdio import run_stdio

        run_stdio(server)
        return 0
    from close_mcp.server.http import run_http

    print(
        f"close-mcp: serving MCP (Streamable HTTP) at {url(args.host, args.port, '/mcp')} "
        f"(health: {url(args.host, args.port, '/health')}); Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    run_http(server, runtime, host=args.host, port=args.port, sock=sock)
    return 0


def restore(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Preview on stderr, confirmation, one POST per lead not restored yet, journaled (see
    `close_mcp.safety.restore`), all under the backup's lock; old -> new ids as JSON on
    stdout."""
    import anyio

    from close_mcp.errors import SafetyNetError
    from close_mcp.safety.restore import (
        Backup,
        Progress,
        confirmed,
        open_backup,
        preview,
        run_restore,
    )
    from close_mcp.store import Busy
    from close_mcp.writes.progress import Progress as Steps
    from close_mcp.writes.sender import Sender

    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    retry_unknown = bool(getattr(args, "retry_unknown", False))
    settings = load_settings(sandbox=args.sandbox)
    runtime = make_runtime(settings)

    def ask(prompt: str) -> str:
        print(prompt, end="", file=stderr, flush=True)
        return stdin.readline()

    async def run() -> tuple[Backup | None, Report | None, int]:
        try:
            try:
                backup = await open_backup(runtime.store, str(args.backup))
            except (OSError, SafetyNetError) as exc:
                print(f"close-mcp: cannot read the backup: {exc}", file=stderr)
                return None, None, 1

            async def approve(progress: Progress) -> bool:
                shown = await preview(backup, progress, retry_unknown=retry_unknown)
                print(shown.text, file=stderr)
                if not backup.count:
                    return False
                if not shown.sending:
                    return True
                return await anyio.to_thread.run_sync(
                    lambda: confirmed(
                        shown.sending,
                        yes=args.yes,
                        interactive=stdin.isatty(),
                        ask=ask,
                        err=stderr,
                    )
                )

            async def show(done: float, total: float | None, message: str) -> None:
                print(f"close-mcp: {message}", file=stderr, flush=True)

            try:
                report = await run_restore(
                    runtime.store,
                    backup,
                    lambda: Sender(runtime.audit, runtime.client_for(), "restore"),
                    approve=approve,
                    sandbox=args.sandbox,
                    retry_unknown=retry_unknown,
                    steps=Steps(show, runtime.clock, every_s=RESTORE_PROGRESS_S),
                    clock=runtime.clock,
                )
            except Busy as exc:
                print(f"close-mcp: not restored: {exc}", file=stderr)
                return backup, None, 1
            return backup, report, 0 if report is not None or not backup.count else 1
        finally:
            await runtime.aclose()

    backup, report, code = anyio.run(run)
    if backup is None or report is None:
        return code
    print(json.dumps(report.to_json(), indent=2), file=stdout)
    print(restore_summary(report, backup.count), file=stderr)
    return 0 if report.complete else 1


def restore_summary(report: Report, count: int) -> str:
    """The last line of `close-mcp restore` on stderr: what happened to the backup's leads."""
    already, failed, unknown = report.already_restored, report.failed, report.outcome_unknown
    parts = [f"close-mcp: restored {len(report.restored)} of {count} leads"]
    parts += sentences(
        (already, f"{len(already)} already restored by an earlier run"),
        (failed, f"{len(failed)} failed (see 'failed'; a re-run sends them again)"),
        (
            unknown,
            f"{len(unknown)} outcome unknown: see 'outcome_unknown', check in Close whether "
            "they exist, then --retry-unknown sends them again",
        ),
        (report.stopped, f"stopped: {report.stopped}"),
    )
    return "; ".join(parts)
