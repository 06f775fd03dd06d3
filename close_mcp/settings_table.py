"""Every setting once, as a row: its variable, flag, default (per mode), parser and help.

The rows build `Settings` (`close_mcp.config.load_settings` reads each row's variable or
flag through its parser), the flags of `close-mcp serve` and its `--help` list of the
environment (`close_mcp.cli.main`), and README's configuration table, which
tests/test_settings_table.py keeps equal to `readme_table()` (rewrite it with
`python -m close_mcp.settings_table README.md`). Rules that join two settings (a shared
secret needs a shared store, OAuth excludes the bearer token) stay in `load_settings`.

Only the standard library and the error tree: `close-mcp --help` imports this module, and
must not pay for httpx and pydantic.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from close_mcp.errors import ConfigError

# The default toolsets, then the opt-in ones (a write Close has no bulk endpoint or undo for,
# or that carries CRM data out): on only when named, or with `all`.
DEFAULT_TOOLSETS: Final = ("search", "jobs", "edit", "email", "sequences", "delete", "send")
OPT_IN_TOOLSETS: Final = ("export", "merge", "opportunities", "tasks")
TOOLSETS: Final = DEFAULT_TOOLSETS + OPT_IN_TOOLSETS
ALL_TOOLSETS: Final = "all"
CONFIRMABLE_ACTIONS: Final = (
    "edit", "email", "sequences", "send", "delete", "export", "merge", "opportunities", "tasks",
)  # fmt: skip
# Actions no setting takes out of the confirmation list: Close can undo neither.
ALWAYS_CONFIRMED: Final = frozenset({"delete", "merge"})
# Every action, so that no write tool sends on its first call unless a person said otherwise.
DEFAULT_CONFIRM: Final = CONFIRMABLE_ACTIONS
DEFAULT_SNAPSHOT_LIMIT: Final = 50_000
# Close's API root; equal to `close_mcp.close.client.DEFAULT_BASE_URL` (a test checks it),
# written again here so that `--help` does not import the HTTP client.
CLOSE_API_ROOT: Final = "https://api.close.com/api/v1/"
STATE_DIR: Final = "$XDG_STATE_HOME/close-mcp, else ~/.local/state/close-mcp"

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})

# -- parsers: (the variable or flag named in an error, its raw text) -> the value -----------


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be 1 or 0 (also true/false, yes/no, on/off), not {value!r}")


def parse_names(name: str, value: str, allowed: tuple[str, ...]) -> frozenset[str]:
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ConfigError(
            f"{name}: unknown name {', '.join(repr(u) for u in unknown)}; "
            f"allowed: {', '.join(allowed)}"
        )
    return frozenset(names)


def parse_toolsets(name: str, value: str) -> frozenset[str]:
    """A comma list of toolsets; `all` among them turns every one on, opt-in ones too."""
    chosen = parse_names(name, value, (*TOOLSETS, ALL_TOOLSETS))
    if not chosen:
        raise ConfigError(f"{name} is empty; allowed: {', '.join((*TOOLSETS, ALL_TOOLSETS))}")
    return frozenset(TOOLSETS) if ALL_TOOLSETS in chosen else chosen


def parse_confirm(name: str, value: str) -> frozenset[str]:
    return parse_names(name, value, CONFIRMABLE_ACTIONS) | ALWAYS_CONFIRMED


def parse_base_url(name: str, value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an http(s) URL such as {CLOSE_API_ROOT}, not {value!r}")
    url = value.strip()
    return url if url.endswith("/") else url + "/"


def parse_public_url(name: str, value: str) -> str | None:
    if not value.strip():
        return None
    url = parse_base_url(name, value.strip()).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        # OAuth (RFC 8414, and Close's redirect URLs) needs https off loopback.
        raise ConfigError(f"{name} must be an https URL, not {value.strip()!r}")
    return url


def parse_snapshot(name: str, value: str) -> int:
    lowered = value.strip().lower()
    if lowered == "on":
        return DEFAULT_SNAPSHOT_LIMIT
    if lowered == "off":
        return 0
    if lowered.isdigit():
        return int(lowered)
    raise ConfigError(f"{name} must be on, off or a number of leads, not {value!r}")


def parse_timezone(name: str, value: str) -> tzinfo | None:
    """An IANA zone such as Europe/Berlin; empty means this machine's zone."""
    key = value.strip()
    if not key:
        return None
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"{name} must be an IANA time zone name such as America/New_York, Europe/Berlin "
            f"or UTC, not {value!r}"
        ) from None


