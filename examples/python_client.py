"""Drive close-mcp from the MCP Python SDK directly: no framework, no model.

    python examples/python_client.py                 # starts `close-mcp serve --sandbox` itself
    python examples/python_client.py -- uvx close-mcp serve --sandbox

It launches the server over stdio (as a desktop client does), then:

1. looks up the lead statuses,
2. searches a selection (the dry-run engine: resolved `s_query`, count, sample),
3. previews a bulk edit with `dry_run: true` (nothing is sent),
4. asks for a bulk delete: the server answers `confirmation_required` with a token,
5. confirms with that token (the server recounts first) and waits for the job,
6. replays the used token: `refused`.

Everything runs against the embedded sandbox; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any

import anyio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

SELECTION = {"lead_status": "Potential", "has_email": True}
DOOMED = {"lead_status": "Canceled", "created_before": "2025-06-01"}


def server_command(given: list[str]) -> list[str]:
    """The command that starts the server: as given, else `close-mcp serve --sandbox`."""
    if given:
        return given
    found = shutil.which("close-mcp")
    if found:
        return [found, "serve", "--sandbox"]
    return [sys.executable, "-m", "close_mcp", "serve", "--sandbox"]


def server_env() -> dict[str, str]:
    """The child's environment: ours, with the audit log off unless asked for."""
    env = dict(os.environ)
    env.setdefault("CLOSE_MCP_AUDIT_LOG", "off")
    return env


def _brief(args: dict[str, Any]) -> str:
    text = json.dumps(args)
    return text if len(text) <= 120 else text[:117] + "..."


class Session:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        print(f"-> {tool} {_brief(args)}")
        result = await self.client.call_tool(tool, args)
        if result.is_error or result.structured_content is None:
            text = "".join(getattr(part, "text", "") for part in result.content)
            raise SystemExit(f"{tool} failed: {text}")
        return dict(result.structured_content)


async def walk(session: Session) -> None:
    statuses = await session.call("lookup", {"kind": "lead_statuses"})
    print("   statuses:", ", ".join(item["name"] for item in statuses["items"]))

    found = await session.call("search_leads", {"filter": SELECTION, "sample_size": 3})
    print(f"   s_query: {json.dumps(found['s_query'])}")
    print(f"   {found['total']} leads match; sample:")
    for lead in found["sample"]:
        print(f"     {lead['id']}  {lead['display_name']}  ({lead['status_label']})")

    edit = {"type": "set_lead_status", "lead_status": "Qualified"}
    dry = await session.call(
        "create_bulk_edit", {"filter": SELECTION, "edit": edit, "dry_run": True}
    )
    print(f"   status: {dry['status']}: {dry['message']}")
    print(f"   would POST {dry['preview']['path']} {json.dumps(dry['preview']['request'])}")

    first = await session.call("create_bulk_delete", {"filter": DOOMED})
    print(f"   status: {first['status']} ({first['preview']['matched']} leads)")
    token = first["confirmation_token"]
    # A real assistant shows the preview to the person here and waits for their yes.
    confirmed = await session.call(
        "create_bulk_delete", {"filter": DOOMED, "confirmation_token": token}
    )
    print(f"   status: {confirmed['status']}: {confirmed['message']}")
    job_id = confirmed["job"]["id"]
    waited = await session.call("wait_for_bulk_job", {"job_id": job_id, "timeout_s": 60})
    job = waited["job"]
    print(f"   job {job_id}: {job['status']} ({job['n_objects_processed']}/{job['n_objects']})")

    replay = await session.call(
        "create_bulk_delete", {"filter": DOOMED, "confirmation_token": token}
    )
    print(f"   replaying the token: {replay['status']} ({replay['reason']})")


async def main(command: list[str]) -> None:
    params = StdioServerParameters(command=command[0], args=command[1:], env=server_env())
    async with Client(params) as client:
        tools = await client.list_tools()
        info = client.server_info
        name = f"{info.name} {info.version}" if info else "server"
        print(f"connected to {name}: {len(tools.tools)} tools")
        await walk(Session(client))
    print("done")


def parse_args(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", nargs="*", help="server command (after --)")
    return server_command(parser.parse_args(argv).command)


if __name__ == "__main__":
    anyio.run(main, parse_args())
