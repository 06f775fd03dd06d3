"""The `close-mcp` command: serve, sandbox, demo, schemas, restore, check.

Heavy imports happen inside the subcommands, so `close-mcp --help` and the stdio server
start fast. Configuration errors end the program with one line on stderr and exit code 2;
stdout is left to the MCP protocol.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from close_mcp import __version__
from close_mcp.settings_table import SETTINGS, STATE_DIR, flag_help, help_environment

EXIT_CONFIG = 2
# Kept here rather than imported from close_mcp.sandbox.drift: importing the sandbox package
# would load Starlette for every `close-mcp --help`; a test keeps the two lists equal.
# The CRM endpoints: one field renamed in pipelines, opportunity statuses, opportunities,
# tasks, exports and the event log (close_mcp.sandbox.drift.CRM_DRIFTS).
CRM_DRIFT_NAMES = (
    "pipeline-statuses",
    "opportunity-status-type",
    "opportunity-user",
    "task-assignee",
    "export-url",
    "event-previous-data",
    "subscription-sequence",
)
# The friendly filter's activity, opportunity, range and prefix forms
# (close_mcp.sandbox.drift.FILTER_DRIFTS).
FILTER_DRIFT_NAMES = (
    "query-email-activity",
    "query-call-activity",
    "query-opportunity",
    "query-number-range",
    "query-prefix",
)
DRIFT_NAMES = (
    "status-label",
    "render-body",
    "search-count",
    "email-date",
    "query-lead-id",
    "query-offset",
    "query-local-date",
    "query-status",
    "query-user",
    "query-has-related",
    "query-text",
    "query-full-text",
    "query-sort",
    *CRM_DRIFT_NAMES,
    *FILTER_DRIFT_NAMES,
)
CHECK_DESCRIPTION = """\
Check the configured Close account answers the way close-mcp reads it: one read-only
request to each endpoint close-mcp relies on (me/, lead statuses, the custom field
schema, email templates, sequences, connected accounts, smart views, users, a count-only
search, a one-lead search, a lead, a template rendered for one lead and contact, the
bulk job lists of each kind, the email activities, that lead's sequence subscriptions,
pipelines, opportunity statuses, opportunities, tasks, exports and deleted leads'
events), each answer checked against the fields the code reads (timestamps and the
RateLimit header included), and a count probe of one sampled lead for every query kind
close-mcp sends (an offset moment, fixed_local_date, the lead-id reference, status.lead,
user_or_group, has_related contact_email, activity.email, activity.call and opportunity,
number_range, text conditions, a sort on a custom field), each of which must count
exactly that lead. Prints a table and never writes: only GETs, and searches (POST
data/search/, which change nothing)."""
CHECK_EPILOG = """\
environment:
  CLOSE_API_KEY       the Close API key to check with (required unless --sandbox)
  CLOSE_API_BASE_URL  the API root (default https://api.close.com/api/v1/)

Each row is an endpoint and "ok", or "differs:" naming the field that is missing or has
another type than close-mcp reads. Exit status: 0 when every answer has the expected shape,
1 when one differs or an endpoint fails, 2 on a configuration error."""


SERVE_ENVIRONMENT = help_environment()


def _add_policy_flags(parser: argparse.ArgumentParser) -> None:
    """`--sandbox`, then a flag for each row of the settings table that has one."""
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="run against the embedded sandbox (a local fake Close; no key needed; "
        "default: off, the real Close of CLOSE_API_KEY)",
    )
    for row in SETTINGS:
        if row.flag is None:
            continue
        if row.metavar is None:  # a switch: None when not given, so the variable decides
            parser.add_argument(row.flag, action="store_true", default=None, help=flag_help(row))
        else:
            parser.add_argument(row.flag, metavar=row.metavar, help=flag_help(row))


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="close-mcp",
        description="An MCP server for Close CRM bulk actions: every bulk action previewed and "
        "confirmed before it is sent. The API key comes from CLOSE_API_KEY, never from a flag. "
        "Without a command: serve.",
        epilog="developer commands: schemas (tool_schemas/ from the code). "
        "`close-mcp COMMAND --help` shows each command's flags, defaults and environment.",
    )
    parser.add_argument("--version", action="version", version=f"close-mcp {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logs on stderr (default: warnings)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the MCP server (stdio by default)",
        description="Run the MCP server: stdio (what desktop clients launch) or Streamable "
        "HTTP at /mcp.",
        epilog=SERVE_ENVIRONMENT,
        formatter_class=raw,
    )
    serve.add_argument(
        "--transport", choices=("stdio", "http"), default="stdio", help="default: stdio"
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="HTTP bind address, with --transport http (default: 127.0.0.1, loopback)",
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="HTTP port, with --transport http (default: 8000)"
    )
    serve.add_argument(
        "--oauth",
        action="store_true",
        default=None,
        help="over HTTP, people sign in with Close (OAuth); with --sandbox the whole flow runs "
        "here (default: on when CLOSE_MCP_OAUTH_CLIENT_ID and _SECRET are set)",
    )
    _add_policy_flags(serve)

    sandbox = sub.add_parser(
        "sandbox",
        help="serve the sandbox as a Close-compatible HTTP API",
        description="Serve a seeded fake Close on loopback; prints its base URL and API key "
        "on stdout at start. Reads no environment variable.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    sandbox.add_argument(
        "--leads", type=int, default=1000, help="number of seeded leads (default: 1000)"
    )
    sandbox.add_argument(
        "--seed", type=int, default=7, help="seed of the demo organization (default: 7)"
    )
    sandbox.add_argument(
        "--rate-limit",
        metavar="N/s",
        help="answer 429 above N requests per second (default: no limit)",
    )
    sandbox.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of requests answered with a 5xx (default: 0.0)",
    )
    sandbox.add_argument(
        "--drift",
        choices=DRIFT_NAMES,
        help="answer one endpoint with a deliberately changed shape, for trying close-mcp "
        "check: status-label (lead statuses name their label `name`), render-body (a "
        "rendered template has no body), search-count (count.total becomes count.n_total); "
        "the others rename one field in pipelines, opportunity statuses, opportunities, "
        "tasks, exports or the event log, as their names say (default: none, Close's shapes)",
    )

    check = sub.add_parser(
        "check",
        help="read-only probes of every Close endpoint close-mcp relies on",
        description=CHECK_DESCRIPTION,
        epilog=CHECK_EPILOG,
        formatter_class=raw,
    )
    check.add_argument(
        "--sandbox",
        action="store_true",
        help="check the embedded sandbox instead of Close, to see what the check does "
        "(default: the account of CLOSE_API_KEY)",
    )
    check.add_argument(
        "--drift",
        choices=DRIFT_NAMES,
        help="with --sandbox: the sandbox answers one endpoint with a changed shape "
        "(see close-mcp sandbox --help; default: none)",
    )

    sub.add_parser(
        "demo",
        help="walk through the main job against the sandbox",
        description="Run `close-mcp serve --sandbox` and drive it through a real MCP client "
        "session. No flags; needs no key (CLOSE_API_KEY is not passed on). Its audit log goes "
        f"to demo/audit.jsonl in the state dir ({STATE_DIR}), apart from the real one.",
    )

    schemas = sub.add_parser(
        "schemas",
        help="(developer) write tool_schemas/ from the code",
        description="Developer command: write the tool schemas to a folder, or check it. "
        "Reads no environment variable.",
    )
    schemas.add_argument(
        "--check",
        action="store_true",
        help="fail if the folder differs instead of writing it (default: write)",
    )
    schemas.add_argument(
        "--dir", default="tool_schemas", help="output folder (default: tool_schemas)"
    )

    restore = sub.add_parser(
        "restore",
        help="re-create leads from a pre-delete backup, after confirmation",
        description="Re-create the leads of a bulk delete from its backup, after a preview "
        "and a confirmation.",
        epilog="environment: CLOSE_API_KEY (required unless --sandbox), CLOSE_API_BASE_URL, "
        "CLOSE_MCP_STORE (where backups live; default state.sqlite3 in the state dir), "
        f"CLOSE_MCP_AUDIT_LOG. The state dir: {STATE_DIR}.",
    )
    restore.add_argument(
        "backup",
        metavar="BACKUP",
        help="a bulk delete job id (bulkdelete_..., its backup read from the state store) "
        "or a bulkdelete_....jsonl backup file",
    )
    restore.add_argument(
        "--sandbox",
        action="store_true",
        help="restore into a fresh embedded sandbox (to try the command; nothing reaches "
        "Close; default: off)",
    )
    restore.add_argument(
        "--yes",
        action="store_true",
        help="do not ask (for scripts; required without a terminal; default: ask)",
    )
    restore.add_argument(
        "--retry-unknown",
        action="store_true",
        help="send again the leads whose POST had an unknown outcome in an earlier run "
        "(check in Close first: any that exist are duplicated; default: off)",
    )

    return parser


def parse_rate(value: str | None) -> float | None:
    from close_mcp.errors import ConfigError

    if value is None:
        return None
    try:
        rate = float(value.removesuffix("/s"))
    except ValueError:
        raise ConfigError(f"--rate-limit must look like 20/s, not {value!r}") from None
    if rate <= 0:
        raise ConfigError(f"--rate-limit must be positive, not {value!r}")
    return rate


TOP_LEVEL_ONLY = ("-h", "--help", "--version")


def with_default_command(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`close-mcp [-v] [serve options]` means `close-mcp [-v] serve [serve options]`."""
    commands: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands.update(action.choices)
    if any(arg in commands or arg in TOP_LEVEL_ONLY for arg in argv):
        return argv
    lead = 0
    while lead < len(argv) and argv[lead] in ("-v", "--verbose"):
        lead += 1
    if lead < len(argv) and not argv[lead].startswith("-"):
        # A word where a command goes is a mistyped command, not an argument of `serve`.
        parser.error(
            f"unknown command {argv[lead]!r}; the commands are: {', '.join(sorted(commands))} "
            "(without one: serve)"
        )
    return [*argv[:lead], "serve", *argv[lead:]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = with_default_command(parser, sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="close-mcp %(levelname)s %(name)s: %(message)s",
    )
    command = args.command or "serve"

    from close_mcp.errors import ConfigError

    try:
        if command == "serve":
            from close_mcp.cli.commands import serve

            return serve(args)
        if command == "sandbox":
            import anyio

            from close_mcp.cli.ports import listen
            from close_mcp.sandbox import serve as serve_sandbox

            options = dict(
                host=args.host,
                port=args.port,
                sock=listen(args.host, args.port),  # bound before the banner names it
                n_leads=args.leads,
                seed=args.seed,
                rate_limit=parse_rate(args.rate_limit),
                fault_rate=args.fault_rate,
                drift=args.drift,
            )
            anyio.run(lambda: serve_sandbox(**options))
            return 0
        if command == "demo":
            from close_mcp.cli.demo import run_demo

            return int(run_demo())
        if command == "check":
            from close_mcp.cli.check import check

            return check(args)
        if command == "restore":
            from close_mcp.cli.commands import restore

            return restore(args)
        if command == "schemas":
            from close_mcp.server.schemas import write_or_check

            return write_or_check(args.dir, check=args.check)
    except ConfigError as exc:
        print(f"close-mcp: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {command!r}")
    return EXIT_CONFIG
