"""The `close-mcp` command as a user (or a desktop client) runs it: real processes, real stdio.

Every child gets a clean environment (no CLOSE_API_KEY from the developer's shell, no audit
file written to their state dir) and a timeout, so a hung server fails the test instead of
hanging it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from rich.console import Console

from close_mcp import __version__
from close_mcp.cli import demo
from close_mcp.cli.main import build_parser, main
from tests.harness import Harness
from tests.processes import child_env, clean_env, free_port, running

TIMEOUT = 30
READ_TOOLS = {
    "search_leads",
    "get_lead",
    "lookup",
    "list_bulk_jobs",
    "get_bulk_job",
    "wait_for_bulk_job",
}
WRITE_TOOLS = {
    "create_bulk_edit",
    "create_bulk_email",
    "create_bulk_sequence_subscription",
    "create_bulk_delete",
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return child_env(tmp_path)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "close_mcp", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def server(args: list[str], env: dict[str, str]) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "close_mcp", *args], env=env)


# -- help and arguments ----------------------------------------------------------------------


def test_help_lists_the_subcommands(env: dict[str, str]) -> None:
    done = run(["--help"], env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage: close-mcp")
    for command in ("serve", "sandbox", "demo", "schemas"):
        assert f"    {command} " in done.stdout, command
    assert "CLOSE_API_KEY" in done.stdout


COMMANDS = ("serve", "sandbox", "demo", "schemas", "restore", "check")
# Each flag that mirrors an environment variable, and the variable.
FLAG_VARIABLES = {
    "--read-only": "CLOSE_MCP_READ_ONLY",
    "--toolsets": "CLOSE_MCP_TOOLSETS",
    "--confirm": "CLOSE_MCP_CONFIRM",
    "--require-human": "CLOSE_MCP_REQUIRE_HUMAN",
    "--audit-log": "CLOSE_MCP_AUDIT_LOG",
    "--snapshot": "CLOSE_MCP_SNAPSHOT",
}
# design.md's configuration table: every variable `serve` reads.
SERVE_VARIABLES = (
    "CLOSE_API_KEY",
    "CLOSE_API_BASE_URL",
    *FLAG_VARIABLES.values(),
    "CLOSE_MCP_SECRET",
    "CLOSE_MCP_STORE",
    "CLOSE_MCP_TIMEZONE",
    "CLOSE_MCP_HTTP_TOKEN",
)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _options(command: str) -> list[argparse.Action]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [
        action
        for action in sub.choices[command]._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_in_help_shows_its_default_and_variable(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    shown = _flat(capsys.readouterr().out)
    for action in _options(command):
        flag = action.option_strings[-1]
        assert action.help is not None, flag
        assert f"{flag}" in shown
        assert _flat(action.help) in shown, flag
        assert "default:" in action.help, f"{command} {flag}: {action.help}"
        if flag in FLAG_VARIABLES:
            assert FLAG_VARIABLES[flag] in action.help, flag
    if command == "serve":
        for variable in SERVE_VARIABLES:
            assert f" {variable} " in shown, variable
    if command == "restore":
        for variable in ("CLOSE_API_KEY", "CLOSE_MCP_STORE"):
            assert variable in shown, variable


def test_help_lists_schemas_as_a_developer_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = _flat(capsys.readouterr().out)
    assert "schemas (developer) write tool_schemas/ from the code" in shown
    assert "developer commands: schemas" in shown


def test_sandbox_prints_its_base_url_and_key_and_they_work(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1/"
    log = tmp_path / "sandbox.log"
    with running(
        ["sandbox", "--port", str(port), "--leads", "5"],
        env=clean_env(),
        health=f"{base}me/",
        log=log,
    ):
        printed = log.read_text()
        key = re.search(r"API key: +(\S+)", printed)
        assert key is not None, printed
        me = httpx.get(f"{base}me/", auth=(key.group(1), ""), timeout=10)
    assert f"  base URL: {base}\n" in printed
    assert f"CLOSE_API_BASE_URL={base} CLOSE_API_KEY={key.group(1)} close-mcp serve" in printed
    assert me.status_code == 200, me.text


def test_serve_help_says_every_action_is_confirmed_by_default(env: dict[str, str]) -> None:
    done = run(["serve", "--help"], env)
    assert (done.returncode, done.stderr) == (0, "")
    text = " ".join(done.stdout.split())
    assert "--confirm LIST actions that need confirmation, so that their first call only " in text
    assert (
        "edit, email, sequences, send, delete, export, merge, opportunities, tasks "
        "(CLOSE_MCP_CONFIRM; default: all of them;" in text
    )


def test_console_script_is_installed(env: dict[str, str]) -> None:
    script = Path(sys.executable).with_name("close-mcp")
    if not script.exists():
        pytest.skip("no console script next to this interpreter")
    done = subprocess.run(
        [str(script), "--version"], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert (done.returncode, done.stdout) == (0, f"close-mcp {__version__}\n")


@pytest.mark.parametrize(
    "args",
    [["serve", "--sandbox", "--api-key", "k"], ["--api-key=k", "serve", "--sandbox"]],
    ids=["serve", "top-level"],
)
def test_the_api_key_is_never_a_flag(env: dict[str, str], args: list[str]) -> None:
    done = run(args, env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "error: unrecognized arguments: --api-key" in done.stderr


def test_serve_without_a_key_exits_2_with_one_line_naming_sandbox(env: dict[str, str]) -> None:
    done = run(["serve"], env)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("close-mcp: error: ")
    assert "CLOSE_API_KEY" in lines[0]
    assert "--sandbox" in lines[0]


def test_bad_toolsets_variable_exits_2_with_one_clear_line(env: dict[str, str]) -> None:
    done = run(["serve", "--sandbox"], {**env, "CLOSE_MCP_TOOLSETS": "search,bogus"})
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("close-mcp: error: ")
    assert "bogus" in lines[0]


# In-process from here on: each of these fails before anything is served.


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("CLOSE_API", "CLOSE_MCP_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    return monkeypatch


@pytest.mark.parametrize(
    ("variable", "value", "argv", "named"),
    [
        (None, None, [], "--sandbox"),
        ("CLOSE_MCP_CONFIRM", "edit,maybe", ["serve", "--sandbox"], "maybe"),
        ("CLOSE_MCP_READ_ONLY", "perhaps", ["serve", "--sandbox"], "perhaps"),
        ("CLOSE_MCP_TOOLSETS", "search", ["serve", "--sandbox", "--toolsets", "nope"], "nope"),
        (None, None, ["serve", "--sandbox", "--snapshot", "lots"], "lots"),
        (None, None, ["--sandbox", "--toolsets", "nope"], "nope"),
        (None, None, ["-v", "--sandbox", "--read-only", "--confirm", "edit,maybe"], "maybe"),
        ("CLOSE_MCP_TIMEZONE", "Berlin", ["serve", "--sandbox"], "CLOSE_MCP_TIMEZONE"),
    ],
    ids=[
        "bare-command-needs-a-key",
        "confirm",
        "read-only",
        "toolsets-flag",
        "snapshot-flag",
        "serve-flags-without-serve",
        "verbose-and-serve-flags-without-serve",
        "timezone",
    ],
)
def test_settings_errors_exit_2_with_one_line(
    clean_environ: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str | None,
    value: str | None,
    argv: list[str],
    named: str,
) -> None:
    if variable is not None and value is not None:
        clean_environ.setenv(variable, value)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("close-mcp: error: ")
    assert named in lines[0]


# -- the server over real stdio --------------------------------------------------------------


@pytest.mark.anyio
async def test_serve_sandbox_over_stdio(env: dict[str, str], tmp_path: Path) -> None:
    """initialize, tools/list and one search; with -v, logs go to stderr and never to stdout."""
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w", encoding="utf-8") as errlog:
        transport = stdio_client(server(["-v", "serve", "--sandbox"], env), errlog=errlog)
        async with Client(transport, mode="legacy") as client:
            info = client.server_info
            assert info is not None
            assert (info.name, info.version) == ("close-mcp", __version__)
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names >= READ_TOOLS | WRITE_TOOLS
            result = await client.call_tool(
                "search_leads", {"filter": {"lead_status": "Qualified"}, "sample_size": 3}
            )
    assert not result.is_error
    content = result.structured_content
    assert content is not None
    assert content["s_query"]["queries"][0] == {"type": "object_type", "object_type": "lead"}
    assert 0 < content["total"] < 1000
    # The text a client hands the model: compact JSON, the same data as the structured copy.
    (text,) = result.content
    assert isinstance(text, types.TextContent)
    assert text.text == json.dumps(content, separators=(",", ":"), ensure_ascii=False)
    assert len(content["sample"]) == 3
    assert {lead["status_label"] for lead in content["sample"]} == {"Qualified"}
    logs = stderr_path.read_text(encoding="utf-8")
    assert "close-mcp DEBUG" in logs


@pytest.mark.anyio
async def test_read_only_hides_write_tools_over_stdio(env: dict[str, str]) -> None:
    async with Client(server(["serve", "--sandbox", "--read-only"], env), mode="legacy") as c:
        tools = (await c.list_tools()).tools
        refused = await c.call_tool("create_bulk_delete", {"filter": {"name": "Acme"}})
    names = {tool.name for tool in tools}
    assert names >= READ_TOOLS
    assert not names & WRITE_TOOLS
    for tool in tools:
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True, tool.name
    assert refused.is_error


# -- the demo ----------------------------------------------------------------------------------


DEMO_WHYS = (
    "Why: a bulk edit changes every matched lead at once and Close has no dry run, so the "
    "first call only previews; the token is bound to this exact request and lead count.",
    "Why: no confirmation to pause: pausing only stops the job; it changes no lead.",
    "Why: resuming a bulk edit changes leads again, so it is confirmed like the edit itself.",
    "Why: a delete is always confirmed (delete cannot be taken out of CLOSE_MCP_CONFIRM): "
    "Close cannot undo it. The server backs the leads up first, for close-mcp restore.",
    "Why: no confirmation for a draft: it is saved on the lead and nothing is sent; status "
    "outbox or scheduled would send it and is confirmed (the send action).",
)


@pytest.mark.anyio
@pytest.mark.harness(n_leads=400, audited=True)
async def test_demo_prints_the_query_once_says_why_and_where_the_audit_log_is(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk-through as `close-mcp demo` runs it, over an in-process session (fake clock)."""
    out = io.StringIO()
    console = Console(file=out, width=400, highlight=False, color_system=None)
    monkeypatch.setattr(demo, "console", console)
    audit = tmp_path / "audit.jsonl"
    assert await demo.present(h.client, audit) == 0
    text = out.getvalue()
    assert text.count('"type": "object_type"') == 1, text
    assert '"s_query": "(the s_query shown above)"' in text
    for why in DEMO_WHYS:
        assert why in text, why
    lines = len(audit.read_text().splitlines())
    assert lines >= 5
    assert f"Audit log of this demo: {audit}\n" in text
    done = f"{lines} lines in the audit log recorded the writes and refusals (without the API key)"
    assert f"{done}: {audit}\n" in text


def test_the_demo_audit_log_has_a_folder_of_its_own_in_the_state_dir(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    assert demo.demo_audit_path(env) == tmp_path / "close-mcp" / "demo" / "audit.jsonl"