def parse_audit_log(name: str, value: str) -> Path | Literal["off", "stderr"]:
    lowered = value.strip().lower()
    if lowered in ("off", "stderr"):
        return "off" if lowered == "off" else "stderr"
    return Path(value).expanduser()


def parse_store(name: str, value: str) -> str | None:
    raw = value.strip()
    if not raw:
        return None
    if raw.startswith(("redis://", "rediss://", "unix://")) or raw == ":memory:":
        return raw
    return str(Path(raw).expanduser())


def parse_long_secret(name: str, value: str) -> str:
    if len(value) < 16:
        raise ConfigError(f"{name} must be at least 16 characters long")
    return value


def parse_stripped(name: str, value: str) -> str | None:
    return value.strip() or None


# -- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting. `meaning` and `default` are README's words (backticks are dropped in
    `--help`); `parse` turns the variable's (or flag's) text into the `Settings` field
    `field`, None meaning unset. An empty variable counts as unset unless `blank_is_value`."""

    variable: str
    field: str
    meaning: str
    default: str
    parse: Callable[[str, str], Any]
    sandbox_default: str | None = None  # what `--sandbox` changes the default to
    flag: str | None = None
    metavar: str | None = None  # with a flag: None makes it a switch (`--read-only`)
    flag_help: str | None = None  # the flag's words, where `meaning` does not fit a flag
    secret: bool = False  # kept in a SecretStr: never in a repr, a log or an error
    blank_is_value: bool = False  # an empty value is parsed (an empty list is an error)

    @property
    def defaults(self) -> str:
        """The default in words, with the sandbox's where it differs."""
        if self.sandbox_default is None:
            return self.default
        return f"{self.default}; with `--sandbox`: {self.sandbox_default}"


SETTINGS: Final[tuple[Setting, ...]] = (
    Setting(
        "CLOSE_API_KEY", "api_key",
        "Close API key; never a flag (other users of the machine can read a command line). "
        "Over HTTP each request may bring its own, in a `Close-API-Key` header",
        "required unless `--sandbox`", parse_stripped, secret=True,
    ),
    Setting(
        "CLOSE_API_BASE_URL", "base_url", "API root", f"`{CLOSE_API_ROOT}`", parse_base_url,
    ),
    Setting(
        "CLOSE_MCP_READ_ONLY", "read_only", "`1`: only read tools are registered", "off",
        parse_bool, flag="--read-only", flag_help="register only the read tools",
    ),
    Setting(
        "CLOSE_MCP_TOOLSETS", "toolsets",
        f"comma list of `{', '.join(DEFAULT_TOOLSETS)}`, and the opt-in "
        f"`{', '.join(OPT_IN_TOOLSETS)}`; `{ALL_TOOLSETS}` for every one",
        "all but the opt-in ones", parse_toolsets, flag="--toolsets", metavar="LIST",
        flag_help=f"comma list of {', '.join(TOOLSETS)}, or {ALL_TOOLSETS}", blank_is_value=True,
    ),
    Setting(
        "CLOSE_MCP_CONFIRM", "confirm",
        "actions that need confirmation, so that their first call only previews: "
        f"`{', '.join(CONFIRMABLE_ACTIONS)}`",
        "all of them; taking one out, edit say, makes its first call send at once; delete "
        "and merge are always included", parse_confirm, flag="--confirm", metavar="LIST",
        blank_is_value=True,
    ),
    Setting(
        "CLOSE_MCP_REQUIRE_HUMAN", "require_human",
        "`1`: refuse confirmed actions when the client cannot ask its user", "off", parse_bool,
        flag="--require-human",
        flag_help="refuse confirmed actions when the client cannot ask its user",
    ),
    Setting(
        "CLOSE_MCP_AUDIT_LOG", "audit_log",
        "JSON-lines audit file; `stderr` writes the lines to stderr (for a log collector); "
        "`off` disables", "audit.jsonl in the state dir", parse_audit_log,
        flag="--audit-log", metavar="PATH",
        flag_help="JSON-lines audit file, 'off' or 'stderr'",
    ),
    Setting(
        "CLOSE_MCP_SNAPSHOT", "snapshot_limit",
        "`on`, `off`, or the most leads to snapshot before an edit or delete",
        f"on, up to {DEFAULT_SNAPSHOT_LIMIT:,}", parse_snapshot, flag="--snapshot",
        metavar="on|off|N", flag_help="snapshot before edits and deletes, up to N leads",
        blank_is_value=True,
    ),
    Setting(
        "CLOSE_MCP_SECRET", "secret",
        "key that signs confirmation tokens, 16+ characters; set the same on every replica",
        "random per process", parse_long_secret, secret=True,
    ),
    Setting(
        "CLOSE_MCP_STORE", "store",
        "the state store: a SQLite path or `redis://host:port/db`",
        "state.sqlite3 in the state dir", parse_store,
        sandbox_default="`:memory:`, forgotten when the server stops", secret=True,
    ),
    Setting(
        "CLOSE_MCP_TIMEZONE", "timezone",
        "IANA time zone (`America/New_York`) the dates of filters are days in; sent to Close "
        "as `X-TZ-Offset`", "the machine's zone", parse_timezone,
    ),
    Setting(
        "CLOSE_MCP_HTTP_TOKEN", "http_token",
        "bearer token (16+ characters) required on `/mcp` over HTTP", "none",
        parse_long_secret, secret=True,
    ),
    Setting(
        "CLOSE_MCP_PUBLIC_URL", "public_url",
        "the server's external base URL, for OAuth metadata and redirects",
        "`http://HOST:PORT` on loopback, else required for OAuth", parse_public_url,
    ),
    Setting(
        "CLOSE_MCP_OAUTH_CLIENT_ID", "oauth_client_id",
        "the id of the operator's Close OAuth app; OAuth (`--oauth`) is on when it and "
        "the secret are set", "none", parse_stripped,
        sandbox_default="the sandbox's own app, with `--oauth`",
    ),
    Setting(
        "CLOSE_MCP_OAUTH_CLIENT_SECRET", "oauth_client_secret",
        "the secret of that Close OAuth app", "none", parse_stripped, secret=True,
        sandbox_default="the sandbox's own app, with `--oauth`",
    ),
)  # fmt: skip

