"""Settings: every variable, every bad value, flags over the environment, the key kept secret."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from close_mcp.close.client import DEFAULT_BASE_URL
from close_mcp.config import load_settings
from close_mcp.errors import ConfigError

KEY = "api_CONFIGKEY_visible_nowhere"
BASE_ENV = {"CLOSE_API_KEY": KEY, "HOME": "/home/u"}


def settings(**env: str):  # type: ignore[no-untyped-def]
    return load_settings({**BASE_ENV, **env})


def test_defaults() -> None:
    s = load_settings({"CLOSE_API_KEY": KEY, "XDG_STATE_HOME": "/state"})
    assert s.api_key is not None
    assert s.api_key.get_secret_value() == KEY
    assert s.base_url == DEFAULT_BASE_URL
    assert s.read_only is False
    assert s.toolsets == {"search", "jobs", "edit", "email", "sequences", "delete", "send"}
    assert s.confirm == {
        "edit", "email", "sequences", "send", "delete", "export", "merge", "opportunities",
        "tasks",
    }  # fmt: skip
    assert s.require_human is False
    assert s.secret_is_shared is False
    assert len(s.secret.get_secret_value()) == 64
    assert s.audit_log == Path("/state/close-mcp/audit.jsonl")
    assert s.snapshot_limit == 50_000
    assert s.sandbox is False
    assert s.timezone is None  # this machine's zone


def test_every_variable_is_read() -> None:
    s = settings(
        CLOSE_API_BASE_URL="http://127.0.0.1:8765/api/v1",
        CLOSE_MCP_READ_ONLY="1",
        CLOSE_MCP_TOOLSETS="search, jobs",
        CLOSE_MCP_CONFIRM="edit",
        CLOSE_MCP_REQUIRE_HUMAN="true",
        CLOSE_MCP_SECRET="s" * 32,
        CLOSE_MCP_AUDIT_LOG="/tmp/audit.jsonl",
        CLOSE_MCP_SNAPSHOT="100",
        CLOSE_MCP_TIMEZONE=" America/New_York ",
    )
    assert s.base_url == "http://127.0.0.1:8765/api/v1/"
    assert s.read_only is True
    assert s.toolsets == {"search", "jobs"}
    assert s.confirm == {"edit", "delete", "merge"}
    assert s.require_human is True
    assert s.secret.get_secret_value() == "s" * 32
    assert s.secret_is_shared is True
    assert s.audit_log == Path("/tmp/audit.jsonl")
    assert s.snapshot_limit == 100
    assert s.timezone == ZoneInfo("America/New_York")
    assert "timezone='America/New_York'" in repr(s)


def test_all_turns_on_every_toolset_the_opt_in_ones_too() -> None:
    every = {"search", "jobs", "edit", "email", "sequences", "delete", "send"}
    every |= {"export", "merge", "opportunities", "tasks"}
    assert settings(CLOSE_MCP_TOOLSETS="all").toolsets == every
    assert settings(CLOSE_MCP_TOOLSETS="search, ALL").toolsets == every
    assert load_settings(BASE_ENV, toolsets="tasks").toolsets == {"tasks"}


def test_delete_and_merge_can_never_leave_the_confirmation_list() -> None:
    assert settings(CLOSE_MCP_CONFIRM="").confirm == {"delete", "merge"}
    assert settings(CLOSE_MCP_CONFIRM="email").confirm == {"email", "delete", "merge"}
    assert load_settings(BASE_ENV, confirm="send").confirm == {"send", "delete", "merge"}


def test_flags_override_environment() -> None:
    s = load_settings(
        {**BASE_ENV, "CLOSE_MCP_READ_ONLY": "0", "CLOSE_MCP_TOOLSETS": "search"},
        read_only=True,
        toolsets="edit,delete",
        require_human=True,
        audit_log="off",
        snapshot="off",
    )
    assert s.read_only is True
    assert s.toolsets == {"edit", "delete"}
    assert s.require_human is True
    assert s.audit_log is None
    assert s.snapshot_limit == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CLOSE_MCP_TOOLSETS": "search,emails"},
            "CLOSE_MCP_TOOLSETS: unknown name 'emails'; allowed: search, jobs, edit, email, "
            "sequences, delete, send, export, merge, opportunities, tasks, all",
        ),
        (
            {"CLOSE_MCP_TOOLSETS": " , "},
            "CLOSE_MCP_TOOLSETS is empty; allowed: search, jobs, edit, email, sequences, "
            "delete, send, export, merge, opportunities, tasks, all",
        ),
        (
            {"CLOSE_MCP_CONFIRM": "delete,nuke"},
            "CLOSE_MCP_CONFIRM: unknown name 'nuke'; allowed: edit, email, sequences, send, "
            "delete, export, merge, opportunities, tasks",
        ),
        (
            {"CLOSE_MCP_READ_ONLY": "maybe"},
            "CLOSE_MCP_READ_ONLY must be 1 or 0 (also true/false, yes/no, on/off), not 'maybe'",
        ),
        (
            {"CLOSE_MCP_REQUIRE_HUMAN": "2"},
            "CLOSE_MCP_REQUIRE_HUMAN must be 1 or 0 (also true/false, yes/no, on/off), not '2'",
        ),
        (
            {"CLOSE_API_BASE_URL": "api.close.com/api/v1"},
            "CLOSE_API_BASE_URL must be an http(s) URL such as https://api.close.com/api/v1/, "
            "not 'api.close.com/api/v1'",
        ),
        (
            {"CLOSE_API_BASE_URL": "ftp://x/"},
            "CLOSE_API_BASE_URL must be an http(s) URL such as https://api.close.com/api/v1/, "
            "not 'ftp://x/'",
        ),
        ({"CLOSE_MCP_SECRET": "short"}, "CLOSE_MCP_SECRET must be at least 16 characters long"),
        (
            {"CLOSE_MCP_SNAPSHOT": "lots"},
            "CLOSE_MCP_SNAPSHOT must be on, off or a number of leads, not 'lots'",
        ),
        (
            {"CLOSE_MCP_HTTP_TOKEN": "abc"},
            "CLOSE_MCP_HTTP_TOKEN must be at least 16 characters long",
        ),
        *(
            (
                {"CLOSE_MCP_TIMEZONE": zone},
                "CLOSE_MCP_TIMEZONE must be an IANA time zone name such as America/New_York, "
                f"Europe/Berlin or UTC, not {zone!r}",
            )
            for zone in ("Mars/Olympus", "America", "../../etc/passwd", "+02:00", "EST 5")
        ),
    ],
)
def test_bad_values_stop_with_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(**env)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--toolsets: unknown name 'x'"):
        load_settings(BASE_ENV, toolsets="x")


def test_missing_key_mentions_sandbox() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({})
    assert str(info.value) == (
        "CLOSE_API_KEY is not set. Set it to your Close API key (Settings > Developer > API "
        "Keys), or run with --sandbox to try close-mcp against a local fake Close."
    )
    assert load_settings({}, sandbox=True).api_key is None


def test_key_and_secret_never_in_repr() -> None:
    s = settings(CLOSE_MCP_SECRET="x" * 40, CLOSE_MCP_HTTP_TOKEN="t" * 20)
    for text in (repr(s), str(s)):
        assert KEY not in text
        assert "x" * 40 not in text
        assert "t" * 20 not in text


def test_http_serving_needs_no_key_because_requests_bring_their_own() -> None:
    settings = load_settings({}, key_per_request=True)
    assert settings.api_key is None
    assert settings.sandbox is False
