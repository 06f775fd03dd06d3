"""The long-running command `serve`: the MCP server on stdio or Streamable HTTP."""

from __future__ import annotations

import argparse

from close_mcp.config import Settings, load_settings
from close_mcp.runtime import Runtime


SANDBOX_JOB_SPEED = 60.0  # objects per second


def settings_from_args(args: argparse.Namespace) -> Settings:
    return load_settings(
        sandbox=args.sandbox,
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
    from close_mcp.server import build_server

    settings = settings_from_args(args)
    runtime = make_runtime(settings)
    server = build_server(runtime)
    if args.transport == "stdio":
        server.run("stdio")
        return 0
    from close_mcp.http import run_http

    run_http(server, runtime, host=args.host, port=args.port)
    return 0
