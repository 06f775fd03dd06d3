"""The settings table: each row reaches `Settings` (by its variable and by its flag), the flags
and `serve --help`, and README's configuration table is the one the rows build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from close_mcp.cli.commands import settings_from_args
from close_mcp.cli.main import build_parser, main
from close_mcp.close.client import DEFAULT_BASE_URL
from close_mcp.config import Settings, load_settings
from close_mcp.errors import ConfigError
from close_mcp.settings_table import (
    CLOSE_API_ROOT,
    SETTINGS,
    Setting,
    flag_help,
    plain,
    readme_table,
    with_readme_table,
)

README = Path(__file__).resolve().parents[1] / "README.md"
BASE = {"CLOSE_API_KEY": "api_base", "XDG_STATE_HOME": "/state"}
# Per variable: a value other than its default, and what `Settings` then holds.
SAMPLES: dict[str, tuple[str, Any]] = {
    "CLOSE_API_KEY": ("api_other", "api_other"),
    "CLOSE_API_BASE_URL": ("http://127.0.0.1:9/api/v1", "http://127.0.0.1:9/api/v1/"),
    "CLOSE_MCP_READ_ONLY": ("1", True),
    "CLOSE_MCP_TOOLSETS": ("search, jobs", frozenset({"search", "jobs"})),
    "CLOSE_MCP_CONFIRM": ("edit", frozenset({"edit", "delete", "merge"})),
    "CLOSE_MCP_REQUIRE_HUMAN": ("yes", True),
    "CLOSE_MCP_AUDIT_LOG": ("/logs/audit.jsonl", Path("/logs/audit.jsonl")),
    "CLOSE_MCP_SNAPSHOT": ("7", 7),
    "CLOSE_MCP_SECRET": ("s" * 20, "s" * 20),
    "CLOSE_MCP_STORE": ("redis://cache:6379/0", "redis://cache:6379/0"),
    "CLOSE_MCP_TIMEZONE": ("Europe/Berlin", ZoneInfo("Europe/Berlin")),
    "CLOSE_MCP_HTTP_TOKEN": ("t" * 16, "t" * 16),
    "CLOSE_MCP_PUBLIC_URL": ("https://mcp.example.com/", "https://mcp.example.com"),
    "CLOSE_MCP_OAUTH_CLIENT_ID": ("oa_1", "oa_1"),
    "CLOSE_MCP_OAUTH_CLIENT_SECRET": ("app-secret", "app-secret"),
}
ROWS = {row.variable: row for row in SETTINGS}


def _field(settings: Settings, row: Setting) -> Any:
    value = getattr(settings, row.field)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_every_row_has_a_sample() -> None:
    assert set(SAMPLES) == set(ROWS)


@pytest.mark.parametrize("variable", SAMPLES)
def test_each_variable_reaches_settings(variable: str) -> None:
    row = ROWS[variable]
    raw, expected = SAMPLES[variable]
    default = _field(load_settings(BASE), row)
    assert default != expected
    assert _field(load_settings({**BASE, variable: raw}), row) == expected


@pytest.mark.parametrize("variable", [row.variable for row in SETTINGS if row.flag])
def test_each_flag_reaches_settings(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    row = ROWS[variable]
    assert row.flag is not None
    raw, expected = SAMPLES[variable]
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    if row.metavar is None:  # a switch: the variable says off, the flag wins
        monkeypatch.setenv(variable, "0")
    else:
        monkeypatch.delenv(variable, raising=False)
    given = [row.flag] if row.metavar is None else [row.flag, raw]
    args = build_parser().parse_args(["serve", *given])
    assert _field(settings_from_args(args), row) == expected


def test_the_flags_of_serve_are_the_rows_with_a_flag() -> None:
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    helps = {
        action.option_strings[-1]: action.help for action in serve._actions if action.option_strings
    }
    for row in SETTINGS:
        if row.flag:
            assert helps[row.flag] == flag_help(row)
            assert row.variable in flag_help(row)
    # The serve flags that are no setting of the environment.
    assert set(helps) - {row.flag for row in SETTINGS} == {
        "--help",
        "--transport",
        "--host",
        "--port",
        "--oauth",
        "--sandbox",
    }


def test_serve_help_lists_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    shown = _flat(capsys.readouterr().out)
    environment = shown[shown.index("environment (a flag overrides its variable):") :]
    for row in SETTINGS:
        flag = f"{row.flag}: " if row.flag else ""
        line = f"{row.variable} {flag}{plain(row.meaning)} (default: {plain(row.defaults)})"
        assert _flat(line) in environment, row.variable


def test_readme_table_is_the_one_the_rows_build() -> None:
    text = README.read_text()
    assert with_readme_table(text) == text, (
        "README's configuration table differs from close_mcp/settings_table.py: run "
        "`python -m close_mcp.settings_table README.md`"
    )
    assert readme_table() in text


def test_the_api_root_in_help_is_the_clients() -> None:
    assert CLOSE_API_ROOT == DEFAULT_BASE_URL


def test_help_loads_no_http_client_nor_pydantic() -> None:
    """The table is read by `close-mcp --help`, which must start fast."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, close_mcp.cli.main; "
            "print(sorted({'httpx', 'pydantic'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == "[]\n"


@pytest.mark.parametrize("variable", SAMPLES)
def test_an_empty_variable_is_unset_unless_its_row_reads_blanks(variable: str) -> None:
    row = ROWS[variable]
    env = {**BASE, variable: ""}
    refused = {
        "CLOSE_API_KEY": "CLOSE_API_KEY is not set",
        "CLOSE_MCP_TOOLSETS": "CLOSE_MCP_TOOLSETS is empty; allowed: search,",
        "CLOSE_MCP_SNAPSHOT": "CLOSE_MCP_SNAPSHOT must be on, off or a number",
    }
    if variable in refused:
        with pytest.raises(ConfigError, match=f"^{refused[variable]}"):
            load_settings(env)
    elif variable == "CLOSE_MCP_CONFIRM":  # none but delete and merge, which never leave
        assert load_settings(env).confirm == {"delete", "merge"}
    elif variable == "CLOSE_MCP_SECRET":  # unset: a random one, this process's own
        assert load_settings(env).secret_is_shared is False
    else:
        assert _field(load_settings(env), row) == _field(load_settings(BASE), row)
    assert row.blank_is_value == (
        variable in ("CLOSE_MCP_TOOLSETS", "CLOSE_MCP_SNAPSHOT", "CLOSE_MCP_CONFIRM")
    )
