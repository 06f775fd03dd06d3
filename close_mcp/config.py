"""Settings from the environment, overridden by command-line flags, checked strictly at start.

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
from typing import Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr

from close_mcp.close.client import DEFAULT_BASE_URL
from close_mcp.close.timezone import zone_name
from close_mcp.errors import ConfigError

TOOLSETS: Final = ("search", "jobs", "edit", "email", "sequences", "delete", "send")
CONFIRMABLE_ACTIONS: Final = ("edit", "email", "sequences", "send", "delete")
# Every action, so that no write tool sends on its first call unless a person said otherwise.
DEFAULT_CONFIRM: Final = CONFIRMABLE_ACTIONS
DEFAULT_SNAPSHOT_LIMIT: Final = 50_000


_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class Settings:
    api_key: SecretStr | None
    base_url: str = DEFAULT_BASE_URL
    read_only: bool = False
    toolsets: frozenset[str] = frozenset(TOOLSETS)
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

    def __repr__(self) -> str:
        return (
            f"Settings(base_url={self.base_url!r}, read_only={self.read_only}, "
            f"toolsets={sorted(self.toolsets)}, confirm={sorted(self.confirm)}, "
            f"require_human={self.require_human}, sandbox={self.sandbox}, "
            f"audit_log={str(self.audit_log) if self.audit_log else None!r}, "
            f"snapshot_limit={self.snapshot_limit}, timezone={zone_name(self.timezone)!r})"
        )


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


def parse_base_url(name: str, value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"{name} must be an http(s) URL such as {DEFAULT_BASE_URL}, not {value!r}"
        )
    url = value.strip()
    return url if url.endswith("/") else url + "/"


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

    def pick(name: str, flag: str | None) -> str | None:
        return flag if flag is not None else env.get(name)

    key_value = env.get("CLOSE_API_KEY", "").strip()
    if not key_value and not sandbox and not key_per_request:
        raise ConfigError(
            "CLOSE_API_KEY is not set. Set it to your Close API key (Settings > Developer > "
            "API Keys), or run with --sandbox to try close-mcp against a local fake Close."
        )
    api_key = SecretStr(key_value) if key_value else None

    base_url = DEFAULT_BASE_URL
    if raw_url := env.get("CLOSE_API_BASE_URL"):
        base_url = parse_base_url("CLOSE_API_BASE_URL", raw_url)

    ro = read_only
    if ro is None:
        ro = parse_bool("CLOSE_MCP_READ_ONLY", env.get("CLOSE_MCP_READ_ONLY", "0"))

    raw_toolsets = pick("CLOSE_MCP_TOOLSETS", toolsets)
    chosen = frozenset(TOOLSETS) if raw_toolsets is None else None
    if raw_toolsets is not None:
        source = "--toolsets" if toolsets is not None else "CLOSE_MCP_TOOLSETS"
        chosen = parse_names(source, raw_toolsets, TOOLSETS)
        if not chosen:
            raise ConfigError(f"{source} is empty; allowed: {', '.join(TOOLSETS)}")
    assert chosen is not None

    raw_confirm = pick("CLOSE_MCP_CONFIRM", confirm)
    confirm_set = frozenset(DEFAULT_CONFIRM)
    if raw_confirm is not None:
        source = "--confirm" if confirm is not None else "CLOSE_MCP_CONFIRM"
        confirm_set = parse_names(source, raw_confirm, CONFIRMABLE_ACTIONS)
    confirm_set = confirm_set | {"delete"}  # a delete is always confirmed

    human = require_human
    if human is None:
        human = parse_bool("CLOSE_MCP_REQUIRE_HUMAN", env.get("CLOSE_MCP_REQUIRE_HUMAN", "0"))

    raw_secret = env.get("CLOSE_MCP_SECRET", "")
    if raw_secret and len(raw_secret) < 16:
        raise ConfigError("CLOSE_MCP_SECRET must be at least 16 characters long")
    secret = SecretStr(raw_secret or secrets.token_hex(32))

    raw_audit = pick("CLOSE_MCP_AUDIT_LOG", audit_log)
    audit_path: Path | None
    audit_to_stderr = raw_audit is not None and raw_audit.strip().lower() == "stderr"
    if raw_audit is not None and raw_audit.strip().lower() in ("off", "stderr"):
        audit_path = None
    elif raw_audit:
        audit_path = Path(raw_audit).expanduser()
    else:
        audit_path = default_audit_path(env)

    raw_snapshot = pick("CLOSE_MCP_SNAPSHOT", snapshot)
    snapshot_limit = DEFAULT_SNAPSHOT_LIMIT
    if raw_snapshot is not None:
        snapshot_limit = parse_snapshot(
            "--snapshot" if snapshot is not None else "CLOSE_MCP_SNAPSHOT", raw_snapshot
        )

    raw_store = env.get("CLOSE_MCP_STORE", "").strip()
    if raw_store.startswith(("redis://", "rediss://", "unix://")) or raw_store == ":memory:":
        store = raw_store
    elif raw_store:
        store = str(Path(raw_store).expanduser())
    elif sandbox:
        store = ":memory:"  # the sandbox forgets everything when it stops; so may its store
    else:
        store = str(default_audit_path(env).parent / "state.sqlite3")

    if raw_secret and store == ":memory:" and not sandbox:
        # A shared secret means replicas; a spent nonce in one process's memory lets each
        # replica take the same token once. The sandbox is its own Close,
        # one per process: nothing to share.
        raise ConfigError(
            "CLOSE_MCP_SECRET is set (replicas) but CLOSE_MCP_STORE is :memory:, private to "
            "this process: a confirmation token could be used once on each replica. Set "
            "CLOSE_MCP_STORE to a SQLite file or redis:// URL every replica shares, or unset "
            "CLOSE_MCP_SECRET"
        )

    timezone = parse_timezone("CLOSE_MCP_TIMEZONE", env.get("CLOSE_MCP_TIMEZONE", ""))

    raw_token = env.get("CLOSE_MCP_HTTP_TOKEN", "")
    if raw_token and len(raw_token) < 16:
        raise ConfigError("CLOSE_MCP_HTTP_TOKEN must be at least 16 characters long")

    public_url = None
    if raw_public := env.get("CLOSE_MCP_PUBLIC_URL", "").strip():
        public_url = parse_base_url("CLOSE_MCP_PUBLIC_URL", raw_public).rstrip("/")
        parts = urlsplit(public_url)
        if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            # OAuth (RFC 8414, and Close's redirect URLs) needs https off loopback.
            raise ConfigError(f"CLOSE_MCP_PUBLIC_URL must be an https URL, not {raw_public!r}")
    client_id = env.get("CLOSE_MCP_OAUTH_CLIENT_ID", "").strip() or None
    client_secret = env.get("CLOSE_MCP_OAUTH_CLIENT_SECRET", "").strip() or None
    # OAuth is on when asked for (--oauth) or when the Close app is configured.
    use_oauth = bool(oauth) or (client_id is not None and client_secret is not None)
    if use_oauth:
        if (client_id is None or client_secret is None) and not sandbox:
            raise ConfigError(
                "OAuth needs the Close OAuth app: set CLOSE_MCP_OAUTH_CLIENT_ID and "
                "CLOSE_MCP_OAUTH_CLIENT_SECRET (Close: Settings > Developer > OAuth Apps)"
            )
        if raw_token:
            raise ConfigError(
                "CLOSE_MCP_HTTP_TOKEN and OAuth both take Authorization: Bearer; set only one"
            )

    return Settings(
        api_key=api_key,
        base_url=base_url,
        read_only=ro,
        toolsets=chosen,
        confirm=confirm_set,
        require_human=human,
        secret=secret,
        secret_is_shared=bool(raw_secret),
        audit_log=audit_path,
        snapshot_limit=snapshot_limit,
        # Snapshots and backups live beside the audit log (or where it would be when off).
        snapshot_dir=(audit_path or default_audit_path(env)).parent / "snapshots",
        sandbox=sandbox,
        http_token=SecretStr(raw_token) if raw_token else None,
        store=SecretStr(store),
        audit_to_stderr=audit_to_stderr,
        timezone=timezone,
        oauth=use_oauth,
        public_url=public_url,
        oauth_client_id=client_id,
        oauth_client_secret=SecretStr(client_secret) if client_secret else None,
    )