FLAGS: Final = {row.flag: row for row in SETTINGS if row.flag}


def plain(text: str) -> str:
    """README's words for `--help`: no backticks."""
    return text.replace("`", "")


def flag_help(row: Setting) -> str:
    """A flag's help: its words, then the variable it overrides and the default."""
    return f"{plain(row.flag_help or row.meaning)} ({row.variable}; default: {plain(row.defaults)})"


def help_environment() -> str:
    """The environment list of `close-mcp serve --help`, one row a variable."""
    lines = ["environment (a flag overrides its variable):"]
    width = max(len(row.variable) for row in SETTINGS) + 4
    for row in SETTINGS:
        flag = f"{row.flag}: " if row.flag else ""
        text = f"{flag}{plain(row.meaning)} (default: {plain(row.defaults)})"
        wrapped = textwrap.wrap(text, 92 - width) or [""]
        lines.append(f"  {row.variable.ljust(width - 2)}{wrapped[0]}")
        lines += [" " * width + more for more in wrapped[1:]]
    lines.append(f"the state dir: {STATE_DIR}")
    return "\n".join(lines)


README_START: Final = "<!-- settings: generated from close_mcp/settings_table.py -->"
README_END: Final = "<!-- end of settings -->"


def readme_table() -> str:
    """README's configuration table, between its markers."""
    rows = [
        README_START,
        "| variable | flag | meaning | default |",
        "|---|---|---|---|",
        *(
            f"| `{row.variable}` | {f'`{row.flag}`' if row.flag else ''} | {row.meaning} | "
            f"{row.defaults} |"
            for row in SETTINGS
        ),
        README_END,
    ]
    return "\n".join(rows)


def with_readme_table(readme: str) -> str:
    """`readme` with its table between the markers replaced by `readme_table()`."""
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(readme):
        raise ValueError(f"README has no {README_START} ... {README_END} block")
    return pattern.sub(lambda _: readme_table(), readme, count=1)


if __name__ == "__main__":  # python -m close_mcp.settings_table README.md
    target = Path(sys.argv[1])
    target.write_text(with_readme_table(target.read_text()))
