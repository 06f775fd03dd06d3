"""Settings from the environment, overridden by command-line flags, checked strictly at start.

Each setting is one row of `close_mcp.settings_table` (variable, flag, parser, default); this
module reads every row and adds the rules that join two settings.

A typo in a safety setting must not silently fall back to a default: an unknown toolset,
an unknown action, a value that is not a boolean or a malformed URL stops the program
with one line that says what is allowed. The API key is only ever read from the
environment (argv is visible to other users of the machine) and is kept in a `SecretStr`
so it cannot leak through a repr.

Date filters: `CLOSE_MCP_TIMEZONE` (an IANA name such as America/New_York; default this
machine's zone) is the zone Close reads a filter's dates in, sent as `X-TZ-Offset`.

Preview first: by default every confirmable action (`edit, email, sequences, send, delete`)
needs confirmation, so the first call of a write tool sends nothing. A person may take an
action out of CLOSE_MCP_CONFIRM (or `--confirm`) knowingly, `edit` say; `delete` never leaves.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from close_mcp.close.client import DEFAULT_BASE_URL
from close_mcp.close.timezone import zone_name
from close_mcp.errors import ConfigError
from close_mcp.settings_table import (
    CONFIRMABLE_ACTIONS,
    DEFAULT_CONFIRM,
    DEFAULT_SNAPSHOT_LIMIT,
    DEFAULT_TOOLSETS,
    SETTINGS,
    TOOLSETS,
    Setting,
)

# The table's names, where the layers above read them.
__all__ = [
    "CONFIRMABLE_ACTIONS",
    "DEFAULT_CONFIRM",
    "DEFAULT_SNAPSHOT_LIMIT",
    "DEFAULT_TOOLSETS",
    "TOOLSETS",
    "Settings",
    "default_audit_path",
    "load_settings",
]


@dataclass(frozen=True)
class Settings:
    api_key: SecretStr | None
    base_url: str = DEFAULT_BASE_URL
    read_only: bool = False
    toolsets: frozenset[str] = frozenset(DEFAULT_TOOLSETS)
    confirm: frozenset[str] = frozenset(DEFAULT_CONFIRM)
    require_human: bool = False
    secret: SecretStr = field(default_factory=lambda: SecretStr(secrets.token_hex(32)))
    secret_is_shared: bool = False
    audit_log: Path | None = None
    snapshot_limit: int = DEFAULT_SNAPSHOT_LIMIT
    snapshot_dir: Path | None = None  # None: beside the default audit path
    sandbox: bool = False
    http_token: SecretStr | None = None
    # The state store: a SQLite path, ":memory:", or a redis:// URL (may hold a password).
    store: SecretStr = field(default_factory=lambda: SecretStr(":memory:"))
    audit_to_stderr: bool = False  # CLOSE_MCP_AUDIT_LOG=stderr: JSON lines for a log collector
    # CLOSE_MCP_TIMEZONE: the zone Close reads a filter's dates in; None: this machine's zone.
    timezone: tzinfo | None = None
    # OAuth sign-in with Close (`serve --transport http --oauth`): the server's external base
    # URL and the operator's Close OAuth app. The app's secret never leaves the token request.
    oauth: bool = False
    public_url: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None

    def needs_confirmation(self, action: str) -> bool:
        return action in self.confirm

    # CLOSE_MCP_SNAPSHOT is read here only: whether a snapshot or backup is taken
    # (`close_mcp.safety.snapshot_policy`) and how many lead ids a binding keeps both ask these.
    def snapshot_refusal(self, matched: int) -> str | None:
        """Why CLOSE_MCP_SNAPSHOT allows no snapshot or backup of `matched` leads, or None
        when it allows one (the limit is inclusive)."""
        limit = self.snapshot_limit
        if limit == 0:
            return "CLOSE_MCP_SNAPSHOT is off"
        if matched > limit:
            return f"it touches {matched} leads, more than CLOSE_MCP_SNAPSHOT allows ({limit})"
        return None

    @property
    def lead_ids_kept(self) -> int:
        """How many lead ids a token's binding keeps to name what changed: as many as a
        snapshot may hold, and the default when snapshots are off (every lead is bound
        whatever the setting; this bounds only what is stored)."""
        return self.snapshot_limit or DEFAULT_SNAPSHOT_LIMIT

    def __repr__(self) -> str:
        return (
            f"Settings(base_url={self.base_url!r}, read_only={self.read_only}, "
            f"toolsets={sorted(self.toolsets)}, confirm={sorted(self.confirm)}, "
            f"require_human={self.require_human}, sandbox={self.sandbox}, "
            f"audit_log={str(self.audit_log) if self.audit_log else None!r}, "
            f"snapshot_limit={self.snapshot_limit}, timezone={zone_name(self.timezone)!r})"
        )


def default_audit_path(env: Mapping[str, str]) -> Path:
    """The user's state directory (XDG on Linux, Library on macOS, LOCALAPPDATA on Windows)."""
    if state := env.get("XDG_STATE_HOME"):
        base = Path(state)
    elif os.name == "nt" and (local := env.get("LOCALAPPDATA")):
        base = Path(local)
    elif (Path.home() / "Library").is_dir() and os.uname().sysname == "Darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path.home() / ".local" / "state"
    return base / "close-mcp" / "audit.jsonl"


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    sandbox: bool = False,
    key_per_request: bool = False,
    read_only: bool | None = None,
    toolsets: str | None = None,
    confirm: str | None = None,
    require_human: bool | None = None,
    audit_log: str | None = None,
    snapshot: str | None = None,
    oauth: bool | None = None,
) -> Settings:
    """Read the environment, apply flag overrides (None means 'not given'), validate everything."""
    env = os.environ if env is None else env
    flags: dict[str, str | bool | None] = {
        "read_only": read_only,
        "toolsets": toolsets,
        "confirm": confirm,
        "require_human": require_human,
        "audit_log": audit_log,
        "snapshot_limit": snapshot,
    }
    values = {row.field: _read(row, env, flags.get(row.field)) for row in SETTINGS}

    api_key = values["api_key"]
    if api_key is None and not sandbox and not key_per_request:
        raise ConfigError(
            "CLOSE_API_KEY is not set. Set it to your Close API key (Settings > Developer > "
            "API Keys), or run with --sandbox to try close-mcp against a local fake Close."
        )

    audit = values["audit_log"]
    audit_path = None if audit in ("off", "stderr") else audit or default_audit_path(env)

    store = values["store"]
    if store is None:
        # The sandbox forgets everything when it stops; so may its store.
        store = ":memory:" if sandbox else str(default_audit_path(env).parent / "state.sqlite3")

    raw_secret = values["secret"]
    if raw_secret and store == ":memory:" and not sandbox:
        # A shared secret means replicas; a spent nonce in one process's memory lets each
        # replica take the same token once. The sandbox is its own Close, one per process:
        # nothing to share.
        raise ConfigError(
            "CLOSE_MCP_SECRET is set (replicas) but CLOSE_MCP_STORE is :memory:, private to "
            "this process: a confirmation token could be used once on each replica. Set "
            "CLOSE_MCP_STORE to a SQLite file or redis:// URL every replica shares, or unset "
            "CLOSE_MCP_SECRET"
        )

    client_id, client_secret = values["oauth_client_id"], values["oauth_client_secret"]
    # OAuth is on when asked for (--oauth) or when the Close app is configured.
    use_oauth = bool(oauth) or (client_id is not None and client_secret is not None)
    if use_oauth:
        if (client_id is None or client_secret is None) and not sandbox:
            raise ConfigError(
                "OAuth needs the Close OAuth app: set CLOSE_MCP_OAUTH_CLIENT_ID and "
                "CLOSE_MCP_OAUTH_CLIENT_SECRET (Close: Settings > Developer > OAuth Apps)"
            )
        if values["http_token"]:
            raise ConfigError(
                "CLOSE_MCP_HTTP_TOKEN and OAuth both take Authorization: Bearer; set only one"
            )

    given: dict[str, Any] = {  # unset rows keep the defaults of `Settings`
        name: SecretStr(value) if name in _SECRET_FIELDS else value
        for name, value in values.items()
        if value is not None
    }
    given.update(
        api_key=given.get("api_key"),
        audit_log=audit_path,
        audit_to_stderr=audit == "stderr",
        # Snapshots and backups live beside the audit log (or where it would be when off).
        snapshot_dir=(audit_path or default_audit_path(env)).parent / "snapshots",
        store=SecretStr(store),
        secret_is_shared=raw_secret is not None,
        sandbox=sandbox,
        oauth=use_oauth,
    )
    return Settings(**given)


_SECRET_FIELDS: Final = frozenset(row.field for row in SETTINGS if row.secret)


def _read(row: Setting, env: Mapping[str, str], flag: str | bool | None) -> Any:
    """A row's value: its flag's if given, else its variable's; None when unset."""
    if isinstance(flag, bool):
        return flag
    source, raw = (
        (row.flag, flag) if flag is not None and row.flag else (row.variable, env.get(row.variable))
    )
    if raw is None or (raw == "" and not row.blank_is_value):
        return None
    return row.parse(source, raw)
