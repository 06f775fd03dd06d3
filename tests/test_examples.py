"""examples/: every client config is valid and safe, every script runs against the sandbox.

The agent scripts run with their framework's scripted model (no LLM, no key, no network); the
tool calls they make are real MCP calls to `close-mcp serve --sandbox` over stdio. OpenAI Agents
and Pydantic AI come from the `examples` extra; LangChain's adapters need `mcp<2`, so they run in
a separate venv (tests/outside/toolcache.py) and talk to the server over stdio.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from close_mcp.cli.main import build_parser
from tests.outside.toolcache import Unavailable, langchain_python

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CONFIGS = sorted(EXAMPLES.rglob("*.json"))
SERVE = [sys.executable, "-m", "close_mcp", "serve", "--sandbox"]
SCRIPT_TIMEOUT_S = 180
AGENT_CALLS = ("lookup", "search_leads", "create_bulk_edit", "create_bulk_delete")


def test_every_client_is_covered() -> None:
    names = {path.relative_to(EXAMPLES).as_posix() for path in CONFIGS}
    assert {
        "claude_desktop_config.json",
        ".mcp.json",
        ".cursor/mcp.json",
        ".vscode/mcp.json",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_config_parses_and_launches_close_mcp_safely(path: Path) -> None:
    config = json.loads(path.read_text())
    servers: dict[str, Any] = config.get("mcpServers") or config.get("servers")
    assert servers, f"{path.name}: no mcpServers/servers"
    inputs = {item["id"]: item for item in config.get("inputs", [])}
    for name, server in servers.items():
        argv = [server["command"], *server.get("args", [])]
        assert not any("api_" in arg.lower() or "key" in arg.lower() for arg in argv), name
        close_args = _close_mcp_args(argv)
        parsed = build_parser().parse_args(close_args)  # every flag is a real one
        assert parsed.command == "serve", name
        env = server.get("env", {})
        if parsed.sandbox:
            assert "CLOSE_API_KEY" not in env, f"{name}: the sandbox needs no key"
        else:
            assert env.get("CLOSE_API_KEY"), f"{name}: the key must come through env"
        match = re.fullmatch(r"\$\{input:([\w-]+)\}", env.get("CLOSE_API_KEY", ""))
        if match:
            assert inputs[match[1]]["password"] is True, "the key prompt must be a password"
        if path.name == "claude_desktop_config.json" or "venv" in path.name:
            assert Path(server["command"]).is_absolute(), f"{name}: desktop apps need full paths"


def _close_mcp_args(argv: list[str]) -> list[str]:
    """The arguments close-mcp itself receives from a launcher line."""
    for i, word in enumerate(argv):
        if Path(word).name == "close-mcp" and (i == 0 or argv[i - 1] != "--from"):
            return argv[i + 1 :]
    raise AssertionError(f"no close-mcp in {argv}")


def test_vscode_prompts_for_the_key() -> None:
    config = json.loads((EXAMPLES / ".vscode" / "mcp.json").read_text())
    [prompt] = config["inputs"]
    assert prompt["type"] == "promptString"
    assert prompt["password"] is True
    assert config["servers"]["close"]["env"]["CLOSE_API_KEY"] == f"${{input:{prompt['id']}}}"


def test_claude_code_commands_pass_the_key_through_env() -> None:
    text = (EXAMPLES / "README.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("claude mcp add")]
    stdio = [line for line in lines if " -- " in line]
    assert len(stdio) >= 2
    for line in stdio:
        words = shlex.split(line)
        head, command = words[: words.index("--")], words[words.index("--") + 1 :]
        assert not any("api_" in word for word in command), line
        parsed = build_parser().parse_args(_close_mcp_args(command))
        assert parsed.command == "serve"
        if not parsed.sandbox:
            assert any(word.startswith("CLOSE_API_KEY=") for word in head), line


def test_readme_links_every_example() -> None:
    text = (EXAMPLES / "README.md").read_text()
    for path in [*CONFIGS, *EXAMPLES.glob("*.py")]:
        assert f"({path.relative_to(EXAMPLES).as_posix()})" in text, path.name


def run_script(python: str | Path, script: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("CLOSE_API_KEY", "OPENAI_API_KEY")}
    env["CLOSE_MCP_AUDIT_LOG"] = "off"
    done = subprocess.run(
        [str(python), str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, f"{script}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def need_extra(module: str) -> None:
    """The `examples` extra: skipped locally when missing, a failure in CI."""
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed: pip install -e '.[examples]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def assert_agent_stopped_at_confirmation(out: str) -> None:
    calls = re.findall(r"^-> (\w+)", out, flags=re.MULTILINE)
    assert calls == list(AGENT_CALLS), out
    assert '"status": "preview"' in out or '"status":"preview"' in out, out
    answer = re.search(
        r"^agent: Nothing deleted yet: Bulk delete: permanently delete (\d+) leads", out, re.M
    )
    assert answer, out
    assert int(answer[1]) > 0


def test_python_client_confirm_flow() -> None:
    out = run_script(sys.executable, "python_client.py", "--", *SERVE)
    assert re.search(r"connected to close-mcp \S+: \d+ tools", out), out
    assert re.search(r"^   \d+ leads match; sample:", out, re.M), out
    assert "status: preview: Preview only, nothing was sent" in out
    assert re.search(r"status: confirmation_required \((\d+) leads\)", out)
    assert "status: submitted" in out
    assert re.search(r"job bulkdelete_\w+: done \((\d+)/\1\)", out), out
    assert "replaying the token: refused" in out
    assert out.rstrip().endswith("done")


@pytest.mark.slow
def test_openai_agents_with_a_scripted_model() -> None:
    need_extra("agents")
    out = run_script(sys.executable, "openai_agents.py", "--", *SERVE)
    assert_agent_stopped_at_confirmation(out)


@pytest.mark.slow
def test_pydantic_ai_with_function_model() -> None:
    need_extra("pydantic_ai")
    out = run_script(sys.executable, "pydantic_ai_agent.py", "--", *SERVE)
    assert_agent_stopped_at_confirmation(out)


@pytest.mark.slow
def test_langchain_in_its_own_venv_over_stdio() -> None:
    try:
        python = langchain_python()
    except Unavailable as exc:
        pytest.skip(f"LangChain venv unavailable: {exc}")
    out = run_script(python, "langchain_agent.py", "--", *SERVE)
    assert_agent_stopped_at_confirmation(out)
